"""HFPolicy on a real (tiny, random) transformers Llama: hidden states reproduce the model's logits,
LoRA trains only the adapter, the reference is the adapter-free model, save/load and export are exact."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from taorl.config import ModelConfig
from taorl.train.policy import HFPolicy

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(94)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", bos_token="<s>")


def _mcfg(lora=True, **kw):
    return ModelConfig(name="unit-tiny", dtype="float32",
                       lora={"enabled": lora, "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}, **kw)


def _batch():
    ids = torch.randint(3, 97, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # right padding on the second row
    ids[1, 5:] = 0
    return ids, mask


@pytest.mark.parametrize("lora", [True, False])
def test_hidden_states_times_head_are_the_logits(lora):
    m = _model()
    ids, mask = _batch()
    with torch.no_grad():
        ref_logits = m(input_ids=ids, attention_mask=mask).logits
    p = HFPolicy(m, _tokenizer(), _mcfg(lora))
    with torch.no_grad():
        logits = p.hidden_states(ids, mask) @ p.lm_head_weight.T
    real = mask.bool()
    assert torch.allclose(logits[real], ref_logits[real], atol=1e-5)
    n_train = sum(x.numel() for x in p.trainable_parameters())
    if lora:  # 2 layers x (q, v) x (A: r x 32 + B: out x r); q out 32, v out 16 (2 kv heads x 8)
        assert n_train == 2 * ((4 * 32 + 32 * 4) + (4 * 32 + 16 * 4))
    else:
        assert n_train == sum(x.numel() for x in m.parameters())


def test_lora_step_changes_policy_not_reference_and_roundtrips(tmp_path):
    p = HFPolicy(_model(), _tokenizer(), _mcfg(True))
    ids, mask = _batch()
    with torch.no_grad():
        base = p.hidden_states(ids, mask) @ p.lm_head_weight.T
    # LoRA B starts at zero: the adapter is a no-op until trained
    opt = torch.optim.AdamW(p.trainable_parameters(), lr=1e-2)
    for _ in range(3):
        loss = (p.hidden_states(ids, mask) @ p.lm_head_weight.T)[..., 5].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = p.hidden_states(ids, mask) @ p.lm_head_weight.T
        with p.model.disable_adapter():
            ref = p.hidden_states(ids, mask) @ p.lm_head_weight.T
    assert not torch.allclose(after, base, atol=1e-4)
    assert torch.allclose(ref, base, atol=1e-6)

    p.save(tmp_path / "ck")
    q = HFPolicy(_model(), _tokenizer(), _mcfg(True))
    q.load(tmp_path / "ck")
    with torch.no_grad():
        again = q.hidden_states(ids, mask) @ q.lm_head_weight.T
    assert torch.equal(again, after)

    p.export(tmp_path / "merged")
    merged = LlamaForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        ml = merged(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(ml[mask.bool()], after[mask.bool()], atol=1e-4)
    assert (tmp_path / "merged" / "tokenizer.json").is_file()


def test_full_finetune_save_load_exact(tmp_path):
    p = HFPolicy(_model(), _tokenizer(), _mcfg(False))
    ids, mask = _batch()
    opt = torch.optim.AdamW(p.trainable_parameters(), lr=1e-2)
    loss = (p.hidden_states(ids, mask) @ p.lm_head_weight.T).logsumexp(-1).mean()
    loss.backward()
    opt.step()
    p.save(tmp_path / "ck")
    q = HFPolicy(_model(seed=5), _tokenizer(), _mcfg(False))
    q.load(tmp_path / "ck")
    for (n1, a), (n2, b) in zip(p.model.state_dict().items(), q.model.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b), n1


def test_load_rejects_mismatched_checkpoint(tmp_path):
    from taorl.errors import UserError

    p = HFPolicy(_model(), _tokenizer(), _mcfg(True))
    p.save(tmp_path / "ck")
    q = HFPolicy(_model(), _tokenizer(), _mcfg(False))
    with pytest.raises(UserError, match="lora"):
        q.load(tmp_path / "ck")


@pytest.mark.parametrize("lora", [True, False])
def test_reference_logprobs_stay_at_the_initial_policy(lora):
    """kl_coef > 0: pi_ref is the adapter-free model (LoRA) or a frozen copy (full fine-tuning)."""
    p = HFPolicy(_model(), _tokenizer(), _mcfg(lora), need_reference=True)
    ids, mask = _batch()
    targets = torch.cat([ids[:, 1:], torch.zeros(2, 1, dtype=torch.long)], 1)

    def direct():  # log softmax of the full logits, gathered at the targets
        with torch.no_grad():
            z = p.hidden_states(ids, mask) @ p.lm_head_weight.T
        return torch.log_softmax(z, -1).gather(-1, targets[..., None])[..., 0]

    before = direct()
    ref0 = p.reference_logprobs(ids, mask, targets, 1.0, 16)
    assert torch.allclose(ref0, before, atol=1e-5)
    opt = torch.optim.SGD(p.trainable_parameters(), lr=0.5)
    for _ in range(3):
        loss = -(p.hidden_states(ids, mask) @ p.lm_head_weight.T)[..., 7].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.allclose(direct(), before, atol=1e-3)  # the policy moved
    assert torch.allclose(p.reference_logprobs(ids, mask, targets, 1.0, 16), before, atol=1e-5)  # the reference did not
