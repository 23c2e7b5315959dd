"""Pick the rollout engine the config asks for (rollout.engine: hf | vllm), or the machine offers.

    build_engine(cfg, policy) -> Engine        training: the engine rollout.engine names
    build_eval_engine(cfg) -> Engine           `taorl eval` of cfg.model.name, by device: a
                                               standalone vLLM engine on a CUDA machine with vllm
                                               installed (no weight sync: the weights are fixed),
                                               else the hf engine (on the GPU when there is one)

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


def eval_device() -> str:
    """'cuda' when torch sees a GPU, else 'cpu'."""
    from taorl import gpu

    return "cuda" if gpu.cuda_available() else "cpu"


def build_eval_engine(cfg, *, device: str | None = None):
    """The engine for evaluating cfg.model.name: vLLM on a GPU (when installed), hf otherwise."""
    import importlib.util

    device = device or eval_device()
    if device == "cuda" and importlib.util.find_spec("vllm") is not None:
        from taorl.rollout.vllm import VLLMEngine

        print(f"evaluating with the vllm engine on {device}", flush=True)
        return VLLMEngine.for_model(cfg)
    from taorl.models import load_model
    from taorl.rollout.hf import HFEngine

    print(f"evaluating with the hf engine on {device}", flush=True)
    model, tokenizer = load_model(cfg.model, device=device)
    return HFEngine(model, tokenizer, gen_batch_size=cfg.rollout.gen_batch_size)
