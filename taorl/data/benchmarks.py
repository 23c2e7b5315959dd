"""The evaluation benchmarks: ONE table from a name to its local file and its Hugging Face dataset.

Where a benchmark is read from, first match wins:
1. ``$TAORL_DATA_DIR/<file>`` when the variable is set (it must then be a folder);
2. ``<repo>/../shared/benchmarks/<file>``, a ``shared/benchmarks`` folder next to the checkout (the
   layout of the project's shared folder: one JSONL per set, fields id/problem/answer/source + extras),
   read in place, never copied;
3. the Hugging Face hub via ``datasets`` (online only; see ``_load_from_hub``). The hub entries could
   not be checked from the offline build machine: the repo ids and field names are the public ones
   at the time of writing, and a failure says so.

Reference answers are normalised once here (taorl.rewards.normalize_reference); the raw one stays in
``meta["raw_answer"]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from taorl.data.files import read_jsonl
from taorl.data.problem import Problem
from taorl.errors import UserError
from taorl.rewards.normalize import normalize_reference


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    file: str  # local JSONL file name
    hub_repo: str | None  # Hugging Face dataset id (None: local only)
    hub_config: str | None = None
    hub_split: str = "test"
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str | None = None
    answer_format: str = "plain"  # plain | gsm8k (text after '####') | list (first item, $ stripped)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("aime24", "aime24.jsonl", "HuggingFaceH4/aime_2024", hub_split="train", id_field="id"),
        BenchmarkSpec("aime25", "aime25.jsonl", "math-ai/aime25", hub_split="test", id_field="id"),
        BenchmarkSpec("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", hub_split="test", id_field="unique_id"),
        BenchmarkSpec("olympiadbench", "olympiadbench.jsonl", "Hothan/OlympiadBench",
                      hub_config="OE_TO_maths_en_COMP", hub_split="train", problem_field="question",
                      answer_field="final_answer", id_field="id", answer_format="list"),
        BenchmarkSpec("amc23", "amc23.jsonl", "math-ai/amc23", hub_split="test", problem_field="question",
                      id_field="id"),
        BenchmarkSpec("hmmt25", "hmmt25.jsonl", "MathArena/hmmt_feb_2025", hub_split="train",
                      id_field="problem_idx"),
        BenchmarkSpec("minerva", "minerva.jsonl", "math-ai/minervamath", hub_split="test",
                      problem_field="question"),
        BenchmarkSpec("gsm8k", "gsm8k.jsonl", "openai/gsm8k", hub_config="main", hub_split="test",
                      problem_field="question", answer_format="gsm8k"),
        # the MATH train split levels 3-5 as shipped in the shared folder: local only
        BenchmarkSpec("math_train", "train_math.jsonl", None),
    ]
}


def benchmark_names() -> list[str]:
    return list(BENCHMARKS)


def local_data_dir() -> Path | None:
    """$TAORL_DATA_DIR, else a ``shared/benchmarks`` folder next to the checkout, else None."""
    env = os.environ.get("TAORL_DATA_DIR")
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise UserError(f"TAORL_DATA_DIR={env}: not a folder (expected the folder holding the benchmark JSONL files)")
        return p
    shared = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
    return shared if shared.is_dir() else None


def _spec(name: str) -> BenchmarkSpec:
    key = name.strip().lower()
    if key not in BENCHMARKS:
        raise UserError(f"benchmark '{name}': unknown (known: {', '.join(BENCHMARKS)})")
    return BENCHMARKS[key]


def load_benchmark(name: str, limit: int | None = None) -> list[Problem]:
    """The problems of one benchmark, in file order; ``limit`` keeps the first ``limit`` of them."""
    spec = _spec(name)
    folder = local_data_dir()
    if folder is not None:
        path = folder / spec.file
        if not path.is_file():
            raise UserError(f"{path}: benchmark file missing (data folder {folder}; expected {spec.file})")
        problems = read_jsonl(path, source=spec.name)
        for p in problems:
            p.source = spec.name
    else:
        problems = _load_from_hub(spec)
    return problems[:limit] if limit is not None else problems


# ------------------------------------------------------------------------------------ online only
def _hub_answer(value, fmt: str) -> str:
    if fmt == "gsm8k":  # "... #### 1,234"
        return str(value).split("####")[-1].strip().replace(",", "")
    if fmt == "list":  # OlympiadBench final_answer: ["$69$, $84$"]
        first = value[0] if isinstance(value, (list, tuple)) else value
        return str(first).strip().strip("$").replace("$,$", ", ").replace("$, $", ", ").replace("$", "").rstrip(".")
    return str(value)


def _load_from_hub(spec: BenchmarkSpec) -> list[Problem]:  # pragma: no cover - needs the network
    if spec.hub_repo is None:
        raise UserError(f"benchmark '{spec.name}': only available from a local folder; set TAORL_DATA_DIR "
                        f"to a folder holding {spec.file}")
    from taorl.data.hub import load_hub_rows  # fails in seconds, in one line, without a network

    ds = load_hub_rows(spec.hub_repo, what=f"benchmark '{spec.name}'", split=spec.hub_split, config=spec.hub_config,
                       hint=f"set TAORL_DATA_DIR to a folder holding {spec.file} (one JSON object per line "
                            "with problem and answer)")
    out = []
    for i, row in enumerate(ds):
        for key in (spec.problem_field, spec.answer_field):
            if key not in row:
                raise UserError(f"hub dataset {spec.hub_repo}: row {i} has no field '{key}' "
                                f"(has: {', '.join(row)}); the dataset layout changed")
        raw = _hub_answer(row[spec.answer_field], spec.answer_format)
        pid = f"{spec.name}-{row[spec.id_field] if spec.id_field and spec.id_field in row else i}"
        meta = {k: v for k, v in row.items() if k not in (spec.problem_field, spec.answer_field)}
        meta["raw_answer"] = raw
        out.append(Problem(pid, row[spec.problem_field], normalize_reference(raw, problem_id=pid), spec.name, meta))
    return out
