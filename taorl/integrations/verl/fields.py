"""verl's TransferQueue / micro-batch fields -> plain python rows (plain torch, imports no verl).

The per-row maths on those rows (turns from the response mask, uid groups, the advantage, the
run-directory tables) is shared with the TRL integration: taorl.integrations.common.
"""

from __future__ import annotations

import torch


def row_lists(x) -> list:
    """A TransferQueue / micro-batch field -> one python value per row (jagged nested tensors are
    unbound; NonTensorStack and the like go through tolist())."""
    if isinstance(x, torch.Tensor):
        return [t.tolist() for t in x.unbind()] if x.is_nested else x.tolist()
    return list(x.tolist() if hasattr(x, "tolist") else x)
