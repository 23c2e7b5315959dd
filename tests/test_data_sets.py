"""Training sets by name from small local fixtures: a parquet in the hub's layout under a temporary
TAORL_DATA_DIR, other field names, repeats and a contaminated problem dropped and counted, the hub
failing in one line offline, a training file that is not UTF-8, `taorl data list/show`."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from taorl.data import load_train_set, resolve_source
from taorl.data.decontaminate import problem_key
from taorl.errors import UserError

BENCH = [  # a two-problem math500.jsonl of our own: the held-out set the fixtures collide with
    {"id": "math500-0", "problem": "Find $x$ if $2x + 3 = 11$.", "answer": "4"},
    {"id": "math500-1", "problem": "What is $\\dfrac{1}{2} + \\dfrac{1}{3}$?", "answer": "\\frac{5}{6}"},
]


def _cfg(train, **kw):
    base = {"train": train, "split": "train", "problem_field": None, "answer_field": None, "decontaminate": True,
            "kinds": None, "seed": 0, "n_problems": 10, "difficulty": 1}
    return SimpleNamespace(**{**base, **kw})


def _chat(text):
    return [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"<|im_start|>user\n{text}\nPlease reason step by step."}]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    d.mkdir()
    (d / "math500.jsonl").write_text("".join(json.dumps(r) + "\n" for r in BENCH))
    monkeypatch.setenv("TAORL_DATA_DIR", str(d))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never ask a hub from a test
    return d


def _simplelr_rows():
    """The verl layout of SimpleRL-Zoo's parquet: a chat prompt with template text, the clean question
    and answer in extra_info, the answer again in reward_model.ground_truth."""
    qa = [("What is $3 \\cdot 4$?", "12"),
          ("find  X if $2x+3=11$", "4"),  # math500-0 up to case, spaces and $: contaminated
          ("Compute $\\frac{6}{4}$ in lowest terms.", "\\frac{3}{2}"),
          ("What is $3 \\cdot 4$?", "12"),  # a repeat of the first
          ("A level-5 problem without a gold answer.", "")]
    return [{"data_source": "simplelr_math_35", "prompt": _chat(q), "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": a},
             "extra_info": {"index": i, "question": q, "answer": a}} for i, (q, a) in enumerate(qa)]


def test_named_set_from_a_hub_layout_parquet(data_dir):
    f = data_dir / "hkust-nlp/SimpleRL-Zoo-Data/simplelr_qwen_level3to5/train.parquet"
    f.parent.mkdir(parents=True)
    pl.DataFrame(_simplelr_rows()).write_parquet(f)
    ts = load_train_set(_cfg("simplelr_math_35"))
    r = ts.report
    assert r["kind"] == "file" and r["source"] == str(f)
    assert r["fields"] == {"problem": "extra_info.question", "answer": "extra_info.answer"}
    # 5 rows: 1 without an answer skipped, 1 repeat dropped, 1 also in math500 dropped -> 2 problems
    assert (r["rows"], r["no_answer"], r["duplicates"], r["problems"]) == (5, 1, 1, 2)
    d = r["decontamination"]
    assert d["dropped"] == 1 and d["by_benchmark"]["math500"] == 1 and d["dropped_ids"] == ["simplelr_math_35-1"]
    assert "aime24" in d["not_checked"] and "exact match of the normalised problem text" in d["match"]
    assert [p.problem for p in ts.problems] == ["What is $3 \\cdot 4$?", "Compute $\\frac{6}{4}$ in lowest terms."]
    assert [p.answer for p in ts.problems] == ["12", "\\frac{3}{2}"] and ts.problems[0].id == "simplelr_math_35-0"
    assert "2 problems" in ts.summary() and "1 also in a benchmark dropped (math500 1)" in ts.summary()
    # the chat prompt itself gives the same problems: Qwen's template and the instruction removed
    via_prompt = load_train_set(_cfg("simplelr_math_35", problem_field="prompt", answer_field="reward_model.ground_truth"))
    assert [p.problem for p in via_prompt.problems] == [p.problem for p in ts.problems]
    # the released code's own layout (datasets/simplelr_math_35/train.parquet) comes first
    g = data_dir / "simplelr_math_35" / "train.parquet"
    g.parent.mkdir()
    pl.DataFrame(_simplelr_rows()[:1]).write_parquet(g)
    assert resolve_source("simplelr_math_35").paths == [g]
    assert len(load_train_set(_cfg("simplelr_math_35", decontaminate=False)).problems) == 1


def test_dapo_wrapper_and_repeats(data_dir):
    from taorl.data.train_sets import _DAPO_PREFIX, _DAPO_SUFFIX

    rows = [{"data_source": "math_dapo", "prompt": [{"role": "user", "content": _DAPO_PREFIX + q + _DAPO_SUFFIX}],
             "reward_model": {"ground_truth": a, "style": "rule"}, "extra_info": {"index": f"id-{i}"}}
            for i, (q, a) in enumerate([("How many primes are below 20?", "8")] * 3 + [("What is 7 squared?", "49")])]
    f = data_dir / "BytedTsinghua-SIA/DAPO-Math-17k/data/dapo-math-17k.parquet"
    f.parent.mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(f)
    ts = load_train_set(_cfg("dapo_math_17k"))
    assert [p.problem for p in ts.problems] == ["How many primes are below 20?", "What is 7 squared?"]
    assert [p.id for p in ts.problems] == ["id-0", "id-3"] and ts.report["duplicates"] == 2
    assert ts.report["fields"] == {"problem": "prompt", "answer": "reward_model.ground_truth"}


def test_other_field_names_in_a_file_and_a_hub_style_folder(data_dir, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps({"q": "Half of 9?", "sol": "It is $\\boxed{\\frac{9}{2}}$."}) + "\n"
                 + json.dumps({"q": "Twice 4?", "sol": "So \\boxed{8}"}) + "\n")
    ts = load_train_set(_cfg(str(f), problem_field="q", answer_field="sol"))
    assert [(p.problem, p.answer, p.meta["raw_answer"]) for p in ts.problems] == \
        [("Half of 9?", "\\frac{9}{2}", "\\frac{9}{2}"), ("Twice 4?", "8", "8")]
    with pytest.raises(UserError, match=r"mine\.jsonl:1: data\.problem_field='question': no such field \(has: q, sol\)"):
        load_train_set(_cfg(str(f), problem_field="question"))
    with pytest.raises(UserError, match=r"mine\.jsonl:1: no problem field \(looked for problem, question.*has: q, sol\); "
                                        r"name it with data\.problem_field=FIELD"):
        load_train_set(_cfg(str(f), answer_field="sol"))
    # ORG/NAME laid out like the hub repository (hf download --local-dir $TAORL_DATA_DIR/ORG/NAME): the split's files
    repo = data_dir / "acme" / "gsm-like" / "data"
    repo.mkdir(parents=True)
    pl.DataFrame({"question": ["Tom has 3 apples and buys 4. How many?"],
                  "answer": ["3 + 4 = 7 apples.\n#### 7"]}).write_parquet(repo / "train-00000-of-00001.parquet")
    pl.DataFrame({"question": ["unused"], "answer": ["#### 1"]}).write_parquet(repo / "test-00000-of-00001.parquet")
    ts = load_train_set(_cfg("acme/gsm-like"))
    assert [(p.problem[:7], p.answer) for p in ts.problems] == [("Tom has", "7")]
    assert load_train_set(_cfg("acme/gsm-like", split="test")).problems[0].problem == "unused"
    with pytest.raises(UserError, match="no data file of split 'validation'"):
        load_train_set(_cfg("acme/gsm-like", split="validation"))


def test_offline_copy_and_the_hub_line(data_dir, monkeypatch):
    with pytest.raises(UserError) as e:  # no local copy, no hub: one line saying how to point at a copy
        load_train_set(_cfg("simplelr_math_35"))
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE is set" in msg and "TAORL_DATA_DIR" in msg
    assert "hf download hkust-nlp/SimpleRL-Zoo-Data --repo-type dataset" in msg
    (data_dir / "train_math.jsonl").write_text(json.dumps({"id": "math_train-7", "problem": "What is 5+5?",
                                                           "answer": "10", "level": 3}) + "\n")
    src = resolve_source("simplelr_math_35")
    assert src.kind == "offline_copy" and "MATH train levels 3-5" in src.note and "HF_HUB_OFFLINE" in src.note
    assert [p.id for p in load_train_set(_cfg("simplelr_math_35")).problems] == ["math_train-7"]
    # online mode without a network: the connection test fails in seconds, not the libraries' minute
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"deepscaler: not in the local data folder, and the hub \(http://127\.0\.0\.1:9\) "
                                        r"cannot be reached"):
        load_train_set(_cfg("deepscaler"))
    assert time.monotonic() - t0 < 10
    with pytest.raises(UserError, match=r"data.train='nonsense': unknown; expected 'procedural'"):
        resolve_source("nonsense")


def test_training_file_not_utf8_is_one_line(data_dir, tmp_path):
    f = tmp_path / "latin.jsonl"
    f.write_bytes(b'{"problem": "1+1?", "answer": "2"}\n{"problem": "caf\xe9 costs 3?", "answer": "3"}\n')
    first = len(b'{"problem": "1+1?", "answer": "2"}\n')
    offset = first + len(b'{"problem": "caf')
    for loader in (lambda: load_train_set(_cfg(str(f))),
                   lambda: load_train_set(_cfg(str(f), problem_field="problem"))):
        with pytest.raises(UserError) as e:
            loader()
        assert str(e.value).startswith(f"{f}:2: not UTF-8 text at byte offset {offset} of the file (column 17 of line 2")
        assert "\n" not in str(e.value) and "iconv" in str(e.value)
    out = subprocess.run([sys.executable, "-m", "taorl.cli", "train", "configs/tiny.yaml", f"data.train={f}"],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1], check=False,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert lines == [(f"taorl train: error: {f}:2: not UTF-8 text at byte offset {offset} of the file (column 17 "
                      f"of line 2: b'\\xe9 co'); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 latin.jsonl "
                      "> fixed.jsonl")]


def test_problem_key_is_the_documented_match():
    assert problem_key("Find $x$ if $2x + 3 = 11$.") == problem_key("find x if 2x+3=11")
    assert problem_key("What is $\\dfrac{1}{2}\\,$?") == problem_key("what is \\frac{1}{2}?")
    assert problem_key("\\left( 1, 2 \\right)") == problem_key("(1,2)")
    assert problem_key("Find x if 2x+3=12") != problem_key("Find x if 2x+3=11")


def test_data_list_and_show_cli(data_dir):
    f = data_dir / "hkust-nlp/SimpleRL-Zoo-Data/simplelr_qwen_level3to5/train.parquet"
    f.parent.mkdir(parents=True)
    pl.DataFrame(_simplelr_rows()).write_parquet(f)
    env = {**os.environ, "TAORL_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}

    def taorl(*args):
        return subprocess.run([sys.executable, "-m", "taorl.cli", *args], capture_output=True, text=True,
                              timeout=120, env=env, check=False)

    out = taorl("data", "list")
    assert out.returncode == 0, out.stderr
    assert f"here: 5 problems, {f}" in out.stdout and "math500           2 problems" in out.stdout
    assert "dapo_math_17k" in out.stdout and "not here; read from the hub" in out.stdout
    out = taorl("data", "show", "simplelr_math_35", "--limit", "1")
    assert out.returncode == 0, out.stderr
    assert "2 problems from" in out.stdout and "[simplelr_math_35-0] What is $3 \\cdot 4$?" in out.stdout
    assert "answer: '12'" in out.stdout and "fields: problem <- extra_info.question" in out.stdout
    out = taorl("data", "show", "dapo_math_17k")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "TAORL_DATA_DIR" in out.stderr


def test_the_run_manifest_counts_what_was_dropped(data_dir, tmp_path):
    from taorl.config import load_config
    from taorl.train.trainer import Trainer

    f = tmp_path / "pool.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [
        {"problem": "What is 2+2?", "answer": "4"},
        {"problem": "What is $\\frac{1}{2} + \\frac{1}{3}$?", "answer": "5/6"},  # math500-1 (dfrac, $)
        {"problem": "What is 2 + 2?", "answer": "4"}]))  # a plain file is taken as written: repeats stay
    cfg = load_config(Path(__file__).parents[1] / "configs" / "tiny.yaml", [f"data.train={f}", "train.steps=0"])
    Trainer(cfg, tmp_path / "run").run()
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())["extra"]["data"]
    assert data["train"] == str(f) and data["problems"] == 2 and data["kind"] == "file"
    assert data["decontamination"]["by_benchmark"] == {"math500": 1} and data["decontamination"]["dropped"] == 1


def test_a_local_folder_and_the_hugging_face_cache(data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "my-set"
    (folder / "train").mkdir(parents=True)
    pl.DataFrame({"problem": ["p1", "p2"], "answer": ["1", "2"]}).write_parquet(folder / "train" / "part-0.parquet")
    assert [p.answer for p in load_train_set(_cfg(str(folder))).problems] == ["1", "2"]
    # a file of the hub dataset already in the Hugging Face cache is read from there, with no network
    cache = tmp_path / "hf"
    snap = cache / "datasets--agentica-org--DeepScaleR-Preview-Dataset" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "deepscaler.json").write_text(json.dumps([{"problem": "Find 6*7.", "answer": "42", "solution": "..."}]))
    (cache / "datasets--agentica-org--DeepScaleR-Preview-Dataset" / "refs").mkdir()
    (cache / "datasets--agentica-org--DeepScaleR-Preview-Dataset" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    ts = load_train_set(_cfg("deepscaler"))
    assert "Hugging Face cache" in ts.report["source"] and [p.answer for p in ts.problems] == ["42"]


def test_no_benchmark_here_is_said_not_hidden(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TAORL_DATA_DIR", str(empty))
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"problem": "Find $x$ if $2x + 3 = 11$.", "answer": "4"}) + "\n")
    ts = load_train_set(_cfg(str(f)))
    assert len(ts.problems) == 1 and len(ts.report["decontamination"]["not_checked"]) == 8
    assert "NOT decontaminated: no benchmark file here (set TAORL_DATA_DIR)" in ts.summary()
