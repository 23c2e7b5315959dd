"""Pick the rollout engine the config asks for (rollout.engine: hf | vllm).

    build_engine(cfg, policy) -> Engine

hf:   taorl.rollout.hf.HFEngine on the policy's own module (CPU, or one device).
vllm: taorl.rollout.vllm.VLLMEngine (standalone vllm.LLM, or the one inside an Unsloth policy);
      imported only here, so the CPU path never imports vllm. Without CUDA or the vllm package the
      user gets a UserError naming rollout.engine.
"""

from __future__ import annotations


def build_engine(cfg, policy):
    if cfg.rollout.engine == "vllm":
        from taorl.rollout.vllm import build_vllm_engine

        return build_vllm_engine(cfg, policy)
    from taorl.rollout.hf import HFEngine

    return HFEngine(policy.model, policy.tokenizer, gen_batch_size=cfg.rollout.gen_batch_size,
                    progress=cfg.logging.progress)
