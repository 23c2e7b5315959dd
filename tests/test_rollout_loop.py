"""The multi-turn rollout loop (taorl.rollout.loop) with a real sandbox.

Episode paths are driven by ScriptedEngine: a real, deterministic implementation of the Engine
interface that answers each problem's turn k with fixed text, tokenized by the real tokenizer and
stopped like any engine (end of the first complete code block, end-of-turn token, token cap).
Then real models: the tiny random model end to end, and chain models (tests/conftest.py) whose
weights make them write a code block, so real tool calls and a real reward happen.
"""

import difflib

import pytest
import torch

from taorl.config import DataConfig, RolloutConfig, ToolConfig
from taorl.data.problem import Problem
from taorl.rollout.engine import Completion, SamplingParams
from taorl.rollout.hf import HFEngine
from taorl.rollout.loop import observation_ids, prompt_ids, run_rollouts
from taorl.tools import Sandbox, ToolResult
from taorl.tools.parse import complete_block_end
from taorl.types import SEG_MODEL, SEG_TOOL

pytestmark = pytest.mark.usefixtures("one_thread")
EOS = "<eos>"  # a scripted turn ending in this marker ends with the tokenizer's end-of-turn token


class ScriptedEngine:
    """Engine whose turn k for problem P is script[P][k] (the last entry repeats)."""

    def __init__(self, tokenizer, script: dict[str, list[str]]):
        self.tokenizer = tokenizer
        self.script = script
        self.calls: list[dict] = []  # per generate call: prompts, params, caps, completions

    def sync(self, policy_model) -> None:
        pass

    def generate(self, prompts, params: SamplingParams, max_tokens=None) -> list[Completion]:
        k = len(self.calls)
        caps = list(max_tokens) if max_tokens is not None else [params.max_tokens] * len(prompts)
        out = []
        for ctx, cap in zip(prompts, caps):
            context = self.tokenizer.decode(ctx)
            key = next(p for p in self.script if p in context)
            text = self.script[key][min(k, len(self.script[key]) - 1)]
            eos = text.endswith(EOS)
            ids = self.tokenizer.encode(text.removesuffix(EOS), add_special_tokens=False)
            ids += [self.tokenizer.eos_token_id] if eos else []
            finish = "eos" if eos else "length"
            if params.stop_at_code_block:
                for n in range(1, len(ids) + 1):
                    if complete_block_end(self.tokenizer.decode(ids[:n])) is not None:
                        ids, finish = ids[:n], "stop"
                        break
            if len(ids) >= min(cap, params.max_tokens):
                ids, finish = ids[: min(cap, params.max_tokens)], "length"
            # distinct, recognisable logprobs: -(k+1)/100 - position/1000
            out.append(Completion(ids, [-(k + 1) / 100 - i / 1000 for i in range(len(ids))], finish))
        self.calls.append({"prompts": prompts, "params": params, "caps": caps, "completions": out})
        return out


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(ToolConfig(workers=2)) as sb:
        yield sb


def problem(text, answer, pid="p"):
    return Problem(id=pid, problem=text, answer=answer, source="test")


def rollout(tok, script, problems, sandbox, G=1, **over):
    cfg = RolloutConfig(**over)
    eng = ScriptedEngine(tok, script)
    trajs = run_rollouts(eng, sandbox, problems, G, cfg, DataConfig(), seed=0, progress=False)
    return trajs, eng, cfg


def obs_ids(tok, stdout, cfg):
    return observation_ids(tok, ToolResult(status="ok", stdout=stdout), cfg)


# ------------------------------------------------------------------------------------ episode paths
def test_code_turn_then_boxed_answer(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    q = "What is 6 times 7?"
    trajs, eng, cfg = rollout(tok, {q: ["I will compute.\n```python\nprint(6*7)\n```\nignored after the block",
                                        "The answer is \\boxed{42}." + EOS]},
                              [problem(q, "42")], sandbox, G=2)
    assert [(t.group, t.index) for t in trajs] == [(0, 0), (0, 1)]
    t = trajs[0]
    c0, c1 = eng.calls[0]["completions"][0], eng.calls[1]["completions"][0]
    assert c0.finish == "stop" and tok.decode(c0.token_ids).endswith("print(6*7)\n```")
    obs = obs_ids(tok, "42\n", cfg)
    assert tok.decode(obs) == "\nCode execution result: 42\n"
    # the sequence is exactly: engine ids, observation ids (tokenized alone), engine ids
    assert t.response_ids == c0.token_ids + obs + c1.token_ids
    assert t.segment == [SEG_MODEL] * len(c0.token_ids) + [SEG_TOOL] * len(obs) + [SEG_MODEL] * len(c1.token_ids)
    assert t.turn == [0] * (len(c0.token_ids) + len(obs)) + [1] * len(c1.token_ids)
    assert t.sample_logprobs == c0.logprobs + [0.0] * len(obs) + c1.logprobs
    # turn 1 was generated from prompt + turn 0 + observation
    assert eng.calls[1]["prompts"][0] == t.prompt_ids + c0.token_ids + obs
    assert [(c.turn, c.status, c.stdout, c.code.strip()) for c in t.tool_calls] == [(0, "ok", "42\n", "print(6*7)")]
    assert (t.n_turns, t.finish, t.void, t.truncated, t.n_call, t.n_ok) == (2, "answer", False, False, 1, 1)
    assert (t.reward, t.reward_info) == (1.0, "42")
    assert t.text == ("I will compute.\n```python\nprint(6*7)\n```\nCode execution result: 42\n"
                      "The answer is \\boxed{42}.<|im_end|>")
    # the engine was asked with the config's sampling settings and a per-prompt cap
    p = eng.calls[0]["params"]
    assert (p.temperature, p.top_p, p.top_k, p.stop_at_code_block) == (1.0, 1.0, 0, True)
    assert eng.calls[0]["caps"] == [cfg.max_turn_tokens] * 2
    assert eng.calls[1]["caps"] == [min(cfg.max_turn_tokens, cfg.max_response_tokens - len(c0.token_ids + obs))] * 2
    assert eng.calls[0]["params"].seed != eng.calls[1]["params"].seed


def test_wrong_answer_void_and_failed_call(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    qs = ["Wrong: 6*7?", "Void: 6*7?", "Error then void: 6*7?"]
    script = {qs[0]: ["So \\boxed{41}" + EOS],
              qs[1]: ["I think it is forty-two." + EOS],
              qs[2]: ["```python\nprint(1/0)\n```", "Hmm." + EOS]}
    trajs, eng, _ = rollout(tok, script, [problem(q, "42", str(i)) for i, q in enumerate(qs)], sandbox)
    wrong, void, err = trajs
    assert (wrong.finish, wrong.reward, wrong.reward_info, wrong.n_turns, wrong.void) == ("answer", 0.0, "41", 1, False)
    assert (void.finish, void.void, void.reward, void.n_call, void.n_turns) == ("void", True, 0.0, 0, 1)
    assert set(void.segment) == {SEG_MODEL}
    assert (err.finish, err.void, err.n_turns, err.n_call, err.n_ok, err.tools_all_failed) == \
        ("void", True, 2, 1, 0, True)
    assert err.tool_calls[0].status == "runtime_error"
    assert "Code execution result: ZeroDivisionError: division by zero\n" in err.text
    # only the live trajectory was asked for a second turn
    assert len(eng.calls) == 2 and len(eng.calls[1]["prompts"]) == 1


def test_max_turns(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    q = "Loop forever"
    trajs, eng, _ = rollout(tok, {q: ["```python\nprint(7)\n```"]}, [problem(q, "7")], sandbox, max_turns=3)
    t = trajs[0]
    assert (t.finish, t.n_turns, t.n_call, t.n_ok, t.void, t.truncated) == ("max_turns", 3, 3, 3, False, False)
    assert [c.turn for c in t.tool_calls] == [0, 1, 2] and len(eng.calls) == 3
    assert t.reward == 0.0 and t.reward_info  # no box: the grader says why
    # each turn: model tokens then its observation
    seg_runs = [(s, k) for i, (s, k) in enumerate(zip(t.segment, t.turn))
                if i == 0 or (s, k) != (t.segment[i - 1], t.turn[i - 1])]
    assert seg_runs == [(SEG_MODEL, 0), (SEG_TOOL, 0), (SEG_MODEL, 1), (SEG_TOOL, 1), (SEG_MODEL, 2), (SEG_TOOL, 2)]


def test_truncation_in_a_turn_and_in_an_observation(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    long_q, obs_q = "Ramble", "Print a lot"
    ramble = " ".join(["word"] * 40)
    code = "```python\nprint('x' * 300)\n```"
    n_code = len(tok.encode(code, add_special_tokens=False))
    script = {long_q: [ramble], obs_q: [code]}
    budget = n_code + 5
    trajs, eng, cfg = rollout(tok, script, [problem(long_q, "1", "a"), problem(obs_q, "1", "b")], sandbox,
                              max_response_tokens=budget, max_turn_tokens=1000)
    ramb, obs = trajs
    assert eng.calls[0]["caps"] == [budget, budget]  # the turn cap is the whole remaining budget
    assert (ramb.finish, ramb.truncated, ramb.void, ramb.length) == ("length", True, False, budget)
    # the observation (300 x's) is cut at the budget: 5 observation tokens
    assert (obs.finish, obs.truncated, obs.n_call, obs.length) == ("length", True, 1, budget)
    assert obs.segment.count(SEG_TOOL) == 5
    full = obs_ids(tok, "x" * 300 + "\n", cfg)
    assert obs.response_ids[n_code:] == full[:5]
    # the observation itself is capped at obs_max_tokens and obs_max_chars
    capped = observation_ids(tok, ToolResult(status="ok", stdout="y " * 400), RolloutConfig(obs_max_tokens=16))
    assert len(capped) == 16
    words = "word " * 200  # 1000 characters, about 200 tokens: the character cut applies first
    assert tok.decode(observation_ids(tok, ToolResult(status="ok", stdout=words), RolloutConfig())) == \
        "\nCode execution result: " + words[:512] + "\n"


def test_final_answer_in_code_and_boxed_inside_code(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    qa, qb = "Use final_answer", "Print a box"
    script = {qa: ["```python\nfinal_answer(6*7)\n```"],
              qb: ["```python\nprint('\\\\boxed{' + str(6*7) + '}')\n```"]}
    trajs, eng, _ = rollout(tok, script, [problem(qa, "42", "a"), problem(qb, "42", "b")], sandbox)
    for t in trajs:  # the code ran (a box inside code is not an answer by itself); its output answered
        assert (t.finish, t.n_turns, t.n_call, t.reward) == ("answer", 1, 1, 1.0), t.text
        assert t.text.endswith("Code execution result: \\boxed{42}\n")
    assert len(eng.calls) == 1


def test_tool_disabled_is_one_plain_turn(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    q = "No tools"
    text = "```python\nprint(6*7)\n```\nSo 42, i.e. \\boxed{42}" + EOS
    cfg = RolloutConfig(max_turn_tokens=8, max_response_tokens=300)
    eng = ScriptedEngine(tok, {q: [text]})
    (t,) = run_rollouts(eng, sandbox, [problem(q, "42")], 1, cfg, DataConfig(), tool_enabled=False, progress=False)
    assert eng.calls[0]["params"].stop_at_code_block is False and eng.calls[0]["caps"] == [300]
    assert (t.finish, t.n_turns, t.n_call, t.reward) == ("answer", 1, 0, 1.0)
    assert set(t.segment) == {SEG_MODEL}


def test_plain_prompt_without_chat_template(tiny_tokenizer):
    d = DataConfig(use_chat_template=False, system_prompt="Be brief.")
    assert prompt_ids(tiny_tokenizer, "2+2?", d) == tiny_tokenizer.encode("Be brief.\n\n2+2?\n\n")
    chat = tiny_tokenizer.decode(prompt_ids(tiny_tokenizer, "2+2?", DataConfig(system_prompt="Be brief.")))
    assert chat == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"


# --------------------------------------------------------------------- agreement with one-go rendering
def test_accumulated_ids_agree_with_one_go_rendering_except_at_seams(tiny_tokenizer, sandbox):
    """Render the finished conversation with the chat template in one go and tokenize it.

    The prompt is an exact prefix. In the response, the accumulated ids are the engine's ids and the
    observation ids, each tokenized on its own; a one-go tokenization may merge characters across a
    seam (end of a model turn / start of an observation, end of an observation / start of the next
    turn) and so differ there, and it never differs anywhere else. (A model may also sample a
    non-canonical tokenization inside its own turn; the scripted engine tokenizes canonically.)
    """
    tok = tiny_tokenizer
    q = "Seams"
    turns = ["Compute:\n```python\nx = 6*7\nprint(x, x+1)\n```", "  Both ok.\n```python\nprint('done')\n```",
             "So \\boxed{42}." + EOS]
    trajs, eng, _ = rollout(tok, {q: turns}, [problem(q, "42")], sandbox)
    t = trajs[0]
    msgs = [{"role": "system", "content": DataConfig().system_prompt}, {"role": "user", "content": q},
            {"role": "assistant", "content": t.text.removesuffix("<|im_end|>")}]
    one_go = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
    P = len(t.prompt_ids)
    assert one_go[:P] == t.prompt_ids
    resp = one_go[P: P + len(t.response_ids) + 4]
    assert tok.decode(resp).startswith(tok.decode(t.response_ids))
    resp = resp[: next(i for i in range(len(resp) + 1) if tok.decode(resp[:i]) == tok.decode(t.response_ids))]
    # seam positions (character offsets) where a segment or turn changes
    bounds = [i for i in range(1, t.length) if (t.segment[i], t.turn[i]) != (t.segment[i - 1], t.turn[i - 1])]
    starts = [len(tok.decode(t.response_ids[:i])) for i in range(t.length + 1)]
    seams = {starts[i] for i in bounds}
    assert len(seams) == 4
    ostarts = [len(tok.decode(resp[:i])) for i in range(len(resp) + 1)]
    ops = difflib.SequenceMatcher(a=t.response_ids, b=resp, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        lo, hi = starts[i1], starts[i2]
        assert lo == ostarts[j1] and hi == ostarts[j2]  # same text span, tokenized differently
        assert any(lo <= s <= hi for s in seams), (tag, tok.convert_ids_to_tokens(t.response_ids[i1:i2]))
    # this script makes one real seam merge: observation "...\n" + turn "  Both" is 'Ċ','Ġ' | 'ĠBoth'
    # when accumulated, 'ĊĠ','ĠBoth' in one go
    assert [tok.convert_ids_to_tokens(resp[j1:j2]) for tag, _, _, j1, j2 in ops if tag != "equal"] == [["ĊĠ"]]
    # the engine-sampled ids are the model tokens, exactly
    model_ids = [i for i, s in zip(t.response_ids, t.segment) if s == SEG_MODEL]
    assert model_ids == [i for c in eng.calls for i in c["completions"][0].token_ids]


# ---------------------------------------------------------------------------------- real models
def test_real_tiny_model_end_to_end(tiny_model, tiny_tokenizer, sandbox):
    """The random tiny model through HFEngine: well-formed trajectories, seeded, logprobs of the
    model tokens equal a teacher-forced forward of the whole sequence."""
    tok = tiny_tokenizer
    engine = HFEngine(tiny_model, tok, gen_batch_size=4)
    probs = [problem("What is 2+3?", "5", "a"), problem("What is 10-4?", "6", "b")]
    cfg = RolloutConfig(max_turn_tokens=12, max_response_tokens=40, max_turns=2, temperature=0.9)
    run = lambda seed: run_rollouts(engine, sandbox, probs, 3, cfg, DataConfig(), seed=seed, progress=True)
    trajs = run(7)
    assert [(t.group, t.index) for t in trajs] == [(g, i) for g in range(2) for i in range(3)]
    assert set(trajs.timings) >= {"gen_s", "tool_s", "reward_s"} and trajs.timings["gen_s"] > 0
    for t in trajs:
        t.check()
        assert t.finish in ("answer", "void", "max_turns", "length") and 1 <= t.n_turns <= 2
        assert t.prompt_ids == prompt_ids(tok, t.problem, DataConfig())
        with torch.no_grad():
            z = tiny_model(torch.tensor([t.prompt_ids + t.response_ids])).logits[0].float() / 0.9
        lp = torch.log_softmax(z, -1)[len(t.prompt_ids) - 1: -1].gather(-1, torch.tensor(t.response_ids)[:, None])[:, 0]
        for s, a, b in zip(t.segment, t.sample_logprobs, lp.tolist()):
            assert (a == pytest.approx(b, abs=2e-4)) if s == SEG_MODEL else a == 0.0
    again = run(7)
    assert [t.response_ids for t in again] == [t.response_ids for t in trajs]
    assert [t.response_ids for t in run(8)] != [t.response_ids for t in trajs]


def test_chain_model_calls_final_answer_for_real(chain_lm, tiny_tokenizer, sandbox):
    """A model that writes "final_answer(6*7)\\n\\n```python\\nfinal_answer(6*7)\\n\\n```": the engine stops at
    the fence, the sandbox prints \\boxed{42}, the episode ends with reward 1."""
    tok = tiny_tokenizer
    chain = [tok.convert_tokens_to_ids(x) for x in
             ("Ċ", "final", "_", "answer", "(", "6", "*", "7", ")", "ĊĊ", "```", "python", "Ċ")]
    engine = HFEngine(chain_lm(tok, chain), tok)
    trajs = run_rollouts(engine, sandbox, [problem("What is 6*7?", "42")], 2, RolloutConfig(), DataConfig(),
                         progress=False)
    for t in trajs:
        assert t.text == ("final_answer(6*7)\n\n```python\nfinal_answer(6*7)\n\n```"
                          "\nCode execution result: \\boxed{42}\n")
        assert (t.finish, t.n_turns, t.n_call, t.n_ok, t.reward) == ("answer", 1, 1, 1, 1.0)
        assert t.response_ids[:12] == chain[1:] and t.segment[:12] == [SEG_MODEL] * 12


def test_chain_model_runs_to_max_turns(chain_lm, tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    chain = [tok.convert_tokens_to_ids(x) for x in ("Ċ", "print", "(", "6", "*", "7", ")", "ĊĊ", "```", "python", "Ċ")]
    engine = HFEngine(chain_lm(tok, chain), tok)
    (t,) = run_rollouts(engine, sandbox, [problem("What is 6*7?", "42")], 1, RolloutConfig(max_turns=3),
                        DataConfig(), progress=False)
    assert (t.finish, t.n_turns, t.n_call, t.n_ok) == ("max_turns", 3, 3, 3)
    assert [c.stdout for c in t.tool_calls] == ["42\n"] * 3
    assert t.text.count("\nCode execution result: 42\n") == 3


@pytest.mark.slow
def test_smollm2_rollout(sandbox):
    """SmolLM2-135M-Instruct (converted once) through the hf engine in bf16: a short real rollout."""
    from taorl.config import ModelConfig
    from taorl.models import load_model

    model, tok = load_model(ModelConfig(name="smollm2-135m", dtype="bfloat16"))
    engine = HFEngine(model, tok, gen_batch_size=4)
    cfg = RolloutConfig(max_turn_tokens=48, max_response_tokens=96, max_turns=2)
    trajs = run_rollouts(engine, sandbox, [problem("What is 17*23? Use Python.", "391")], 4, cfg, DataConfig(),
                         seed=0, progress=False)
    for t in trajs:
        t.check()
        assert t.length > 0 and t.text.strip() and t.finish in ("answer", "void", "max_turns", "length")
        assert all(lp <= 0.0 for lp in t.sample_logprobs)


def test_turn_cut_at_max_turn_tokens_is_truncated_not_void(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    q = "Ramble within the budget"
    trajs, eng, cfg = rollout(tok, {q: [" ".join(["word"] * 40)]}, [problem(q, "1")], sandbox,
                              max_turn_tokens=12, max_response_tokens=4000)
    (t,) = trajs
    assert eng.calls[0]["completions"][0].finish == "length" and t.length == 12 < cfg.max_response_tokens
    # cut by the turn cap (not by the response budget): truncated, so the overlong mask applies
    assert (t.finish, t.truncated, t.void, t.n_turns) == ("length", True, False, 1)


def test_indented_block_printing_a_box_runs_its_code(tiny_tokenizer, sandbox):
    tok = tiny_tokenizer
    q = "Indented box"
    text = "Let me compute:\n    ```python\n    x = 6 * 7\n    print('\\\\boxed{' + str(x) + '}')\n    ```"
    trajs, _, _ = rollout(tok, {q: [text]}, [problem(q, "42")], sandbox)
    (t,) = trajs
    # the block is dedented for running; the prose test cuts the block out by its span, so the
    # \boxed{ inside the code is not taken for an answer and the code runs
    assert [(c.status, c.code) for c in t.tool_calls] == [("ok", "x = 6 * 7\nprint('\\\\boxed{' + str(x) + '}')")]
    assert (t.finish, t.n_call, t.reward) == ("answer", 1, 1.0)
    assert t.text.endswith("Code execution result: \\boxed{42}\n")


class CalcTool:
    """A second tool in a dozen lines: <calc>a*b</calc> evaluates a product of integers."""

    name = "calc"
    stops_at_code_block = False

    def find_call(self, text):
        import re

        from taorl.tools.base import Call

        m = re.search(r"<calc>(\d+)\*(\d+)</calc>", text)
        return None if m is None else Call(code=m.group(0), start=m.start(), end=m.end())

    def run_many(self, calls):
        import re

        out = []
        for c in calls:
            a, b = map(int, re.findall(r"\d+", c.code))
            out.append(ToolResult(status="ok", stdout=f"{a * b}\n"))
        return out

    def render(self, result, max_chars):
        return f"\n= {result.stdout.strip()[:max_chars]}\n"


def test_a_second_tool_is_one_class(tiny_tokenizer):
    from taorl.tools.base import Tool

    tok = tiny_tokenizer
    q = "Calc 6*7"
    tool = CalcTool()
    assert isinstance(tool, Tool)
    eng = ScriptedEngine(tok, {q: ["I ask <calc>6*7</calc>" + EOS, "so \\boxed{42}" + EOS]})
    (t,) = run_rollouts(eng, tool, [problem(q, "42")], 1, RolloutConfig(), DataConfig(), seed=0, progress=False)
    assert eng.calls[0]["params"].stop_at_code_block is False
    assert [(c.turn, c.code, c.stdout) for c in t.tool_calls] == [(0, "<calc>6*7</calc>", "42\n")]
    assert "\n= 42\n" in t.text and (t.finish, t.n_turns, t.reward) == ("answer", 2, 1.0)
