"""Run store: write/read round trip, dtypes, visibility of published steps only, resume, corrupt
parts, schema versions, bad rows. Real Parquet files in tmp_path."""

from __future__ import annotations

import json
import shutil
import warnings

import polars as pl
import pytest

from taorl.config import Config
from taorl.errors import UserError
from taorl.store import (
    SCHEMA_VERSION,
    TABLES,
    NotARun,
    RunGone,
    RunWriter,
    SchemaError,
    SchemaVersionError,
    StoreError,
    list_runs,
    open_run,
)


# ------------------------------------------------------------------------------------- rows
def group_row(step: int, g: int) -> dict:
    return {"group": g, "problem_id": f"p{step}-{g}", "problem": f"what is {g}+{step}?", "answer": str(g + step),
            "rewards": [1.0, 0.0] if g % 2 else [0.0, 0.0], "pass_rate": 0.5 if g % 2 else 0.0,
            "reward_std": 0.5 if g % 2 else 0.0, "n_untruncated": 2, "kept": bool(g % 2),
            "reason": None if g % 2 else "all_wrong", "duplicates": 0}


def traj_row(step: int, t: int) -> dict:
    return {"traj": t, "group": t // 2, "index": t % 2, "problem_id": f"p{step}-{t // 2}",
            "reward": float(t % 2), "reward_info": "42", "n_turns": 2, "n_call": t, "n_ok": t // 2,
            "statuses": ["ok"] * (t // 2) + ["error"] * (t - t // 2), "call_ms": [1.5] * t,
            "void": False, "truncated": t == 3, "finish": "answer", "length": 10 + t, "n_model_tokens": 7,
            "advantage": 0.25 * t - 0.5, "weight": 1.0, "reason": None if t else "no_call", "group_kept": True,
            "has_tokens": t == 0, "text": f"text {step} {t} — ünïcode"}


def token_row(t: int, pos: int) -> dict:
    return {"traj": t, "pos": pos, "turn": -1 if pos < 2 else 0, "token_id": 100 + pos, "token": f"<{pos}>",
            "segment": "prompt" if pos < 2 else "model", "offset": None if pos < 3 else pos - 3,
            "entropy": None if pos < 2 else 0.5 * pos, "logprob_sample": -0.25 * pos, "logprob_train": -0.25 * pos,
            "advantage": 0.5, "shaped_advantage": 0.75, "weight": 1.0, "gate": float(pos >= 3)}


def eval_row(bench: str, value: float) -> dict:
    return {"benchmark": bench, "metric": "avg@4", "value": value, "ci_low": value - 0.125,
            "ci_high": value + 0.125, "n_problems": 8, "n_samples": 4}


def write(w: RunWriter, step: int, k: int = 3, evals=None) -> None:
    w.write_step(step, metrics={"reward": 0.5 * step, "loss": -1.0 * step, "tao/post_tool_entropy": 0.25},
                 groups=[group_row(step, g) for g in range(k)],
                 trajectories=[traj_row(step, t) for t in range(2 * k)],
                 tokens=[token_row(t, p) for t in range(k) for p in range(5)], evals=evals)


def no_step(df: pl.DataFrame) -> list[dict]:
    return df.drop("step").to_dicts()


# ---------------------------------------------------------------------------------- round trip
def test_round_trip_exact_values_and_dtypes(tmp_path):
    w = RunWriter(tmp_path / "run", {"train": {"lr": 1e-6}}, extra={"device": "cpu"})
    write(w, 0, k=2)
    write(w, 1, k=3, evals=[eval_row("aime24", 0.5)])
    run = open_run(tmp_path / "run")
    assert run.last_step == 1 and run.status == "running" and run.run_id == "run"
    assert run.manifest["schema_version"] == SCHEMA_VERSION and run.manifest["extra"] == {"device": "cpu"}
    assert run.config() == {"train": {"lr": 1e-6}}

    g = run.groups()
    assert g["step"].to_list() == [0, 0, 1, 1, 1]
    assert no_step(g) == [group_row(0, 0), group_row(0, 1)] + [group_row(1, i) for i in range(3)]
    tr = run.trajectories(steps=1)
    assert no_step(tr) == [traj_row(1, t) for t in range(6)]
    tok = run.tokens(step=1, traj=[2, 0])
    assert tok["traj"].unique().sort().to_list() == [0, 2]
    assert no_step(tok) == [token_row(t, p) for t in (0, 2) for p in range(5)]  # float32-exact values
    ev = run.evals()
    assert ev["step"].to_list() == [1] and no_step(ev) == [eval_row("aime24", 0.5)]

    for table, df in [("groups", g), ("trajectories", tr), ("tokens", tok), ("evals", ev),
                      ("metrics", run.metrics(wide=False))]:
        assert df.schema == pl.Schema({"step": pl.Int64, **TABLES[table]}), table
        assert run._empty(table).schema == df.schema  # what an empty run returns


def test_metrics_wide_and_long(tmp_path):
    w = RunWriter(tmp_path, {})
    for s in range(3):
        write(w, s)
    run = open_run(tmp_path)
    wide = run.metrics()
    assert wide.columns == ["step", "wall_s", "reward", "loss", "tao/post_tool_entropy"]
    assert wide["step"].to_list() == [0, 1, 2]
    assert wide["reward"].to_list() == [0.0, 0.5, 1.0] and wide["loss"].to_list() == [0.0, -1.0, -2.0]
    walls = wide["wall_s"].to_list()
    assert 0 <= walls[0] <= walls[1] <= walls[2] < 60
    long = run.metrics(wide=False)
    assert long.height == 9 and set(long["name"]) == {"reward", "loss", "tao/post_tool_entropy"}


def test_dataframe_input_is_reordered_and_cast(tmp_path):
    rows = [traj_row(0, t) for t in range(4)]
    df = pl.DataFrame(rows).select(list(reversed(TABLES["trajectories"])))  # i64 ints, reversed order
    assert df.schema["traj"] == pl.Int64
    w = RunWriter(tmp_path, {})
    w.write_step(0, metrics={}, groups=pl.DataFrame([group_row(0, 0)]), trajectories=df)
    got = open_run(tmp_path).trajectories()
    assert got.schema["traj"] == pl.Int32 and got.columns[1:] == list(TABLES["trajectories"])
    assert no_step(got) == rows


def test_config_object_and_manifest(tmp_path):
    cfg = Config()
    w = RunWriter(tmp_path / "r", cfg, run_id="abc")
    run = open_run(tmp_path / "r")
    assert run.config() == cfg.to_dict()
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["config_hash"] == cfg.hash() and m["run_id"] == "abc" and m["last_step"] == -1
    assert m["status"] == "running"
    w.finish("failed")
    assert open_run(tmp_path / "r").status == "failed"
    with pytest.raises(StoreError, match="already failed"):
        write(w, 0)


def test_empty_run_returns_empty_frames(tmp_path):
    RunWriter(tmp_path, {})
    run = open_run(tmp_path)
    assert run.last_step == -1
    assert run.metrics().columns == ["step", "wall_s"] and run.metrics().height == 0
    for name in ("groups", "trajectories", "tokens", "evals"):
        df = getattr(run, name)()
        assert df.height == 0 and df.columns == ["step", *TABLES[name]]
    assert run.groups(columns=["kept"]).columns == ["step", "kept"]


def test_steps_must_increase_and_late_evals(tmp_path):
    w = RunWriter(tmp_path, {})
    write(w, 0)
    write(w, 2)  # gaps are allowed
    with pytest.raises(StoreError, match="steps must increase"):
        write(w, 2)
    with pytest.raises(StoreError, match="not published"):
        w.write_evals(3, [eval_row("x", 0.5)])
    run = open_run(tmp_path)
    rev = run.revision
    w.write_evals(2, [eval_row("aime24", 0.25)])
    w.write_evals(2, [eval_row("math500", 0.75), eval_row("gsm8k", 1.0)])
    assert run.evals().height == 0  # a snapshot: new data only after refresh()
    run.refresh()
    assert run.revision == rev + 2 and run.last_step == 2
    ev = run.evals()
    assert sorted(ev["benchmark"].to_list()) == ["aime24", "gsm8k", "math500"]
    assert ev["step"].to_list() == [2, 2, 2]
    assert run.steps("groups") == [0, 2] and run.steps("evals") == [2]
    import numpy as np

    assert run.groups(steps=np.int64(2)).height == 3 and run.tokens(step=[2], traj=np.int32(1)).height == 5


def test_context_manager_marks_failed_on_error(tmp_path):
    with pytest.raises(ZeroDivisionError), RunWriter(tmp_path / "a", {}) as w:
        write(w, 0)
        1 / 0  # noqa: B018
    assert open_run(tmp_path / "a").status == "failed"
    with RunWriter(tmp_path / "b", {}) as w:
        write(w, 0)
    assert open_run(tmp_path / "b").status == "finished"


# --------------------------------------------------------------------------- unpublished steps
def fake_killed_step(run_dir, src: int, dst: int) -> None:
    """What a writer killed before its manifest update leaves: whole parts of step dst on disk."""
    for table in ("metrics", "groups", "trajectories"):
        shutil.copytree(run_dir / table / f"step={src:06d}", run_dir / table / f"step={dst:06d}")


def test_step_after_last_step_is_invisible(tmp_path):
    w = RunWriter(tmp_path, {})
    write(w, 0, k=2)
    write(w, 1, k=3)
    fake_killed_step(tmp_path, 1, 2)
    run = open_run(tmp_path)
    assert run.last_step == 1
    assert run.metrics()["step"].to_list() == [0, 1]
    assert run.groups()["step"].unique().sort().to_list() == [0, 1]
    assert run.trajectories(steps=2).height == 0
    assert run.scan("groups").collect()["step"].max() == 1


def test_resume_removes_leftover_and_rewrites_step(tmp_path):
    w = RunWriter(tmp_path, {"a": 1})
    write(w, 0, k=2)
    write(w, 1, k=3)
    fake_killed_step(tmp_path, 1, 2)  # killed in step 2 (published parts but no manifest)
    (tmp_path / "groups" / "step=000001" / ".part-0.parquet.77.tmp").write_bytes(b"half")
    del w
    w = RunWriter(tmp_path, {"a": 1}, resume=True)
    assert w.last_step == 1
    assert not (tmp_path / "groups" / "step=000002").exists()
    assert not (tmp_path / "groups" / "step=000001" / ".part-0.parquet.77.tmp").exists()
    write(w, 2, k=1)
    run = open_run(tmp_path)
    assert run.groups(steps=2).height == 1 and run.trajectories(steps=2).height == 2
    assert run.metrics()["reward"].to_list() == [0.0, 0.5, 1.0]


def test_resume_from_checkpoint_unpublishes_later_steps(tmp_path):
    w = RunWriter(tmp_path, {})
    for s in range(3):
        write(w, s, k=2)
    w = RunWriter(tmp_path, {}, resume=True, from_step=1)  # checkpoint at step 0: redo 1 and 2
    run = open_run(tmp_path)
    assert run.last_step == 0 and run.status == "running"
    assert run.groups()["step"].unique().to_list() == [0]
    write(w, 1, k=1)
    assert open_run(tmp_path).groups()["step"].to_list() == [0, 0, 1]


def test_fresh_writer_refuses_existing_run(tmp_path):
    RunWriter(tmp_path, {})
    with pytest.raises(StoreError, match="already holds a run"):
        RunWriter(tmp_path, {})


# -------------------------------------------------------------------------------- corruption
def test_stray_temp_and_truncated_part_are_skipped(tmp_path):
    w = RunWriter(tmp_path, {})
    for s in range(3):
        write(w, s, k=2)
    (tmp_path / "groups" / "step=000000" / ".part-0.parquet.123.tmp").write_bytes(b"PAR1 garbage")
    (tmp_path / "groups" / "step=000001" / "part-0.parquet.tmp").write_bytes(b"garbage")
    part = tmp_path / "groups" / "step=000002" / "part-0.parquet"
    part.write_bytes(part.read_bytes()[:-20])  # truncated: footer gone
    with pytest.warns(UserWarning, match="step=000002"):
        g = open_run(tmp_path).groups()
    assert g["step"].to_list() == [0, 0, 1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_run(tmp_path).groups().height == 4  # known bad: skipped silently now
        assert open_run(tmp_path).trajectories().height == 12  # other tables unaffected


def test_part_with_good_footer_but_garbled_pages_is_skipped(tmp_path):
    w = RunWriter(tmp_path, {})
    for s in range(2):
        write(w, s, k=2)
    part = tmp_path / "trajectories" / "step=000001" / "part-0.parquet"
    data = bytearray(part.read_bytes())
    data[4:200] = b"\xff" * 196  # page data destroyed, 'PAR1' magic and footer intact
    part.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="unreadable parquet part"):
        tr = open_run(tmp_path).trajectories()
    assert tr["step"].unique().to_list() == [0] and tr.height == 4


# ---------------------------------------------------------------------------- errors, versions
def test_newer_schema_version_raises(tmp_path):
    w = RunWriter(tmp_path / "new", {})
    write(w, 0)
    path = tmp_path / "new" / "manifest.json"
    m = json.loads(path.read_text())
    m["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(m))
    with pytest.raises(SchemaVersionError, match="newer") as e:
        open_run(tmp_path / "new")
    assert isinstance(e.value, UserError) and "manifest.json" in str(e.value)
    with pytest.raises(SchemaVersionError):
        RunWriter(tmp_path / "new", {}, resume=True)
    RunWriter(tmp_path / "ok", {})
    infos = list_runs(tmp_path)
    assert [(i.run_id, i.status) for i in infos] == [("new", "error"), ("ok", "running")]
    assert "newer" in infos[0].error


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.pop("kept"), r"table 'groups', row 1: missing column\(s\) 'kept'"),
    (lambda r: r.update(colour="red"), r"table 'groups', row 1: unknown column\(s\) 'colour'"),
    (lambda r: r.update(pass_rate="high"), r"table 'groups', column 'pass_rate'"),
    (lambda r: r.update(rewards=[["x"]]), r"table 'groups', column 'rewards', row 1"),
    (lambda r: r.update(n_untruncated=1.5), r"table 'groups', column 'n_untruncated', row 1: .* 1\.5"),
    (lambda r: r.update(pass_rate="0.5"), r"table 'groups', column 'pass_rate', row 1: .*'0\.5'"),
])
def test_bad_rows_name_table_and_column(tmp_path, mutate, match):
    w = RunWriter(tmp_path, {})
    rows = [group_row(0, 0), group_row(0, 1)]
    mutate(rows[1])
    with pytest.raises(SchemaError, match=match) as e:
        w.write_step(0, metrics={}, groups=rows, trajectories=[])
    assert isinstance(e.value, UserError)
    assert open_run(tmp_path).last_step == -1 and not (tmp_path / "metrics").exists()


def test_lossless_loose_values_are_accepted(tmp_path):
    import numpy as np

    row = group_row(0, 1)
    row.update(kept=1, pass_rate=1, n_untruncated=2.0, rewards=np.array([1.0, 0.0]), duplicates=np.int64(3))
    w = RunWriter(tmp_path, {})
    w.write_step(0, metrics={"x": np.float32(0.5)}, groups=[row], trajectories=[])
    got = no_step(open_run(tmp_path).groups())[0]
    assert (got["kept"], got["pass_rate"], got["n_untruncated"], got["rewards"], got["duplicates"]) == \
        (True, 1.0, 2, [1.0, 0.0], 3)


def test_bad_dataframe_and_metrics(tmp_path):
    w = RunWriter(tmp_path, {})
    df = pl.DataFrame([traj_row(0, 0)]).drop("text")
    with pytest.raises(SchemaError, match=r"table 'trajectories': missing column\(s\) 'text'"):
        w.write_step(0, metrics={}, groups=[], trajectories=df)
    df = pl.DataFrame([traj_row(0, 0)]).with_columns(n_call=pl.lit("many"))
    with pytest.raises(SchemaError, match=r"table 'trajectories', column 'n_call': cannot cast"):
        w.write_step(0, metrics={}, groups=[], trajectories=df)
    with pytest.raises(SchemaError, match=r"bad metric name 'wall_s'"):
        w.write_step(0, metrics={"wall_s": 1.0}, groups=[], trajectories=[])
    with pytest.raises(SchemaError, match=r"metric 'reward': expected a number"):
        w.write_step(0, metrics={"reward": "good"}, groups=[], trajectories=[])
    w.write_step(0, metrics={"reward": None, "n": 3}, groups=[], trajectories=[])
    long = open_run(tmp_path).metrics(wide=False)
    assert long["value"].to_list() == [None, 3.0]


def test_run_gone_and_not_a_run(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    write(w, 0)
    run = open_run(tmp_path / "r")
    shutil.rmtree(tmp_path / "r")
    with pytest.raises(RunGone, match="deleted while open"):
        run.groups()
    with pytest.raises(RunGone):
        run.refresh()
    with pytest.raises(NotARun, match="no such run directory"):
        open_run(tmp_path / "r")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARun, match="no manifest.json"):
        open_run(tmp_path / "plain")


def test_list_runs_tree_and_single(tmp_path):
    for name in ("exp/a", "exp/b", "c"):
        w = RunWriter(tmp_path / name, {}, run_id=name.replace("/", "-"))
        write(w, 0)
    RunWriter(tmp_path / "c", {}, resume=True).finish()
    (tmp_path / "notes").mkdir()
    infos = list_runs(tmp_path)
    assert [(i.run_id, i.status, i.last_step) for i in infos] == [
        ("c", "finished", 0), ("exp-a", "running", 0), ("exp-b", "running", 0)]
    assert [i.run_id for i in list_runs(tmp_path / "exp" / "a")] == ["exp-a"]
    assert infos[0].open().metrics()["reward"].to_list() == [0.0]
