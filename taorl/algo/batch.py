"""A micro-batch of rollouts as padded tensors, and the one-call TAO-RL loss on it.

Layout (right padding, L = longest prompt + response):

    input_ids[b, :]       prompt ids, then response ids (model turns and observations), then pad
    attention_mask[b, :]  1 on real tokens

Every other [B, L] tensor is indexed by *prediction position*: column t describes the token that
position t predicts, input_ids[b, t + 1] (the log-prob of token t+1 comes from position t):

    targets[b, t]         input_ids[b, t + 1] (pad in the last column)
    loss_mask             1 exactly where targets is a model token (never prompt, observation, pad)
    segment, turn         segment (types.SEG_*) and turn of the target token; prompt/pad: 0 and -1
    old_logprobs          the engine's sampling log-prob of the target token (0 off the loss mask)
    adv                   the rollout's advantage on its loss tokens (advantages.broadcast_to_tokens)
    weight                the rollout's loss weight times loss_mask

so `logprobs_and_entropy_from_hidden(hidden, W, batch.targets)` lines up with all of them. Response
token r of rollout b sits at column prompt_len[b] - 1 + r (`response_slice` undoes this).
Per rollout and turn k < K: turn_called[b, k] (turn k ran a code block), turn_ok[b, k] (it succeeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from taorl.algo.advantages import broadcast_to_tokens
from taorl.algo.entropy import entropy_stats as _entropy_stats
from taorl.algo.entropy import normalize_entropy
from taorl.algo.gate import GateInputs, post_tool_gate
from taorl.algo.loss import policy_loss, shaping_diagnostics
from taorl.algo.registry import GATES, SHAPING
from taorl.types import SEG_MODEL, Trajectory

if TYPE_CHECKING:
    from taorl.config import AlgoConfig, ShapingConfig


@dataclass
class TokenBatch:
    input_ids: Tensor  # [B, L] long
    attention_mask: Tensor  # [B, L] long
    targets: Tensor  # [B, L] long, input_ids shifted left by one
    loss_mask: Tensor  # [B, L] float
    segment: Tensor  # [B, L] long
    turn: Tensor  # [B, L] long
    old_logprobs: Tensor  # [B, L] float
    adv: Tensor  # [B, L] float
    weight: Tensor  # [B, L] float
    turn_called: Tensor  # [B, K] bool
    turn_ok: Tensor  # [B, K] bool
    prompt_len: list[int] = field(default_factory=list)
    response_len: list[int] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)
    rollout_adv: Tensor | None = None  # [B] the advantages passed in
    rollout_weight: Tensor | None = None  # [B] the weights passed in

    # the trainer replaces the sampling log-probs with recomputed ones under this name
    @property
    def old_logp(self) -> Tensor:
        return self.old_logprobs

    @old_logp.setter
    def old_logp(self, value: Tensor) -> None:
        self.old_logprobs = value

    @classmethod
    def from_trajectories(cls, trajs: Sequence[Trajectory], adv: Sequence[float] | Tensor,
                          weights: Sequence[float] | Tensor, pad_id: int) -> TokenBatch:
        """Pad the rollouts into one batch; adv and weights are one number per rollout."""
        B = len(trajs)
        adv_t = torch.as_tensor(adv, dtype=torch.float32).reshape(-1)
        w_t = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        if adv_t.numel() != B or w_t.numel() != B:
            raise ValueError(f"{B} trajectories but {adv_t.numel()} advantages and {w_t.numel()} weights")
        for t in trajs:
            t.check()
            if not t.prompt_ids:
                raise ValueError(f"trajectory {t.group}/{t.index}: empty prompt (the first response "
                                 "token needs a position to be predicted from)")
        L = max((len(t.prompt_ids) + len(t.response_ids) for t in trajs), default=1)
        K = max([1] + [t.n_turns for t in trajs] + [max(t.turn, default=-1) + 1 for t in trajs]
                + [c.turn + 1 for t in trajs for c in t.tool_calls])
        ids = torch.full((B, L), int(pad_id), dtype=torch.long)
        att = torch.zeros(B, L, dtype=torch.long)
        seg = torch.zeros(B, L, dtype=torch.long)
        turn = torch.full((B, L), -1, dtype=torch.long)
        old = torch.zeros(B, L, dtype=torch.float32)
        called = torch.zeros(B, K, dtype=torch.bool)
        ok = torch.zeros(B, K, dtype=torch.bool)
        for b, t in enumerate(trajs):
            P, R = len(t.prompt_ids), len(t.response_ids)
            ids[b, :P + R] = torch.tensor(list(t.prompt_ids) + list(t.response_ids), dtype=torch.long)
            att[b, :P + R] = 1
            # response token r is predicted at column P - 1 + r
            seg[b, P - 1:P - 1 + R] = torch.tensor(t.segment, dtype=torch.long)
            turn[b, P - 1:P - 1 + R] = torch.tensor(t.turn, dtype=torch.long)
            old[b, P - 1:P - 1 + R] = torch.tensor(t.sample_logprobs, dtype=torch.float32)
            for c in t.tool_calls:
                called[b, c.turn] = True
                ok[b, c.turn] |= c.ok
        targets = torch.cat([ids[:, 1:], torch.full((B, 1), int(pad_id), dtype=torch.long)], dim=1)
        loss_mask = (seg == SEG_MODEL).to(torch.float32)
        old = old * loss_mask
        return cls(input_ids=ids, attention_mask=att, targets=targets, loss_mask=loss_mask,
                   segment=seg, turn=turn, old_logprobs=old,
                   adv=broadcast_to_tokens(adv_t, loss_mask), weight=w_t[:, None] * loss_mask,
                   turn_called=called, turn_ok=ok, prompt_len=[len(t.prompt_ids) for t in trajs],
                   response_len=[len(t.response_ids) for t in trajs], trajectories=list(trajs),
                   rollout_adv=adv_t, rollout_weight=w_t)

    def response_slice(self, j: int, *, logp: Tensor | None = None, entropy: Tensor | None = None,
                       per_token: dict[str, Tensor] | None = None,
                       old: Tensor | None = None) -> dict:
        """Rollout j's per-response-token arrays (numpy, length response_len[j]) for the token table:
        traj, entropy, logprob_train, logprob_old, advantage, shaped_advantage, weight, gate, ..."""
        P, R = self.prompt_len[j], self.response_len[j]
        cols = slice(P - 1, P - 1 + R)

        def take(x: Tensor | None):
            return None if x is None else x[j, cols].detach().float().cpu().numpy()

        pt = per_token or {}
        rec = {
            "traj": self.trajectories[j] if self.trajectories else None,
            "entropy": take(entropy if entropy is not None else pt.get("entropy")),
            "logprob_train": take(logp),
            "logprob_old": None if old is None else old[cols].detach().float().cpu().numpy(),
            "advantage": take(self.adv),
            "shaped_advantage": take(pt.get("shaped_adv", self.adv)),
            "weight": take(self.weight),
            "gate": take(pt.get("gate", torch.zeros_like(self.weight))),
        }
        for k in ("entropy_norm", "factor", "post_tool", "ratio"):
            if k in pt:
                rec[k] = take(pt[k])
        return rec


def shaping_gate(batch: TokenBatch, entropy: Tensor | None, sc: ShapingConfig) -> Tensor:
    """The configured gate g_t on the rollouts given, [B, L] float (zeros when shaping is off).

    Gateable tokens: model tokens of the loss, and for entropy_quantile only trained ones (weight
    > 0), so its n counts the tokens the loss sees. The trainer computes entropy_quantile once over
    the whole step (this function on all trained rollouts) and passes each micro-batch its rows.
    """
    if not sc.enabled:
        return torch.zeros_like(batch.loss_mask)
    mask = batch.loss_mask.bool()
    if sc.gate == "entropy_quantile":
        mask = mask & (batch.weight > 0)
    ctx = GateInputs(batch.segment, batch.turn, batch.turn_called, batch.turn_ok, mask,
                     None if entropy is None else entropy.detach())
    return GATES.get(sc.gate)(ctx, sc)


def shape_advantage(batch: TokenBatch, entropy: Tensor, cfg: AlgoConfig, *, gate: Tensor | None = None,
                    entropy_stats: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """gate -> normalise entropy -> shaped advantage Ã on one batch (the first half of tao_loss).

    Returns (Ã [B, L], {gate, post_tool, entropy_norm, factor}). Ã carries the gradient of Ĥ when
    cfg.shaping.detach is false; the other tensors are not detached either (tao_loss detaches
    them for its per-token output). `gate` and `entropy_stats` as in tao_loss. The verl plugin's
    loss-time shaping (taorl.integrations.verl.loss) calls this and then verl's policy loss.
    """
    sc = cfg.shaping
    mask = batch.loss_mask
    trained = batch.weight > 0
    post = post_tool_gate(batch.segment, batch.turn, batch.turn_called, batch.turn_ok,
                          sc.window, sc.requires_success) * mask
    if gate is None:
        gate = shaping_gate(batch, entropy, sc)
    if sc.enabled and sc.empty_gate == "all" and not bool((gate.bool() & trained).any()):
        gate = trained.to(gate.dtype)  # *code*: no gated token in this micro-batch -> shape every token
    H = entropy.detach() if sc.detach else entropy
    # Ĥ: per trajectory over its loss tokens (gradient through μ and σ when not detached); batch
    # scopes over the trained tokens (weight > 0). norm_scope=batch: μ, σ are constants of the step
    # (no gradient), so a micro-batched step equals the step in one piece; micro_batch (*code*):
    # μ, σ of the tensors given, with gradient
    norm_mask = mask if sc.norm_scope == "trajectory" else trained
    if sc.norm_scope == "batch" and entropy_stats is None:
        entropy_stats = _entropy_stats(entropy.detach(), trained)
    h_norm = normalize_entropy(H, norm_mask, sc.norm_scope, sc.clamp,
                               stats=entropy_stats if sc.norm_scope == "batch" else None)
    if sc.enabled:
        shaped, factor = SHAPING.get(sc.form)(batch.adv, gate, entropy, h_norm, sc)
    else:
        shaped, factor = batch.adv, torch.ones_like(batch.adv)
    return shaped, {"gate": gate, "post_tool": post, "entropy_norm": h_norm, "factor": factor}


def tao_loss(batch: TokenBatch, logp: Tensor, entropy: Tensor, cfg: AlgoConfig,
             ref_logp: Tensor | None = None, *, gate: Tensor | None = None,
             entropy_stats: tuple[Tensor, Tensor] | None = None
             ) -> tuple[Tensor, dict[str, float], dict[str, Tensor]]:
    """gate -> normalise entropy -> shape the advantage -> policy loss, on one batch.

    logp, entropy: [B, L] from logprobs_and_entropy_from_hidden(hidden, W, batch.targets, T).
    Statistics that span rollouts (the entropy_quantile gate, μ and σ of norm_scope=batch) are
    taken over the rollouts given, unless the caller passes them: `gate` (this batch's rows of a
    gate computed over more rollouts) and `entropy_stats` ((μ, σ) from entropy.entropy_stats over
    the trained tokens of more rollouts). The trainer passes both, computed over the whole step,
    so a micro-batched step equals the step in one piece.
    Returns (loss, diagnostics, per-token tensors: gate, post_tool, entropy, entropy_norm, factor,
    adv, shaped_adv, weight, ratio), all detached except the loss.
    """
    mask = batch.loss_mask
    shaped, parts = shape_advantage(batch, entropy, cfg, gate=gate, entropy_stats=entropy_stats)
    gate, post, h_norm, factor = parts["gate"], parts["post_tool"], parts["entropy_norm"], parts["factor"]
    loss, diag = policy_loss(logp, batch.old_logprobs, shaped, batch.weight, cfg.loss, gate=gate,
                             ref_logp=ref_logp, entropy=entropy)
    diag.update(shaping_diagnostics(factor, gate, entropy, post, mask))
    ratio = torch.exp(torch.where(mask.bool(), logp.detach() - batch.old_logprobs, torch.zeros_like(logp)))
    per_token = {"gate": gate.detach(), "post_tool": post.detach(), "entropy": entropy.detach(),
                 "entropy_norm": h_norm.detach(), "factor": factor.detach(), "adv": batch.adv,
                 "shaped_adv": shaped.detach(), "weight": batch.weight, "ratio": ratio}
    return loss, diag, per_token
