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
EXPECTED = [f"{i:02d}" for i in range(9)]


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


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_tiny_profile(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("TAORL_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NB_DIR)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
