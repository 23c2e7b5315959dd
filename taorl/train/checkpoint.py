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


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    found = list_checkpoints(run_dir)
    if not found:
        return None
    step, path = found[-1]
    return Checkpoint(path, step, json.loads((path / "state.json").read_text()))


def load_checkpoint(ckpt: Checkpoint, policy, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore policy weights, optimizer and RNG states in place; returns state.json."""
    policy.load(ckpt.path / "policy")
    optimizer.load_state_dict(torch.load(ckpt.path / "optimizer.pt", weights_only=False))
    set_rng_state(torch.load(ckpt.path / "rng.pt", weights_only=False))
    return ckpt.state
