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
    from taorl.data import resolve_source

    resolve_source(cfg.data.train)  # names a training set that exists (a missing file raises)
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
    sc, fc, lc = cfg.algo.shaping, cfg.algo.filter, cfg.algo.loss
    assert sc.gate == "all" and sc.norm_scope == "micro_batch" and sc.empty_gate == "all" and sc.enabled
    assert sc.detach is False and fc.group.refill == "replicate" and fc.group.rule == "code"
    assert fc.tool.scale_advantage and fc.tool.enabled and lc.agg == "micro-token-mean"
    assert lc.entropy_coef == 0.001 and fc.overlong_mask is False and fc.void_turn_mask
    script = load_config(None, ["preset=code_script"])
    assert not script.algo.shaping.enabled and not script.algo.filter.tool.enabled
    assert script.algo.loss.entropy_coef == 0.001 and script.algo.shaping.gate == "all"
    assert script.rollout.oversample == 3.0


def test_variant_names_come_from_the_registries():
    from taorl.algo.registry import names, register_gate

    assert names("advantage")[:2] == ("grpo", "drgrpo") and "additive" in names("shaping")
    with pytest.raises(ConfigError, match=r"algo.shaping.gate='nope': expected one of 'post_tool', 'all'"):
        load_config(None, ["algo.shaping.gate=nope"])

    @register_gate("test_first_token")
    def first_token(ctx, cfg):  # a new gate: one function, then the config accepts its name
        return (ctx.mask & (ctx.mask.long().cumsum(-1) == 1)).float()

    assert load_config(None, ["algo.shaping.gate=test_first_token"]).algo.shaping.gate == "test_first_token"


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
