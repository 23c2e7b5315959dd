"""The code-block stop rule every engine shares (taorl.rollout.blockstop), on the tiny model's real
tokenizer, against an independent brute-force reference: decode every prefix and ask the parser."""

import pytest

from taorl.rollout.blockstop import backtick_ids, block_cut, closes_block
from taorl.tools.parse import complete_block_end

TEXTS = [
    "Let me compute it.\n```python\nprint(17 * 23)\n```\nThe product is printed above.",
    "Use ``` fences, like this:\n```py\nx = 40 + 2\nprint(x)\n```",
    "No block here, only `ticks` and ``` an unterminated fence\n```python\nprint(1)",
    "```text\nnot run ```\n```\nthen\n```python\ns = '```'\nprint(s)\n```\n\nmore",
]


def _brute_cut(tok, ids):
    """The first prefix length whose decoded text holds a complete block (every prefix decoded)."""
    for n in range(1, len(ids) + 1):
        if complete_block_end(tok.decode(ids[:n])) is not None:
            return n
    return None


@pytest.mark.parametrize("text", TEXTS)
def test_block_cut_matches_brute_force_whole_and_streamed(tiny_tokenizer, text):
    tok = tiny_tokenizer
    ticks = backtick_ids(tok)
    ids = tok.encode(text, add_special_tokens=False)
    want = _brute_cut(tok, ids)
    assert block_cut(tok, ids, 0, ticks) == want
    # streamed in deltas of 3 ids, as vLLM steps return them: the same cut, found at the right delta
    seen, got = [], None
    for a in range(0, len(ids), 3):
        start = len(seen)
        seen += ids[a:a + 3]
        got = block_cut(tok, seen, start, ticks)
        if got is not None:
            break
    assert got == want
    # one id at a time, as the hf engine samples: closes_block is true exactly at the cut
    stops = [n for n in range(1, len(ids) + 1) if closes_block(tok, ids[:n], ticks)]
    assert (stops[:1] or [None])[0] == want
    if want is not None:  # the kept ids end exactly at the token that closed the block
        assert complete_block_end(tok.decode(ids[:want])) is not None
        assert complete_block_end(tok.decode(ids[:want - 1])) is None


def test_backtick_ids_of_a_few_ids_agree_with_the_vocabulary(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = tok.encode(TEXTS[3], add_special_tokens=False)
    every = backtick_ids(tok)
    assert backtick_ids(tok, among=ids) == every & set(ids)
    assert backtick_ids(tok, among=ids)                       # the text has fences
    assert all("`" in tok.decode([i]) for i in every & set(ids))
    assert not closes_block(tok, [], every)


def test_byte_fallback_backtick_counts():
    class ByteFallback:  # a sentencepiece tokenizer that spells '`' as its byte token
        vocab = ("<unk>", "<0x60>", "▁print", "`")

        def __len__(self):
            return len(self.vocab)

        def convert_ids_to_tokens(self, ids):
            return [self.vocab[i] for i in ids]

    assert backtick_ids(ByteFallback()) == {1, 3}
