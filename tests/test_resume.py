"""Kill a training process with SIGKILL in the middle of a step, resume it, and get exactly the run an
uninterrupted process produces: same losses, same rollouts, no partial or duplicated step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).parents[1]
# 4 steps, checkpoint after steps 1 and 3. The random tiny model always gets reward 0 and writes
# void turns of maximal length, so the group filter and the void / overlong / tool masks are off and an entropy bonus is on: the loss
# then depends on every weight and every rollout
ARGS = ["train.steps=4", "train.checkpoint_every=2", "algo.filter.group.enabled=false",
        "algo.filter.void_turn_mask=false", "algo.filter.overlong_mask=false", "algo.filter.tool.enabled=false",
        "algo.loss.entropy_coef=0.01", "train.lr=1e-2", "logging.progress=false"]


# one torch thread: two OpenMP threads spin-wait on each other when the 2 cores are shared
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cmd(run_dir, resume=False):
    if resume:  # nothing but the run directory: its saved config (with the overrides above) is used
        return [sys.executable, "-m", "taorl.cli", "train", "--resume", str(run_dir)]
    return [sys.executable, "-m", "taorl.cli", "train", str(ROOT / "configs" / "tiny.yaml"), *ARGS,
            "--run-dir", str(run_dir)]


def _manifest(run):
    p = run / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _visible(run, table):
    last = _manifest(run)["last_step"]
    return (pl.scan_parquet(str(run / table / "**" / "*.parquet"), hive_partitioning=True)
            .filter(pl.col("step") <= last).collect())


def _losses(run):
    m = _visible(run, "metrics").filter(pl.col("name") == "loss").sort("step")
    return m["step"].to_list(), m["value"].to_list()


def test_sigkill_mid_step_then_resume_matches_uninterrupted(tmp_path):
    killed = tmp_path / "killed"
    env = {**ENV, "TAORL_TEST_STALL_STEP": "3", "TAORL_TEST_STALL_S": "600"}
    proc = subprocess.Popen(_cmd(killed), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        # wait until step 2 is published: the process is then inside step 3 (stalled after rollouts)
        while time.time() < deadline:
            m = _manifest(killed)
            if m and m["last_step"] >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("training did not reach step 2")
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    m = _manifest(killed)
    assert m["last_step"] == 2 and m["status"] == "running"
    ckpts = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith("step="))
    assert ckpts == ["step=000001"]  # step 2 is published but not checkpointed: it will be redone
    assert sorted(_visible(killed, "metrics")["step"].unique().to_list()) == [0, 1, 2]

    out = subprocess.run(_cmd(killed, resume=True), capture_output=True, text=True, timeout=300, check=False,
                         env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run directory: {killed}" in out.stdout
    # says where it continues: checkpoint after step 1, so step 2 (published before the kill) is redone
    assert f"resuming {killed} from step 2 (checkpoint step=000001) to step 3; steps 2-2 were logged " \
        "after that checkpoint and are redone" in out.stdout, out.stdout

    straight = tmp_path / "straight"
    out = subprocess.run(_cmd(straight), capture_output=True, text=True, timeout=300, check=False,
                         env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]

    assert _manifest(killed)["last_step"] == 3 and _manifest(killed)["status"] == "finished"
    steps_k, loss_k = _losses(killed)
    steps_s, loss_s = _losses(straight)
    assert steps_k == steps_s == [0, 1, 2, 3]  # every step exactly once: rewritten, not duplicated
    assert loss_k == pytest.approx(loss_s, rel=1e-6, abs=1e-9)
    assert any(abs(x) > 0 for x in loss_s)
    # the same rollouts after the resume (sampling seeded from (seed, step))
    tk = _visible(killed, "trajectories").sort("step", "traj")
    ts = _visible(straight, "trajectories").sort("step", "traj")
    assert tk["text"].to_list() == ts["text"].to_list()
    assert tk.group_by("step").len().sort("step")["len"].to_list() == [8, 8, 8, 8]


def test_resume_config_is_the_runs_own(tmp_path):
    """--resume alone takes the saved config (train.steps=4 from an override, not the file's 2);
    train.steps may be raised to extend a run; other keys must not change."""
    from taorl.config import load_config
    from taorl.errors import UserError
    from taorl.train.cli import resume_config, resume_message

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(load_config(ROOT / "configs" / "tiny.yaml", ARGS).to_yaml())
    assert load_config(ROOT / "configs" / "tiny.yaml").train.steps != 4
    assert resume_config(run, None, []).train.steps == 4
    # the file and overrides again, without the train.steps override: still the run's own end
    assert resume_config(run, str(ROOT / "configs" / "tiny.yaml"), ARGS[1:]).train.steps == 4
    assert resume_config(run, None, ["train.steps=9"]).train.steps == 9
    with pytest.raises(UserError, match=r"differs .* at train\.lr"):
        resume_config(run, None, ["train.lr=0.5"])
    with pytest.raises(UserError, match="no config.yaml"):
        resume_config(tmp_path, None, [])
    assert resume_message(run, 0, 4, -1) == f"resuming {run} from step 0 (no checkpoint yet) to step 3"
    assert "already at its end (train.steps=4)" in resume_message(run, 4, 4, 3)


# ---------------------------------------------------------------------------------- damaged input
# issue 23: a resume checks what it builds on (taorl.train.resume) and says what it found
TWO = ["train.steps=2", "train.checkpoint_every=1", *ARGS[2:]]  # checkpoints step=000000 and step=000001


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("two") / "run"
    out = subprocess.run([sys.executable, "-m", "taorl.cli", "train", str(ROOT / "configs" / "tiny.yaml"), *TWO,
                          "--run-dir", str(run)], capture_output=True, text=True, timeout=300, check=False, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def _copy(run, tmp_path):
    import shutil

    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data[: len(data) // 2]


def test_resume_rebuilds_a_truncated_manifest_and_sets_aside_a_truncated_step_table(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    before = json.loads((run / "manifest.json").read_text())
    broken = _truncate(run / "manifest.json")
    part = run / "metrics" / "step=000000" / "part-0.parquet"
    size = len(_truncate(part))
    out = subprocess.run([sys.executable, "-m", "taorl.cli", "train", "--resume", str(run), "train.steps=3"],
                         capture_output=True, text=True, timeout=300, check=False, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    err = out.stderr
    assert "Traceback" not in err
    assert "resume: manifest.json was unreadable (line " in err and "not valid JSON" in err
    assert ("rebuilt it from config.yaml, checkpoint step=000001 and the step tables (steps 0-1 on disk); the broken "
            "file is kept as manifest.json.corrupt") in err
    assert (f"resume: damaged: metrics/step=000000/part-0.parquet is truncated ({size} bytes, no parquet footer); "
            "kept as part-0.parquet.corrupt; step 0 is at or before checkpoint step=000001, which the resume keeps, "
            "so these metrics rows are not recomputed and stay missing") in err
    assert ("resume: checked the step tables the resume keeps (steps 0-1, up to checkpoint step=000001): 1 damaged "
            "part file(s) set aside") in err
    assert f"resuming {run} from step 2 (checkpoint step=000001) to step 2" in out.stdout
    # nothing lost: both broken files kept byte for byte; the run went on
    assert (run / "manifest.json.corrupt").read_bytes() == broken
    assert (run / "metrics" / "step=000000" / "part-0.parquet.corrupt").stat().st_size == size
    m = _manifest(run)
    assert (m["last_step"], m["status"], m["run_id"]) == (2, "finished", "run")
    assert m["extra"]["model"] == before["extra"]["model"]  # the trainer writes its extra again
    assert m["started_wall"] == pytest.approx(before["started_wall"], abs=2.0)  # wall_s goes on from the rows
    assert m["damaged"] == [{"table": "metrics", "step": 0, "file": "metrics/step=000000/part-0.parquet",
                             "why": f"is truncated ({size} bytes, no parquet footer)",
                             "kept_as": "metrics/step=000000/part-0.parquet.corrupt", "at": m["damaged"][0]["at"]}]
    from taorl.store import open_run

    r = open_run(run)
    assert sorted(r.metrics()["step"].to_list()) == [1, 2]  # step 0's metrics: shown as missing
    assert sorted(r.trajectories()["step"].unique().to_list()) == [0, 1, 2]


def test_a_broken_checkpoint_or_a_deleted_manifest_is_said_and_nothing_is_lost(finished_run, tmp_path):
    from taorl.train.resume import check_resume

    run = _copy(finished_run, tmp_path)
    (run / "manifest.json").unlink()
    _truncate(run / "checkpoints" / "step=000001" / "state.json")
    published, notes = check_resume(run)
    lines = [line for _, line in notes]
    assert lines[0].startswith("checkpoint step=000001: state.json unreadable (")
    assert lines[0].endswith("kept as step=000001.corrupt, resuming from the checkpoint before it")
    assert lines[1] == ("manifest.json was missing; rebuilt it from config.yaml, checkpoint step=000000 and the step "
                        "tables (steps 0-1 on disk)")
    assert lines[2] == ("checked the step tables the resume keeps (steps 0-0, up to checkpoint step=000000): every "
                        "part file reads whole")
    assert published == 1 and _manifest(run)["last_step"] == 1
    assert (run / "checkpoints" / "step=000001.corrupt" / "state.json").is_file()
    # the writer then publishes steps up to the checkpoint and rewrites step 1, as after a crash
    from taorl.store import RunWriter

    w = RunWriter(run, None, resume=True, from_step=1)
    assert w.last_step == 0 and not (run / "metrics" / "step=000001").exists()


def test_the_writer_names_an_unreadable_manifest_and_what_rebuilds_it(tmp_path):
    from taorl.store import RunWriter
    from taorl.store._files import StoreError

    run = tmp_path / "run"
    RunWriter(run, {"a": 1}).finish()
    _truncate(run / "manifest.json")
    with pytest.raises(StoreError) as e:
        RunWriter(run, {"a": 1}, resume=True)
    assert "manifest.json: line " in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).endswith(f"`taorl train --resume {run}` rebuilds it from config.yaml, the checkpoints "
                                 "and the step tables (taorl.train.resume)")
