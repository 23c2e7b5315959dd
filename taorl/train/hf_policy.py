"""The policy being trained, behind a small interface the trainer and `taorl sft` use.

    Policy
      .model                  the module the rollout engine generates with (Engine.sync(model))
      .tokenizer
      .hidden_states(ids, mask) -> [B, T, D]   last hidden state after the final norm
      .lm_head_weight         [V, D]; logits = hidden @ W^T (taorl.algo computes log-probs and entropy
                              from it chunk by chunk, never materialising [B, T, V] in fp32)
      .trainable_parameters() the tensors the optimizer updates
      .reference_logprobs(ids, mask, targets, temperature, chunk)  log pi_ref (only when kl_coef > 0)
      .save(dir) / .load(dir) the trainable state (LoRA adapter, or all weights), exactly
      .export(dir)            a plain transformers model directory (LoRA merged), for init_from / eval

`HFPolicy` is the transformers + peft implementation (LoRA or full fine-tuning, optional gradient
checkpointing). A GPU backend (taorl.train.policy_unsloth) subclasses it; taorl.train.policy.build_policy
picks one. This module imports neither, so the backends never import each other in a cycle.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taorl.config import ModelConfig
from taorl.errors import UserError

POLICY_STATE_FILE = "policy.json"


class Policy:
    """Interface; see the module docstring."""

    model: nn.Module
    tokenizer: Any
    lora: bool

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def lm_head_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def trainable_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def reference_logprobs(self, input_ids, attention_mask, targets, temperature, chunk) -> torch.Tensor:
        raise NotImplementedError

    def save(self, directory: str | Path) -> None:
        raise NotImplementedError

    def load(self, directory: str | Path) -> None:
        raise NotImplementedError

    def export(self, directory: str | Path) -> None:
        raise NotImplementedError

    def train_mode(self, on: bool = True) -> None:
        self.model.train(on)


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions count real tokens only, so left or right padding give the same positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class HFPolicy(Policy):
    """transformers causal LM, optionally wrapped with a peft LoRA adapter."""

    def __init__(self, model: nn.Module, tokenizer: Any, mcfg: ModelConfig, *, need_reference: bool = False):
        self.tokenizer = tokenizer
        self.cfg = mcfg
        self.lora = bool(mcfg.lora.enabled)
        if mcfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        if self.lora:
            from peft import LoraConfig, get_peft_model

            present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
            targets = [t for t in mcfg.lora.target_modules if t in present]
            if not targets:
                raise UserError(
                    f"model.lora.target_modules: none of {mcfg.lora.target_modules} exist in "
                    f"{mcfg.name} (its linear layers: {sorted(present)[:12]}...)"
                )
            lcfg = LoraConfig(r=mcfg.lora.r, lora_alpha=mcfg.lora.alpha, lora_dropout=mcfg.lora.dropout,
                              target_modules=targets, bias="none", task_type="CAUSAL_LM")
            model = get_peft_model(model, lcfg)
        else:
            for p in model.parameters():
                p.requires_grad_(True)
        self.model = model
        # Full fine-tuning with a KL term needs a frozen copy of the initial policy; with LoRA the
        # reference is the same network with the adapter switched off (no copy).
        self._ref = None
        if need_reference and not self.lora:
            self._ref = copy.deepcopy(model).eval()
            for p in self._ref.parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------------------------------- forward
    @property
    def hf_model(self) -> nn.Module:
        """The transformers model (inside the peft wrapper when there is one)."""
        return self.model.get_base_model() if self.lora else self.model

    @staticmethod
    def _decoder(hf: nn.Module) -> nn.Module:
        return getattr(hf, hf.base_model_prefix)

    def hidden_states(self, input_ids, attention_mask):
        dec = self._decoder(self.hf_model)
        out = dec(input_ids=input_ids, attention_mask=attention_mask,
                  position_ids=_position_ids(attention_mask), use_cache=False)
        return out.last_hidden_state

    @property
    def lm_head_weight(self):
        return self.hf_model.get_output_embeddings().weight

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    @torch.no_grad()
    def reference_logprobs(self, input_ids, attention_mask, targets, temperature, chunk):
        """log pi_ref(target_t | prefix): the initial policy (adapter off, or the frozen copy)."""
        from taorl.algo import logprobs_and_entropy_from_hidden

        if self.lora:
            with self.model.disable_adapter():
                hidden = self.hidden_states(input_ids, attention_mask)
            weight = self.lm_head_weight
        else:
            if self._ref is None:
                raise RuntimeError("reference policy requested but the policy was built without one")
            dec = self._decoder(self._ref)
            hidden = dec(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=_position_ids(attention_mask), use_cache=False).last_hidden_state
            weight = self._ref.get_output_embeddings().weight
        logp, _ = logprobs_and_entropy_from_hidden(hidden, weight, targets, temperature, chunk)
        return logp

    # ------------------------------------------------------------------------------------ save/load
    def save(self, directory):
        """The trainable state, bit-exact: the LoRA adapter (peft format) or the full weights."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(d)  # peft: adapter_config.json + adapter_model.safetensors
        (d / POLICY_STATE_FILE).write_text(json.dumps({"lora": self.lora, "base_model": self.cfg.name}))

    def load(self, directory):
        from safetensors.torch import load_file

        d = Path(directory)
        meta = json.loads((d / POLICY_STATE_FILE).read_text())
        if meta["lora"] != self.lora:
            raise UserError(f"{d}: checkpoint has lora={meta['lora']}, config has model.lora.enabled={self.lora}")
        if self.lora:
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.model, load_file(str(d / "adapter_model.safetensors")))
            bad = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
            if bad:
                raise UserError(f"{d}: adapter does not match the model ({bad[0]} ...)")
        else:
            state = {}
            for f in sorted(d.glob("model*.safetensors")):
                state.update(load_file(str(f)))
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            tied = {"lm_head.weight"}
            if unexpected or set(missing) - tied:
                raise UserError(f"{d}: weights do not match the model (missing {list(missing)[:3]}, "
                                f"unexpected {list(unexpected)[:3]})")

    def export(self, directory):
        """A plain transformers directory (LoRA merged into the weights) plus the tokenizer."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.lora:
            merged = copy.deepcopy(self.model).merge_and_unload()
        else:
            merged = self.model
        merged.save_pretrained(d)
        self.tokenizer.save_pretrained(d)
