"""Problem loaders: JSONL/Parquet round trip, errors with file:line, benchmarks via TAORL_DATA_DIR,
the procedural generator (determinism, answers checked by running each solution with exec)."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from taorl.data import BENCHMARKS, Problem, load_benchmark, load_problems, read_jsonl, write_problems
from taorl.data.procedural import KINDS, generate
from taorl.errors import UserError

SHARED = Path(__file__).parents[1].parent / "shared" / "benchmarks"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_and_parquet_round_trip(tmp_path):
    rows = [{"id": "a", "problem": "1+1?", "answer": "2", "level": 3},
            {"problem": "Half?", "answer": "\\frac{1}{2}"},
            {"id": "c", "problem": "Big?", "answer": 3.83e35}]
    src = _write(tmp_path / "mine.jsonl", [json.dumps(r) for r in rows])
    probs = load_problems(str(src))
    assert [p.id for p in probs] == ["a", "mine-2", "c"]  # default id: file stem + line number
    assert [p.answer for p in probs] == ["2", "\\frac{1}{2}", "3.83\\times10^{35}"]  # normalised at load
    assert probs[2].meta["raw_answer"] == "3.83e+35" and probs[0].meta["level"] == 3
    assert all(p.source == "mine" for p in probs)
    for suffix in (".parquet", ".jsonl"):
        out = write_problems(probs, tmp_path / f"copy{suffix}")
        again = load_problems(str(out))
        assert [(p.id, p.problem, p.answer) for p in again] == [(p.id, p.problem, p.answer) for p in probs]
    df = pl.read_parquet(tmp_path / "copy.parquet")
    assert df["answer"].to_list() == ["2", "\\frac{1}{2}", "3.83e+35"]
    assert load_problems(str(src), limit=2)[-1].id == "mine-2"


def test_malformed_line_names_file_and_line(tmp_path):
    f = _write(tmp_path / "bad.jsonl", ['{"problem": "p", "answer": "1"}', "", '{"problem": "q", "answer": '])
    with pytest.raises(UserError, match=r"bad\.jsonl:3: not valid JSON.*'problem' and 'answer'"):
        read_jsonl(f)


def test_missing_field_and_wrong_types(tmp_path):
    f = _write(tmp_path / "m.jsonl", ['{"problem": "p", "answer": "1"}', '{"problem": "q"}'])
    with pytest.raises(UserError, match=r"m\.jsonl:2: missing field 'answer'"):
        load_problems(str(f))
    g = _write(tmp_path / "t.jsonl", ['[1, 2]'])
    with pytest.raises(UserError, match=r"t\.jsonl:1: got a JSON list"):
        load_problems(str(g))
    h = _write(tmp_path / "e.jsonl", ['{"problem": "", "answer": "1"}'])
    with pytest.raises(UserError, match=r"e\.jsonl:1: field 'problem' must be a non-empty string"):
        load_problems(str(h))
    pl.DataFrame({"problem": ["x"]}).write_parquet(tmp_path / "noans.parquet")
    with pytest.raises(UserError, match=r"noans\.parquet: missing column 'answer'"):
        load_problems(str(tmp_path / "noans.parquet"))


def test_empty_missing_and_unknown(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(UserError, match=r"empty\.jsonl: no problems"):
        load_problems(str(tmp_path / "empty.jsonl"))
    with pytest.raises(UserError, match=r"nope\.jsonl: no such file"):
        load_problems(str(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match=r"expected 'procedural', a benchmark name"):
        load_problems("mystery")
    with pytest.raises(UserError, match="unknown"):
        load_benchmark("aime99")


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared/benchmarks folder next to the repo")
def test_benchmarks_from_taorl_data_dir(tmp_path, monkeypatch):
    for spec in ("aime24", "olympiadbench"):
        shutil.copy(SHARED / BENCHMARKS[spec].file, tmp_path / BENCHMARKS[spec].file)
    monkeypatch.setenv("TAORL_DATA_DIR", str(tmp_path))
    aime = load_benchmark("aime24")
    assert len(aime) == 30 and aime[0].id == "aime24-0" and aime[0].answer == "204" and aime[0].source == "aime24"
    assert [p.id for p in load_benchmark("aime24", limit=3)] == ["aime24-0", "aime24-1", "aime24-2"]
    ob = {p.id: p for p in load_problems("olympiadbench")}
    assert len(ob) == 675
    assert ob["olympiadbench-2045"].answer == "(0,4]" and ob["olympiadbench-2045"].meta["raw_answer"] == "t(0,4]"
    assert any(p.meta.get("is_multiple_answer") for p in ob.values())
    with pytest.raises(UserError, match=r"math500\.jsonl: benchmark file missing"):
        load_benchmark("math500")
    monkeypatch.setenv("TAORL_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="TAORL_DATA_DIR=.*not a folder"):
        load_benchmark("aime24")


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared/benchmarks folder next to the repo")
def test_benchmarks_default_to_shared_folder(monkeypatch):
    monkeypatch.delenv("TAORL_DATA_DIR", raising=False)
    sizes = {name: len(load_benchmark(name)) for name in ("aime25", "amc23", "hmmt25", "minerva")}
    assert sizes == {"aime25": 30, "amc23": 40, "hmmt25": 30, "minerva": 272}


def _run(code: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(code, {})  # noqa: S102 - our own generated reference solutions
    return buf.getvalue().strip()


@pytest.mark.parametrize("difficulty", range(6))
def test_procedural_solutions_print_the_answer(difficulty):
    probs = generate(2 * len(KINDS), difficulty=difficulty, seed=7)
    kinds = {p.meta["kind"] for p in probs}
    assert kinds == (set(KINDS) if difficulty else {"add", "multiply", "gcd_lcm", "count_multiples"})
    for p in probs:
        assert _run(p.meta["solution_code"]) == p.answer, p.problem
        assert p.answer.lstrip("-").isdigit() and p.source == "procedural"


def test_procedural_deterministic_and_scaled():
    a, b = generate(20, 3, seed=1), generate(20, 3, seed=1)
    assert [(p.id, p.problem, p.answer) for p in a] == [(p.id, p.problem, p.answer) for p in b]
    assert [p.problem for p in generate(20, 3, seed=2)] != [p.problem for p in a]
    # difficulty 0 is 2-digit work; difficulty 5 needs big exact integers
    easy = generate(40, 0, seed=0)
    assert max(len(p.answer) for p in easy) <= 5
    assert min(len(p.answer) for p in generate(40, 5, seed=0)) >= 5
    first = easy[0]
    assert first.meta["kind"] == "add" and eval(first.problem[len("Compute "):-1]) == int(first.answer)
    via_spec = load_problems("procedural", n=5, difficulty=2, seed=3)
    assert [p.id for p in via_spec] == [f"proc-d2-s3-{i}" for i in range(5)]
    with pytest.raises(UserError, match="difficulty=9"):
        generate(3, 9)


def test_procedural_kinds_from_the_config(tmp_path):
    from taorl.config import load_config
    from taorl.data import load_train_problems

    cfg = load_config(Path(__file__).parents[1] / "configs" / "default.yaml",
                      ["data.kinds=[multiply,gcd_lcm]", "data.difficulty=3", "data.n_problems=10"])
    probs = load_train_problems(cfg.data)
    assert [p.meta["kind"] for p in probs] == ["multiply", "gcd_lcm"] * 5
    assert all(_run(p.meta["solution_code"]) == p.answer for p in probs)
    with pytest.raises(UserError, match="kind 'modpoww'.*known: add, multiply"):
        load_problems("procedural", n=3, kinds=["modpoww"])
    with pytest.raises(UserError, match="only to 'procedural'"):
        load_problems("math500", kinds=["add"])
    # like difficulty, the config's kinds describe the generator: another training source ignores them
    # (default.yaml sets kinds; `taorl train configs/default.yaml data.train=x.jsonl` must still work)
    f = write_problems(probs[:3], Path(tmp_path) / "p.jsonl")
    other = load_config(Path(__file__).parents[1] / "configs" / "default.yaml", [f"data.train={f}"])
    assert [p.problem for p in load_train_problems(other.data)] == [p.problem for p in probs[:3]]


def test_problem_is_plain_data():
    p = Problem("x", "1+1", "2", "mine")
    assert p.meta == {} and Problem("y", "q", "1", "s").meta is not p.meta
