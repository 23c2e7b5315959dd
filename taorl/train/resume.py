"""Before `taorl train --resume` loads a model: check what the resumed run builds on, say what was found.

    published, notes = check_resume(run_dir)   # [(logging level, line)]: the Trainer logs them first

What a resume keeps: the checkpoint (step c: weights, optimizer, RNG, data cursor) and the step
tables of steps 0..c; steps after c are redone. So:
- a checkpoint whose state.json does not read is kept aside (step=NNNNNN.corrupt) and the one
  before it is used (taorl.train.checkpoint.latest_checkpoint);
- an unreadable or missing manifest.json is rebuilt from config.yaml, the checkpoints and the step
  tables; the broken one is kept as manifest.json.corrupt (taorl.store.repair.rebuild_manifest);
- each part file of steps 0..c must read as parquet: one that does not (truncated, missing) is
  renamed <part>.corrupt, recorded in the manifest's "damaged" list, and named in one line. Training
  continues from the checkpoint (its weights do not depend on those files); the rows of that table
  at that step are not recomputed, and readers (dashboard, open_run) show them as missing.
Nothing is deleted and nothing is redone without a line saying so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from taorl.store._files import MANIFEST, read_manifest
from taorl.store.repair import EVERY_STEP, damaged_parts, manifest_problem, rebuild_manifest, record_damage, set_aside
from taorl.train.checkpoint import latest_checkpoint


def _has_step_tables(run_dir: Path) -> bool:
    return any((run_dir / t).is_dir() and any((run_dir / t).iterdir()) for t in EVERY_STEP)


def check_resume(run_dir: str | Path) -> tuple[int, list[tuple[int, str]]]:
    """(last published step, [(logging level, line)]: what was checked, rebuilt or set aside)."""
    run_dir = Path(run_dir)
    found: list[str] = []  # problems: logged as warnings
    ckpt = latest_checkpoint(run_dir, found)
    c = ckpt.step if ckpt is not None else -1
    problem = manifest_problem(run_dir)
    if problem is None and not (run_dir / MANIFEST).exists() and _has_step_tables(run_dir):
        problem = "missing"
    if problem is not None:
        manifest, line = rebuild_manifest(run_dir, problem, ckpt.step if ckpt else None)
        found.append(line)
    elif (run_dir / MANIFEST).exists():
        manifest = read_manifest(run_dir)
    else:  # a run killed before its first step: nothing to check
        return -1, [(logging.WARNING, line) for line in found]
    published = int(manifest["last_step"])
    bad = damaged_parts(run_dir, c, manifest.get("eval_parts"))
    kept = [(d, set_aside(d.path)) for d in bad]
    record_damage(run_dir, kept)
    for d, k in kept:
        aside = f"; kept as {k.name}" if k else ""
        found.append(f"damaged: {d.line(run_dir)}{aside}; step {d.step} is at or before checkpoint "
                     f"step={c:06d}, which the resume keeps, so these {d.table} rows are not recomputed and stay "
                     f"missing (listed under \"damaged\" in {MANIFEST})")
    notes = [(logging.WARNING, line) for line in found]
    if c >= 0:
        verdict = f"{len(bad)} damaged part file(s) set aside" if bad else "every part file reads whole"
        notes.append((logging.WARNING if bad else logging.INFO,
                      f"checked the step tables the resume keeps (steps 0-{c}, up to checkpoint step={c:06d}): "
                      f"{verdict}"))
    return published, notes
