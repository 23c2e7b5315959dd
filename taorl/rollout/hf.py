"""CPU rollout engine: batched sampling on a transformers causal LM with a KV cache.

A hand-written loop instead of `model.generate`, because we need, per sequence and per token:
the exact sampled ids, their sampling log-probabilities, and a stop right after the first complete
fenced code block. Per batch of prompts:

    left-pad to a common length; position_ids = cumsum(attention_mask) - 1
    prefill:   logits of the last position only (logits_to_keep=1), KV cache filled
    each step: sample one token per live sequence; a sequence finishes on eos, on the end of its
               first complete code block, or at its token cap; finished rows are removed from the
               batch and the KV cache, the live ones advance by one token.

Sampling of one token from the logits z (temperature T, top-k K, top-p P):

    full  = log_softmax(z / T)                              # what the trainer recomputes
    keep  = the K largest z (K > 0), then the smallest prefix of the remaining tokens sorted by
            probability whose mass reaches P (P < 1; the most likely token always stays)
    logq  = log_softmax(z / T  masked to keep)             # renormalised over `keep`
    y ~ Categorical(exp(logq));  logprob = logq[y];  full_logprob = full[y]

`Completion.logprobs` holds logq[y], the log-probability under the distribution actually sampled
from; `Completion.full_logprobs` holds full[y]. The two are equal when P = 1 and K = 0 (training).
T = 0 means greedy: y = argmax z, logprob = 0 (a point mass), full_logprob = log_softmax(z)[y].

Prefill, the costly part on CPU, is cut two ways (the sampled distribution is unchanged):

    identical prompts (the G rollouts of a group in turn 0) are prefilled once; the KV cache rows
        are then repeated;
    a trajectory's next turn reuses its KV cache: when a sequence stops after a code block, its
        cache (everything but the last sampled token) is kept, keyed by those token ids; the next
        call finds it when a prompt starts with them (prompt = context + completion + observation)
        and prefills only the rest. Caches live for one call (the next turn) and are dropped when
        the weights change (sync(), or any in-place update of a trainable parameter: the sum of
        their tensor versions is part of the key).

A batch with reused caches is laid out as [pad | cached c_r | pad | new suffix s_r] per row: the
attention mask is 0 on the pads, the suffix positions continue at c_r, so every row attends exactly
to its own tokens at their own positions.

The code-block stop is cheap: the decoded text of a sequence is only examined when the token just
sampled contains a backtick (a set of ids over the vocabulary, built once), since only such a token can
close a fence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from taorl.rollout.blockstop import backtick_ids, closes_block
from taorl.rollout.engine import Completion, SamplingParams


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif eos is not None:
        ids.update(int(e) for e in eos)
    return ids


def sample_next(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator):
    """One token per row of logits [B, V] -> (ids [B], logprob [B], full_logprob [B]); see module doc."""
    z = logits.float()
    if params.temperature == 0:
        y = z.argmax(-1)
        full = torch.log_softmax(z, -1).gather(-1, y[:, None])[:, 0]
        return y, torch.zeros_like(full), full
    z = z / params.temperature
    full_lp = torch.log_softmax(z, -1)
    masked = z
    if params.top_k > 0 and params.top_k < z.shape[-1]:
        kth = torch.topk(z, params.top_k, dim=-1).values[:, -1:]
        masked = masked.masked_fill(z < kth, float("-inf"))
    if params.top_p < 1.0:
        probs, order = torch.softmax(masked, -1).sort(-1, descending=True)
        # drop a token when the mass strictly before it already reaches top_p (the first always stays)
        before = probs.cumsum(-1) - probs
        drop_sorted = before >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        masked = masked.masked_fill(drop, float("-inf"))
    logq = torch.log_softmax(masked, -1) if masked is not z else full_lp  # no truncation: q = p
    y = torch.multinomial(logq.exp(), 1, generator=gen)[:, 0]
    return y, logq.gather(-1, y[:, None])[:, 0], full_lp.gather(-1, y[:, None])[:, 0]


def sampling_generator(model, seed: int) -> torch.Generator:
    """A generator seeded `seed` on the device of the model's weights, where its logits are:
    torch.multinomial needs the generator on its input's device (a CPU generator fails on CUDA)."""
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    return torch.Generator(device=device).manual_seed(int(seed))


class HFEngine:
    """Engine over a transformers model on CPU (or one device). sync() just points at the new module."""

    def __init__(self, model, tokenizer, gen_batch_size: int = 64, progress: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.gen_batch_size = max(1, int(gen_batch_size))
        self.progress = progress
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self._ticks: frozenset[int] | None = None
        self.stats = {"gen_s": 0.0, "tokens": 0, "prefill_tokens": 0, "reused_tokens": 0}  # cumulative
        self.reuse_cache = True  # keep the KV cache of stopped sequences for the next turn
        self._kept: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}  # this call's
        self._prev: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}  # last call's
        self._weights_tag: int | None = None

    def sync(self, policy_model) -> None:
        """The hf engine generates with the training module itself: nothing to copy; kept KV caches
        were made with the old weights, so they go."""
        self.model = policy_model
        self._kept, self._prev = {}, {}

    # ------------------------------------------------------------------------------------ public
    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 max_tokens: Sequence[int] | None = None) -> list[Completion]:
        if max_tokens is not None and len(max_tokens) != len(prompts):
            raise ValueError(f"max_tokens has {len(max_tokens)} entries for {len(prompts)} prompts")
        caps = [min(params.max_tokens, int(m)) for m in max_tokens] if max_tokens is not None \
            else [params.max_tokens] * len(prompts)
        if params.stop_at_code_block and self._ticks is None:
            self._ticks = backtick_ids(self.tokenizer)
        gen = sampling_generator(self.model, params.seed)
        tag = self._weights_version()
        # caches kept by the previous call serve this one (the next turn), unless the weights moved
        self._prev = self._kept if tag == self._weights_tag else {}
        self._kept, self._weights_tag = {}, tag
        # batch prompts of similar length together (less padding); results go back in input order
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
        out: list[Completion | None] = [None] * len(prompts)
        batches = [order[i:i + self.gen_batch_size] for i in range(0, len(order), self.gen_batch_size)]
        bar = None
        if self.progress and len(batches) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batches), desc="generate", unit="batch", leave=False)
        t0 = time.perf_counter()
        for idx in batches:
            for i, c in zip(idx, self._generate_batch([prompts[i] for i in idx], [caps[i] for i in idx],
                                                      params, gen)):
                out[i] = c
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self.stats["gen_s"] += time.perf_counter() - t0
        self.stats["tokens"] += sum(len(c.token_ids) for c in out)
        self._prev = {}
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------------------------- internals
    def _weights_version(self) -> int:
        """Changes whenever a trainable parameter is updated in place (optimizer.step, load)."""
        return sum(p._version for p in self.model.parameters() if p.requires_grad)

    def _lookup(self, prompt: list[int]) -> tuple[int, list | None]:
        """(c, per-layer (K, V) of the first c tokens) for the longest kept context that prompt
        extends (c < len(prompt)), else (0, None)."""
        best = (0, None)
        for key, kv in self._prev.items():
            c = len(key)
            if best[0] < c < len(prompt) and tuple(prompt[:c]) == key:
                best = (c, kv)
        return best

    def _prefill(self, prompts: list[list[int]], device):
        """Fill a KV cache for the prompts -> (cache, last logits [B, V], mask [B, T], next position [B, 1])."""
        from transformers import DynamicCache

        B = len(prompts)
        hits = [self._lookup(p) if self._prev else (0, None) for p in prompts]
        C = max(c for c, _ in hits)
        if C == 0:  # no reuse: prefill the distinct prompts once, then repeat the cache rows
            uniq: dict[tuple[int, ...], int] = {}
            inv = [uniq.setdefault(tuple(p), len(uniq)) for p in prompts]
            rows = [list(k) for k in uniq]
            L = max(len(p) for p in rows)
            ids = torch.full((len(rows), L), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), L), dtype=torch.long)
            for r, p in enumerate(rows):
                ids[r, L - len(p):] = torch.tensor(p, dtype=torch.long)
                mask[r, L - len(p):] = 1
            ids, mask = ids.to(device), mask.to(device)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                             logits_to_keep=1)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            self.stats["prefill_tokens"] += sum(len(p) for p in rows)
            if len(rows) < B:
                sel = torch.tensor(inv, dtype=torch.long, device=device)
                cache.batch_select_indices(sel)
                logits, mask, pos = logits[sel], mask[sel], pos[sel]
            return cache, logits, mask, pos[:, -1:] + 1
        # reuse: [pad | cached c_r | pad | suffix s_r]
        suffix = [p[c:] for p, (c, _) in zip(prompts, hits)]
        S = max(len(x) for x in suffix)
        n_layers = len(next(kv for _, kv in hits if kv is not None))
        ref = next(kv for _, kv in hits if kv is not None)[0][0]  # [H, c, D]
        layers = []
        for i in range(n_layers):
            K = torch.zeros((B, ref.shape[0], C, ref.shape[-1]), dtype=ref.dtype, device=device)
            V = torch.zeros_like(K)
            for r, (c, kv) in enumerate(hits):
                if c:
                    K[r, :, C - c:], V[r, :, C - c:] = kv[i]
            layers.append((K, V))
        cache = DynamicCache(ddp_cache_data=layers)
        ids = torch.full((B, S), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, C + S), dtype=torch.long)
        pos = torch.zeros((B, S), dtype=torch.long)
        for r, ((c, _), x) in enumerate(zip(hits, suffix)):
            ids[r, S - len(x):] = torch.tensor(x, dtype=torch.long)
            mask[r, C - c:C] = 1
            mask[r, C + S - len(x):] = 1
            pos[r, S - len(x):] = torch.arange(c, c + len(x))
        ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        self.stats["prefill_tokens"] += sum(len(x) for x in suffix)
        self.stats["reused_tokens"] += sum(c for c, _ in hits)
        return out.past_key_values, out.logits[:, -1, :], mask, pos[:, -1:] + 1

    def _keep(self, cache, row: int, mask_row: torch.Tensor, context: list[int]) -> None:
        """Keep row `row` of the cache (its unpadded columns) for the next turn, keyed by `context`,
        the token ids it holds."""
        cols = mask_row.bool()
        kv = [(layer.keys[row][:, cols].clone(), layer.values[row][:, cols].clone()) for layer in cache.layers]
        if kv and kv[0][0].shape[1] == len(context):
            self._kept[tuple(context)] = kv

    def _can_keep(self, cache) -> bool:
        from transformers.cache_utils import DynamicLayer

        layers = getattr(cache, "layers", None)
        return bool(self.reuse_cache and layers) and all(type(x) is DynamicLayer for x in layers)

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], caps: list[int], params: SamplingParams,
                        gen: torch.Generator) -> list[Completion]:
        B = len(prompts)
        toks: list[list[int]] = [[] for _ in range(B)]
        lps: list[list[float]] = [[] for _ in range(B)]
        flps: list[list[float]] = [[] for _ in range(B)]
        finish: list[str] = ["length"] * B
        live = [b for b in range(B) if caps[b] > 0]
        if not live:
            return [Completion([], [], "length", []) for _ in range(B)]
        device = next(self.model.parameters()).device
        if any(len(prompts[b]) == 0 for b in live):
            raise ValueError("empty prompt")
        cache, logits, mask, next_pos = self._prefill([prompts[b] for b in live], device)
        ticks = self._ticks if params.stop_at_code_block else None
        keep_caches = ticks is not None and self._can_keep(cache)
        while True:
            y, lp, flp = sample_next(logits, params, gen)
            y_l, lp_l, flp_l = y.tolist(), lp.tolist(), flp.tolist()
            keep = []
            for r, b in enumerate(live):
                t = y_l[r]
                toks[b].append(t)
                lps[b].append(lp_l[r])
                flps[b].append(flp_l[r])
                if t in self.eos_ids:
                    finish[b] = "eos"
                elif ticks is not None and closes_block(self.tokenizer, toks[b], ticks):
                    finish[b] = "stop"
                    if keep_caches:  # the trajectory goes on next turn from this context
                        self._keep(cache, r, mask[r], prompts[b] + toks[b][:-1])
                elif len(toks[b]) >= caps[b]:
                    finish[b] = "length"
                else:
                    keep.append(r)
            if not keep:
                break
            if len(keep) < len(live):  # drop finished rows from the batch and the cache
                sel = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(sel)
                mask, next_pos, y = mask[sel], next_pos[sel], y[sel]
                live = [live[r] for r in keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            out = self.model(input_ids=y[:, None].to(device), attention_mask=mask, position_ids=next_pos,
                             past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            next_pos = next_pos + 1
        return [Completion(toks[b], lps[b], finish[b], flps[b]) for b in range(B)]  # type: ignore[arg-type]
