"""Shared fixtures: the tiny random model and its (real SmolLM2) tokenizer, loaded once per session.

    tiny_tokenizer   the SmolLM2 tokenizer (converted from the GGUF once, cached under $TAORL_CACHE)
    tiny_model       LlamaConfig hidden 64, 2 layers, random weights from seed 0, float32, eval mode
    tiny_model_cfg   the ModelConfig that builds it (copy it with model_copy(update=...) to vary)
    chain_lm         a builder: chain_lm(tokenizer, *chains) -> a real Llama whose weights make it
                     write each chain of ids on (a deterministic model for stop / tool-call paths)

Tests that change the model's weights must work on a copy (copy.deepcopy(tiny_model)).
"""

import pytest


@pytest.fixture(scope="session")
def tiny_model_cfg():
    from taorl.config import ModelConfig

    return ModelConfig(name="tiny", dtype="float32")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from taorl.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_cfg, tiny_tokenizer):
    from taorl.models import load_model

    model, _ = load_model(tiny_model_cfg)
    return model


def _chain_lm(tokenizer, *chains: list[int], scale: float = 50.0, seed: int = 0):
    """A real LlamaForCausalLM (tiny shape, 1 layer) whose weights make it continue each chain: after
    token chain[i] its most likely next token is chain[i+1], by a logit margin of about 0.7·scale.

    How: attention and MLP write nothing to the residual stream (o_proj = down_proj = 0), so the
    final hidden state is RMSNorm(E[a]) = sqrt(H)·u_a with u_a = E[a]/|E[a]| for current token a;
    the untied head row of b is (scale/sqrt(H))·u_a for the pair (a -> b), so logit_b = scale and
    any other logit = scale·cos(u_a, u_a') ≲ 0.3·scale for random 64-dim embeddings. Each token
    must have one successor over all chains. Generation still runs the real attention with a KV cache.
    """
    import itertools
    import math

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    succ: dict[int, int] = {}
    for a, b in (pair for chain in chains for pair in itertools.pairwise(chain)):
        if succ.setdefault(a, b) != b:
            raise ValueError(f"token {a} ({tokenizer.convert_ids_to_tokens(a)!r}) has two successors")
    H = 64
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=H, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = model.lm_head.weight
        head.zero_()
        E = model.model.embed_tokens.weight
        for a, b in succ.items():
            head[b] += scale / math.sqrt(H) * E[a] / E[a].norm()
    return model.eval()


@pytest.fixture(scope="session")
def chain_lm():
    """The function _chain_lm(tokenizer, *chains_of_ids, scale=50) -> a real model that writes them."""
    return _chain_lm


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module of small-tensor tests, restored after it.

    On this shared 2-core machine, two OpenMP threads spin-wait on each other when other processes
    load the cores: a 64x64 matmul measured 1.2-2.4 ms with 2 threads under load vs 11-15 us with 1.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _keep_main_module():
    """streamlit's AppTest leaves sys.modules['__main__'] pointing at the app script; a later
    multiprocessing 'spawn' pool would then re-run the app in every worker, each worker would die and
    the pool would respawn it forever. Restore the real __main__ after every test."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
