"""`taorl export RUN_DIR [--step N] --out DIR`: a run's checkpoint as a plain Hugging Face model.

A checkpoint holds only the trainable state (a LoRA adapter, see taorl.train.checkpoint). To get a
model that transformers, vLLM or `taorl eval` load, rebuild the policy the run trained (its saved
config.yaml: the base model, or the primed weights for train.init_from: sft), load the adapter and
merge it into the weights (W' = W + (alpha / r) B A), then save config, safetensors and tokenizer.
`taorl eval RUN_DIR` exports once into <run>/exports/step=NNNNNN and evaluates that directory.

    <out>/config.json, model.safetensors, generation_config.json, tokenizer files
    <out>/taorl_export.json   {"run_dir", "step", "base"}: where the weights came from
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from taorl.errors import UserError

EXPORT_FILE = "taorl_export.json"


@dataclass
class RunCheckpoint:
    run_dir: Path
    step: int
    path: Path
    config: object  # taorl.config.Config of the run


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.yaml").is_file() and ((p / "manifest.json").is_file()
                                                             or (p / "checkpoints").is_dir())


def locate_run(path: str | Path, step: int | None = None) -> tuple[Path | None, int | None]:
    """(run directory, step) named by `path`: a run directory (step as given), or one of its
    checkpoints, RUN/checkpoints/step=N or RUN/checkpoints/step=N/policy (step N); else (None, step)."""
    import re

    p = Path(path)
    for cand in (p, p.parent):
        m = re.match(r"^step=(\d+)$", cand.name)
        if m and cand.parent.name == "checkpoints" and is_run_dir(cand.parent.parent):
            if step is not None and step != int(m.group(1)):
                raise UserError(f"--step {step}: {path} is the checkpoint of step {int(m.group(1))}")
            return cand.parent.parent, int(m.group(1))
    return (p, step) if is_run_dir(p) else (None, step)


def find_checkpoint(run_dir: str | Path, step: int | None = None) -> RunCheckpoint:
    """The run's checkpoint of `step` (default: the latest), with the run's config."""
    from taorl.config import load_config
    from taorl.train.checkpoint import list_checkpoints

    run = Path(run_dir)
    if not is_run_dir(run):
        raise UserError(f"{run}: not a taorl run directory (needs config.yaml and checkpoints/)")
    found = dict(list_checkpoints(run))
    if not found:
        raise UserError(f"{run}: no checkpoint yet (train.checkpoint_every sets how often one is written)")
    if step is None:
        step = max(found)
    elif step not in found:
        raise UserError(f"--step {step}: {run} has checkpoints of steps {', '.join(map(str, sorted(found)))}")
    return RunCheckpoint(run, step, found[step], load_config(run / "config.yaml"))


def merged_model(ckpt: RunCheckpoint):
    """(model, tokenizer, base): the run's base weights with the checkpoint's adapter merged, on CPU."""
    from taorl.train.policy import build_policy

    cfg = ckpt.config
    # the merge happens on CPU in full transformers, whatever backend trained the run
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"backend": "hf", "load_in_4bit": False})})
    base = cfg.train.init_from
    if base == "sft":  # the primed weights the run started from (cached, or rebuilt from the seed)
        from taorl.train.sft import primed_weights

        base = str(primed_weights(cfg))
    policy = build_policy(cfg, model_name=base)
    policy.load(ckpt.path / "policy")
    model = policy.model
    if policy.lora:
        model = model.merge_and_unload()
    model.eval()
    return model, policy.tokenizer, base or cfg.model.name


def export_checkpoint(run_dir: str | Path, out: str | Path, step: int | None = None) -> Path:
    """Write the merged model of the run's checkpoint to `out` (a new or empty directory)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; choose a new directory")
    ckpt = find_checkpoint(run_dir, step)
    model, tok, base = merged_model(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / EXPORT_FILE).write_text(json.dumps({"run_dir": str(ckpt.run_dir.resolve()), "step": ckpt.step,
                                               "base": str(base)}, indent=1))
    return out


EXPORTS_DIR = "exports"


def exported_model_dir(ckpt: RunCheckpoint) -> Path:
    """<run>/exports/step=NNNNNN: the checkpoint exported once (for `taorl eval RUN_DIR`), reused after."""
    from taorl.train.checkpoint import checkpoint_name

    d = ckpt.run_dir / EXPORTS_DIR / checkpoint_name(ckpt.step)
    if (d / EXPORT_FILE).is_file():
        return d
    tmp = d.parent / f".tmp-{d.name}"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    export_checkpoint(ckpt.run_dir, tmp, ckpt.step)
    tmp.rename(d)
    return d


def export_main(args) -> int:
    run_dir, step = locate_run(args.run_dir, args.step)
    run_dir = run_dir or Path(args.run_dir)
    out = export_checkpoint(run_dir, args.out, step)
    step = json.loads((out / EXPORT_FILE).read_text())["step"]
    print(f"exported {run_dir} step {step} (LoRA merged) to {out}", file=sys.stdout)
    print(f"evaluate it: taorl eval {out} --benchmarks math500 --k 4 --limit 20")
    return 0
