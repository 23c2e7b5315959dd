"""The PPO-style policy loss (spec §4) on per-token tensors [B, T].

Per loss token t (token_weight w_t > 0), with ratio ρ_t = exp(log π_θ(y_t) - log π_old(y_t)):

    clip-higher:   l_t = max(-Â_t ρ_t, -Â_t clip(ρ_t, 1 - ε_low, 1 + ε_high))     ε_low 0.2, ε_high 0.28
    dual-clip:     l_t = min(l_t, -Â_t c)            on tokens with Â_t < 0          c = 3
    anti-clip:     on gated tokens with ρ_t > 1 + ε_high the clipped ratio is (1 + ε_high) ρ_t / sg(ρ_t)
                   (value 1 + ε_high, gradient kept), optional (AEPO-style)
    k3 KL:         l_t += β (exp(q_t) - q_t - 1),   q_t = log π_ref(y_t) - log π_θ(y_t)     β = kl_coef
    entropy reg.:  l_t -= λ H_t                                                          λ = entropy_coef

Aggregation, with w_t the token weight (trajectory weight x loss mask) and M the trained tokens
(w_t > 0); a rollout whose weight is 0 is left out of the denominators, as if deleted:

    token-mean:           L = Σ_t w_t l_t / |M|
    seq-mean-token-mean:  L = (1/S) Σ_i (Σ_t w_it l_it / |M_i|)     S = rollouts with |M_i| > 0
    seq-mean-token-sum:   L = (1/S) Σ_i  Σ_t w_it l_it
    micro-token-mean:     L = Σ_t w_t l_t / Σ_t w_t  on one micro-batch; over a mini-batch, the mean
                          of the micro-batch values weighted by their rollout counts (*code*: verl's
                          masked_mean per micro-batch, scaled by len(micro) / mini-batch size; it
                          divides by the sum of the weights and depends on how the batch is split)

`agg_denominator` gives |M|, S or the rollout count for gradient accumulation over micro-batches. An all-masked batch
gives L = 0 with zero (finite) gradients: log-ratios are zeroed off M before the exp.

Diagnostics are plain means over M, named like TRL/verl: clip_ratio/low_mean (Â < 0 and
ρ < 1 - ε_low), clip_ratio/high_mean (Â > 0 and ρ > 1 + ε_high), clip_ratio/dual (dual clip
active), plus pg_loss, kl, entropy, ratio_mean, tao/gated_fraction and tao/anti_clip_fraction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from taorl.config import LossConfig

AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "micro-token-mean")


def agg_denominator(token_weight: Tensor, agg: str) -> float:
    """What `aggregate` divides by: trained tokens (token-mean), trained rollouts (seq-mean-*), or
    all rollouts given (micro-token-mean, whose value is already a mean per micro-batch)."""
    m = token_weight > 0
    if agg == "token-mean":
        return float(m.sum())
    if agg == "micro-token-mean":
        return float(token_weight.shape[0])
    return float((m.sum(-1) > 0).sum())


def aggregate(per_token: Tensor, token_weight: Tensor, agg: str) -> Tensor:
    """Weighted aggregation of a [B, T] per-token loss (see the module docstring)."""
    w = token_weight.to(per_token.dtype)
    m = (token_weight > 0).to(per_token.dtype)
    wl = torch.where(token_weight > 0, w * per_token, torch.zeros_like(per_token))
    if agg == "token-mean":
        return wl.sum() / m.sum().clamp(min=1.0)
    if agg == "micro-token-mean":
        wsum = torch.where(token_weight > 0, w, torch.zeros_like(w)).sum()
        return wl.sum() / torch.where(wsum > 0, wsum, torch.ones_like(wsum))
    n_i = m.sum(-1)
    s = (n_i > 0).to(per_token.dtype).sum().clamp(min=1.0)
    if agg == "seq-mean-token-mean":
        return (wl.sum(-1) / n_i.clamp(min=1.0)).sum() / s
    if agg == "seq-mean-token-sum":
        return wl.sum(-1).sum() / s
    raise ValueError(f"loss aggregation {agg!r}: expected one of {', '.join(AGGS)}")


def masked_mean(x: Tensor, mask: Tensor) -> float:
    m = mask.bool()
    n = int(m.sum())
    return float(x.detach().float()[m].sum() / n) if n else 0.0


def policy_loss(logp: Tensor, old_logp: Tensor, adv_tok: Tensor, token_weight: Tensor, cfg: LossConfig,
                gate: Tensor | None = None, ref_logp: Tensor | None = None,
                entropy: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """(scalar loss, diagnostics). `gate` is used by anti-clip and diagnostics only."""
    M = token_weight > 0
    A = adv_tok.to(torch.float32)
    # log ρ, zeroed off M (so garbage log-probs on padding cannot give inf/nan), clamped like verl
    log_ratio = torch.where(M, logp - old_logp.detach(), torch.zeros_like(logp)).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    lo, hi = 1.0 - cfg.clip_low, 1.0 + cfg.clip_high
    clipped = ratio.clamp(lo, hi)
    anti = torch.zeros_like(M)
    if cfg.anti_clip and gate is not None:
        anti = gate.bool() & (ratio.detach() > hi) & M
        clipped = torch.where(anti, hi * ratio / ratio.detach(), clipped)  # value hi, gradient kept
    pg1 = -A * ratio
    pg2 = -A * clipped
    pg = torch.maximum(pg1, pg2)
    dual = torch.zeros_like(M)
    if cfg.dual_clip is not None:
        pg3 = -A * cfg.dual_clip
        dual = (A < 0) & (pg > pg3) & M
        pg = torch.where(A < 0, torch.minimum(pg, pg3), pg)
    per_token = pg
    kl = None
    if cfg.kl_coef > 0 and ref_logp is not None:
        q = torch.where(M, ref_logp.detach() - logp, torch.zeros_like(logp)).clamp(-20.0, 20.0)
        kl = torch.exp(q) - q - 1.0  # k3 estimator of KL(π_θ || π_ref)
        per_token = per_token + cfg.kl_coef * kl
    if cfg.entropy_coef > 0 and entropy is not None:
        per_token = per_token - cfg.entropy_coef * entropy
    loss = aggregate(per_token, token_weight, cfg.agg)

    diag = {
        "pg_loss": float(aggregate(pg.detach(), token_weight, cfg.agg)),
        "clip_ratio/low_mean": masked_mean(((A < 0) & (ratio < lo)).float(), M),
        "clip_ratio/high_mean": masked_mean(((A > 0) & (ratio > hi)).float(), M),
        "clip_ratio/dual": masked_mean(dual.float(), M),
        "ratio_mean": masked_mean(ratio, M),
    }
    if kl is not None:
        diag["kl"] = masked_mean(kl, M)
    if entropy is not None:
        diag["entropy"] = masked_mean(entropy, M)
    if gate is not None:
        diag["tao/gated_fraction"] = masked_mean(gate.float(), M)
        diag["tao/anti_clip_fraction"] = masked_mean(anti.float(), M)
    return loss, diag


def shaping_diagnostics(factor: Tensor, gate: Tensor, entropy: Tensor, post_tool: Tensor,
                        mask: Tensor) -> dict[str, float]:
    """Distribution of the shaping factor on gated loss tokens (1.0 when none is gated) and the
    mean entropy on post-tool vs other loss tokens (a key is left out when it has no token)."""
    m = mask.bool()
    g = gate.bool() & m
    f = factor.detach().float()[g]
    if f.numel():
        std = float(f.std(unbiased=False)) if f.numel() > 1 else 0.0
        out = {"tao/shaping_factor_mean": float(f.mean()), "tao/shaping_factor_std": std,
               "tao/shaping_factor_min": float(f.min()), "tao/shaping_factor_max": float(f.max())}
    else:
        out = {"tao/shaping_factor_mean": 1.0, "tao/shaping_factor_std": 0.0,
               "tao/shaping_factor_min": 1.0, "tao/shaping_factor_max": 1.0}
    post = post_tool.bool() & m
    other = m & ~post
    if post.any():
        out["tao/post_tool_entropy"] = masked_mean(entropy, post)
    if other.any():
        out["tao/other_entropy"] = masked_mean(entropy, other)
    return out
