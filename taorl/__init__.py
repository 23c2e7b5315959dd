"""taorl: a workbench for TAO-RL (tool-aware agentic RL of LLMs that write Python while they reason).

Importing taorl is cheap and never imports torch, transformers, unsloth or vllm: those live behind
lazy imports in the engines and backends.
"""

__version__ = "0.1.0"
