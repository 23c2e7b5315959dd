"""The one place that touches the GPU stack's packages: checks, versions, import order.

Every GPU code path (the Unsloth policy backend, the vLLM rollout engine, the GPU benchmarks) goes
through here, so that on a machine without CUDA or without the packages the user gets one clear
line (a UserError naming the config key) instead of an ImportError deep inside a library:

    preflight(cfg)            call once, right after the config is loaded and before anything
                              imports transformers / peft / trl: checks CUDA and the packages the
                              config asks for, then imports unsloth first when model.backend=unsloth
                              (Unsloth patches transformers/peft/trl at import time, so it must come
                              before them in the process)
    require_cuda(what)        UserError unless torch sees a CUDA device
    require_package(name, what)
    import_unsloth()          `import unsloth` with the import-order check; returns the module
    import_vllm()             `import vllm` after the package check; returns the module
    version_report()          {package: installed version or None} for the run manifest / benchmarks
    model_dir(model_cfg)      a directory holding the model (vLLM and Unsloth load from a path):
                              the random-init models ("tiny", "tiny-qwen2" + init_overrides) are
                              built once with taorl.models and saved under $TAORL_CACHE/gpu-models

Nothing here imports torch, unsloth or vllm at module import time: `import taorl.gpu` is cheap.

Versions: TESTED holds what ran on the lent H100 (../shared/gpu/README.md); other versions get a
warning, not an error (users on their own GPUs may run newer releases).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from taorl.errors import UserError

# what ran on the lent H100 (torch 2.11.0+cu130, Python 3.12)
TESTED: dict[str, str] = {"unsloth": "2026.10.9", "vllm": "0.26.0", "trl": "1.14.2", "torch": "2.11.0"}
# the oldest releases whose APIs this code uses (vLLM: logprobs_mode, RequestOutputKind.DELTA, TokensPrompt
# in vllm.inputs; Unsloth: fast_inference + load_lora(load_tensors=True))
MINIMUM: dict[str, str] = {"vllm": "0.10.2", "unsloth": "2025.3.0"}
# Unsloth patches these at import time; importing them first loses (some of) its optimisations
UNSLOTH_BEFORE = ("transformers", "peft", "trl")
INSTALL_HINT = "install the GPU extra: pip install 'taorl[gpu]' (see docs/gpu.md)"


class GpuUnavailable(UserError):
    """The config asks for the GPU path on a machine that cannot run it."""


# --------------------------------------------------------------------------------------- versions
def installed_version(name: str) -> str | None:
    """The installed distribution's version, or None (never imports the package)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _vtuple(v: str) -> tuple:
    """'0.26.0+cu130' -> (0, 26, 0); enough to order the releases we compare."""
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        out.append(int(digits))
        if not part.isdigit():
            break
    return tuple(out)


def check_version(name: str, version: str | None = None) -> str | None:
    """Warn when `name` differs from the tested release; UserError below the minimum. Returns a note."""
    v = version if version is not None else installed_version(name)
    if v is None:
        return None
    low = MINIMUM.get(name)
    if low is not None and _vtuple(v) < _vtuple(low):
        raise GpuUnavailable(f"{name} {v} is too old for taorl (need >= {low}, tested {TESTED.get(name)}); "
                             f"{INSTALL_HINT}")
    tested = TESTED.get(name)
    if tested is not None and _vtuple(v) != _vtuple(tested):
        note = f"{name} {v} is installed; taorl's GPU path was tested with {name} {tested}"
        warnings.warn(note, stacklevel=2)
        return note
    return None


REPORTED = ("torch", "transformers", "peft", "unsloth", "unsloth_zoo", "vllm", "trl")


def version_report() -> dict[str, str | None]:
    """Installed versions of the GPU stack (None when absent), for manifests and benchmark tables."""
    return {n: installed_version(n) for n in REPORTED}


@contextlib.contextmanager
def scoped_env(name: str, value: str):
    """os.environ[name] = value inside the block, restored (or removed) after it."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


# ----------------------------------------------------------------------------------------- checks
def cuda_available() -> bool:
    """True when torch sees a CUDA device (imports torch, which the CPU install has anyway)."""
    import torch

    return bool(torch.cuda.is_available())


def require_cuda(what: str) -> None:
    """UserError unless a CUDA device is visible. `what` names the config choice, e.g. 'rollout.engine=vllm'."""
    if not cuda_available():
        raise GpuUnavailable(f"{what}: needs a CUDA GPU, and torch sees none here "
                             "(torch.cuda.is_available() is False); use model.backend=hf and "
                             "rollout.engine=hf on a CPU")


def require_package(name: str, what: str) -> None:
    """UserError unless `name` is importable (checked without importing it)."""
    if importlib.util.find_spec(name) is None:
        raise GpuUnavailable(f"{what}: the package '{name}' is not installed; {INSTALL_HINT}")
    check_version(name)


def import_unsloth():
    """`import unsloth`, warning when transformers / peft / trl were imported before it."""
    require_package("unsloth", "model.backend=unsloth")
    early = [m for m in UNSLOTH_BEFORE if m in sys.modules and "unsloth" not in sys.modules]
    if early:
        warnings.warn(f"{', '.join(early)} imported before unsloth: Unsloth patches them at import, "
                      "so some of its optimisations may be missing; call taorl.gpu.preflight(cfg) "
                      "before building anything (the `taorl train` CLI does)", stacklevel=2)
    return importlib.import_module("unsloth")


def import_vllm():
    """`import vllm` after the package and version checks."""
    require_package("vllm", "rollout.engine=vllm")
    return importlib.import_module("vllm")


def preflight(cfg) -> None:
    """Check that this machine can run what `cfg` asks for, and import Unsloth first when it is used.

    Raises GpuUnavailable (a UserError) naming the config key when CUDA or a package is missing;
    does nothing for the CPU path (backend hf, engine hf).
    """
    wants = []
    if cfg.model.backend == "unsloth":
        wants.append("model.backend=unsloth")
    if cfg.rollout.engine == "vllm":
        wants.append("rollout.engine=vllm")
    if not wants:
        return
    require_cuda(" and ".join(wants))
    if cfg.rollout.engine == "vllm":
        require_package("vllm", "rollout.engine=vllm")
    if cfg.rollout.engine == "vllm" and cfg.rollout.vllm.mode == "unsloth" and cfg.model.backend != "unsloth":
        raise UserError("rollout.vllm.mode=unsloth: the engine shares Unsloth's weights, so it needs "
                        "model.backend=unsloth (or set rollout.vllm.mode=standalone)")
    if cfg.model.backend == "unsloth":
        # Unsloth's merged rollout hands out a sentinel only LLM.generate understands; taorl drives
        # vLLM's engine loop, so it wants real LoRARequests (taorl.rollout.vllm.engine_lora_request)
        os.environ.setdefault("UNSLOTH_VLLM_MERGED_ROLLOUT", "0")
        if cfg.rollout.vllm.sleep_between_phases and cfg.rollout.engine == "vllm" \
                and cfg.rollout.vllm.mode == "unsloth":
            # Unsloth's "standby": vLLM and training share the GPU memory in turns (read at import)
            os.environ.setdefault("UNSLOTH_VLLM_STANDBY", "1")
        import_unsloth()


# ------------------------------------------------------------------------------------ model files
def _cache_root() -> Path:
    from taorl.cache import cache_root

    return cache_root()


def model_dir(model_cfg) -> Path:
    """A local directory holding the model named by `model_cfg` (vLLM and Unsloth load from a path).

    Random-init models are written once per (name, init_overrides, max_seq_len), atomically, under
    $TAORL_CACHE/gpu-models/<name>-<hash>; the built-in SmolLM2 is its converted cache; a local
    directory is itself; a hub id is returned as is (Path of the id) for online loading.
    """
    from taorl import models

    name = model_cfg.name
    if name == models.SMOLLM2:
        return models.prepare_smollm2()
    if name not in models.TINY_NAMES:
        return Path(models._resolve_external(name))
    key = json.dumps({"name": name, "init": model_cfg.init_overrides, "len": model_cfg.max_seq_len},
                     sort_keys=True)
    target = _cache_root() / "gpu-models" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def build(tmp: Path) -> None:
        cfg32 = model_cfg.model_copy(update={"dtype": "float32", "backend": "hf"})
        model, tok = models.load_model(cfg32)
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "taorl_model.json").write_text(key)

    return models._build_atomically(target, ("config.json", "model.safetensors", "tokenizer.json"), build)


def describe_device() -> dict[str, Any]:
    """{'device': name, 'memory_gb': total, 'cuda': version} of GPU 0, or {'device': 'cpu'}."""
    import torch

    if not torch.cuda.is_available():
        return {"device": "cpu"}
    p = torch.cuda.get_device_properties(0)
    return {"device": p.name, "memory_gb": round(p.total_memory / 2**30, 1), "cuda": torch.version.cuda}


def run_environment(policy=None) -> dict[str, Any]:
    """What a run's manifest records about where it ran: the device the policy's weights are on (the
    GPU's name and memory, or cpu), the package versions, and the special tokens the trainer, the
    engine and the token tables share (with Unsloth's note when it replaced the pad token)."""
    env: dict[str, Any] = {}
    dev = getattr(policy, "device", None)
    if dev is None and policy is not None and hasattr(policy, "model"):
        p = next(iter(policy.model.parameters()), None)
        dev = p.device if p is not None else None
    on_gpu = dev is not None and str(dev).startswith("cuda")
    env.update(describe_device() if on_gpu else {"device": "cpu"})
    env["versions"] = {k: v for k, v in version_report().items() if v is not None}
    tok = getattr(policy, "tokenizer", None)
    if tok is not None:
        env["tokens"] = {"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
                         "eos_token": tok.eos_token, "pad_token": tok.pad_token}
        note = getattr(policy, "token_note", None)
        if note:
            env["tokens"]["note"] = note
    return env
