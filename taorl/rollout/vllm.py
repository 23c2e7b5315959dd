"""GPU rollout engine on vLLM: token ids in, sampled ids + sampling log-probs out (the Engine protocol).

Two ways to get a vLLM engine (rollout.vllm.mode):

    standalone   our own `vllm.LLM` on the model directory (taorl.gpu.model_dir), colocated with the
                 trainer on the same GPU (gpu_memory_utilization caps its share). After every
                 optimizer step the trainer calls sync(); the new weights are pushed lazily, right
                 before the next generation: full fine-tuning sends every parameter, LoRA sends
                 W + s·B·A for each adapted linear layer (computed out of place: the training
                 weights are never merged and unmerged, which would not round-trip in bf16), both
                 through the vLLM model's own `load_weights` (HF parameter names). The prefix cache
                 is reset after a push so no KV block computed with old weights is reused.
    unsloth      the vLLM engine Unsloth builds inside `FastLanguageModel.from_pretrained(
                 fast_inference=True)`; it shares the base weights with the trainer, and the LoRA
                 adapter goes with each request as a `LoRARequest` (Unsloth's `model.load_lora(dir,
                 load_tensors=True)`, refreshed on sync).

Sleep between phases (rollout.vllm.sleep_between_phases): `release()` (the trainer calls it after
the rollouts) frees vLLM's GPU memory with `llm.sleep(level=1)` (weights to CPU, KV cache dropped)
and the next generation wakes it up. In unsloth mode this is Unsloth's own "standby"
(UNSLOTH_VLLM_STANDBY=1, set by taorl.gpu.preflight) and release() does nothing.

Generation runs vLLM's engine loop directly (`llm.llm_engine.add_request / step / abort_request`)
rather than `LLM.generate`, for two reasons:

1. The code-block stop. A stop *string* cannot express "the end of the first complete fenced
   block" (the opening fence is the same three backticks). After each engine step we look at the
   new ids of every request; only when one of them contains a backtick do we decode the turn so far
   and ask taorl.tools.parse.complete_block_end (the rule the hf engine and the loop use). The
   first token after which a block is complete is the last one kept, exactly as sampled (even if
   it carries characters after the fence); the request is aborted, and any ids vLLM sampled after
   it are dropped (they were sampled after the kept prefix, so dropping them leaves the kept ids
   distributed exactly as the contract says).
2. Streaming. submit()/poll() expose the same machinery one request at a time, so the rollout
   loop can hand a finished turn's code to the sandbox while the other trajectories keep
   generating (see StreamingEngine below and the report for the loop change).

Log-probabilities: the engine is built with logprobs_mode="processed_logprobs" and each request asks
logprobs=0 (the sampled token only), so `Completion.logprobs[t]` is log q(y_t) under the distribution
vLLM sampled from (temperature, top-k, top-p applied: the contract of taorl.rollout.engine). When
top_p = 1 and top_k = 0 that is log_softmax(z/T)[y_t], what the trainer recomputes, and it is also
put in `full_logprobs`. An engine built by someone else (Unsloth) may use vLLM's default
"raw_logprobs" (log_softmax(z) before temperature): then the numbers are only the sampling
log-probs at T = 1 with no truncation, and any other setting warns once and leaves full_logprobs None.
Greedy (T = 0): logprobs are 0 (a point mass), full_logprobs what vLLM returns.

Nothing here imports vllm or torch at module import: `import taorl.rollout.vllm` is cheap.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
import warnings
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from taorl.errors import UserError
from taorl.rollout.blockstop import backtick_ids, block_cut
from taorl.rollout.engine import Completion, SamplingParams

PROCESSED = "processed_logprobs"


# ------------------------------------------------------------------------------------ pure helpers
def request_seed(seed: int, index: int) -> int:
    """Per-request vLLM seed of prompt `index` in a call seeded `seed` (31 bits: every vLLM accepts it)."""
    return (int(seed) * 1_000_003 + int(index) * 7_919 + 1) % (2**31 - 1)


def token_logprob(entry: Any, token_id: int) -> float:
    """The sampled token's log-prob from one vLLM logprobs entry ({id: Logprob} or {id: float})."""
    v = entry[token_id]
    return float(getattr(v, "logprob", v))


def finish_of(finish_reason: str | None, stop_reason: Any = None) -> str:
    """vLLM's finish_reason -> ours: 'length' -> length; 'stop' (eos or a stop token id) -> eos."""
    if finish_reason == "length":
        return "length"
    if finish_reason == "stop":
        return "eos"
    raise RuntimeError(f"vLLM finished a request with finish_reason={finish_reason!r} (stop_reason="
                       f"{stop_reason!r}); taorl only expects 'stop' or 'length'")


def request_cap(prompt_len: int, cap: int, max_model_len: int | None) -> int:
    """New-token cap of one request: the caller's cap, but prompt + completion must fit the model."""
    if max_model_len is not None:
        cap = min(cap, max_model_len - prompt_len)
    return max(cap, 0)


# ------------------------------------------------------------------------------ streaming protocol
@runtime_checkable
class StreamingEngine(Protocol):
    """Requests submitted one at a time, completions collected as they finish.

    submit(key, prompt_ids, params, max_tokens=None, seed=None)   queue one request
    poll() -> [(key, Completion)]   advance generation until at least one queued request finishes
                                    (empty only when nothing is pending)
    pending() -> int                requests submitted and not yet returned by poll()

    The loop that wants tool calls to overlap generation keeps every trajectory in flight: when
    poll() returns a turn with a code block it runs the code in a thread pool and submits the
    trajectory's next turn once the observation is appended, while poll() keeps serving the others.
    submit/poll must be called from one thread (vLLM's engine is not thread-safe); the tools run in
    worker threads.
    """

    def submit(self, key: Hashable, prompt_ids: list[int], params: SamplingParams,
               max_tokens: int | None = None, seed: int | None = None) -> None: ...

    def poll(self) -> list[tuple[Hashable, Completion]]: ...

    def pending(self) -> int: ...


class BatchStream:
    """StreamingEngine over any batch Engine (hf on CPU): poll() generates everything queued at once.

    Gives the streaming loop a CPU path with the same results as the batch loop: the requests of
    one poll() run in one engine call, in submission order, with the seed of the first request
    (as the batch loop seeds one call per turn).
    """

    def __init__(self, engine):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self._queue: list[tuple[Hashable, list[int], SamplingParams, int | None, int | None]] = []

    def submit(self, key, prompt_ids, params, max_tokens=None, seed=None) -> None:
        self._queue.append((key, list(prompt_ids), params, max_tokens, seed))

    def pending(self) -> int:
        return len(self._queue)

    def poll(self):
        if not self._queue:
            return []
        queue, self._queue = self._queue, []
        out = []
        # one engine call per distinct SamplingParams (seeds aside), seeded by its first request
        groups: dict[SamplingParams, list] = {}
        for item in queue:
            groups.setdefault(dataclasses.replace(item[2], seed=0), []).append(item)
        for base, items in groups.items():
            first = items[0]
            p = dataclasses.replace(base, seed=int(first[2].seed if first[4] is None else first[4]))
            caps = [p.max_tokens if c is None else min(p.max_tokens, int(c)) for _, _, _, c, _ in items]
            comps = self.engine.generate([ids for _, ids, _, _, _ in items], p, max_tokens=caps)
            out.extend((key, c) for (key, *_), c in zip(items, comps))
        return out


# ----------------------------------------------------------------------------------- the engine
@dataclass
class _Request:
    key: Hashable
    cap: int
    stop_at_code_block: bool
    greedy: bool
    full_ok: bool  # the sampling log-probs are also log_softmax(z/T)[y] (no truncation)
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class VLLMEngine:
    """The Engine protocol (+ StreamingEngine) on a `vllm.LLM`; see the module docstring.

    Build it with `VLLMEngine.standalone(cfg, policy)` or `VLLMEngine.from_unsloth(cfg, policy)`
    (`build_vllm_engine(cfg, policy)` picks by rollout.vllm.mode).
    """

    def __init__(self, llm, tokenizer, *, policy=None, weight_sync: str = "none",
                 sleep_between_phases: bool = False, max_model_len: int | None = None, api=None):
        if weight_sync not in ("none", "weights", "lora_merged", "lora_request"):
            raise ValueError(f"weight_sync={weight_sync!r}")
        self.api = api if api is not None else VllmApi()
        self.llm = llm
        self.tokenizer = tokenizer
        self.policy = policy
        self.weight_sync = weight_sync
        self.sleep_between_phases = sleep_between_phases
        self.max_model_len = max_model_len
        self._engine = llm.llm_engine
        self._ids = itertools.count()
        self._live: dict[str, _Request] = {}
        self._done: list[tuple[Hashable, Completion]] = []
        self._ticks: frozenset[int] | None = None
        self._stale = weight_sync != "none"  # push the trainer's weights before the first rollout
        self._asleep = False
        self._lora = None
        self._warned: set[str] = set()
        self._logprobs_mode = _engine_logprobs_mode(llm)
        self.stats = {"gen_s": 0.0, "tokens": 0, "sync_s": 0.0, "syncs": 0, "sleep_s": 0.0, "aborted_extra": 0}

    # -------------------------------------------------------------------------------- construction
    @classmethod
    def standalone(cls, cfg, policy) -> VLLMEngine:
        """Our own vllm.LLM on the policy's model directory, colocated on the same GPU."""
        from taorl import gpu

        vllm = gpu.import_vllm()
        vc, mc = cfg.rollout.vllm, cfg.model
        # in-process engine core: the trainer's tensors reach the vLLM model by reference on sync
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        path = getattr(policy, "model_path", None) or gpu.model_dir(mc)
        dtype = mc.dtype if vc.dtype == "auto" else vc.dtype  # "auto" follows the trainer's weights
        llm = vllm.LLM(model=str(path), tokenizer=str(path), dtype=dtype, seed=cfg.train.seed,
                       gpu_memory_utilization=vc.gpu_memory_utilization, max_num_seqs=vc.max_num_seqs,
                       max_model_len=mc.max_seq_len, enforce_eager=vc.enforce_eager,
                       enable_prefix_caching=True, enable_sleep_mode=vc.sleep_between_phases,
                       logprobs_mode=PROCESSED)
        sync = "lora_merged" if mc.lora.enabled else "weights"
        return cls(llm, policy.tokenizer, policy=policy, weight_sync=sync,
                   sleep_between_phases=vc.sleep_between_phases, max_model_len=mc.max_seq_len)

    @classmethod
    def for_model(cls, cfg) -> VLLMEngine:
        """A standalone engine on cfg.model.name's weights as they are (evaluation: no policy, no sync)."""
        from transformers import AutoTokenizer

        from taorl import gpu

        gpu.require_cuda("evaluation on vLLM")
        vllm = gpu.import_vllm()
        vc, mc = cfg.rollout.vllm, cfg.model
        path = gpu.model_dir(mc)
        dtype = mc.dtype if vc.dtype == "auto" else vc.dtype
        llm = vllm.LLM(model=str(path), tokenizer=str(path), dtype=dtype, seed=cfg.train.seed,
                       gpu_memory_utilization=vc.gpu_memory_utilization, max_num_seqs=vc.max_num_seqs,
                       max_model_len=mc.max_seq_len, enforce_eager=vc.enforce_eager,
                       enable_prefix_caching=True, logprobs_mode=PROCESSED)
        tok = AutoTokenizer.from_pretrained(str(path))
        tok.clean_up_tokenization_spaces = False
        return cls(llm, tok, weight_sync="none", max_model_len=mc.max_seq_len)

    @classmethod
    def from_unsloth(cls, cfg, policy) -> VLLMEngine:
        """The engine inside an Unsloth policy loaded with fast_inference=True (shared weights)."""
        llm = getattr(policy, "vllm_engine", None)
        if llm is None:
            raise UserError("rollout.vllm.mode=unsloth: the policy has no vLLM engine; it needs "
                            "model.backend=unsloth (loaded with fast_inference=True)")
        sync = "lora_request" if cfg.model.lora.enabled else "none"
        return cls(llm, policy.tokenizer, policy=policy, weight_sync=sync,
                   sleep_between_phases=False, max_model_len=cfg.model.max_seq_len)

    # ---------------------------------------------------------------------------------- phases
    def sync(self, policy_model) -> None:
        """After an optimizer step: the weights are pushed before the next generation (lazily, so
        several optimizer steps in one training phase cost one push)."""
        if self.weight_sync != "none":
            self._stale = True

    def release(self) -> None:
        """End of a rollout phase: free vLLM's GPU memory for training (when sleep_between_phases)."""
        if self.sleep_between_phases and not self._asleep and not self._live:
            t0 = time.perf_counter()
            self.llm.sleep(level=1)
            self._asleep = True
            self.stats["sleep_s"] += time.perf_counter() - t0

    def _ready(self) -> None:
        """Wake up and push stale weights before generating."""
        if self._asleep:
            t0 = time.perf_counter()
            self.llm.wake_up()
            self._asleep = False
            self.stats["sleep_s"] += time.perf_counter() - t0
        if self._stale:
            t0 = time.perf_counter()
            self._push_weights()
            self._stale = False
            self.stats["sync_s"] += time.perf_counter() - t0
            self.stats["syncs"] += 1

    def _push_weights(self) -> None:
        if self.weight_sync == "lora_request":
            self._lora = engine_lora_request(self.policy.lora_request())
        else:
            import torch

            with torch.no_grad():
                pairs = (full_weights(self.policy.model) if self.weight_sync == "weights"
                         else merged_lora_weights(self.policy.model))
                load_into_vllm(self.llm, pairs)
        self.llm.reset_prefix_cache()

    # ------------------------------------------------------------------------------ Engine protocol
    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 max_tokens: Sequence[int] | None = None) -> list[Completion]:
        if max_tokens is not None and len(max_tokens) != len(prompts):
            raise ValueError(f"max_tokens has {len(max_tokens)} entries for {len(prompts)} prompts")
        if self._live or self._done:
            raise RuntimeError("generate() while streamed requests are pending; poll() them first")
        for i, p in enumerate(prompts):
            self.submit(i, p, params, None if max_tokens is None else max_tokens[i],
                        seed=request_seed(params.seed, i))
        out: list[Completion | None] = [None] * len(prompts)
        while self.pending():
            for key, c in self.poll():
                out[key] = c
        return out  # type: ignore[return-value]

    # --------------------------------------------------------------------------- StreamingEngine
    def pending(self) -> int:
        return len(self._live) + len(self._done)

    def submit(self, key, prompt_ids, params, max_tokens=None, seed=None) -> None:
        if not prompt_ids:
            raise ValueError("empty prompt")
        self._ready()
        cap = params.max_tokens if max_tokens is None else min(params.max_tokens, int(max_tokens))
        cap = request_cap(len(prompt_ids), cap, self.max_model_len)
        if cap == 0:
            self._done.append((key, Completion([], [], "length", [])))
            return
        if params.stop_at_code_block and self._ticks is None:
            self._ticks = backtick_ids(self.tokenizer)
        full_ok = self._check_logprob_mode(params)
        rid = f"taorl-{next(self._ids)}"
        self._engine.add_request(rid, self.api.tokens_prompt(prompt_ids),
                                 self.api.sampling_params(params, cap, params.seed if seed is None else seed),
                                 lora_request=self._lora)
        self._live[rid] = _Request(key, cap, params.stop_at_code_block, params.temperature == 0, full_ok)

    def poll(self) -> list[tuple[Hashable, Completion]]:
        t0 = time.perf_counter()
        while not self._done and self._live:
            for out in self._engine.step():
                req = self._live.get(out.request_id)
                if req is None:  # aborted by us after its block closed
                    continue
                self._advance(out.request_id, req, out)
        done, self._done = self._done, []
        self.stats["gen_s"] += time.perf_counter() - t0
        self.stats["tokens"] += sum(len(c.token_ids) for _, c in done)
        return done

    # ---------------------------------------------------------------------------------- internals
    def _advance(self, rid: str, req: _Request, out) -> None:
        """Append one step's new ids (DELTA outputs) and decide whether the request is finished."""
        o = out.outputs[0]
        new = list(o.token_ids)
        start = len(req.ids)
        req.ids += new
        entries = o.logprobs or []
        if len(entries) != len(new):
            raise RuntimeError(f"vLLM returned {len(new)} ids but {len(entries)} logprob entries")
        req.logprobs += [token_logprob(e, t) for e, t in zip(entries, new)]
        finish = None
        if req.stop_at_code_block and self._ticks is not None and any(t in self._ticks for t in new):
            cut = block_cut(self.tokenizer, req.ids, start, self._ticks)
            if cut is not None:
                self.stats["aborted_extra"] += len(req.ids) - cut
                del req.ids[cut:], req.logprobs[cut:]
                finish = "stop"
                if not out.finished:
                    self._engine.abort_request([rid])
        if finish is None and out.finished:
            finish = finish_of(o.finish_reason, getattr(o, "stop_reason", None))
        if finish is None and len(req.ids) >= req.cap:  # vLLM enforces max_tokens; belt and braces
            finish = "length"
            del req.ids[req.cap:], req.logprobs[req.cap:]
            self._engine.abort_request([rid])
        if finish is not None:
            del self._live[rid]
            self._done.append((req.key, self._completion(req, finish)))

    def _completion(self, req: _Request, finish: str) -> Completion:
        lps = req.logprobs
        if req.greedy:
            return Completion(req.ids, [0.0] * len(lps), finish, list(lps))  # type: ignore[arg-type]
        full = list(lps) if req.full_ok else None
        return Completion(req.ids, lps, finish, full)  # type: ignore[arg-type]

    def _check_logprob_mode(self, params: SamplingParams) -> bool:
        """True when the returned log-probs are also log_softmax(z/T)[y]; warns once when they are
        not even the sampling log-probs (an engine in raw_logprobs mode at T != 1 or with truncation)."""
        untruncated = params.top_p >= 1.0 and params.top_k == 0
        if self._logprobs_mode == PROCESSED:
            return untruncated
        # raw log_softmax(z): the sampling log-prob only at T = 1 without truncation
        ok = untruncated and params.temperature == 1.0
        if not ok and params.temperature != 0 and "mode" not in self._warned:
            self._warned.add("mode")
            warnings.warn(f"vLLM engine has logprobs_mode={self._logprobs_mode!r}: its log-probs are "
                          f"log_softmax(z) before temperature/top-p, not the sampling distribution at "
                          f"T={params.temperature}, top_p={params.top_p}, top_k={params.top_k}; "
                          "sampling/logp_diff_* will show the difference", stacklevel=3)
        return ok



def sampling_kwargs(params: SamplingParams, cap: int, seed: int) -> dict[str, Any]:
    """vllm.SamplingParams arguments of one request (output_kind DELTA is added by VllmApi): the
    sampled token's log-prob only (logprobs=0), no detokenisation (taorl decodes only when a
    backtick arrives), top_k -1 = off, a 31-bit seed."""
    return {"n": 1, "temperature": float(params.temperature), "top_p": float(params.top_p),
            "top_k": int(params.top_k) if params.top_k > 0 else -1, "max_tokens": int(cap),
            "seed": int(seed) % (2**31 - 1), "logprobs": 0, "detokenize": False}


class VllmApi:
    """The two vLLM objects a request is made of, built lazily from the installed vllm (a test drives
    VLLMEngine with a fake engine and its own api object of the same two methods)."""

    def sampling_params(self, params: SamplingParams, cap: int, seed: int):
        from vllm import SamplingParams as VSP
        from vllm.sampling_params import RequestOutputKind

        return VSP(**sampling_kwargs(params, cap, seed), output_kind=RequestOutputKind.DELTA)

    def tokens_prompt(self, ids: list[int]):
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=[int(i) for i in ids])


def _engine_logprobs_mode(llm) -> str | None:
    """The engine's logprobs_mode (None when this vLLM does not have the setting)."""
    for path in (("llm_engine", "model_config"), ("llm_engine", "vllm_config", "model_config")):
        obj = llm
        for name in path:
            obj = getattr(obj, name, None)
        mode = getattr(obj, "logprobs_mode", None)
        if mode is not None:
            return str(getattr(mode, "value", mode))
    return None


# ------------------------------------------------------------------------------- weight transfer
def _strip_peft(name: str) -> str:
    """peft parameter name -> the plain transformers name vLLM's load_weights expects."""
    for prefix in ("base_model.model.",):
        name = name.removeprefix(prefix)
    return name.replace(".base_layer.", ".")


def full_weights(model) -> Iterator[tuple[str, Any]]:
    """(name, tensor) of every parameter and buffer of a plain transformers model (full fine-tuning)."""
    for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        if "rotary_emb" in name:  # recomputed by vLLM, not a checkpoint tensor
            continue
        yield _strip_peft(name), t.detach()


def merged_lora_weights(peft_model, adapter: str = "default") -> Iterator[tuple[str, Any]]:
    """(name, W + s·B·A) for every LoRA-adapted linear layer of a peft model, out of place.

        W' = W + scaling · (B @ A)     A [r, in], B [out, r], scaling = alpha / r
    computed in fp32 and cast to W's dtype; W itself is never modified. Layers without LoRA are
    not sent (they do not change under LoRA training).
    """

    for name, mod in peft_model.named_modules():
        lora_a = getattr(mod, "lora_A", None)
        if lora_a is None or adapter not in lora_a:
            continue
        base = mod.get_base_layer() if hasattr(mod, "get_base_layer") else mod.base_layer
        w = base.weight
        a = mod.lora_A[adapter].weight.float()
        b = mod.lora_B[adapter].weight.float()
        delta = (b @ a) * float(mod.scaling[adapter])
        if getattr(mod, "fan_in_fan_out", False):
            delta = delta.T
        merged = (w.float() + delta.to(w.device)).to(w.dtype)
        yield _strip_peft(name) + ".weight", merged
        if getattr(base, "bias", None) is not None:
            yield _strip_peft(name) + ".bias", base.bias.detach()


def _vllm_model(llm):
    """The torch module inside an in-process vLLM engine (V1 and V0 layouts), or None."""
    paths = (("llm_engine", "model_executor", "driver_worker", "worker", "model_runner", "model"),
             ("llm_engine", "model_executor", "driver_worker", "model_runner", "model"))
    for path in paths:
        obj = llm
        for name in path:
            obj = getattr(obj, name, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "load_weights"):
            return obj
    return None


def load_into_vllm(llm, pairs: Iterable[tuple[str, Any]]) -> int:
    """Load (HF name, tensor) pairs into the vLLM model; returns how many tensors were sent."""
    pairs = list(pairs)
    model = _vllm_model(llm)
    if model is not None:
        model.load_weights(pairs)
    elif hasattr(llm, "apply_model"):  # engine core in another process: the tensors are serialised
        llm.apply_model(lambda m: m.load_weights(pairs))
    else:
        raise RuntimeError("cannot reach the vLLM model to load weights (set VLLM_ENABLE_V1_MULTIPROCESSING=0)")
    return len(pairs)


# ------------------------------------------------------------------------------------ LoRA requests
MERGED_ROLLOUT_ENV = "UNSLOTH_VLLM_MERGED_ROLLOUT"


def engine_lora_request(req: Any) -> Any:
    """`req` if vLLM's engine loop can take it as lora_request (None or a real LoRARequest), else a
    clear error.

    vLLM's output processor reads `lora_request.lora_name` when a request is added (RequestState in
    vllm/v1/engine/output_processor.py), and the scheduler reads `lora_int_id`. Unsloth's opt-in
    "merged rollout" (UNSLOTH_VLLM_MERGED_ROLLOUT=1) makes `model.load_lora(...)` return a sentinel
    instead (`_MergedLoRARequest`, marked `_unsloth_merged`) that only the wrapper Unsloth installs
    around `LLM.generate` / `LLM.chat` understands: it folds W + s*B*A into the shared weights for
    the duration of that call and passes lora_request=None. taorl drives `llm_engine.add_request`
    directly (see the module docstring), so the sentinel reached vLLM as is and crashed at the first
    rollout ("'_MergedLoRARequest' object has no attribute 'lora_name'"). UnslothPolicy.lora_request
    therefore asks Unsloth for a real LoRARequest (the switch set to 0 around the call); this check
    turns any other object into an error that says what happened.
    """
    if req is None or (hasattr(req, "lora_name") and hasattr(req, "lora_int_id")):
        return req
    if getattr(req, "_unsloth_merged", False):
        raise RuntimeError(f"the policy returned Unsloth's merged-rollout sentinel ({type(req).__name__}) "
                           "instead of a vLLM LoRARequest; it only works through LLM.generate, and taorl "
                           f"drives vLLM's engine loop directly: set {MERGED_ROLLOUT_ENV}=0")
    raise TypeError(f"lora_request must be None or a vllm LoRARequest (with lora_name and lora_int_id), "
                    f"got {type(req).__name__}")


# ------------------------------------------------------------------------------------- factory
def build_vllm_engine(cfg, policy) -> VLLMEngine:
    """The vLLM engine rollout.vllm.mode asks for (CUDA and the vllm package are checked first)."""
    from taorl import gpu

    gpu.require_cuda("rollout.engine=vllm")
    if cfg.rollout.vllm.mode == "unsloth":
        return VLLMEngine.from_unsloth(cfg, policy)
    gpu.require_package("vllm", "rollout.engine=vllm")
    return VLLMEngine.standalone(cfg, policy)
