"""The pieces of a training forward shared by the RL trainer and format priming (taorl sft):
log-probs and entropies at the loss positions, a TokenBatch on the policy's device, seeding."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch


def token_logprobs_and_entropy(hidden: torch.Tensor, lm_head_weight: torch.Tensor, targets: torch.Tensor,
                               mask: torch.Tensor, temperature: float, chunk: int,
                               with_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(target_t) and H_t at the positions where mask > 0 (zero elsewhere), [B, T] each.

    Only the loss positions (model tokens) go through the vocabulary projection: prompt and
    observation positions never need it, and with a 49k vocabulary it is the costliest matmul.
    """
    from taorl.algo import logprobs_and_entropy_from_hidden

    sel = mask > 0
    logp = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    ent = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    if not bool(sel.any()):
        return logp + 0.0 * hidden.sum(), ent  # keeps the graph connected for backward()
    lp, h = logprobs_and_entropy_from_hidden(hidden[sel][None], lm_head_weight, targets[sel][None],
                                             temperature, chunk, with_entropy=with_entropy)
    logp = logp.to(lp.dtype).masked_scatter(sel, lp[0])
    ent = ent.to(h.dtype).masked_scatter(sel, h[0])
    return logp, ent


def batch_on(policy, trajs, adv, weights, pad_id: int):
    """TokenBatch of these rollouts, its tensors on the policy's device (cpu unless a GPU backend)."""
    from taorl.algo import TokenBatch

    b = TokenBatch.from_trajectories(trajs, adv, weights, pad_id)
    device = getattr(policy, "device", None)
    if device is not None and str(device) != "cpu":
        for f in dataclasses.fields(b):
            v = getattr(b, f.name)
            if isinstance(v, torch.Tensor):
                setattr(b, f.name, v.to(device))
    return b


def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed for step `step` of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
