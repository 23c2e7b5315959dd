"""logging.report_to: the per-step metrics reach tensorboard, wandb (offline) and trackio (local)
under the run directory's metric names, read back with each tool's own reader; and `taorl train`
prints one line per step and a closing summary that match the run directory."""

import json
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from taorl.config import load_config

ROOT = Path(__file__).parents[1]
STEPS = [{"reward": 0.25, "tao/groups_kept": 3.0, "tools/success_rate": 0.5},
         {"reward": 0.75, "tao/groups_kept": 2.0, "tools/success_rate": float("nan")},
         {"reward": 1.0, "tao/groups_kept": 4.0, "tools/success_rate": 1.0}]


def _write(tmp_path: Path, tracker: str) -> Path:
    """Three steps logged to `tracker` through taorl's Trackers, as `taorl train` logs them."""
    from taorl.train.trackers import Trackers

    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"logging.report_to=[{tracker}]", "logging.offline=true"])
    run = tmp_path / f"run-{uuid.uuid4().hex[:12]}"  # unique: trackio appends to a run of the same name
    run.mkdir()
    t = Trackers(cfg, run)
    for step, m in enumerate(STEPS):
        t.log(step, m)
    t.close()
    return run


def _log(tmp_path, tracker, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return _write(tmp_path, tracker)


def _same(got, expected):
    assert [st for st, _ in got] == [st for st, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])


def _expected(name):
    """(step, value) pairs a tracker must hold: the finite values only (NaN is not sent)."""
    return [(s, m[name]) for s, m in enumerate(STEPS) if m[name] == m[name]]


def test_tensorboard_events_read_back(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _log(tmp_path, "tensorboard", monkeypatch)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {"reward", "tao/groups_kept", "tools/success_rate"} <= set(acc.Tags()["scalars"])
    for name in ("reward", "tao/groups_kept", "tools/success_rate"):
        got = [(e.step, e.value) for e in acc.Scalars(name)]
        _same(got, _expected(name))


def _wandb_history(path: Path) -> list[dict]:
    """History records of an offline .wandb file: a 7-byte header, then LevelDB-log records
    (crc u32, length u16, type u8; FULL=1 FIRST=2 MIDDLE=3 LAST=4) in 32 KiB blocks, each a
    protobuf wandb Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, n, typ = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + n > len(data):  # a record still being written
            break
        if n == 0 and typ == 0:
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if typ in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            if rec.WhichOneof("record_type") == "history":
                out.append({(i.key or "/".join(i.nested_key)): i.value_json for i in rec.history.item})
    return out


def test_wandb_offline_history_read_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    run = _log(tmp_path, "wandb", monkeypatch)
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    # wandb's service process may still be writing the file when finish() returns: wait for the
    # history of all three steps (a few seconds at most)
    deadline = time.time() + 60
    while len(hist := _wandb_history(files[0])) < 3 and time.time() < deadline:
        time.sleep(0.5)
    assert [int(h["_step"]) for h in hist] == [0, 1, 2]
    for name in ("reward", "tao/groups_kept", "tools/success_rate"):
        got = [(int(h["_step"]), float(h[name])) for h in hist if name in h]
        _same(got, _expected(name))


TRACKIO_CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_trackers import _write
run = _write(Path(sys.argv[1]), "trackio")
import trackio.utils
from trackio.sqlite_storage import SQLiteStorage
print(json.dumps({"dir": str(trackio.utils.TRACKIO_DIR), "logs": SQLiteStorage.get_logs("taorl", run.name)}))
"""


def test_trackio_local_read_back(tmp_path):
    # trackio fixes its database directory (TRACKIO_DIR) when it is first imported, and TRL imports
    # it, so a test earlier in this process may already have pointed it at the user's home, where a
    # run of the same name from an earlier session would gain a second copy of each step. A child
    # process sets TRACKIO_DIR before anything imports trackio, and the run's name is unique.
    pytest.importorskip("trackio")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "WANDB_SILENT": "true"}
    out = subprocess.run([sys.executable, "-c", TRACKIO_CHILD, str(tmp_path), str(Path(__file__).parent)],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["dir"] == str(tmp_path / "trackio")  # nothing went to the user's home
    for name in ("reward", "tao/groups_kept", "tools/success_rate"):
        _same([(r["step"], r[name]) for r in got["logs"] if name in r], _expected(name))


def test_unknown_or_missing_tracker_is_one_error(tmp_path):
    from taorl.errors import UserError
    from taorl.train.trackers import check_trackers

    with pytest.raises(UserError, match="unknown tracker 'mlflow'"):
        check_trackers(["mlflow"])
    bad = subprocess.run([sys.executable, "-m", "taorl.cli", "train", str(ROOT / "configs" / "tiny.yaml"),
                          "logging.report_to=[mlflow]"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "logging.report_to" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_step_line_by_hand():
    from taorl.train.console import step_line

    m = {"reward": 0.4375, "tao/groups_kept": 4.0, "tao/groups_dropped/group_all_correct": 1.0,
         "tao/groups_dropped/not_selected": 1.0, "tao/traj_masked/void_turn": 2.0,
         "tao/traj_masked/truncated": 1.0, "tao/post_tool_entropy": 0.912, "tao/other_entropy": 0.618,
         "tools/call_frequency": 1.5, "tools/success_rate": 0.8333, "perf/step_s": 41.24}
    assert step_line(2, 5, m, group_size=4) == ("step 3/5  reward 0.438  groups 4 kept 2 dropped  masked 3/24  "
                                                "H post-tool 0.91 other 0.62  tool ok 83%  41.2 s")
    # no tool call, no post-tool token: dashes, not a made-up 0
    m.update({"tools/call_frequency": 0.0, "tools/success_rate": 0.0})
    del m["tao/post_tool_entropy"]
    line = step_line(0, 12, m, group_size=4)
    assert line.startswith("step  1/12") and "H post-tool - other 0.62" in line and "tool ok -  " in line


def test_train_prints_step_lines_summary_and_tensorboard(tmp_path):
    """The tiny model through `taorl train`: one line per step, the summary, tensorboard = Parquet."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from taorl.store import open_run

    run = tmp_path / "runs" / "tb"
    out = subprocess.run([sys.executable, "-m", "taorl.cli", "train", str(ROOT / "configs" / "tiny.yaml"),
                          "logging.progress=false", "logging.report_to=[tensorboard]", "--run-dir", str(run)],
                         capture_output=True, text=True, timeout=600, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    steps = [x for x in lines if x.startswith("step ")]
    assert [x.split()[1] for x in steps] == ["1/2", "2/2"]
    m = open_run(run).metrics()
    r = m["reward"].to_list()
    assert f"reward {r[0]:.3f}" in steps[0] and f"reward {r[1]:.3f}" in steps[1]
    kept = m["tao/groups_kept"].to_list()
    assert f"groups {kept[0]:.0f} kept" in steps[0]
    assert f"run finished: {run}" in out.stdout
    assert f"  reward      {r[0]:.3f} -> {r[-1]:.3f}" in out.stdout
    assert f"taorl dashboard {run.parent}" in out.stdout
    # the isolation level of the sandbox is said at start (taorl's log lines go to stderr)
    assert "sandbox: isolation=" in out.stderr
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    _same([(e.step, e.value) for e in acc.Scalars("reward")], list(enumerate(r)))
    assert [e.value for e in acc.Scalars("loss")] == pytest.approx(m["loss"].to_list(), rel=1e-6)
