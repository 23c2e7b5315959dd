"""The code-block stop (spec §1), one rule for every engine and the verl agent loop.

A turn stops right after the token that closes its first complete fenced Python block. A stop
string cannot say that (the opening fence is the same three backticks), so each engine asks, for
the ids it has so far:

    backtick_ids(tokenizer)          the ids whose token text holds a backtick: only such a token
                                     can close a fence, so only prefixes ending on one are decoded
    closes_block(tok, ids, ticks)    does the last id close the first complete block?
                                     (hf and model.generate engines: one id at a time)
    block_cut(tok, ids, start, ticks)
                                     the length of the shortest prefix holding a complete block,
                                     looking only at prefixes ending at >= start (vLLM's deltas
                                     of several ids; the verl loop's whole turn from a server)

The decoded prefix is judged by taorl.tools.parse.complete_block_end, the same parser that later
finds the call in the turn's text, so an engine never stops where the parser sees no block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from taorl.tools.parse import complete_block_end

BYTE_BACKTICK = "<0x60>"  # sentencepiece byte-fallback token for '`'


def backtick_ids(tokenizer, among: Iterable[int] | None = None) -> frozenset[int]:
    """Ids whose token text contains a backtick: of the whole vocabulary (read from the token
    strings, once per engine: byte-level BPE and sentencepiece tokens keep '`' in their text, a
    byte-fallback tokenizer writes it as <0x60>), or of the few ids in `among` (each decoded, which
    needs only a tokenizer's decode)."""
    if among is not None:
        return frozenset(i for i in set(among) if "`" in tokenizer.decode([i]))
    toks = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return frozenset(i for i, t in enumerate(toks) if t and ("`" in t or t == BYTE_BACKTICK))


def closes_block(tokenizer, ids: Sequence[int], ticks: frozenset[int]) -> bool:
    """True when the last of `ids` closes the first complete code block of their text."""
    return bool(ids) and ids[-1] in ticks and complete_block_end(tokenizer.decode(list(ids))) is not None


def block_cut(tokenizer, ids: Sequence[int], start: int, ticks: frozenset[int]) -> int | None:
    """Length of the shortest prefix of `ids` whose text holds a complete code block, looking only at
    prefixes that end at positions >= start on a backtick token; None if none does."""
    for p in range(max(start, 0), len(ids)):
        if closes_block(tokenizer, ids[:p + 1], ticks):
            return p + 1
    return None
