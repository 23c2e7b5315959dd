"""Shared fixtures: the tiny random model and its (real SmolLM2) tokenizer, loaded once per session.

    tiny_tokenizer   the SmolLM2 tokenizer (converted from the GGUF once, cached under $TAORL_CACHE)
    tiny_model       LlamaConfig hidden 64, 2 layers, random weights from seed 0, float32, eval mode
    tiny_model_cfg   the ModelConfig that builds it (copy it with model_copy(update=...) to vary)

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
