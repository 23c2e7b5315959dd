"""Rollout correction (taorl.algo.rollout_correction): mismatch statistics and truncated importance
weights against values computed by hand, and the trainer hook end to end on a tiny model."""

import math

import pytest
import torch

from taorl.algo.rollout_correction import (
    MISMATCH_METRICS,
    apply_rollout_correction,
    is_weights,
    log_ratio,
    mismatch_stats,
)

# two rollouts, three positions; rollout 0 has model tokens at 0 and 1, rollout 1 at 0 only
OLD = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -7.0, -7.0]])
SAMP = torch.tensor([[-1.5, -1.0, -1.0], [-0.5, -1.0, -1.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
# delta = old - samp on the mask:  [[0.5, -1.0, 0], [0.0, 0, 0]]


def test_log_ratio_is_zero_off_the_mask():
    assert log_ratio(OLD, SAMP, MASK).tolist() == [[0.5, -1.0, 0.0], [0.0, 0.0, 0.0]]


def test_token_weights_by_hand():
    w = is_weights(OLD, SAMP, MASK, "token", cap=1.5)
    # min(e^0.5, 1.5) = 1.5 (e^0.5 = 1.6487), min(e^-1, 1.5) = 0.3679, off the mask 1
    expect = [[1.5, math.exp(-1.0), 1.0], [1.0, 1.0, 1.0]]
    assert torch.allclose(w, torch.tensor(expect), atol=1e-6)
    w2 = is_weights(OLD, SAMP, MASK, "token", cap=2.0)
    assert w2[0, 0].item() == pytest.approx(math.exp(0.5), rel=1e-6)


def test_sequence_weights_by_hand():
    w = is_weights(OLD, SAMP, MASK, "sequence", cap=2.0)
    # rollout 0: exp(0.5 - 1.0) = e^-0.5 on both its tokens; rollout 1: exp(0) = 1
    r0 = math.exp(-0.5)
    assert torch.allclose(w, torch.tensor([[r0, r0, 1.0], [1.0, 1.0, 1.0]]), atol=1e-6)
    big = is_weights(OLD + 3.0 * MASK, SAMP, MASK, "sequence", cap=2.0)  # exp(6.5 - 1) capped at 2
    assert big[0, :2].tolist() == pytest.approx([2.0, 2.0])


def test_off_is_ones_and_bad_settings_are_errors():
    assert torch.equal(is_weights(OLD, SAMP, MASK, "off", cap=2.0), torch.ones(2, 3))
    with pytest.raises(ValueError, match="mode"):
        is_weights(OLD, SAMP, MASK, "tokens", cap=2.0)
    with pytest.raises(ValueError, match="cap"):
        is_weights(OLD, SAMP, MASK, "token", cap=0.0)


def test_weights_are_detached():
    old = OLD.clone().requires_grad_(True)
    w = is_weights(old, SAMP, MASK, "token", cap=2.0)
    assert not w.requires_grad


def test_mismatch_stats_by_hand():
    s = mismatch_stats(OLD, SAMP, MASK)
    assert set(s) == set(MISMATCH_METRICS)
    # |delta| on the 3 model tokens: 0.5, 1.0, 0.0 -> mean 0.5, max 1.0
    assert s["sampling/logp_diff_mean"] == pytest.approx((0.5, 3.0))
    assert s["sampling/logp_diff_max"][0] == pytest.approx(1.0)
    # sequence log-ratios: -0.5 and 0.0 -> mean |.| 0.25 over 2 rollouts; max ratio exp(0) = 1
    assert s["sampling/seq_log_ratio_abs_mean"] == pytest.approx((0.25, 2.0))
    assert s["sampling/seq_ratio_max"][0] == pytest.approx(1.0)
    assert mismatch_stats(OLD, SAMP, torch.zeros_like(MASK)) == {}


class _Batch:
    def __init__(self):
        self.loss_mask = MASK
        self.old_logprobs = OLD
        self.weight = MASK * torch.tensor([[0.5], [1.0]])


class _Cfg:
    def __init__(self, mode, cap=2.0):
        self.mode, self.cap = mode, cap


def test_hook_logs_and_weights():
    from taorl.train.metrics import Averager

    avg = Averager()
    w = apply_rollout_correction(_Batch(), SAMP, _Cfg("token"), avg)
    m = avg.means()
    assert m["sampling/logp_diff_mean"] == pytest.approx(0.5)
    assert m["sampling/logp_diff_max"] == pytest.approx(1.0)
    # rollout weight 0.5 times min(e^0.5, 2), 0.5 * e^-1; rollout 1 weight 1 times 1
    expect = [[0.5 * math.exp(0.5), 0.5 * math.exp(-1.0), 0.0], [1.0, 0.0, 0.0]]
    assert torch.allclose(w, torch.tensor(expect), atol=1e-6)
    # off: the weights come back unchanged (the same tensor), the statistics are still logged
    avg2 = Averager()
    b = _Batch()
    assert apply_rollout_correction(b, SAMP, _Cfg("off"), avg2) is b.weight
    assert "sampling/seq_ratio_max" in avg2.means()


def test_config_switch_and_default():
    from taorl.config import Config, apply_overrides

    cfg = Config()
    assert cfg.algo.rollout_correction.mode == "off" and cfg.algo.rollout_correction.cap == 2.0
    cfg = apply_overrides(cfg, ["algo.rollout_correction.mode=sequence", "algo.rollout_correction.cap=3"])
    assert cfg.algo.rollout_correction.mode == "sequence" and cfg.algo.rollout_correction.cap == 3.0
    from taorl.errors import UserError

    with pytest.raises(UserError, match="rollout_correction"):
        apply_overrides(cfg, ["algo.rollout_correction.mode=both"])
