"""Rollout correction: the trainer/engine log-prob mismatch, and truncated importance sampling for it.

The rollouts are sampled by the engine (vLLM in bf16 with its own kernels, or the trainer's own
module on CPU) from a distribution pi_samp; the loss treats them as samples of the trainer's policy
pi_old at the same weights. On the CPU hf engine the two are the same computation; on vLLM they
differ by kernel and precision noise, and by more when the weight sync is wrong. Per model token t
of rollout i (m_t = 1 on model tokens):

    delta_t = log pi_old(y_t) - log pi_samp(y_t)           (trainer minus engine, same weights)
    rho_t   = exp(delta_t)                                 token importance ratio pi_old / pi_samp

Mismatch statistics (logged every step, `mismatch_stats`):

    sampling/logp_diff_mean   sum_t m_t |delta_t| / sum_t m_t        over the step's trained tokens
    sampling/logp_diff_max    max_t m_t |delta_t|
    sampling/seq_log_ratio_abs_mean   mean_i |sum_t m_t delta_t|     |log rho_seq| per rollout
    sampling/seq_ratio_max            max_i exp(sum_t m_t delta_t)   the largest sequence ratio

Truncated importance sampling (TIS; Yao et al. 2025, "Your efficient RL framework secretly brings
you off-policy RL training"; TRL's vllm_importance_sampling_* and verl's rollout correction do the
same), `is_weights`: each token's loss weight is multiplied by a detached, capped ratio

    token:     w_t = min(rho_t, C)
    sequence:  w_t = min(rho_seq_i, C)  for every token of rollout i,  rho_seq_i = exp(sum_t m_t delta_t)
    off:       w_t = 1

so the policy-gradient estimate is re-weighted from pi_samp's samples towards pi_old's, and the
cap C bounds the variance a few badly matched tokens could add. The sequence form is the correct
ratio for a sequence-level reward but its variance grows with length; the token form is the usual
practical choice. Weights are never zero (rho > 0), so the loss denominators (tokens or rollouts
with weight > 0) do not change: only each token's share of the loss does.

Default (config algo.rollout_correction): mode "off", cap 2.0. The method taorl reproduces
(TAO-RL, the spec) has no such correction, so on by default would be a silent deviation from it;
on the CPU path the engine *is* the trainer (delta_t is 0 up to float noise of the recomputation)
and the correction would do nothing anyway. On a GPU with vLLM the mismatch is logged every step in
every mode (the statistics above), and "token" with C = 2 (verl's default threshold; TRL uses 2-3)
is the setting to switch on when sampling/logp_diff_mean is not small (say above 0.01 nats).
"""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ("off", "token", "sequence")


def log_ratio(old_logp: Tensor, samp_logp: Tensor, mask: Tensor) -> Tensor:
    """delta_t = log pi_old(y_t) - log pi_samp(y_t) on model tokens, 0 elsewhere; [B, T] float32."""
    m = mask > 0
    d = old_logp.float() - samp_logp.float()
    return torch.where(m, d, torch.zeros_like(d))


def is_weights(old_logp: Tensor, samp_logp: Tensor, mask: Tensor, mode: str, cap: float) -> Tensor:
    """Detached truncated importance weights [B, T] (1 off the mask); see the module docstring."""
    if mode not in MODES:
        raise ValueError(f"rollout correction mode {mode!r}: expected one of {MODES}")
    if cap <= 0:
        raise ValueError(f"rollout correction cap {cap}: must be > 0")
    m = mask > 0
    ones = torch.ones(mask.shape, dtype=torch.float32, device=mask.device)
    if mode == "off":
        return ones
    with torch.no_grad():
        d = log_ratio(old_logp.detach(), samp_logp.detach(), mask)
        if mode == "token":
            # w_t = min(exp(delta_t), C); clamp the log first so exp cannot overflow
            w = torch.exp(torch.clamp(d, max=float(torch.log(torch.tensor(cap)))))
        else:
            # w_i = min(exp(sum_t delta_t), C), broadcast over rollout i's tokens
            seq = d.sum(dim=-1, keepdim=True)
            w = torch.exp(torch.clamp(seq, max=float(torch.log(torch.tensor(cap))))).expand_as(d)
        return torch.where(m, w, ones)


def mismatch_stats(old_logp: Tensor, samp_logp: Tensor, mask: Tensor) -> dict[str, tuple[float, float]]:
    """Per-batch mismatch statistics as (value, weight) pairs for a running mean, or (max, 0) for a max.

    Returns {"sampling/logp_diff_mean": (mean |delta|, n tokens), "sampling/logp_diff_max": (max, 0),
    "sampling/seq_log_ratio_abs_mean": (mean_i |sum_t delta_t|, n rollouts with tokens),
    "sampling/seq_ratio_max": (max_i exp(sum_t delta_t), 0)}; {} when the mask is empty.
    """
    m = mask > 0
    n_tok = int(m.sum())
    if n_tok == 0:
        return {}
    d = log_ratio(old_logp.detach(), samp_logp.detach(), mask).double()
    ad = d.abs()[m]
    rows = m.any(dim=-1)
    seq = d.sum(dim=-1)[rows]
    return {"sampling/logp_diff_mean": (float(ad.mean()), float(n_tok)),
            "sampling/logp_diff_max": (float(ad.max()), 0.0),
            "sampling/seq_log_ratio_abs_mean": (float(seq.abs().mean()), float(rows.sum())),
            # exp capped at e^80 so a broken sync shows as a huge number, not inf
            "sampling/seq_ratio_max": (float(torch.exp(seq.max().clamp(max=80.0))), 0.0)}


MISMATCH_METRICS = ("sampling/logp_diff_mean", "sampling/logp_diff_max", "sampling/seq_log_ratio_abs_mean",
                    "sampling/seq_ratio_max")


def apply_rollout_correction(batch, samp_logp: Tensor, cfg, avg=None) -> Tensor:
    """The trainer's hook, where a micro-batch's loss weights are formed.

    batch.old_logprobs holds the trainer's log-probs under the sampling weights (pi_old) and
    `samp_logp` the engine's (pi_samp), both [B, T] aligned with batch.loss_mask. Adds the mismatch
    statistics to `avg` (taorl.train.metrics.Averager; None = no logging) and returns the corrected
    token weights batch.weight * w_t (cfg: algo.rollout_correction).
    """
    mask = batch.loss_mask
    if avg is not None:
        for name, (value, weight) in mismatch_stats(batch.old_logprobs, samp_logp, mask).items():
            if name.endswith("_max"):
                avg.add_max(name, value)
            else:
                avg.add(name, value, weight)
    if cfg.mode == "off":
        return batch.weight
    w = is_weights(batch.old_logprobs, samp_logp, mask, cfg.mode, cfg.cap)
    return batch.weight * w.to(batch.weight.dtype)
