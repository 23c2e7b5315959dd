"""The Unsloth policy backend (model.backend=unsloth): the Policy interface on a FastLanguageModel.

What Unsloth gives us: its fused kernels and "unsloth" gradient checkpointing for the training
forward/backward (measured 1.53x the plain transformers + peft step on the lent H100, see
../shared/gpu/README.md), and, with fast_inference=True, a vLLM engine inside the same process that
shares the base weights (rollout.vllm.mode=unsloth).

What it does not give us: the loss. The trainer calls `hidden_states()` (the decoder's last hidden
state after the final norm) and computes the token log-probs and the exact entropy itself, chunk
by chunk, from `lm_head_weight` (taorl.algo.logprobs_and_entropy_from_hidden) -- the same TAO-RL
maths as the CPU path, not TRL's or Unsloth's GRPO loss.

    UnslothPolicy(mcfg, need_reference=False, rollout=None, seed=0)
      .model, .tokenizer, .lora          as HFPolicy (peft model when LoRA)
      .device                            where the model lives (cuda:0); inputs are moved there
      .vllm_engine                       the vllm.LLM when loaded with fast_inference, else None
      .model_path                        the directory the weights were loaded from
      .lora_request()                    a vLLM LoRARequest of the current adapter (Unsloth's
                                         model.load_lora(dir, load_tensors=True), no disk round trip)
      hidden_states / lm_head_weight / trainable_parameters / reference_logprobs / save / load
                                         inherited from HFPolicy
      .export(dir)                       merged 16-bit weights + tokenizer (save_pretrained_merged)

fast_inference is used when the rollout config asks for rollout.engine=vllm with mode=unsloth.
Unsloth must be imported before transformers/peft/trl: taorl.gpu.import_unsloth() checks that.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import torch

from taorl.errors import UserError
from taorl.train.hf_policy import HFPolicy


def agree_special_tokens(tokenizer, model, model_path) -> str | None:
    """Make the tokenizer, the model's configs and (through them) the engine agree on eos and pad.

    Unsloth replaces a pad token equal to eos on load ("bad pad_token (<|im_end|>). Using pad_token
    = <|endoftext|>" on the SmolLM2 tokenizer): that is fine for taorl (the trainer pads with
    tokenizer.pad_token_id and masks by length, never by id) as long as eos is untouched, since eos
    is what ends a turn in every engine (vLLM reads it from `model_path`). This puts back the eos
    saved in `model_path` if it was changed, writes the tokenizer's pad id into model.config /
    generation_config, and returns a note for the run manifest when something changed (else None).
    """
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(model_path))
    notes = []
    if saved.eos_token is not None and tokenizer.eos_token_id != saved.eos_token_id:
        notes.append(f"eos {tokenizer.eos_token!r} set back to the saved {saved.eos_token!r}")
        tokenizer.eos_token = saved.eos_token
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    for conf in (getattr(model, "config", None), getattr(model, "generation_config", None)):
        if conf is not None:
            conf.pad_token_id = tokenizer.pad_token_id
    if saved.pad_token_id != tokenizer.pad_token_id:
        notes.append(f"pad token {saved.pad_token!r} ({saved.pad_token_id}) replaced by Unsloth with "
                     f"{tokenizer.pad_token!r} ({tokenizer.pad_token_id}); eos stays {tokenizer.eos_token!r}")
    return "; ".join(notes) or None


class UnslothPolicy(HFPolicy):
    def __init__(self, mcfg, *, need_reference: bool = False, rollout=None, seed: int = 0):
        from taorl import gpu

        gpu.require_cuda("model.backend=unsloth")
        gpu.import_unsloth()
        from unsloth import FastLanguageModel

        self.cfg = mcfg
        self.lora = bool(mcfg.lora.enabled)
        fast = rollout is not None and rollout.engine == "vllm" and rollout.vllm.mode == "unsloth"
        if fast and not self.lora:
            raise UserError("rollout.vllm.mode=unsloth with model.lora.enabled=false: Unsloth's shared "
                            "vLLM engine serves LoRA adapters only; use rollout.vllm.mode=standalone "
                            "for full fine-tuning")
        if mcfg.load_in_4bit and not self.lora:
            raise UserError("model.load_in_4bit=true needs model.lora.enabled=true (4-bit weights are frozen)")
        self.model_path = gpu.model_dir(mcfg)
        dtype = None if mcfg.dtype == "auto" else getattr(torch, mcfg.dtype)
        kwargs = {"model_name": str(self.model_path), "max_seq_length": mcfg.max_seq_len, "dtype": dtype,
                  "load_in_4bit": mcfg.load_in_4bit, "full_finetuning": not self.lora, "random_state": seed}
        if fast:
            kwargs.update({"fast_inference": True, "max_lora_rank": mcfg.lora.r,
                           "gpu_memory_utilization": rollout.vllm.gpu_memory_utilization})
        try:
            model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
        except (OSError, ValueError) as e:
            raise UserError(f"model.name={mcfg.name!r}: Unsloth cannot load {self.model_path} "
                            f"({str(e).splitlines()[0]})") from None
        # the engine hangs off the base model; take it before peft wraps the model
        self.vllm_engine = getattr(model, "vllm_engine", None) if fast else None
        tokenizer.clean_up_tokenization_spaces = False
        self.token_note = agree_special_tokens(tokenizer, model, self.model_path)
        self.tokenizer = tokenizer
        if self.lora:
            present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
            targets = [t for t in mcfg.lora.target_modules if t in present]
            if not targets:
                raise UserError(f"model.lora.target_modules: none of {mcfg.lora.target_modules} exist in "
                                f"{mcfg.name}")
            model = FastLanguageModel.get_peft_model(
                model, r=mcfg.lora.r, lora_alpha=mcfg.lora.alpha, lora_dropout=mcfg.lora.dropout,
                target_modules=targets, bias="none", random_state=seed, max_seq_length=mcfg.max_seq_len,
                use_gradient_checkpointing="unsloth" if mcfg.gradient_checkpointing else False)
        self._fast = FastLanguageModel
        self.model = model
        self._ref = None
        if need_reference and not self.lora:
            raise UserError("algo.loss.kl_coef > 0 with full fine-tuning on Unsloth: a second full copy "
                            "of the model is not supported here; use LoRA (the reference is the model "
                            "with the adapter off) or kl_coef=0")
        self._lora_dir: str | None = None

    # ------------------------------------------------------------------------------------- forward
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def hidden_states(self, input_ids, attention_mask):
        dev = self.device
        return super().hidden_states(input_ids.to(dev), attention_mask.to(dev))

    def train_mode(self, on: bool = True) -> None:
        if on:
            self._fast.for_training(self.model, use_gradient_checkpointing=self.cfg.gradient_checkpointing)
        else:
            self.model.eval()

    # ------------------------------------------------------------------------------- rollout side
    def lora_request(self):
        """The current adapter as a vLLM LoRARequest (a fresh id each call, so vLLM reloads it)."""
        if not self.lora:
            raise RuntimeError("lora_request() on a policy without LoRA")
        if self._lora_dir is None:  # Unsloth writes the adapter config there once
            self._lora_dir = tempfile.mkdtemp(prefix="taorl-lora-")
            # removed when the policy is freed or the interpreter exits
            weakref.finalize(self, shutil.rmtree, self._lora_dir, True)
        from taorl.gpu import scoped_env
        from taorl.rollout.vllm import MERGED_ROLLOUT_ENV, engine_lora_request

        # a real LoRARequest, not Unsloth's merged-rollout sentinel (see engine_lora_request): the
        # switch is read when load_lora runs
        with scoped_env(MERGED_ROLLOUT_ENV, "0"):
            req = self.model.load_lora(self._lora_dir, load_tensors=True)
        return engine_lora_request(req)

    # ------------------------------------------------------------------------------------ export
    def export(self, directory):
        """Merged 16-bit weights + tokenizer (Unsloth's save_pretrained_merged); full weights as they are."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.lora:
            self.model.save_pretrained_merged(str(d), self.tokenizer, save_method="merged_16bit")
        else:
            self.model.save_pretrained(d)
            self.tokenizer.save_pretrained(d)
