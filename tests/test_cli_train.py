"""`taorl train` / `taorl sft` on bad input: exit code 2 and one line naming the file/key."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")


def _taorl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "taorl.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _one_line_error(out):
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1, out.stderr[-2000:]
    return lines[0]


def test_config_typo(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("train:\n  setps: 3\n")
    line = _one_line_error(_taorl("train", str(bad)))
    assert str(bad) in line and "train.setps" in line and "did you mean 'steps'" in line


def test_wrong_type_override():
    line = _one_line_error(_taorl("train", TINY, "train.lr=fast"))
    assert "command line" in line and "train.lr" in line and "expected a number" in line


def test_missing_config_file(tmp_path):
    line = _one_line_error(_taorl("sft", str(tmp_path / "nope.yaml")))
    assert "nope.yaml" in line and "not found" in line


def test_malformed_data_file(tmp_path):
    data = tmp_path / "probs.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?"\n')
    line = _one_line_error(_taorl("train", TINY, f"data.train={data}", "--run-dir", str(tmp_path / "run")))
    assert "probs.jsonl" in line and "2" in line  # names the file and the broken line


def test_unknown_model_path(tmp_path):
    line = _one_line_error(_taorl("train", TINY, f"model.name={tmp_path / 'no-such-model'}",
                                  "--run-dir", str(tmp_path / "run")))
    assert "no-such-model" in line


def test_init_from_missing(tmp_path):
    line = _one_line_error(_taorl("train", TINY, f"train.init_from={tmp_path / 'primed'}",
                                  "--run-dir", str(tmp_path / "run")))
    assert "train.init_from" in line and "primed" in line


def test_resume_missing_dir(tmp_path):
    line = _one_line_error(_taorl("train", TINY, "--resume", str(tmp_path / "gone")))
    assert "--resume" in line and "gone" in line


def test_resume_needs_same_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("train:\n  lr: 0.5\n")
    line = _one_line_error(_taorl("train", TINY, "--resume", str(run)))
    assert "differs" in line and "config.yaml" in line
