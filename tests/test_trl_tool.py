"""PythonEnvironment (taorl's sandbox as a TRL environment): the observation text of taorl's own loop
and each call's real status, which criterion 1 reads (n_call, n_ok)."""

import pytest

from taorl.integrations.trl.record import row_flags
from taorl.integrations.trl.tool import PythonEnvironment
from taorl.tools import Sandbox
from taorl.tools.observation import format_observation


@pytest.fixture(scope="module")
def make_env():
    from taorl.integrations.trl.settings import tao_config

    cfg = tao_config(None, ["tool.timeout_s=1", "tool.workers=1"])
    sb = Sandbox(cfg.tool)
    yield PythonEnvironment.factory(cfg, sandbox=sb)
    sb.close()


def test_statuses_and_observations(make_env):
    env = make_env()
    assert env.reset(prompt="x") is None and env.calls == []
    obs = env.python("print(6 * 7)")
    assert obs == "\nCode execution result: 42\n"
    assert env.python("x = 1").startswith("\nCode execution result:")  # ran, printed nothing
    assert "SyntaxError" in env.python("print(")
    assert "ZeroDivisionError" in env.python("1 / 0")
    env.python("while True: pass")
    assert [c.status for c in env.calls] == ["ok", "no_output", "syntax_error", "runtime_error", "timeout"]
    f = env.tao_flags()
    assert (f["n_call"], f["n_ok"]) == (5, 1)  # no_output is not a success (tool.ok_requires_stdout)
    assert f["turn_ok"] == [True, False, False, False, False, False]
    env.reset()
    assert env.tao_flags()["n_call"] == 0


def test_same_text_as_taorls_loop(make_env):
    """The observation equals taorl's rollout loop's rendering of the same sandbox result."""
    env = make_env()
    code = "import math\nprint(math.factorial(20))"
    res = env._sandbox.run(code)
    assert env.python(code) == format_observation(res, 512)


def test_every_call_failed_flags_criterion_1(make_env):
    """A rollout whose environment saw only failures is flagged; one with a success is not; one with
    no call is not (spec §2)."""
    bad, good, none = make_env(), make_env(), make_env()
    bad.python("raise ValueError('no')")
    good.python("1/0")
    good.python("print('ok')")
    flags = row_flags([{}, {}, {}], [[1, 2], [1, 2], [1, 2]], eos_ids={2}, environments=[bad, good, none])
    assert [(f["n_call"], f["n_ok"]) for f in flags] == [(1, 0), (2, 1), (0, 0)]
    assert [f["truncated"] for f in flags] == [False] * 3
