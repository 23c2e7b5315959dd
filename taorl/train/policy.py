"""Build the policy being trained (the interface and the transformers implementation live in
taorl.train.hf_policy; the Unsloth backend in taorl.train.policy_unsloth, imported only when asked).

    build_policy(cfg)  ->  HFPolicy (model.backend=hf) | UnslothPolicy (model.backend=unsloth)
"""

from __future__ import annotations

from taorl.config import Config
from taorl.errors import UserError
from taorl.train.hf_policy import POLICY_STATE_FILE, HFPolicy, Policy

__all__ = ["POLICY_STATE_FILE", "HFPolicy", "Policy", "build_policy"]


def build_policy(cfg: Config, *, model_name: str | None = None) -> Policy:
    """Load the model named by cfg.model (or `model_name`, e.g. train.init_from) and wrap it."""
    # weights from a directory (train.init_from) carry their own shape: the random-model init_overrides
    # of the config (e.g. configs/gpu_smoke.yaml) describe only how they were first built
    mcfg = cfg.model if model_name is None else \
        cfg.model.model_copy(update={"name": model_name, "init_overrides": {}})
    need_ref = cfg.algo.loss.kl_coef > 0
    if mcfg.backend == "unsloth":
        try:
            from taorl.train.policy_unsloth import UnslothPolicy  # lazy: GPU only
        except ImportError as e:
            raise UserError(f"model.backend=unsloth: the Unsloth backend is not available here ({e}); "
                            "use model.backend=hf on CPU") from None
        return UnslothPolicy(mcfg, need_reference=need_ref, rollout=cfg.rollout, seed=cfg.train.seed)
    from taorl.models import load_model

    model, tokenizer = load_model(mcfg)
    return HFPolicy(model, tokenizer, mcfg, need_reference=need_ref)
