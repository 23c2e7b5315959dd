"""`taorl eval` end to end on the tiny model: 2 problems per benchmark, the seven benchmarks of the
paper, numbers in results.json recomputed independently from the per-sample Parquet file."""

import json
import math
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
SEVEN = ["aime24", "aime25", "math500", "olympiadbench", "amc23", "hmmt25", "minerva"]

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks not present")


def _run_eval(tmp_path, *extra):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "taorl.cli", "eval", "tiny", "--k", "2", "--limit", "2",
           "--out", str(out), "model.dtype=float32", "rollout.max_turn_tokens=24",
           "eval.max_response_tokens=48", "eval.max_turns=2", "rollout.gen_batch_size=32",
           "logging.progress=false", "tool.timeout_s=2", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={"TAORL_DATA_DIR": str(SHARED),
                          **__import__("os").environ}, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def _binom_pass(n, c, k):
    # 1 - C(n-c, k) / C(n, k) with exact integers
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_eval_cli_tiny_all_seven(tmp_path):
    out, stdout = _run_eval(tmp_path)
    assert "results written to" in stdout
    summary = _strict_json(out / "results.json")
    samples = pl.read_parquet(out / "samples.parquet")
    assert sorted(summary["results"]) == sorted(SEVEN)
    for name in SEVEN:
        s = samples.filter(pl.col("benchmark") == name)
        assert s.height == 2 * 2  # 2 problems x n = 2
        c = s.group_by("problem_id").agg(pl.col("reward").sum())["reward"].to_list()
        res = summary["results"][name]
        assert res["n_problems"] == 2
        assert res["avg@2"]["value"] == pytest.approx(sum(c) / 4)
        assert res["pass@2"]["value"] == pytest.approx(sum(_binom_pass(2, int(x), 2) for x in c) / 2)
        assert res["pass@1"]["value"] == pytest.approx(res["avg@2"]["value"])
        calls = (s["n_call"] > 0).mean()
        assert res["tool_call_rate"]["value"] == pytest.approx(calls)
        for m, v in res.items():  # every interval inside [0, 1] around its value
            if isinstance(v, dict) and v["value"] is not None:
                assert 0.0 <= v["ci_low"] <= v["value"] <= v["ci_high"] <= 1.0, (name, m, v)
        n_call, n_ok = int(s["n_call"].sum()), int(s["n_ok"].sum())
        ok = res["tool_success_rate"]
        if n_call == 0:  # no call: undefined, written as null
            assert ok == {"value": None, "ci_low": None, "ci_high": None}
        else:
            assert ok["value"] == pytest.approx(n_ok / n_call) and ok["ci_high"] > ok["ci_low"]
        assert set(s["finish"].unique()) <= {"answer", "max_turns", "void", "length"}


def test_eval_cli_no_tool_never_calls(tmp_path):
    out, _ = _run_eval(tmp_path, "--no-tool", "--benchmarks", "amc23")
    samples = pl.read_parquet(out / "samples.parquet")
    assert samples.height == 4
    assert samples["n_call"].sum() == 0
    res = _strict_json(out / "results.json")
    assert res["tool"] is False
    # no tool calls at all: the success rate is null (the file used to hold NaN, which is not JSON)
    assert res["results"]["amc23"]["tool_success_rate"]["value"] is None
    assert res["results"]["amc23"]["tool_call_rate"]["value"] == 0.0


def _strict_json(path):
    def no_constants(name):
        raise AssertionError(f"{path}: {name} is not valid JSON")
    return json.loads(path.read_text(), parse_constant=no_constants)


@pytest.mark.parametrize("opt", [["--k", "0"], ["--k", "-2"], ["--limit", "0"]])
def test_eval_cli_rejects_nonpositive_counts(opt):
    proc = subprocess.run([sys.executable, "-m", "taorl.cli", "eval", "tiny", *opt],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{opt[0]} {opt[1]}" in lines[0] and "eval.n" not in lines[0], proc.stderr


def test_eval_cli_rejects_unknown_benchmark(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "taorl.cli", "eval", "tiny", "--benchmarks", "aime23"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "aime23" in proc.stderr and "error" in proc.stderr
