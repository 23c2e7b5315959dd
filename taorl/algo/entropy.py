"""Exact token log-probabilities and entropies over the whole vocabulary, chunked (spec §3).

For position t with hidden state h_t, the temperature-scaled logits and their distribution are

    s_t = (h_t W^T) / T,     lse_t = log Σ_v exp(s_tv),     p_tv = exp(s_tv - lse_t)
    log π(y_t) = s_{t,y_t} - lse_t
    H_t = -Σ_v p_tv log p_tv = lse_t - Σ_v p_tv s_tv

`logprobs_and_entropy_from_hidden` walks the B·T positions `chunk` at a time and never builds the
[B, T, V] logits: a custom autograd.Function keeps only (hidden, W, targets, lse) for backward and
recomputes each chunk's logits there, so forward and backward both hold one [chunk, V] fp32 block.
Gradients w.r.t. the scaled logits s (chained to h and W through s = h W^T / T):

    ∂ log π(y) / ∂ s_v = 1[v = y] - p_v
    ∂ H / ∂ s_v        = -p_v (s_v - Σ_u p_u s_u)

The entropy term is skipped in backward when no gradient flows into H (detached shaping, no
entropy regulariser: the default), so a TAO-RL backward costs what a plain GRPO backward costs.

Positions are independent here: output column t is computed from hidden[:, t] and targets[:, t].
The caller does the causal shift (taorl.algo.batch: targets[:, t] = input_ids[:, t + 1], so the
log-prob of token t+1 comes from position t). Targets outside [0, V) (padding such as -100) are
clamped for the gather; mask those positions in the loss.

The matmul runs in the weights' dtype (bf16 on GPU, like the model's own lm_head) and is upcast
to fp32 chunk by chunk before the softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half/bf16/fp32 inputs, fp64 for fp64 inputs (exact gradient checks)."""
    return torch.promote_types(dtype, torch.float32)


def _chunk_stats(h: Tensor, w: Tensor, y: Tensor, inv_t: float, want_entropy: bool):
    """One chunk: lse [n], log π(y) [n], H [n] (or None), one fp32 [n, V] buffer plus exp(s').

    With the row max m and s' = s - m (in place):  Z = Σ exp(s'),  lse = m + log Z,
    log π(y) = s'_y - log Z,  H = log Z - Σ exp(s') s' / Z   (H is shift invariant).
    """
    s = (h @ w.T).to(_acc_dtype(h.dtype))
    s.mul_(inv_t)  # s = z / T
    m = s.amax(-1, keepdim=True)
    s.sub_(m)  # s' = s - m
    e = torch.exp(s)
    z = e.sum(-1)
    log_z = z.log()
    logp = s.gather(-1, y[:, None]).squeeze(-1) - log_z
    ent = log_z - torch.linalg.vecdot(e, s) / z if want_entropy else None
    return m.squeeze(-1) + log_z, logp, ent


class _ChunkedLogprobEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden2d, weight, targets1d, temperature, chunk, want_entropy):
        n = hidden2d.shape[0]
        inv_t = 1.0 / float(temperature)
        acc = _acc_dtype(hidden2d.dtype)
        logp = torch.empty(n, dtype=acc, device=hidden2d.device)
        ent = torch.zeros(n, dtype=acc, device=hidden2d.device)
        lse_all = torch.empty(n, dtype=acc, device=hidden2d.device)
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            lse, lp, h = _chunk_stats(hidden2d[a:b], weight, targets1d[a:b], inv_t, want_entropy)
            logp[a:b], lse_all[a:b] = lp, lse
            if h is not None:
                ent[a:b] = h
        ctx.save_for_backward(hidden2d, weight, targets1d, lse_all)
        ctx.inv_t, ctx.chunk = inv_t, chunk
        if not want_entropy:
            ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden2d, weight, targets1d, lse_all = ctx.saved_tensors
        inv_t, chunk = ctx.inv_t, ctx.chunk
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        use_ent = g_ent is not None and bool((g_ent != 0).any())
        n = hidden2d.shape[0]
        acc = lse_all.dtype
        grad_h = torch.empty_like(hidden2d) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            h = hidden2d[a:b]
            s = (h @ weight.T).to(acc).mul_(inv_t)  # recomputed scaled logits
            lse = lse_all[a:b, None]
            # ∂L/∂s = g_lp (onehot(y) - p)  +  g_H · (-p (s - Σ p s))
            if use_ent:
                p = torch.exp(s - lse)
                es = torch.linalg.vecdot(p, s)[:, None]  # Σ p s
                gs = s.sub_(es).mul_(p).mul_(-g_ent[a:b, None])  # -g_H p (s - Σ p s), in s's buffer
                if g_logp is not None:
                    gs.addcmul_(p, g_logp[a:b, None], value=-1.0)
            else:
                p = s.sub_(lse).exp_()  # softmax, in s's buffer
                gs = p.mul_(-g_logp[a:b, None]) if g_logp is not None else p.zero_()
            if g_logp is not None:
                gs.scatter_add_(-1, targets1d[a:b, None], g_logp[a:b, None].to(acc))
            gs.mul_(inv_t)  # s = z / T  ->  ∂L/∂z = ∂L/∂s / T
            gs = gs.to(weight.dtype)
            if need_h:
                grad_h[a:b] = (gs @ weight).to(hidden2d.dtype)
            if need_w:
                grad_w += (gs.T @ h).to(acc)
        if need_w:
            grad_w = grad_w.to(weight.dtype)
        return grad_h, grad_w, None, None, None, None


def logprobs_and_entropy_from_hidden(hidden: Tensor, lm_head_weight: Tensor, targets: Tensor,
                                     temperature: float = 1.0, chunk: int = 256,
                                     with_entropy: bool = True) -> tuple[Tensor, Tensor]:
    """hidden [B, T, D], W [V, D], targets [B, T] -> (log π(targets) [B, T], H [B, T]), fp32
    (fp64 for fp64 inputs).

    Both outputs are differentiable w.r.t. hidden and W. with_entropy=False skips H (returned as
    zeros, non-differentiable): the plain-GRPO path, for comparison and for reference log-probs.
    """
    B, T, D = hidden.shape
    V = lm_head_weight.shape[0]
    y = targets.reshape(-1).long().clamp(0, V - 1)
    logp, ent = _ChunkedLogprobEntropy.apply(hidden.reshape(B * T, D), lm_head_weight, y,
                                             float(temperature), int(max(chunk, 1)), bool(with_entropy))
    return logp.view(B, T), ent.view(B, T)


def _entropy_rows(z: Tensor, inv_t: float) -> Tensor:
    logq = torch.log_softmax(z.to(_acc_dtype(z.dtype)) * inv_t, dim=-1)
    return -(logq.exp() * logq).sum(-1)


def entropy_from_logits(logits: Tensor, chunk: int = 256, temperature: float = 1.0) -> Tensor:
    """H of softmax(logits / T) over the last axis, fp32 (fp64 for fp64), `chunk` rows at a time.

    When logits require grad, each chunk runs under torch.utils.checkpoint, so backward too holds
    the fp32 softmax of one chunk only.
    """
    shape = logits.shape[:-1]
    z = logits.reshape(-1, logits.shape[-1])
    inv_t = 1.0 / float(temperature)
    parts = []
    for a in range(0, z.shape[0], max(chunk, 1)):
        zc = z[a:a + chunk]
        if zc.requires_grad and torch.is_grad_enabled():
            parts.append(checkpoint(_entropy_rows, zc, inv_t, use_reentrant=False))
        else:
            parts.append(_entropy_rows(zc, inv_t))
    out = torch.cat(parts) if parts else z.new_zeros(0, dtype=_acc_dtype(z.dtype))
    return out.view(shape)


NORM_SCOPES = ("trajectory", "batch", "micro_batch")


def entropy_stats(H: Tensor, mask: Tensor, dims: tuple[int, ...] | None = None) -> tuple[Tensor, Tensor]:
    """(μ, σ) of H over the mask, reduced over `dims` (all by default), kept as broadcastable dims.

    In H's dtype (fp32 at least). Computed around a reference value r (the largest masked H):
    μ = r + Σ m (H - r) / n, so when every masked H is equal, H - r is exactly 0 and μ = H exactly.
    σ is the population std (divide by n), as the released code (std(unbiased=False));
    σ := 1 when fewer than two tokens.
    """
    acc = _acc_dtype(H.dtype)
    Hf = H.to(acc)
    m = mask.to(acc)
    dims = tuple(range(H.dim())) if dims is None else dims
    n = m.sum(dims, keepdim=True)
    masked = torch.where(mask.bool(), Hf.detach(), torch.full_like(Hf, float("-inf")))
    ref = masked.amax(dims, keepdim=True)
    ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
    d = Hf - ref  # exactly 0 on masked tokens when they are all equal
    mean_d = (m * d).sum(dims, keepdim=True) / n.clamp(min=1.0)
    var = (m * (d - mean_d) ** 2).sum(dims, keepdim=True) / n.clamp(min=1.0)
    # clamp before the sqrt: finite gradients (detach=False) when all entropies are equal
    sigma = torch.where(n >= 2, var.clamp(min=1e-20).sqrt(), torch.ones_like(var))
    return ref + mean_d, sigma


def normalize_entropy(H: Tensor, mask: Tensor, scope: str = "trajectory",
                      clamp: float | None = None, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Ĥ = (H - μ) / (σ + 1e-8) over the loss tokens of each trajectory, or of all rows given.

    scope "trajectory": μ, σ per row. "batch" / "micro_batch": μ, σ over every masked token given
    (the trainer passes `stats` = entropy_stats over the whole step's trained tokens for "batch",
    so the result does not depend on micro_batch_size; "micro_batch" is the released code's choice).
    Computed in H's dtype (fp32 at least); all-equal H gives Ĥ = 0 exactly. Ĥ is 0 off the mask;
    optionally clamped to [-clamp, clamp].
    """
    acc = _acc_dtype(H.dtype)
    if scope not in NORM_SCOPES:
        raise ValueError(f"entropy norm scope {scope!r}: expected one of {', '.join(NORM_SCOPES)}")
    if stats is not None:
        mu, sigma = stats
    elif scope == "trajectory":
        mu, sigma = entropy_stats(H, mask, (-1,))
    else:
        mu, sigma = entropy_stats(H, mask)
    Hf = H.to(acc)
    out = torch.where(mask.bool(), (Hf - mu.to(acc)) / (sigma.to(acc) + 1e-8), torch.zeros_like(Hf))
    if clamp is not None:
        out = out.clamp(-clamp, clamp)
    return out
