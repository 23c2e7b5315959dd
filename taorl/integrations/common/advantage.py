"""The TAO-RL advantage of one batch of rollout rows, computed by taorl.algo (no second copy of the
maths); shared by the verl integration (TaoSyncTrainer) and the TRL one (trl/step.py, trl/record.py).

Per row (one rollout): its score r, its group id (verl's uid; TRL: its prompt's index), its
response mask (verl's response_mask; TRL's completion_mask · tool_mask: 1 on sampled tokens), the
sampling policy's per-token entropy H_t (verl v1 stores the old policy's before the advantage step;
TRL: trl/entropy.py) and the facts the rollout recorded (n_call, n_ok, void, truncated, turn_ok;
verl's TaoTIRAgentLoop puts them in extra_fields["tao"], TRL's TaoRollout / PythonEnvironment keep
them). The steps are those of taorl's own trainer (taorl/train/trainer.py):

    1-3. taorl.algo.step.decide, the trainer's step decision: criterion 1 / void / overlong weights
         w_i and reasons, criterion 2 (B = all groups: the batch is fixed, so a dropped group's
         rows get w = 0), Â_i by the registered estimator (algo.adv: grpo, drgrpo, ...)
    4.   post-tool gate, Ĥ, shaping: taorl.algo.tao_loss on the rows -> Ã_t = Â_i (1 + a g_t Ĥ_t)

and what goes back to the trainer is A_t = w_i · Ã_t on the model tokens. With 0 < w_i ≤ 1 this is
exactly the taorl loss: every term of the clipped PPO objective (clip-higher, dual-clip) is
positively homogeneous in A, so w · l(A) = l(w · A). Rows with w_i = 0 must leave the token-mean
denominators as well: `response_mask` comes back zeroed on them (verl's trainer writes it to
response_mask and loss_mask; TRL's step to the tool mask). The stacks' KL and entropy terms are not
multiplied by w_i (they are not in taorl's default loss: kl_coef = entropy_coef = 0).

Ĥ is normalised per trajectory (norm_scope trajectory, the paper) or over this batch (batch,
code_compat), from the sampling policy's entropy, so it carries no gradient (design A of
docs/verl.md). With verl's tao.entropy_source=train_forward (design L) the trainer calls this with
shape=False and verl/loss.tao_ppo_loss shapes per micro-batch with the training forward's entropy
(rows_batch serves both). Criterion 2's refill=duplicate cannot add rows to a fixed batch: the
decision records the copies (gdec.duplicates) and TRL's step weights the kept groups by them; on
verl use algorithm.filter_groups (DAPO refill) alongside if the batch must stay full.

Plain torch: imports neither verl nor TRL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from taorl.algo import TokenBatch, broadcast_to_tokens, tao_loss
from taorl.algo.step import decide
from taorl.config import Config
from taorl.integrations.common.layout import groups_of, turns_from_mask
from taorl.types import SEG_MODEL

FLAG_KEYS = ("n_call", "n_ok", "void", "truncated")


@dataclass
class StepAdvantage:
    advantages: Tensor  # [B, T] w_i · Ã_t on model tokens of trained rows, else 0
    response_mask: Tensor  # [B, T] the input mask, zeroed on rows with weight 0
    rollout_adv: Tensor  # [B] Â_i (0 in dropped groups)
    weight: Tensor  # [B] w_i (0 in dropped groups)
    reason: list[str | None]  # [B] trajectory reason in kept groups, the group's drop reason otherwise
    groups: list[list[int]]  # rows of each group, in group order
    uids: list[str]  # uid of each group
    kept: Tensor  # [N] bool
    group_reason: list[str | None]  # [N], None for kept groups
    gdec: object  # taorl.algo.GroupDecision
    tdec: object  # taorl.algo.TrajDecision
    decision: object  # taorl.algo.StepDecision
    segment: Tensor  # [B, T]
    turn: Tensor  # [B, T]
    per_token: dict[str, Tensor] = field(default_factory=dict)  # gate, entropy_norm, factor, shaped_adv, ...
    metrics: dict[str, float] = field(default_factory=dict)


def _flag(flags: Sequence[Mapping] | None, r: int, key: str, default):
    if flags is None or flags[r] is None:
        return default
    return flags[r].get(key, default)


def tao_advantage(scores: Tensor | Sequence[float], uids: Sequence, response_mask: Tensor, cfg: Config, *,
                  entropy: Tensor | None = None, lengths: Sequence[int] | Tensor | None = None,
                  flags: Sequence[Mapping | None] | None = None, seed: int = 0,
                  shape: bool = True) -> StepAdvantage:
    """The advantage of a batch of rows (see the module doc). scores [B]; uids [B] the group id of
    each row; response_mask, entropy [B, T] (right padded; `lengths` the real response lengths);
    flags[r]: dict with n_call, n_ok, void, truncated and turn_ok (list per turn), or None for a row
    from a loop that records none.

    shape=False (verl's entropy_source train_forward): `advantages` is the unshaped w_i · Â_i and the
    loss (taorl.integrations.verl.loss) shapes it; per_token still holds the old-policy shaping
    (gate, Ĥ, Ã) for the run directory, and entropy may be None."""
    algo = cfg.algo
    mask = response_mask.to(torch.float32)
    B, T = mask.shape
    scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    if scores.numel() != B or len(uids) != B:
        raise ValueError(f"{B} rows in response_mask but {scores.numel()} scores and {len(uids)} uids")
    groups, group_uids = groups_of(uids)
    N = len(groups)

    def grid(key, default, dtype):
        return torch.tensor([[_flag(flags, r, key, default) for r in rows] for rows in groups], dtype=dtype)

    # 1-3. the trainer's step decision on [N, G] facts (no selection: B = N)
    dec = decide(torch.stack([scores[rows] for rows in groups]), grid("n_call", 0, torch.long),
                 grid("n_ok", 0, torch.long), grid("void", False, torch.bool), grid("truncated", False, torch.bool),
                 algo, N, torch.Generator().manual_seed(seed))
    tdec, gdec, adv, w = dec.traj, dec.groups, dec.adv, dec.weights

    row_adv, row_w = torch.zeros(B), torch.zeros(B)
    reason: list[str | None] = [None] * B
    for g, rows in enumerate(groups):
        for i, r in enumerate(rows):
            row_adv[r], row_w[r] = adv[g, i], w[g, i]
            reason[r] = tdec.reasons[g][i] if bool(gdec.kept[g]) else gdec.reason[g]

    # 4. gate -> Ĥ -> Ã through taorl's own chain (old-policy entropy: ratio 1, the loss is unused)
    if entropy is None:
        if algo.shaping.enabled and shape:
            raise ValueError("entropy-guided shaping needs the sampling policy's token entropy (verl v1 "
                             "stores `entropy` unless algorithm.rollout_correction.bypass_mode is on); set "
                             "algo.shaping.enabled=false (verl: tao.algo.shaping.enabled=false) to train "
                             "without it")
        entropy = torch.zeros(B, T)
    # segments, turns and the model-token mask from the response mask (rows_batch keeps Â on model tokens)
    batch = rows_batch(response_mask, lengths, broadcast_to_tokens(row_adv, mask), row_w, flags)
    mask, segment, turn = batch.loss_mask, batch.segment, batch.turn
    zeros = torch.zeros(B, T)
    _, diag, per_token = tao_loss(batch, zeros, entropy.to(torch.float32) * mask, algo)
    keep_row = row_w > 0
    out_mask = response_mask * keep_row[:, None].to(response_mask.dtype)
    # shape=False (entropy_source train_forward): the loss shapes; verl gets the unshaped w_i · Â_i
    token_adv = per_token["shaped_adv"] if shape else per_token["adv"]
    advantages = token_adv * row_w[:, None] * keep_row[:, None]

    metrics = {k: v for k, v in diag.items() if k.startswith("tao/")}
    metrics["tao/trained_rows_fraction"] = float(keep_row.float().mean()) if B else 0.0
    return StepAdvantage(advantages=advantages, response_mask=out_mask, rollout_adv=row_adv, weight=row_w,
                         reason=reason, groups=groups, uids=group_uids, kept=gdec.kept,
                         group_reason=[None if bool(gdec.kept[g]) else gdec.reason[g] for g in range(N)],
                         gdec=gdec, tdec=tdec, decision=dec, segment=segment, turn=turn, per_token=per_token,
                         metrics=metrics)


def rows_batch(response_mask: Tensor, lengths: Sequence[int] | Tensor | None, adv_tok: Tensor, row_w: Tensor,
               flags: Sequence[Mapping | None] | None = None) -> TokenBatch:
    """Rollout rows, response-aligned [B, T], as a taorl TokenBatch for the shaping chain: segment and
    turns from the mask (layout.turns_from_mask), loss_mask = the model tokens, adv = adv_tok on
    them, weight = row_w on them, turn_ok from flags[r]["turn_ok"] (a turn's call succeeded; rows
    without flags: every called turn). input_ids, targets and old log-probs are zeros (unused)."""
    mask = response_mask.to(torch.float32)
    B, T = mask.shape
    segment, turn, called = turns_from_mask(mask, lengths)
    mask = mask * (segment == SEG_MODEL)
    turn_ok = called.clone()
    if flags is not None:
        for r in range(B):
            ok = _flag(flags, r, "turn_ok", None)
            if ok is not None:
                k = min(len(ok), turn_ok.shape[1])
                turn_ok[r, :k] = torch.tensor([bool(x) for x in ok[:k]]) & called[r, :k]
    zeros = torch.zeros(B, T)
    return TokenBatch(input_ids=torch.zeros(B, T, dtype=torch.long), attention_mask=(segment > 0).long(),
                      targets=torch.zeros(B, T, dtype=torch.long), loss_mask=mask, segment=segment, turn=turn,
                      old_logprobs=zeros, adv=adv_tok.to(torch.float32) * mask,
                      weight=row_w.to(torch.float32)[:, None] * mask, turn_called=called, turn_ok=turn_ok)
