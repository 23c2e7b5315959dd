"""taorl.models: built-in names, deterministic random models, errors, and the SmolLM2 conversion (slow)."""

import argparse
import os
from pathlib import Path

import pytest
import torch

from taorl.config import ModelConfig
from taorl.errors import UserError
from taorl.model_cli import model_main
from taorl.models import load_model, load_tokenizer


def test_tokenizer_ends_turns_with_im_end(tiny_tokenizer):
    tok = tiny_tokenizer
    # the GGUF conversion declares <|im_start|> as eos; we fix it to the token that ends a turn
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    assert tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id == 2
    assert len(tok) == 49152
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                   tokenize=False)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_tiny_shape_and_seeded_init(tiny_model, tiny_model_cfg, tiny_tokenizer):
    c = tiny_model.config
    assert (c.model_type, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) \
        == ("llama", 64, 2, 4, 2)
    assert c.vocab_size == len(tiny_tokenizer) and c.tie_word_embeddings
    assert tiny_model.lm_head.weight.data_ptr() == tiny_model.model.embed_tokens.weight.data_ptr()
    # 49152*64 embedding + per layer (q 64*64, k,v 64*32, o 64*64, mlp 3*64*128, 2 norms 64) + final norm
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64
    assert sum(p.numel() for p in tiny_model.parameters()) == 49152 * 64 + 2 * per_layer + 64
    assert not tiny_model.training and tiny_model.dtype == torch.float32

    state = torch.get_rng_state()
    again, _ = load_model(tiny_model_cfg)
    assert torch.equal(state, torch.get_rng_state())  # the global random stream is left alone
    for (n, a), (_, b) in zip(tiny_model.named_parameters(), again.named_parameters()):
        assert torch.equal(a, b), n
    other, _ = load_model(tiny_model_cfg.model_copy(update={"init_overrides": {"seed": 1}}))
    assert not torch.equal(other.model.layers[0].self_attn.q_proj.weight,
                           tiny_model.model.layers[0].self_attn.q_proj.weight)


def test_tiny_qwen2_overrides_and_dtype():
    cfg = ModelConfig(name="tiny-qwen2", dtype="bfloat16", init_overrides={"num_hidden_layers": 3, "seed": 5})
    model, tok = load_model(cfg)
    assert model.config.model_type == "qwen2" and model.config.num_hidden_layers == 3
    assert model.model.layers[0].self_attn.q_proj.bias is not None  # Qwen2: bias on q/k/v
    assert model.dtype == torch.bfloat16
    out = model(torch.tensor([tok.encode("1+1=")])).logits
    assert out.shape == (1, len(tok.encode("1+1=")), len(tok)) and torch.isfinite(out.float()).all()


def test_bad_names_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="nowhere/at/all"):
        load_model(ModelConfig(name="./nowhere/at/all"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="init_overrides"):
        load_model(ModelConfig(name="tiny", init_overrides={"hidden_size": "wide"}))
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
            load_model(ModelConfig(name="someone/some-model"))
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    with pytest.raises(UserError, match="expected one of"):
        model_main(argparse.Namespace(action="prepare", name="gpt-17"))


def test_local_directory_round_trip(tiny_model, tiny_tokenizer, tmp_path):
    d = tmp_path / "saved"
    tiny_model.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    model, tok = load_model(ModelConfig(name=str(d), dtype="auto"))
    assert model.dtype == torch.float32 and tok.eos_token_id == tiny_tokenizer.eos_token_id
    x = torch.tensor([tiny_tokenizer.encode("The answer is")])
    with torch.no_grad():
        assert torch.equal(model(x).logits, tiny_model(x).logits)


@pytest.mark.slow
def test_smollm2_conversion(tmp_path, monkeypatch, capsys):
    """Convert the GGUF into a fresh cache (about 20 s), through the CLI entry point."""
    monkeypatch.setenv("TAORL_CACHE", str(tmp_path))
    assert model_main(argparse.Namespace(action="prepare", name="smollm2-135m")) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == tmp_path / "models" / "smollm2-135m-instruct"
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    # nothing half-written is left next to it
    assert [p.name for p in out.parent.iterdir() if ".tmp-" in p.name] == []
    model, tok = load_model(ModelConfig(name="smollm2-135m", dtype="float32"))
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.eos_token_id == 2 and model.generation_config.eos_token_id == 2
    assert not hasattr(model.config, "quantization_config")
    # the dequantised instruct model knows an easy fact greedily
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, tokenize=True, return_dict=False)
    with torch.no_grad():
        gen = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(gen[0, len(ids):])
