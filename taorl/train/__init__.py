"""Training: the RL loop (`taorl train`), format priming (`taorl sft`), policy backends, checkpoints.

Heavy imports (torch, transformers, peft) happen inside the submodules, never here.
"""
