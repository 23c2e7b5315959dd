"""H_t of the sampling policy on TRL's completion tokens, from a no-grad forward (the input of Ĥ).

TRL computes entropies only inside its loss, after the advantages are fixed, and Unsloth's patched
log-prob function returns none; so TaoGRPOTrainer runs one extra forward of the policy that sampled
the batch (the weights before this step's update), without gradient:

    h = decoder(prompt ⊕ completion).last_hidden_state        [B, P + C, D]
    H_t = entropy of softmax(h_{P-1+t} W^T / T)                  t = 0 .. C-1 (token t of the completion)

by taorl.algo.logprobs_and_entropy_from_hidden (exact over the vocabulary, chunked, fp32), at TRL's
sampling temperature T. Same inputs as TRL's own forward (left-padded prompt, attention mask, no
position ids), so on TRL's path it equals TRL's `entropy` (tests/test_trl_step.py checks it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from taorl.algo import logprobs_and_entropy_from_hidden


@torch.no_grad()
def completion_entropy(model, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                       completion_mask: Tensor, temperature: float = 1.0, batch_size: int | None = None,
                       chunk: int = 256) -> Tensor:
    """[B, C] float32 entropy of each completion position (0 where completion_mask is 0)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    W = model.get_output_embeddings().weight
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    att = torch.cat([prompt_mask, completion_mask], dim=1)
    P, C = prompt_ids.shape[1], completion_ids.shape[1]
    bs = batch_size or ids.shape[0]
    out = []
    for s in range(0, ids.shape[0], bs):
        h = decoder(input_ids=ids[s:s + bs], attention_mask=att[s:s + bs]).last_hidden_state
        h = h[:, P - 1:P - 1 + C]
        _, ent = logprobs_and_entropy_from_hidden(h, W, completion_ids[s:s + bs], temperature, chunk)
        out.append(ent.float())
    return torch.cat(out, dim=0) * completion_mask.to(torch.float32)
