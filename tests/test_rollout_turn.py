"""The per-turn decision (taorl.rollout.turn) that taorl's rollout loop and the verl agent loop share:
hand-written turns, no model, no sandbox (the Python tool only parses here)."""

import pytest

from taorl.rollout.turn import (
    End,
    after_model_turn,
    after_observation,
    cut_after_first_block,
    observation_tokens,
    turn_cap,
)
from taorl.tools.parse import complete_block_end
from taorl.tools.python_tool import PythonTool
from taorl.types import Trajectory

FENCE = "`" * 3
BLOCK = f"{FENCE}python\nprint(6*7)\n{FENCE}"
TOOL = PythonTool(sandbox=None)


class CharTokenizer:
    """One token per character; with special tokens, encode prepends a BOS id (0)."""

    def encode(self, text, add_special_tokens=True):
        return ([0] if add_special_tokens else []) + [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i != 0)


class ChunkTokenizer(CharTokenizer):
    """Tokens of three characters (ids index a vocabulary built on the fly)."""

    def __init__(self):
        self.vocab: list[str] = ["<bos>"]

    def encode(self, text, add_special_tokens=True):
        ids = [0] if add_special_tokens else []
        for i in range(0, len(text), 3):
            self.vocab.append(text[i:i + 3])
            ids.append(len(self.vocab) - 1)
        return ids

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids if i != 0)


def test_turn_cap_is_the_smaller_of_turn_and_budget_left():
    assert turn_cap(1024, 4000, 0) == 1024
    assert turn_cap(1024, 4000, 3500) == 500
    assert turn_cap(1024, 4000, 4000) == 0


@pytest.mark.parametrize("text, cut, at_budget, want", [
    # \boxed{ in the prose: an answer; truncated only when the turn was cut at the budget
    ("So \\boxed{42}.", False, False, End("answer")),
    ("So \\boxed{42", True, False, End("answer")),
    ("So \\boxed{42", True, True, End("answer", truncated=True)),
    ("So \\boxed{42", False, True, End("answer")),
    # a box in the prose wins over a call in the same turn (the call does not run)
    (f"\\boxed{{1}} and\n{BLOCK}", False, False, End("answer")),
    (f"{BLOCK}\nso \\boxed{{42}}", False, False, End("answer")),
    # no call: cut at its token cap -> truncated (not void); ended by itself -> void
    ("Let me think about it", True, False, End("length", truncated=True)),
    ("Let me think about it", True, True, End("length", truncated=True)),
    ("I give up.", False, False, End("void", void=True)),
    # an unterminated block is no call
    (f"{FENCE}python\nprint(1)\n", False, False, End("void", void=True)),
])
def test_after_model_turn_ends(text, cut, at_budget, want):
    assert after_model_turn(text, TOOL, cut=cut, at_budget=at_budget) == (None, want)


@pytest.mark.parametrize("cut", [False, True])
def test_after_model_turn_a_call_runs(cut):
    call, end = after_model_turn(f"Let me compute:\n{BLOCK}", TOOL, cut=cut, at_budget=False)
    assert end is None and call.code == "print(6*7)"
    # \boxed{ inside the call's span is the tool's business: the call still runs
    text = f"{FENCE}python\nprint('\\\\boxed{{42}}')\n{FENCE}"
    call, end = after_model_turn(text, TOOL, cut=cut, at_budget=False)
    assert end is None and call.code == "print('\\\\boxed{42}')"


def test_after_model_turn_without_a_tool_looks_for_no_call():
    assert after_model_turn(f"Compute:\n{BLOCK}", None, cut=False, at_budget=False) == \
        (None, End("void", void=True))
    assert after_model_turn(f"{BLOCK}\n\\boxed{{42}}", None, cut=True, at_budget=True) == \
        (None, End("answer", truncated=True))


@pytest.mark.parametrize("obs, cut, at_budget, last, want", [
    ("\nCode execution result: \\boxed{42}\n", False, False, False, End("answer")),
    ("\nCode execution result: \\boxed{42}\n", False, True, True, End("answer")),
    ("\nCode execution result: \\boxed{4", True, True, False, End("answer", truncated=True)),
    ("\nCode execution result: 42\n", False, True, False, End("length", truncated=True)),
    ("\nCode execution res", True, True, True, End("length", truncated=True)),
    ("\nCode execution result: 42\n", False, False, True, End("max_turns")),
    ("\nCode execution result: 42\n", False, False, False, None),
])
def test_after_observation(obs, cut, at_budget, last, want):
    assert after_observation(obs, cut=cut, at_budget=at_budget, last_turn=last) == want


def test_end_applies_to_a_record():
    t = Trajectory(group=0, index=0, problem_id="p", problem="q", answer="1", prompt_ids=[1])
    End("void", void=True).apply(t)
    assert (t.finish, t.truncated, t.void) == ("void", False, True)
    End("length", truncated=True).apply(t)
    assert (t.finish, t.truncated, t.void) == ("length", True, False)


def test_observation_tokens_alone_capped_then_cut_to_the_room():
    tok = CharTokenizer()
    text = "\nCode execution result: 42\n"
    assert observation_tokens(tok, text, 256) == ([ord(c) for c in text], False)  # no BOS
    assert observation_tokens(tok, text, 5) == ([ord(c) for c in text[:5]], False)  # cap: not a budget cut
    assert observation_tokens(tok, text, 5, room=5) == ([ord(c) for c in text[:5]], False)
    assert observation_tokens(tok, text, 5, room=3) == ([ord(c) for c in text[:3]], True)
    assert observation_tokens(tok, text, 5, room=0) == ([], True)
    assert observation_tokens(tok, text, 5, room=-2) == ([], True)


@pytest.mark.parametrize("tok", [CharTokenizer(), ChunkTokenizer()], ids=["char", "chunk"])
def test_cut_after_first_block(tok):
    text = f"Let me compute.\n{BLOCK}\nand a tail\n{BLOCK}"
    ids = tok.encode(text, add_special_tokens=False)
    lps = [-float(i) for i in range(len(ids))]
    out, out_lps, cut = cut_after_first_block(tok, ids, lps)
    # the kept prefix is the shortest one whose text closes the first block (a token may run past it)
    assert cut and complete_block_end(tok.decode(out)) is not None
    assert complete_block_end(tok.decode(out[:-1])) is None
    assert out == ids[:len(out)] and out_lps == lps[:len(out)]
    # a tool that does not stop at blocks, a turn without a complete block: nothing is cut
    assert cut_after_first_block(tok, ids, lps, stops=False) == (ids, lps, False)
    plain = tok.encode("no block here", add_special_tokens=False)
    assert cut_after_first_block(tok, plain, None) == (plain, [0.0] * len(plain), False)
    # a turn that ends exactly at the closing fence is kept whole, not counted as cut
    whole = tok.encode(f"x\n{BLOCK}", add_special_tokens=False)
    assert cut_after_first_block(tok, whole, None)[0::2] == (whole, False)
    with pytest.raises(ValueError, match="log-probs"):
        cut_after_first_block(tok, ids, lps[:-1])
