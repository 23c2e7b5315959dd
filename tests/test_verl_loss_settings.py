"""verl's actor loss settings against tao.algo.loss (taorl.integrations.verl.loss_settings): plain
mappings shaped like verl 0.9.1's ActorConfig, no verl needed (tests/test_verl.py checks the shipped
verl config and TaoSyncTrainer in the verl venv)."""

import pytest

from taorl.config import load_config
from taorl.integrations.verl.loss_settings import reconcile, verl_loss
from taorl.integrations.verl.settings import block_keys

# configs/verl/tao_rl.yaml's actor loss block: the paper's loss (spec §4)
PAPER = {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 3.0,
         "loss_agg_mode": "token-mean", "use_kl_loss": False, "kl_loss_coef": 0.001,
         "kl_loss_type": "low_var_kl", "entropy_coeff": 0, "policy_loss": {"loss_mode": "vanilla"}}


def test_the_paper_settings_agree_with_taorl_defaults():
    loss = load_config(None, []).algo.loss
    r = reconcile(PAPER, loss, set())
    assert r.notes == [] and r.loss == loss
    assert r.verl["clip_ratio_high"] == 0.28 and r.verl["loss_mode"] == "vanilla"


def test_verl_defaults_differ_and_are_reported_and_recorded():
    # verl's own defaults: symmetric clip 0.2, clip_ratio_low/high null -> clip_ratio
    actor = {**PAPER, "clip_ratio_low": None, "clip_ratio_high": None, "entropy_coeff": 0.001}
    assert verl_loss(actor)["clip_ratio_high"] == 0.2
    r = reconcile(actor, load_config(None, []).algo.loss, set())
    assert len(r.notes) == 2
    assert r.notes[0].startswith("tao.algo.loss.clip_high=0.28 but actor_rollout_ref.actor.clip_ratio_high=0.2")
    assert "entropy_coeff=0.001" in r.notes[1]
    assert (r.loss.clip_high, r.loss.entropy_coef) == (0.2, 0.001)  # what the run directory records


def test_an_explicit_tao_key_that_verl_overrides_is_an_error():
    block = {"algo": {"loss": {"clip_high": 0.3}}, "preset": "paper"}
    keys = block_keys(block, "algo.loss.")
    assert keys == {"clip_high"}
    loss = load_config(None, ["algo.loss.clip_high=0.3"]).algo.loss
    with pytest.raises(ValueError, match=r"tao.algo.loss.clip_high=0.3 but actor_rollout_ref.actor.clip_ratio_high=0.28"):
        reconcile(PAPER, loss, keys)
    # set to what verl does: no error, no note
    assert reconcile({**PAPER, "clip_ratio_high": 0.3}, loss, keys).notes == []


def test_kl_is_compared_through_use_kl_loss():
    loss = load_config(None, ["algo.loss.kl_coef=0.001"]).algo.loss
    with pytest.raises(ValueError, match="use_kl_loss=False"):
        reconcile(PAPER, loss, {"kl_coef"})
    assert reconcile({**PAPER, "use_kl_loss": True}, loss, {"kl_coef"}).notes == []
    r = reconcile({**PAPER, "use_kl_loss": True, "kl_loss_type": "mse"}, loss, {"kl_coef"})
    assert r.notes == ["actor_rollout_ref.actor.kl_loss_type='mse' (taorl's KL is k3: low_var_kl)"]


def test_the_code_compat_preset_on_verl():
    # its micro-token-mean and entropy_coef come from the preset: printed, verl's values recorded
    r = reconcile(PAPER, load_config(None, ["preset=code_compat"]).algo.loss, set())
    assert [n.split(" but ")[0] for n in r.notes] == ["tao.algo.loss.agg='micro-token-mean'",
                                                     "tao.algo.loss.entropy_coef=0.001"]
    assert (r.loss.agg, r.loss.entropy_coef) == ("token-mean", 0.0)


def test_what_taorl_cannot_write():
    actor = {**PAPER, "loss_agg_mode": "token-sum", "policy_loss": {"loss_mode": "gspo"}}
    loss = load_config(None, []).algo.loss
    r = reconcile(actor, loss, set())
    assert any("loss_mode='gspo'" in n for n in r.notes)
    assert any("loss_agg_mode='token-sum' is not one of taorl's" in n for n in r.notes)
    assert r.loss.agg == "token-mean"  # kept; the manifest's verl_actor_loss says token-sum
    with pytest.raises(ValueError, match="loss_agg_mode='token-sum'"):
        reconcile(actor, loss, {"agg"})


def test_anti_clip_has_no_verl_setting():
    loss = load_config(None, ["algo.loss.anti_clip=true"]).algo.loss
    with pytest.raises(ValueError, match="anti_clip=True, which verl's loss does not have"):
        reconcile(PAPER, loss, {"anti_clip"})
