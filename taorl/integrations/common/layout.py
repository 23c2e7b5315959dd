"""A per-row rollout layout -> the facts taorl.algo works on; shared by the verl and TRL integrations.

Both stacks store one rollout per row: response (completion) token ids with a mask of the tokens the
model sampled (1) against observation / tool / chat-scaffold tokens (0) -- verl's `response_mask`,
TRL's completion_mask · tool_mask -- and a group id shared by the G rollouts of a prompt (verl's
`uid`, TRL's contiguous num_generations rows). taorl.algo wants [N groups, G rollouts] grids and,
per response token, a segment (types.SEG_MODEL / SEG_TOOL) and a turn index.

Turns from the mask. A model turn is a maximal run of 1s; the runs are turns 0, 1, 2, ... The 0s
after run k (up to the response length) are turn k's observation (segment TOOL, turn k, as the
taorl rollout loop numbers them); 0s before the first run and padding are SEG_PROMPT, turn -1.
In the TIR turn format a turn followed by an observation had a code block (a turn without one ends
the episode), so turn k was *called* iff observation tokens follow it: the post-tool gate then
fires on the 2nd and later runs of 1s. Example, mask 1100110110: turns 0011223344 on the model
tokens, g = 0000110110.

Plain torch: imports neither verl nor TRL.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taorl.types import SEG_MODEL, SEG_PROMPT, SEG_TOOL


def turns_from_mask(mask: Tensor, lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """[B, T] response mask, 1 = model token (+ real response lengths, default T) -> segment [B, T],
    turn [B, T], turn_called [B, K] (turn k was followed by observation tokens)."""
    if mask.dim() != 2:
        raise ValueError(f"response_mask: expected [batch, tokens], got shape {tuple(mask.shape)}")
    B, T = mask.shape
    m = mask.bool()
    pos = torch.arange(T).expand(B, T)
    L = torch.full((B,), T) if lengths is None else torch.as_tensor(lengths, dtype=torch.long).reshape(B)
    if bool((L > T).any()) or bool((L < 0).any()):
        raise ValueError(f"response lengths {L.tolist()} outside [0, {T}]")
    real = pos < L[:, None]
    m = m & real
    start = m & ~torch.cat([torch.zeros(B, 1, dtype=torch.bool), m[:, :-1]], dim=1)  # first token of a run
    run = start.long().cumsum(-1) - 1  # index of the latest run at or before t (-1 before the first)
    seg = torch.full((B, T), SEG_PROMPT, dtype=torch.long)
    seg[m] = SEG_MODEL
    seg[real & ~m & (run >= 0)] = SEG_TOOL
    turn = torch.where(seg != SEG_PROMPT, run, torch.full_like(run, -1))
    K = max(int(start.sum(-1).max()) if B else 0, 1)
    called = torch.zeros(B, K, dtype=torch.bool)
    tool_rows, tool_cols = torch.nonzero(seg == SEG_TOOL, as_tuple=True)
    called[tool_rows, turn[tool_rows, tool_cols]] = True
    return seg, turn, called


def groups_of(uids: Sequence) -> tuple[list[list[int]], list[str]]:
    """Rows grouped by uid, groups in order of first appearance: ([[row, ...] per group], [uid per group]).

    Raises when the groups differ in size (taorl.algo takes [N, G] grids; G is verl's rollout.n, TRL's
    num_generations)."""
    order: dict[str, list[int]] = {}
    for r, u in enumerate(uids):
        order.setdefault(str(u), []).append(r)
    groups = list(order.values())
    sizes = {len(g) for g in groups}
    if len(sizes) > 1:
        bad = {u: len(rows) for u, rows in order.items()}
        raise ValueError(f"uid groups of different sizes {sorted(sizes)} ({bad}); TAO-RL needs the same "
                         "number of rollouts (verl rollout.n, TRL num_generations) of every prompt in the batch")
    return groups, list(order)
