"""Reward = 1 if the last boxed answer is equivalent to the reference (math-verify), else 0.

    reward(response, reference) = 1[ verify(parse(norm(reference)), parse(norm(boxed(response)))) ]

A grading failure (no box, unparseable answer, timeout, any exception) is reward 0 with a reason,
never an exception. Reasons: ``correct``, ``wrong``, ``no_boxed``, ``empty_answer``,
``unparsed_answer``, ``unparsed_reference``, ``timeout``, ``error: <type>``.

Equivalence is math-verify's (numbers to 6 decimals, symbolic simplification, sets, intervals,
comma lists compared as sets), with two deliberate changes:
- math-verify's unit stripping is off (it removed trailing single-letter symbols: ``\\frac{1}{m} t``
  became ``1/m``); units after a plain number are stripped by ``normalize_answer`` instead;
- a decimal with (near) double precision counts for an exact closed form with no symbols
  (``0.8760580505981934`` for ``\\arcsin(10/13)``, as a model printing from Python writes it),
  relative tolerance 1e-9; a rounded decimal (``0.876``) still does not.

Timeouts. math-verify's own timeout uses ``signal.alarm`` and only works in the main thread.
- In the main thread we switch it off and put one deadline (``setitimer``, fractional seconds) around
  the whole parse + verify; the deadline raises a BaseException so no ``except Exception`` inside
  sympy or math-verify can swallow it.
- From any other thread, grading is sent to a small process pool (spawned workers, each grading in its
  own main thread under the same deadline); the caller also waits at most timeout + 5 s and replaces
  the pool if a worker got stuck in C code. Cost: see tests/test_rewards.py and the report.
- ``grade_many(..., workers=N)`` uses that pool with N processes for large batches.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing as mp
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from taorl.rewards.extract import extract_boxed
from taorl.rewards.normalize import normalize_answer


@dataclass(frozen=True)
class GradeResult:
    reward: float  # 1.0 or 0.0
    extracted: str | None  # the boxed answer as the model wrote it (None: no box)
    reason: str

    @property
    def correct(self) -> bool:
        return self.reward == 1.0


class GradeTimeout(BaseException):
    """Raised by the deadline; a BaseException so library code catching Exception cannot hide it."""


# ---------------------------------------------------------------------------- math-verify, lazily
_CONFIG = None


def _config():
    global _CONFIG
    if _CONFIG is None:
        import math_verify.grader
        import math_verify.parser
        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        # we run math-verify with its signal timeouts off (our deadline replaces them): silence the
        # one-time warning about it, and its per-item debug/warning chatter
        math_verify.parser.TIMEOUT_WARNING_SHOWN = True
        math_verify.grader.TIMEOUT_WARNING_SHOWN = True
        for name in ("math_verify", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.ERROR)
        norm = NormalizationConfig(basic_latex=True, units=False, malformed_operators=True, nits=True,
                                   boxed="all", equations=False)
        _CONFIG = [LatexExtractionConfig(normalization_config=norm), ExprExtractionConfig()]
    return _CONFIG


def _parse(answer: str) -> list:
    from math_verify import parse

    return parse("\\boxed{" + answer + "}", _config(), parsing_timeout=None)


@lru_cache(maxsize=8192)
def _parse_reference(reference: str) -> tuple:
    return tuple(_parse(normalize_answer(reference)))


def _closed_form_matches_float(gold, pred) -> bool:
    """Exact closed form without symbols vs a decimal given to ~double precision (rel. tol 1e-9)."""
    import sympy

    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    if gold.free_symbols or pred.free_symbols or gold.has(sympy.Float) or not isinstance(pred, sympy.Float):
        return False
    if len(str(pred).rstrip("0").replace("-", "").replace(".", "")) < 10:  # too few digits given
        return False
    g = complex(gold.evalf(30))
    p = float(pred)
    return abs(g.imag) < 1e-12 and math.isclose(g.real, p, rel_tol=1e-9, abs_tol=1e-12)


def _verify(gold: tuple, pred: list) -> bool:
    from math_verify import verify

    if verify(list(gold), pred, timeout_seconds=None):
        return True
    return bool(gold and pred) and _closed_form_matches_float(gold[0], pred[0])


# ------------------------------------------------------------------------------------ the deadline
@contextmanager
def _deadline(seconds: float):
    """Raise GradeTimeout in this (main) thread after ``seconds``; restores the previous handler."""

    def on_alarm(signum, frame):
        raise GradeTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _grade_here(response: str, reference: str, timeout_s: float) -> GradeResult:
    """Grade in this thread, which must be the main thread of its process."""
    extracted = extract_boxed(response or "")
    if extracted is None:
        return GradeResult(0.0, None, "no_boxed")
    if not extracted.strip():
        return GradeResult(0.0, extracted, "empty_answer")
    try:
        with _deadline(timeout_s):
            gold = _parse_reference(str(reference))
            if not gold:
                return GradeResult(0.0, extracted, "unparsed_reference")
            pred = _parse(normalize_answer(extracted))
            if not pred:
                return GradeResult(0.0, extracted, "unparsed_answer")
            ok = _verify(gold, pred)
    except GradeTimeout:
        return GradeResult(0.0, extracted, "timeout")
    except Exception as exc:  # noqa: BLE001 - grading must never crash a rollout
        return GradeResult(0.0, extracted, f"error: {type(exc).__name__}")
    return GradeResult(1.0 if ok else 0.0, extracted, "correct" if ok else "wrong")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -------------------------------------------------------------------------------- the process pool
_POOL: dict[int, object] = {}
_POOL_LOCK = threading.Lock()


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _config()


def _grade_chunk(items: list[tuple[str, str]], timeout_s: float) -> list[GradeResult]:
    return [_grade_here(r, ref, timeout_s) for r, ref in items]


def _get_pool(workers: int):
    with _POOL_LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker)
            if not _POOL:  # stop the workers before interpreter teardown (Pool.__del__ then fails noisily)
                atexit.register(shutdown_pools)
            _POOL[workers] = pool
        return pool


def _drop_pool(workers: int) -> None:
    with _POOL_LOCK:
        pool = _POOL.pop(workers, None)
    if pool is not None:
        pool.terminate()


def shutdown_pools() -> None:
    """Stop the grading worker processes (they are also stopped at interpreter exit)."""
    for w in list(_POOL):
        _drop_pool(w)


def _grade_in_pool(items: list[tuple[str, str]], timeout_s: float, workers: int) -> list[GradeResult]:
    if not items:
        return []
    pool = _get_pool(workers)
    size = max(1, min(64, math.ceil(len(items) / (4 * workers))))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    pending = [pool.apply_async(_grade_chunk, (c, timeout_s)) for c in chunks]
    out: list[GradeResult] = []
    broken = False
    for chunk, fut in zip(chunks, pending):
        try:
            # a healthy worker answers within timeout_s per item; +5 s covers a cold start
            out.extend(fut.get(timeout=timeout_s * len(chunk) + 5.0) if not broken else [])
            if broken:
                raise mp.TimeoutError
        except mp.TimeoutError:
            broken = True
            out.extend(GradeResult(0.0, extract_boxed(r or ""), "timeout") for r, _ in chunk)
        except Exception as exc:  # noqa: BLE001
            out.extend(GradeResult(0.0, extract_boxed(r or ""), f"error: {type(exc).__name__}") for r, _ in chunk)
    if broken:
        _drop_pool(workers)
    return out


# ------------------------------------------------------------------------------------------ public
def grade(response: str, reference: str, timeout_s: float = 5.0) -> GradeResult:
    """Grade one response against a (normalised) reference answer. Safe from any thread."""
    if _in_main_thread():
        return _grade_here(response, reference, timeout_s)
    return _grade_in_pool([(response, reference)], timeout_s, workers=1)[0]


def grade_many(responses: list[str], references: list[str], timeout_s: float = 5.0,
               workers: int = 1) -> list[GradeResult]:
    """Grade pairs in order. ``workers`` > 1 (or a call from a non-main thread) uses worker processes."""
    if len(responses) != len(references):
        raise ValueError(f"grade_many: {len(responses)} responses for {len(references)} references")
    items = list(zip(responses, references))
    if workers <= 1 and _in_main_thread():
        return [_grade_here(r, ref, timeout_s) for r, ref in items]
    return _grade_in_pool(items, timeout_s, workers=max(1, workers))
