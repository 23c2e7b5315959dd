"""A verl run directory in the dashboard, beside a single-GPU taorl run (main .venv, no verl needed:
taorl.integrations.verl.dump and taorl.integrations.common are plain taorl). The verl rows here are
SYNTHETIC (made up in this test, laid out as verl's TransferQueue holds them); test_verl.py builds
them through the real verl."""

from pathlib import Path

import pytest
import torch

AppTest = pytest.importorskip("streamlit.testing.v1", reason="the dashboard (streamlit) is in the main .venv").AppTest

from taorl.config import load_config
from taorl.integrations.common.step_tables import StepRows
from taorl.integrations.verl.dump import RunDump
from taorl.lab.synthetic import write_synthetic_run

APP = Path(__file__).parents[1] / "app" / "Home.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_run(root / "single-gpu", steps=3, trajectories_per_step=16, token_trajectories=4, seed=0)
    cfg = load_config(None, ["algo.filter.group.min_n=2", "logging.token_traj_per_step=4"])
    dump = RunDump(root / "verl-run", cfg, extra={"verl_experiment": "synthetic"})
    gen = torch.Generator().manual_seed(0)
    mask = [1, 1, 1, 0, 0, 1, 1, 1, 1]  # turn 0, observation, turn 1
    for step in (1, 2, 3):
        B = 8
        rows = StepRows(uids=[f"p{r // 4}" for r in range(B)], prompts=[[1, 2, 3]] * B,
                        responses=[list(range(100, 109))] * B, response_mask=[mask] * B,
                        scores=[1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
                        entropy=[torch.rand(9, generator=gen).tolist() for _ in range(B)],
                        old_logprobs=[[-1.0] * 9] * B, sample_logprobs=[[-1.1] * 9] * B,
                        flags=[{"n_call": 1, "n_ok": 1, "statuses": ["ok"], "call_ms": [5.0], "call_turns": [0],
                                "n_turns": 2}] * B)
        dump.write(step, rows, rows.advantage(cfg), lambda ids: " ".join(map(str, ids)),
                   {"actor/pg_loss": 0.1 * step})
    dump.finish()
    return root


def page(root, monkeypatch, path, **params) -> AppTest:
    monkeypatch.setenv("TAORL_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.switch_page(path)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_overview_of_the_verl_run(runs, monkeypatch):
    at = page(runs, monkeypatch, "views/1_overview.py", run="verl-run")
    shown = {m.label: m.value for m in at.metric}
    assert shown["step"] == "3" and shown["reward"] == "0.500" and shown["entropy"] != "–"


@pytest.mark.parametrize("view", ["views/2_curves.py", "views/3_groups.py", "views/4_boundaries.py",
                                  "views/6_browser.py", "views/8_tools.py"])
def test_every_view_renders_the_verl_run(runs, monkeypatch, view):
    page(runs, monkeypatch, view, run="verl-run")


def test_token_view_of_a_verl_rollout(runs, monkeypatch):
    at = page(runs, monkeypatch, "views/5_tokens.py", run="verl-run", step="2", traj="0")
    shown = {m.label: m.value for m in at.metric}
    assert shown["tool calls"] == "1/1 ok" and shown["length"] == "9 tok" and shown["weight"] == "1.00"
