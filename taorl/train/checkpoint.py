"""Checkpoints: everything needed to continue a run bit-for-bit, written atomically.

    <run>/checkpoints/step=000012/
        policy/           Policy.save: LoRA adapter (peft format) or full weights, + policy.json
        optimizer.pt      AdamW state
        rng.pt            torch / python / numpy RNG states
        state.json        {"step": 12, "cursor": {...}, ...}: step 12 is complete; resume runs 13

A checkpoint is built in a temporary sibling directory and renamed into place, so a directory named
step=NNNNNN is always complete (a crash leaves only a .tmp-* directory, ignored and cleaned up).
Only the newest `keep` checkpoints are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taorl.store._files import fsync_dir

CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step=(\d{6,})$")


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"step={step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


@contextlib.contextmanager
def rng_preserved():
    """Run a block without moving the torch / python / numpy random streams of the caller.

    Priming in-process (train.init_from: sft) or converting a model draws random numbers; without
    this the LoRA initialisation after it would differ from a run that found the cache ready.
    """
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def save_checkpoint(run_dir: str | Path, step: int, policy, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint `step` atomically (tmp dir + rename) and prune to the newest `keep`."""
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    policy.save(tmp / "policy")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    for f in tmp.rglob("*"):  # durable before it becomes visible
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():  # a rewrite of the same step after a resume
        old = root / f".old-{checkpoint_name(step)}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    fsync_dir(root)
    for _, p in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def clean_partial(run_dir: str | Path) -> None:
    """Remove temporary directories left by a crash while a checkpoint was being written."""
    root = Path(run_dir) / CKPT_DIR
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir: str | Path, notes: list[str] | None = None) -> Checkpoint | None:
    """The newest checkpoint whose state.json reads. One that does not (a damaged disk: checkpoints
    appear only whole) is renamed to step=NNNNNN.corrupt, kept, and said in `notes`."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            state = json.loads((path / "state.json").read_text())
            if not isinstance(state, dict):
                raise ValueError(f"a JSON {type(state).__name__}, not an object")
        except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
            kept = path.with_name(path.name + ".corrupt")
            if not kept.exists():
                path.rename(kept)
                fsync_dir(path.parent)
            if notes is not None:
                notes.append(f"checkpoint {path.name}: state.json unreadable ({_first_line(e)}); kept as "
                             f"{kept.name}, resuming from the checkpoint before it")
            continue
        return Checkpoint(path, step, state)
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:120]


def load_checkpoint(ckpt: Checkpoint, policy, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore policy weights, optimizer and RNG states in place; returns state.json. A file that
    does not load is a UserError naming it (and what to do), not a traceback."""
    from taorl.errors import UserError

    for what, load in (("policy", lambda: policy.load(ckpt.path / "policy")),
                       ("optimizer.pt", lambda: optimizer.load_state_dict(
                           torch.load(ckpt.path / "optimizer.pt", weights_only=False))),
                       ("rng.pt", lambda: set_rng_state(torch.load(ckpt.path / "rng.pt", weights_only=False)))):
        try:
            load()
        except Exception as e:  # noqa: BLE001 - torch/safetensors/peft raise many kinds for a broken file
            raise UserError(f"checkpoint {ckpt.path}: {what} does not load ({_first_line(e)}); move that "
                            f"directory away to resume from the checkpoint before it") from None
    return ckpt.state
