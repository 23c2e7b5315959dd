"""The CPU engine (taorl.rollout.hf): sampling log-probs, top-p / top-k, stops, seeds, per-prompt caps."""

import math

import numpy as np
import pytest
import torch

from taorl.rollout.engine import Completion, Engine, SamplingParams
from taorl.rollout.hf import HFEngine, sample_next
from taorl.tools.parse import complete_block_end

pytestmark = pytest.mark.usefixtures("one_thread")


def teacher_forced_logits(model, prompt, ids):
    """[len(ids), V] logits that predicted each of `ids` after `prompt`, in one unpadded forward."""
    with torch.no_grad():
        z = model(torch.tensor([list(prompt) + list(ids)])).logits[0].float()
    return z[len(prompt) - 1: len(prompt) - 1 + len(ids)]


def prompts_of(tok, lengths):
    text = "Compute the sum of the first hundred primes and explain every step of it carefully please now"
    base = tok.encode(text, add_special_tokens=False)
    return [base[:n] for n in lengths]


def test_is_an_engine(tiny_model, tiny_tokenizer):
    assert isinstance(HFEngine(tiny_model, tiny_tokenizer), Engine)


def test_logprobs_equal_teacher_forced_log_softmax(tiny_model, tiny_tokenizer):
    """Left padding, KV cache, rows leaving the batch at different caps: every sampled token's
    logprob equals log_softmax(z/T) of a separate unpadded forward pass (top_p = 1, top_k = 0)."""
    T = 0.8
    prompts = prompts_of(tiny_tokenizer, [3, 17, 9, 12, 5])
    caps = [4, 14, 9, 1, 11]
    engine = HFEngine(tiny_model, tiny_tokenizer, gen_batch_size=3)  # two batches, sorted by length
    out = engine.generate(prompts, SamplingParams(temperature=T, max_tokens=14, stop_at_code_block=False,
                                                  seed=11), max_tokens=caps)
    for p, c, cap in zip(prompts, out, caps):
        assert len(c.token_ids) == len(c.logprobs) == len(c.full_logprobs)
        if c.finish == "length":
            assert len(c.token_ids) == cap
        else:
            assert c.finish == "eos" and c.token_ids[-1] == tiny_tokenizer.eos_token_id
        ref = torch.log_softmax(teacher_forced_logits(tiny_model, p, c.token_ids) / T, -1)
        ref = ref.gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        np.testing.assert_allclose(c.logprobs, ref.numpy(), atol=2e-4)
        np.testing.assert_allclose(c.full_logprobs, ref.numpy(), atol=2e-4)


@pytest.mark.parametrize("top_p,top_k", [(0.5, 0), (1.0, 20), (0.3, 200)])
def test_truncated_sampling_renormalises(tiny_model, tiny_tokenizer, top_p, top_k):
    """Tokens come from the top-k / nucleus set, and their logprob is renormalised over that set.

    Independent reference: sort probabilities, keep the k largest, then the smallest prefix whose
    mass reaches top_p (numpy searchsorted), renormalise."""
    T = 1.3
    prompts = prompts_of(tiny_tokenizer, [6, 10])
    out = HFEngine(tiny_model, tiny_tokenizer).generate(
        prompts, SamplingParams(temperature=T, top_p=top_p, top_k=top_k, max_tokens=6,
                                stop_at_code_block=False, seed=5))
    for p, c in zip(prompts, out):
        z = (teacher_forced_logits(tiny_model, p, c.token_ids) / T).double().numpy()
        for t, y in enumerate(c.token_ids):
            order = np.argsort(-z[t], kind="stable")
            zk = z[t][order][: top_k or None]
            q = np.exp(zk - zk.max())
            q /= q.sum()
            n_keep = int(np.searchsorted(np.cumsum(q), top_p - 1e-12)) + 1 if top_p < 1 else len(q)
            kept = order[:n_keep]
            assert y in set(kept.tolist())
            zs = z[t][kept]
            expect = z[t][y] - (zs.max() + np.log(np.exp(zs - zs.max()).sum()))
            full = z[t][y] - (z[t].max() + np.log(np.exp(z[t] - z[t].max()).sum()))
            assert c.logprobs[t] == pytest.approx(expect, abs=2e-4)
            assert c.full_logprobs[t] == pytest.approx(full, abs=2e-4)
            assert c.logprobs[t] > c.full_logprobs[t]  # mass renormalised over a strict subset


def test_sample_next_by_hand():
    """p = (.5, .3, .15, .05): top_p .7 keeps {0, 1} (.5 < .7 <= .8); top_p .5 keeps {0}; top_k 3 keeps 3."""
    z = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    y, lp, full = sample_next(z, SamplingParams(top_p=0.7), g)
    assert set(y.tolist()) == {0, 1}
    assert lp[y == 0].allclose(torch.tensor(math.log(0.5 / 0.8))) and lp[y == 1].allclose(torch.tensor(math.log(0.3 / 0.8)))
    assert full[y == 1].allclose(torch.tensor(math.log(0.3)))
    assert abs((y == 0).float().mean().item() - 0.625) < 0.03  # 4000 draws: sd 0.008
    y, lp, _ = sample_next(z, SamplingParams(top_p=0.5), g)
    assert set(y.tolist()) == {0} and lp.abs().max() < 1e-6
    y, lp, _ = sample_next(z, SamplingParams(top_k=3), g)
    assert set(y.tolist()) == {0, 1, 2}
    assert lp[y == 2].allclose(torch.tensor(math.log(0.15 / 0.95)))
    # temperature 2: p_i ∝ sqrt(p_i)
    y, lp, full = sample_next(z[:1], SamplingParams(temperature=2.0, top_k=1), g)
    s = sum(math.sqrt(v) for v in (0.5, 0.3, 0.15, 0.05))
    assert y.item() == 0 and lp.item() == 0.0 and full.item() == pytest.approx(math.log(math.sqrt(0.5) / s), abs=1e-6)
    y, lp, full = sample_next(z[:1], SamplingParams(temperature=0.0), g)  # greedy
    assert y.item() == 0 and lp.item() == 0.0 and full.item() == pytest.approx(math.log(0.5), abs=1e-6)


def test_same_seed_same_samples(tiny_model, tiny_tokenizer):
    engine = HFEngine(tiny_model, tiny_tokenizer, gen_batch_size=2)
    prompts = prompts_of(tiny_tokenizer, [4, 8, 6])

    def run(seed):
        sp = SamplingParams(temperature=1.0, max_tokens=8, stop_at_code_block=False, seed=seed)
        return [c.token_ids for c in engine.generate(prompts, sp)]

    a = run(1)
    torch.manual_seed(123)  # the global stream is not what the engine draws from
    assert run(1) == a
    assert run(2) != a


def ids_of(tok, *pieces):
    return [tok.convert_tokens_to_ids(p) for p in pieces]


# The chain model writes "Let me compute. \n```python\nprint(6*7)\n\n```" token by token after ':'.
# It uses the tokens " \n" (ĠĊ) and "\n\n" (ĊĊ) that tokenizer.encode never produces for this text.
CODE_CHAIN = (":", "Let", "Ġme", "Ġcompute", ".", "ĠĊ", "```", "python", "Ċ", "print", "(", "6", "*", "7",
              ")", "ĊĊ", "```")
ANSWER_CHAIN = ("?", "So", "Ġthe", "Ġanswer", "Ġis", "Ġ\\", "box", "ed", "{", "4", "2", "}", "<|im_end|>")


def test_stop_right_after_first_complete_block(chain_lm, tiny_tokenizer):
    tok = tiny_tokenizer
    code, ans = ids_of(tok, *CODE_CHAIN), ids_of(tok, *ANSWER_CHAIN)
    engine = HFEngine(chain_lm(tok, code, ans), tok, gen_batch_size=8)  # one model, both chains
    prompt_code = tok.encode("Q: what is 6*7? A", add_special_tokens=False) + code[:1]
    prompt_ans = tok.encode("Q: what is 6*7", add_special_tokens=False) + ans[:1]
    sp = SamplingParams(temperature=1.0, max_tokens=30, stop_at_code_block=True, seed=0)
    c_code, c_ans = engine.generate([prompt_code, prompt_ans], sp)
    # stopped on the token that closed the fence; ids exactly as sampled (not a re-encoding)
    assert c_code.finish == "stop" and c_code.token_ids == code[1:]
    text = tok.decode(c_code.token_ids)
    assert text == "Let me compute. \n```python\nprint(6*7)\n\n```"
    assert complete_block_end(text) == len(text)
    assert tok.encode(text, add_special_tokens=False) != c_code.token_ids
    # the other row ran on to its end-of-turn token, which is kept
    assert c_ans.finish == "eos" and c_ans.token_ids == ans[1:] and c_ans.token_ids[-1] == tok.eos_token_id
    assert all(-1e-3 < lp <= 0.0 for lp in c_code.logprobs)  # a near-certain model, still sampled
    # without the stop, the model writes on past the block (```python again) until its cap
    c = engine.generate([prompt_code], SamplingParams(max_tokens=20, stop_at_code_block=False))[0]
    assert c.finish == "length" and len(c.token_ids) == 20 and c.token_ids[:16] == code[1:]
    assert c.token_ids[16] == tok.convert_tokens_to_ids("python")


def test_caps_and_empty(tiny_model, tiny_tokenizer):
    engine = HFEngine(tiny_model, tiny_tokenizer)
    prompts = prompts_of(tiny_tokenizer, [5, 7])
    out = engine.generate(prompts, SamplingParams(max_tokens=6, stop_at_code_block=False), max_tokens=[0, 3])
    assert out[0] == Completion([], [], "length", [])
    assert len(out[1].token_ids) == 3 or out[1].finish == "eos"
    with pytest.raises(ValueError):
        engine.generate(prompts, SamplingParams(max_tokens=6), max_tokens=[1])


def test_bfloat16_model(tiny_model_cfg, tiny_tokenizer):
    """A bf16 model samples in bf16 (logits upcast for sampling); logprobs agree with a bf16
    teacher-forced pass up to bf16 rounding of the cached vs uncached computation."""
    from taorl.models import load_model

    model, _ = load_model(tiny_model_cfg.model_copy(update={"dtype": "bfloat16"}))
    prompts = prompts_of(tiny_tokenizer, [4, 9])
    out = HFEngine(model, tiny_tokenizer).generate(prompts, SamplingParams(max_tokens=6, stop_at_code_block=False))
    for p, c in zip(prompts, out):
        ref = torch.log_softmax(teacher_forced_logits(model, p, c.token_ids), -1)
        ref = ref.gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        assert all(math.isfinite(x) for x in c.logprobs)
        np.testing.assert_allclose(c.logprobs, ref.numpy(), atol=0.05)
