"""The hf engine's prefill savings change nothing but the work: identical prompts prefilled once, and
a trajectory's next turn reusing its KV cache, give the logits of a plain full prefill."""

import pytest
import torch

from taorl.rollout.engine import SamplingParams
from taorl.rollout.hf import HFEngine

pytestmark = pytest.mark.usefixtures("one_thread")


def ids(n: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(100, 2000, (n,), generator=g).tolist()


def full(model, tok, prompts):
    """Reference: a fresh engine with reuse off, on prompts without duplicates."""
    e = HFEngine(model, tok)
    e.reuse_cache = False
    with torch.inference_mode():
        _, logits, mask, nxt = e._prefill(prompts, torch.device("cpu"))
    return logits, nxt


def test_duplicate_prompts_prefilled_once(tiny_model, tiny_tokenizer):
    a, b = ids(11, 0), ids(7, 1)
    e = HFEngine(tiny_model, tiny_tokenizer)
    with torch.inference_mode():
        cache, logits, mask, nxt = e._prefill([a, a, b, a], torch.device("cpu"))
    assert e.stats["prefill_tokens"] == 11 + 7  # each distinct prompt once
    assert cache.get_seq_length() == 11 and mask.shape == (4, 11) and mask.sum(-1).tolist() == [11, 11, 7, 11]
    ref, ref_next = full(tiny_model, tiny_tokenizer, [a, b])
    torch.testing.assert_close(logits, ref[[0, 0, 1, 0]], atol=1e-5, rtol=1e-5)
    assert nxt[:, 0].tolist() == [11, 11, 7, 11]


def test_next_turn_reuses_the_kept_cache(tiny_model, tiny_tokenizer):
    a, b, c = ids(12, 2), ids(9, 3), ids(10, 4)
    e = HFEngine(tiny_model, tiny_tokenizer)
    dev = torch.device("cpu")
    with torch.inference_mode():
        cache, _, mask, _ = e._prefill([a, b], dev)
        for r, ctx in enumerate([a, b]):  # what a stop after a code block keeps
            e._keep(cache, r, mask[r], ctx)
        e._prev = e._kept
        # next turn: a and b go on (3 and 1 new tokens), c is new (no cache)
        turn2 = [a + ids(3, 5), b + ids(1, 6), c]
        cache2, logits, mask2, nxt = e._prefill(turn2, dev)
    assert e.stats["reused_tokens"] == 12 + 9
    assert e.stats["prefill_tokens"] == (12 + 9) + (3 + 1 + 10)
    ref, ref_next = full(tiny_model, tiny_tokenizer, turn2)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    assert nxt.tolist() == ref_next.tolist() == [[15], [10], [10]]
    assert mask2.sum(-1).tolist() == [15, 10, 10] and cache2.get_seq_length() == mask2.shape[1]


def test_greedy_two_turns_match_without_reuse(chain_lm, tiny_tokenizer):
    """A model that writes a code block: turn 2 (context + block + observation) with the kept cache
    gives the same tokens and log-probs as a fresh prefill."""
    tok = tiny_tokenizer
    code = [tok.convert_tokens_to_ids(t) for t in (":", "Let", "Ġme", ".", "ĠĊ", "```", "python", "Ċ", "print",
                                                    "(", "7", ")", "ĊĊ", "```")]
    model = chain_lm(tok, code)
    prompt = tok.encode("Q: what is 7? A", add_special_tokens=False) + code[:1]
    sp = SamplingParams(temperature=0.0, max_tokens=20, stop_at_code_block=True, seed=0)
    outs = []
    for reuse in (True, False):
        e = HFEngine(model, tok)
        e.reuse_cache = reuse
        c1 = e.generate([prompt, prompt], sp)
        assert [c.finish for c in c1] == ["stop", "stop"]
        obs = tok.encode("\nCode execution result: 7\n", add_special_tokens=False)
        c2 = e.generate([prompt + c.token_ids + obs for c in c1], sp)
        outs.append((c2, e.stats["reused_tokens"]))
    (with_reuse, reused), (without, none) = outs
    assert reused == 2 * (len(prompt) + len(code) - 2) and none == 0
    for x, y in zip(with_reuse, without):
        assert x.token_ids == y.token_ids and x.finish == y.finish
        assert x.full_logprobs == pytest.approx(y.full_logprobs, abs=1e-4)


def test_weights_change_drops_kept_caches(tiny_model, tiny_tokenizer):
    sp = SamplingParams(max_tokens=1, stop_at_code_block=False)
    ctx = ids(6, 7)

    def engine_with_kept():
        e = HFEngine(tiny_model, tiny_tokenizer)
        with torch.inference_mode():
            cache, _, mask, _ = e._prefill([ctx], torch.device("cpu"))
        e._keep(cache, 0, mask[0], ctx)
        e._weights_tag = e._weights_version()
        return e

    e = engine_with_kept()
    e.generate([ctx + [5]], sp)
    assert e.stats["reused_tokens"] == 6  # same weights: reused
    e = engine_with_kept()
    p = next(x for x in tiny_model.parameters() if x.requires_grad)
    with torch.no_grad():
        p.add_(0.0)  # an in-place update, as optimizer.step makes
    e.generate([ctx + [5]], sp)
    assert e.stats["reused_tokens"] == 0  # weights moved: prefilled afresh
    e = engine_with_kept()
    e.sync(tiny_model)
    e.generate([ctx + [5]], sp)
    assert e.stats["reused_tokens"] == 0
