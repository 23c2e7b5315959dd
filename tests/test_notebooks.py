"""The numbered notebooks: stored clean (no outputs, no execution counts), a header cell, a first
code cell tagged `parameters` holding PROFILE = "tiny", in step with notebooks/_build.py, and every
one executes top to bottom on the tiny profile (their assertions check what their text claims)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = [f"{i:02d}" for i in range(11)]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_all_numbered_notebooks_exist():
    assert [p.name[:2] for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = _load(path)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_header_and_parameters_cell(path):
    cells = _load(path)["cells"]
    head = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and head.startswith(f"# {path.name[:2]} ")
    for part in ("What you will learn", "Runtime", "PROFILE = \"tiny\"", "PROFILE = \"full\"", "What you should see"):
        assert part in head, f"{path.name}: header lacks {part!r}"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), f"{path.name}: first code cell not tagged parameters"
    assert "".join(code[0]["source"]).startswith('PROFILE = "tiny"')
    last = "".join(cells[-1]["source"])
    assert cells[-1]["cell_type"] == "markdown" and "What this shows" in last


def test_notebooks_match_their_builder(tmp_path):
    env = {**os.environ, "TAORL_NB_OUT": str(tmp_path)}
    subprocess.run([sys.executable, str(NB_DIR / "_build.py")], check=True, env=env, capture_output=True)
    for path in NOTEBOOKS:
        assert (tmp_path / path.name).read_text() == path.read_text(), \
            f"{path.name} differs from notebooks/_build.py: run .venv/bin/python notebooks/_build.py"


def _execute(path: Path, cwd: Path):
    """Run a notebook top to bottom in a fresh kernel whose working directory is `cwd`."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    return nb


def test_profile_banner_names_every_profile():
    from taorl.lab.ablation import PROFILES
    from taorl.lab.notebook import PROFILE_NOTES, profile_banner

    assert set(PROFILE_NOTES) == set(PROFILES)
    assert profile_banner("laptop").startswith("Outputs below come from PROFILE = 'laptop': SmolLM2-135M")
    with pytest.raises(Exception, match="PROFILE='big'"):
        profile_banner("big")


def test_laptop_profile_reuses_the_default_priming():
    """The laptop profile is configs/default.yaml made smaller: same model, priming on, and the same
    priming cache key, so the primed weights `make train` caches are the ones the notebooks load."""
    from taorl.config import load_config
    from taorl.lab.ablation import profile_config
    from taorl.train.primed import primed_key

    laptop, default = profile_config("laptop"), load_config(ROOT / "configs" / "default.yaml")
    assert laptop.model.name == "smollm2-135m" and laptop.train.init_from == "sft"
    assert primed_key(laptop) == primed_key(default)
    assert laptop.rollout.batch_prompts < default.rollout.batch_prompts     # smaller steps than the default run
    assert profile_config("tiny").train.init_from is None                    # CI's profile never primes


def test_each_execution_gets_its_own_directory(tmp_path, monkeypatch):
    from taorl.lab.notebook import execution_dir, runs_root

    monkeypatch.delenv("TAORL_NOTEBOOK_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs_root() == tmp_path / "runs"                    # beside the notebook (the kernel's cwd)
    dirs = [execution_dir("03") for _ in range(3)]
    assert len(set(dirs)) == 3 and all(d.parent == tmp_path / "runs" / "03" and d.is_dir() for d in dirs)
    assert all(not any(d.iterdir()) for d in dirs)
    monkeypatch.setenv("TAORL_NOTEBOOK_RUNS", str(tmp_path / "elsewhere"))
    assert execution_dir("00").parent == tmp_path / "elsewhere" / "00"
    with pytest.raises(ValueError, match="plain name"):
        execution_dir("../x")


@pytest.mark.slow
def test_quickstart_runs_twice_beside_itself_with_same_results(tmp_path, monkeypatch):
    """Run all, then run all again in a fresh kernel (what "restart kernel and run all" does): the
    second execution gets its own run folder beside the notebook and reproduces the first's numbers."""
    import shutil

    import polars as pl

    from taorl.store import open_run

    monkeypatch.delenv("TAORL_NOTEBOOK_RUNS", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    here = tmp_path / "nb"
    here.mkdir()
    path = Path(shutil.copy(NB_DIR / "00_quickstart.ipynb", here))
    for _ in range(2):
        _execute(path, here)
    runs = sorted((here / "runs" / "00").glob("*/quickstart"))
    assert len(runs) == 2
    first, second = (open_run(r).metrics().drop("time", "wall_s", strict=False) for r in runs)
    keep = [c for c in first.columns if not c.startswith(("time/", "perf/", "timing/")) and first[c].dtype.is_numeric()]
    assert keep and first.select(keep).equals(second.select(keep)), "two executions with the same seed differ"
    assert pl.Series(open_run(runs[0]).trajectories()["reward"]).equals(open_run(runs[1]).trajectories()["reward"])


# 00 runs twice in the test above
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=[p.stem for p in NOTEBOOKS[1:]])
def test_notebook_runs_on_tiny_profile(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TAORL_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    _execute(path, NB_DIR)


def test_published_html_copies_name_their_profile():
    """docs/notebooks/*.html (make notebooks): executed copies of existing notebooks, each saying which
    profile produced it, none showing a traceback, all listed in index.md, which the README links."""
    import re

    out = ROOT / "docs" / "notebooks"
    pages = sorted(out.glob("*.html"))
    assert pages, "nothing published under docs/notebooks/ (make notebooks)"
    index = (out / "index.md").read_text()
    assert "docs/notebooks/index.md" in (ROOT / "README.md").read_text()
    for page in pages:
        assert (NB_DIR / f"{page.stem}.ipynb").is_file(), f"{page.name}: no such notebook"
        assert f"]({page.stem}.html)" in index, f"{page.name} is not listed in docs/notebooks/index.md"
        text = page.read_text()
        assert re.search(r"Executed copy\.</strong> <code>PROFILE = (&quot;|\")laptop", text), page.name
        assert re.search(r"Outputs below come from PROFILE = (&#x27;|&#39;|')laptop", text), page.name
        assert "Traceback (most recent call last)" not in text, f"{page.name} shows an error"
        for own in (str(ROOT) + "/", str(Path.home()) + "/"):
            assert own not in text, f"{page.name} names this machine's path {own}"
