"""Every shipped config loads; typos and wrong types give one clear line naming file and key."""

from pathlib import Path

import pytest

from taorl.config import ConfigError, load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"default.yaml", "tiny.yaml", "sft.yaml", "code_compat.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_starts_with_its_command(path):
    cfg = load_config(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# taorl "), f"{path.name}: first line must be the command that runs it"
    assert path.name in first
    if cfg.model.name == "smollm2-135m":  # CPU configs finish in minutes: small batches
        assert cfg.rollout.batch_prompts * cfg.rollout.group_size <= 32
        assert cfg.rollout.max_turn_tokens <= 256


def test_default_is_the_cpu_main_job():
    cfg = load_config(CONFIGS[0].parent / "default.yaml")
    assert cfg.model.name == "smollm2-135m" and cfg.model.lora.enabled and cfg.model.dtype == "bfloat16"
    assert 4 <= cfg.train.steps <= 6 and cfg.rollout.group_size == 4 and cfg.rollout.batch_prompts == 4
    assert cfg.preset == "paper" and cfg.algo.shaping.gate == "post_tool"


def test_code_compat_applies_the_preset():
    cfg = load_config(CONFIGS[0].parent / "code_compat.yaml")
    assert cfg.algo.shaping.gate == "all" and cfg.algo.shaping.norm_scope == "batch"
    assert cfg.algo.shaping.detach is False and cfg.algo.filter.group.refill == "duplicate"


def _error_for(tmp_path, text: str) -> tuple[str, object]:
    """The ConfigError message for a config file holding `text`, and the file's path."""
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    return str(e.value), p


def test_typo_key_is_one_line_with_suggestion(tmp_path):
    msg, p = _error_for(tmp_path, "algo:\n  shapng:\n    coef: 0.02\n")
    assert "\n" not in msg
    assert str(p) in msg and "algo.shapng" in msg and "did you mean 'shaping'" in msg


def test_wrong_type_is_one_line(tmp_path):
    msg, p = _error_for(tmp_path, "train:\n  lr: fast\n")
    assert "\n" not in msg and str(p) in msg and "train.lr" in msg and "expected a number" in msg


def test_override_typo_names_the_command_line():
    with pytest.raises(ConfigError) as e:
        load_config(CONFIGS[0].parent / "tiny.yaml", ["train.stepz=3"])
    assert "command line" in str(e.value) and "train.stepz" in str(e.value)
