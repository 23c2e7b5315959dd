"""The procedural kinds whose tool output must be interpreted (taorl.data.interpret): per kind and
difficulty, the two-call reference run in the real sandbox prints the answer, the first output
copied into \\boxed{} is graded wrong, and the SFT demonstrations show both calls with real outputs."""

import pytest

from taorl.config import ToolConfig, load_config
from taorl.data.interpret import KINDS, N_CALLS, reference_step
from taorl.data.procedural import KINDS as ARITHMETIC
from taorl.data.procedural import generate
from taorl.errors import UserError
from taorl.rewards.grader import grade
from taorl.tools import Sandbox
from taorl.tools.observation import observation_body


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(ToolConfig(workers=2)) as sb:
        yield sb


def _solve(problems, sandbox):
    """Run each problem's reference step by step; returns the outputs (observation bodies) per problem."""
    outs = [[] for _ in problems]
    for _ in range(N_CALLS):
        codes = [reference_step(p.meta["kind"], p.meta["params"], o)[1] for p, o in zip(problems, outs)]
        for o, res in zip(outs, sandbox.run_many(codes)):
            o.append(observation_body(res))
    return outs


@pytest.mark.parametrize("kind", list(KINDS))
def test_reference_solves_and_careless_copy_does_not(kind, sandbox):
    problems = [p for d in range(6) for p in generate(4, difficulty=d, seed=3, kinds=[kind])]
    outs = _solve(problems, sandbox)
    for p, (first, last) in zip(problems, outs):
        assert grade(f"The answer is \\boxed{{{last}}}.", p.answer).reward == 1.0, (p.problem, last)
        assert grade(f"The answer is \\boxed{{{first}}}.", p.answer).reward == 0.0, (p.problem, first)
    if kind == "recover_error":  # the first call fails, and its error line names the repair
        firsts = {o[0].split(":")[0] for o in outs}
        assert firsts == {"ValueError", "TypeError"}, firsts


def test_case_split_takes_both_branches():
    probs = generate(40, difficulty=2, seed=0, kinds=["case_split"])
    above = [p.meta["params"]["a"] * p.meta["params"]["b"] % p.meta["params"]["m"] > p.meta["params"]["t"]
             for p in probs]
    assert 5 < sum(above) < 35


def test_generator_keeps_every_kind_default_and_names_new_kinds():
    # "every kind" (kinds=None) is still the single-call arithmetic set: old configs draw the same problems
    assert {p.meta["kind"] for p in generate(2 * len(ARITHMETIC), difficulty=2, seed=7)} == set(ARITHMETIC)
    mixed = generate(6, difficulty=1, seed=0, kinds=["add", "case_split", "pick_divisor"])
    assert [p.meta["kind"] for p in mixed] == ["add", "case_split", "pick_divisor"] * 2
    assert "solution_code" in mixed[0].meta and mixed[1].meta["calls"] == 2
    assert generate(5, 2, 9, kinds=list(KINDS))[1].problem == generate(5, 2, 9, kinds=list(KINDS))[1].problem
    with pytest.raises(UserError, match="case_split"):
        generate(2, kinds=["nope"])


def test_sft_demonstrations_are_multi_turn_with_real_outputs(sandbox):
    from taorl.models import load_tokenizer
    from taorl.train.sft import build_demonstrations
    from taorl.types import SEG_TOOL

    cfg = load_config("configs/tiny.yaml", ["sft.kinds=[case_split,pick_divisor,recover_error,add]", "sft.difficulty=2"])
    tok = load_tokenizer(cfg.model.name)
    demos = build_demonstrations(cfg, tok, sandbox, 4, seed=5)
    assert [d.n_turns for d in demos] == [3, 3, 3, 2]
    for d in demos[:3]:
        text = tok.decode(d.response_ids)
        assert text.count("```python") == 2 and text.count("Code execution result:") == 2
        tool = [i for i, s in zip(d.response_ids, d.segment) if s == SEG_TOOL]
        assert "Code execution result:" in tok.decode(tool) and d.response_ids[-1] == tok.eos_token_id
        assert text.rstrip().endswith(f"\\boxed{{{d.answer}}}.") or d.answer in text.splitlines()[-1]
    # the recover_error demo shows the failing call's error line, then the repaired code
    text = tok.decode(demos[2].response_ids)
    assert ("Error:" in text) and ("replace" in text or "int(x)" in text)
