"""The rollout engine interface: token ids in, sampled token ids + logprobs out.

Engines are interchangeable behind this small protocol (hf.py on CPU, a vLLM engine on GPU); the
multi-turn loop (loop.py) is written once against it. Everything is in token ids: the loop never
decodes and re-encodes what the model produced.

Semantics every engine must follow:

- `generate(prompts, params, max_tokens=None)` returns one Completion per prompt, in order.
  `max_tokens` (optional, one int per prompt) caps each prompt individually below params.max_tokens.
- Stopping, per sequence, whichever comes first:
    "eos"    the model sampled an end token (tokenizer.eos_token_id or the model's generation
             eos ids); the end token IS included in token_ids (the policy must learn to stop);
    "stop"   params.stop_at_code_block and the decoded text of this completion now contains a
             complete fenced code block (taorl.tools.parse.complete_block_end): generation stops
             right after the token that closed it; that token is kept exactly as sampled, even if
             it carries characters after the closing fence;
    "length" max_tokens reached.
- `logprobs[t]` is the log-probability of token t under the distribution actually sampled from:
  softmax(z/T) restricted to the top-k / top-p set and renormalised (for top_p = 1, top_k = 0 this
  equals log_softmax(z/T), what the trainer recomputes). Engines that also know the untruncated
  log_softmax(z/T)[token] fill `full_logprobs` (None otherwise).
- Same prompts, params and seed -> the same completions (for a given engine and batch).
- `sync(policy_model)` is called after every optimizer step; an engine that generates with the
  training module itself (hf) has nothing to do, a separate engine (vLLM) loads the new weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Finish = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # T; 0 = greedy
    top_p: float = 1.0  # nucleus mass kept; 1 = off
    top_k: int = 0  # most likely tokens kept; 0 = off
    max_tokens: int = 1024
    stop_at_code_block: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.max_tokens < 0:
            raise ValueError(f"invalid sampling parameters: {self}")


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]  # sampling distribution (after top-p / top-k), one per token
    finish: Finish
    full_logprobs: list[float] | None = None  # log_softmax(z/T)[token] without truncation


@runtime_checkable
class Engine(Protocol):
    tokenizer: object

    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 max_tokens: Sequence[int] | None = None) -> list[Completion]: ...

    def sync(self, policy_model) -> None: ...
