"""Which model tokens get the entropy-guided advantage (spec §3): the post-tool gate g_t.

Inputs are per-token tensors [B, T] in sequence order: `segment` (types.SEG_PROMPT / SEG_MODEL /
SEG_TOOL, 0 = SEG_PROMPT on padding) and `turn` (turn index of the token, -1 on prompt/padding),
plus per-rollout per-turn facts [B, K]: `turn_called` (turn k had a code block, so a tool call) and
`turn_ok` (that call succeeded).

    post_tool:  g_t = 1  iff  segment_t = MODEL, turn_t = k+1 ≥ 1 and turn k had a code block
                ("one-step delay": the turn that reads the tool's output). Observation tokens and
                the first turn get 0.
       window W:          also offset_t < W (the first W model tokens after each tool return)
       requires_success:  also turn k's call succeeded
    all:             g_t = 1 on every model token
    non_post_tool:   model tokens where post_tool is 0 (negative control)
    entropy_quantile(q): the round((1 - q)·n) highest-entropy model tokens among the n gateable
                tokens of the batch (ties broken by position); the trainer computes it once over
                the whole step's trained tokens, so it does not depend on micro_batch_size

Gates are registered by name (taorl.algo.registry): a new one is fn(ctx: GateInputs, cfg) -> [B, T]
under @register_gate; `make_gate` looks the name up.

offset_t (`tool_offsets`) = model tokens since the last tool return (0 = first model token after
an observation), -1 on every other token and on model tokens before the first observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor

from taorl.algo.registry import GATES, register_gate
from taorl.types import SEG_MODEL, SEG_TOOL

GATE_KINDS = ("post_tool", "all", "non_post_tool", "entropy_quantile")  # the builtins


@dataclass
class GateInputs:
    """What a gate may look at, all [B, T] except turn_called / turn_ok [B, K]."""

    segment: Tensor
    turn: Tensor
    turn_called: Tensor
    turn_ok: Tensor
    mask: Tensor  # bool, the tokens that may be gated (model tokens of the loss)
    entropy: Tensor | None = None


def tool_offsets(segment: Tensor) -> Tensor:
    """[B, T] model tokens since the last tool token (0-based), -1 elsewhere / before any."""
    B, T = segment.shape
    is_model = segment == SEG_MODEL
    is_tool = segment == SEG_TOOL
    pos = torch.arange(T).expand(B, T)
    # index of the last tool token at or before t (-1 if none):  cummax of where(tool, t, -1)
    last_tool = torch.where(is_tool, pos, torch.full_like(pos, -1)).cummax(-1).values
    model_cum = is_model.long().cumsum(-1)  # model tokens in [0, t]
    at_tool = model_cum.gather(-1, last_tool.clamp(min=0))  # model tokens in [0, last_tool]
    off = model_cum - 1 - at_tool  # model tokens strictly between the last tool token and t
    return torch.where(is_model & (last_tool >= 0), off, torch.full_like(off, -1))


def post_tool_gate(segment: Tensor, turn: Tensor, turn_called: Tensor, turn_ok: Tensor,
                   window: int | None = None, requires_success: bool = False) -> Tensor:
    """[B, T] float gate: 1 on model tokens of a turn right after a turn with a code block."""
    B, T = segment.shape
    K = turn_called.shape[1]
    prev = (turn - 1).clamp(min=0, max=max(K - 1, 0))  # turn k = turn_t - 1
    if K == 0:
        called = torch.zeros(B, T, dtype=torch.bool)
        ok = called
    else:
        called = turn_called.bool().gather(1, prev)
        ok = turn_ok.bool().gather(1, prev)
    g = (segment == SEG_MODEL) & (turn >= 1) & (turn - 1 < K) & called
    if requires_success:
        g = g & ok
    if window is not None:
        off = tool_offsets(segment)
        g = g & (off >= 0) & (off < window)
    return g.to(torch.float32)


def entropy_quantile_gate(entropy: Tensor, mask: Tensor, quantile: float) -> Tensor:
    """[B, T] float: 1 on the round((1 - q)·n) highest-entropy tokens among the n mask tokens."""
    m = mask.bool().flatten()
    n = int(m.sum())
    k = round((1.0 - quantile) * n)
    g = torch.zeros(m.shape, dtype=torch.float32)
    if k > 0:
        idx = torch.nonzero(m).squeeze(-1)
        h = entropy.detach().flatten()[idx].float()
        top = torch.topk(h, k, sorted=False).indices
        g[idx[top]] = 1.0
    return g.view(mask.shape)


@register_gate("post_tool")
def _post_tool(ctx: GateInputs, cfg) -> Tensor:
    return post_tool_gate(ctx.segment, ctx.turn, ctx.turn_called, ctx.turn_ok, cfg.window,
                          cfg.requires_success) * ctx.mask


@register_gate("all")
def _all(ctx: GateInputs, cfg) -> Tensor:
    return ctx.mask.to(torch.float32)


@register_gate("non_post_tool")
def _non_post_tool(ctx: GateInputs, cfg) -> Tensor:
    post = post_tool_gate(ctx.segment, ctx.turn, ctx.turn_called, ctx.turn_ok, cfg.window,
                          cfg.requires_success).bool()
    return (ctx.mask & ~post).to(torch.float32)


@register_gate("entropy_quantile")
def _entropy_quantile(ctx: GateInputs, cfg) -> Tensor:
    if ctx.entropy is None:
        raise ValueError("gate 'entropy_quantile' needs the token entropy")
    return entropy_quantile_gate(ctx.entropy, ctx.mask, cfg.quantile)


def make_gate(kind: str, segment: Tensor, turn: Tensor, turn_called: Tensor, turn_ok: Tensor, *,
              loss_mask: Tensor | None = None, window: int | None = None,
              requires_success: bool = False, entropy: Tensor | None = None,
              quantile: float = 0.8) -> Tensor:
    """The gate of one ablation (config algo.shaping.gate), [B, T] float in {0, 1}.

    Gateable tokens: model tokens, and of those only the loss_mask ones when it is given."""
    model = segment == SEG_MODEL
    if loss_mask is not None:
        model = model & loss_mask.bool()
    fn = GATES.get(kind)
    ctx = GateInputs(segment, turn, turn_called, turn_ok, model, entropy)
    return fn(ctx, SimpleNamespace(window=window, requires_success=requires_success, quantile=quantile))
