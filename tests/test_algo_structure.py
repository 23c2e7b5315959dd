"""The package's shape: no import cycles between the policy backends or between format priming
and the trainer, and the core never imports the notebook/demo helpers in taorl/lab/. Imports are
read from the source (module level and inside functions), so a lazy import counts too."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import taorl

ROOT = Path(taorl.__file__).parent
CORE = ("taorl.algo", "taorl.train", "taorl.rollout", "taorl.tools", "taorl.store", "taorl.rewards",
        "taorl.data", "taorl.eval", "taorl.config", "taorl.types", "taorl.models", "taorl.gpu")


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(path: Path) -> set[str]:
    """taorl modules imported anywhere in the file, except under `if TYPE_CHECKING:` (annotations only)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("taorl")}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {n for n in _imports(p) if n in mods and n != m} for m, p in mods.items()}


def _reaches(graph, src: str, dst: str) -> bool:
    seen, todo = set(), [src]
    while todo:
        m = todo.pop()
        if m == dst:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


def test_the_graph_is_read():
    g = _graph()
    assert "taorl.algo.step" in g["taorl.train.trainer"] and "taorl.train.hf_policy" in g["taorl.train.policy"]


def test_no_cycle_between_policy_backends_or_priming_and_trainer():
    g = _graph()
    assert "taorl.train.policy" not in g["taorl.train.policy_unsloth"]
    assert not _reaches(g, "taorl.train.hf_policy", "taorl.train.policy_unsloth")
    assert not _reaches(g, "taorl.train.sft", "taorl.train.trainer")


def test_the_maths_imports_no_config_and_no_model_code():
    g = _graph()
    for m in (m for m in g if m.startswith("taorl.algo")):
        assert not any(d.startswith(("taorl.config", "taorl.train", "taorl.rollout")) for d in g[m]), (m, g[m])


def test_core_never_imports_the_lab():
    g = _graph()
    for m, deps in g.items():
        if m.startswith(CORE):
            assert not any(d.startswith("taorl.lab") for d in deps), (m, sorted(deps))


def test_a_run_whose_start_fails_is_not_left_running(tmp_path):
    """The sandbox cannot start: no run directory claims to be running (the writer starts last)."""
    from taorl.config import load_config
    from taorl.errors import UserError
    from taorl.train.trainer import Trainer

    cfg = load_config(Path(taorl.__file__).parents[1] / "configs" / "tiny.yaml",
                      ["tool.python=/nonexistent/python", "logging.progress=false"])
    with pytest.raises(UserError, match="no such interpreter"):
        Trainer(cfg, tmp_path / "run")
    manifest = tmp_path / "run" / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())["status"] != "running"
