"""Speed of the hf engine next to transformers' own `generate`, measured side by side.

    python -m taorl.rollout.bench                         # both scenarios below, one ratio each
    python -m taorl.rollout.bench --scenario tokens [--batch 24 --tokens 128]
    python -m taorl.rollout.bench --scenario rollout [--config configs/default.yaml]

tokens   B sequences of exactly N new tokens from one chat prompt (eos and the code-block stop off,
         so both do the same work): raw decoding speed, tokens/s of each and their ratio.
rollout  what the trainer does: one batch of multi-turn tool rollouts of the config (its
         batch_prompts x oversample problems, G rollouts each, up to max_turns turns, the real sandbox),
         through the same rollout loop, once with the hf engine and once with an engine made of
         `model.generate` (per-row stops on eos / code block / cap through a stopping criterion, every
         turn prefilled from scratch, finished rows carried until the batch ends: what generate does).
         Reports wall time, model tokens and model tokens/s of each, and the ratio of tokens/s.

Each measurement runs `--repeats` times, the two engines interleaved (a busy moment of a shared
machine hits both); the best run is reported with all runs listed.
"""

from __future__ import annotations

import argparse
import time


class GenerateEngine:
    """The Engine interface on `model.generate` (the baseline): left-padded batch, sampling with
    the same temperature / top-p / top-k, per-row stop through a StoppingCriteria, sampled
    log-probs from the returned logits (log_softmax(z / T) of the chosen token)."""

    def __init__(self, model, tokenizer, gen_batch_size: int = 64):
        from taorl.rollout.blockstop import backtick_ids
        from taorl.rollout.hf import _eos_ids

        self.model, self.tokenizer, self.gen_batch_size = model, tokenizer, gen_batch_size
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.ticks = backtick_ids(tokenizer)

    def sync(self, policy_model) -> None:
        self.model = policy_model

    def generate(self, prompts, params, max_tokens=None):
        out = [None] * len(prompts)
        caps = [min(params.max_tokens, int(m)) for m in max_tokens] if max_tokens else [params.max_tokens] * len(prompts)
        for i in range(0, len(prompts), self.gen_batch_size):
            idx = list(range(i, min(i + self.gen_batch_size, len(prompts))))
            for j, c in zip(idx, self._batch([prompts[j] for j in idx], [caps[j] for j in idx], params)):
                out[j] = c
        return out

    def _batch(self, prompts, caps, params):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from taorl.rollout.blockstop import closes_block
        from taorl.rollout.engine import Completion

        B, L = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, L - len(p):] = torch.tensor(p)
            mask[r, L - len(p):] = 1
        eng = self

        class Stop(StoppingCriteria):  # per row: code block closed, or the row's own cap
            def __call__(self, input_ids, scores, **kw):
                new = input_ids[:, L:]
                done = torch.zeros(B, dtype=torch.bool)
                for r in range(B):
                    n = new.shape[1]
                    if n >= caps[r] or (params.stop_at_code_block and int(new[r, -1]) in eng.ticks and
                                        closes_block(eng.tokenizer, new[r].tolist(), eng.ticks)):
                        done[r] = True
                return done

        torch.manual_seed(params.seed)
        with torch.inference_mode():
            g = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=params.temperature > 0,
                                    temperature=params.temperature or 1.0, top_p=params.top_p, top_k=params.top_k,
                                    max_new_tokens=max(caps), stopping_criteria=StoppingCriteriaList([Stop()]),
                                    pad_token_id=self.pad_id, eos_token_id=sorted(self.eos_ids),
                                    return_dict_in_generate=True, output_logits=True)
        seqs = g.sequences[:, L:]
        logp = torch.stack([torch.log_softmax(z.float() / (params.temperature or 1.0), -1) for z in g.logits], 1)
        out = []
        for r in range(B):
            toks, lps, finish = [], [], "length"
            for k in range(seqs.shape[1]):
                t = int(seqs[r, k])
                toks.append(t)
                lps.append(float(logp[r, k, t]))
                if t in self.eos_ids:
                    finish = "eos"
                    break
                if params.stop_at_code_block and closes_block(self.tokenizer, toks, self.ticks):
                    finish = "stop"
                    break
                if len(toks) >= caps[r]:
                    break
            out.append(Completion(toks, lps, finish, list(lps)))
        return out


def interleaved(fns: dict, repeats: int) -> dict[str, list]:
    runs: dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):  # interleaved, so a busy moment of a shared machine hits both
        for name, fn in fns.items():
            runs[name].append(fn())
    return runs


def bench_tokens(a) -> float:
    import torch

    from taorl.config import ModelConfig
    from taorl.models import load_model
    from taorl.rollout.engine import SamplingParams
    from taorl.rollout.hf import HFEngine

    model, tok = load_model(ModelConfig(name=a.model, dtype=a.dtype))
    msgs = [{"role": "user", "content": "Compute 17*23 with Python and explain each step."}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    prompts = [list(prompt)] * a.batch
    n = a.batch * a.tokens
    engine = HFEngine(model, tok, gen_batch_size=a.batch)
    engine.eos_ids = set()  # every row produces exactly N tokens, like generate(min_new_tokens=N)
    sp = SamplingParams(temperature=1.0, max_tokens=a.tokens, stop_at_code_block=False, seed=0)

    def ours() -> float:
        t = time.perf_counter()
        out = engine.generate(prompts, sp)
        assert sum(len(c.token_ids) for c in out) == n
        return time.perf_counter() - t

    tok.padding_side = "left"
    batch = tok([tok.decode(prompt)] * a.batch, return_tensors="pt", add_special_tokens=False)

    def theirs() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(**batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                           max_new_tokens=a.tokens, min_new_tokens=a.tokens, pad_token_id=tok.pad_token_id)
        return time.perf_counter() - t

    if a.warmup:
        ours(), theirs()
    runs = interleaved({"hf engine": ours, "transformers generate": theirs}, a.repeats)
    best = {k: min(v) for k, v in runs.items()}
    print(f"\n[tokens] {a.batch} x {a.tokens} new tokens, no stops ({a.model}, {a.dtype})")
    for name, t in best.items():
        print(f"{name:>22}: {t:7.2f} s = {n / t:6.1f} tok/s  (runs: {', '.join(f'{x:.1f}' for x in runs[name])} s)")
    ratio = best["transformers generate"] / best["hf engine"]
    print(f"{'ratio':>22}: {ratio:.2f}x")
    return ratio


def bench_rollout(a) -> float:
    import math

    from taorl.config import load_config
    from taorl.data import load_train_problems
    from taorl.experiment.runner import initial_policy
    from taorl.rollout.hf import HFEngine
    from taorl.rollout.loop import run_rollouts
    from taorl.tools import Sandbox

    cfg = load_config(a.config, a.overrides)
    policy = initial_policy(cfg)
    policy.train_mode(False)
    model, tok = policy.model, policy.tokenizer
    n_prompts = math.ceil(cfg.rollout.batch_prompts * cfg.rollout.oversample)
    problems = load_train_problems(cfg.data)[:n_prompts]
    G = cfg.rollout.group_size
    engines = {"hf engine": HFEngine(model, tok, gen_batch_size=cfg.rollout.gen_batch_size),
               "transformers generate": GenerateEngine(model, tok, gen_batch_size=cfg.rollout.gen_batch_size)}
    stats: dict[str, list] = {k: [] for k in engines}
    with Sandbox(cfg.tool) as sb:
        def run(name):
            def f():
                t = time.perf_counter()
                trajs = run_rollouts(engines[name], sb, problems, G, cfg.rollout, cfg.data, seed=0, progress=False)
                dt = time.perf_counter() - t
                stats[name].append((dt, trajs.timings["model_tokens"], trajs.timings["gen_s"],
                                    sum(t.reward for t in trajs) / len(trajs)))
                return dt
            return f

        interleaved({k: run(k) for k in engines}, a.repeats)
    print(f"\n[rollout] {n_prompts} problems x G={G} = {n_prompts * G} rollouts, up to {cfg.rollout.max_turns} "
          f"turns of {cfg.rollout.max_turn_tokens} tokens ({a.config}: {cfg.model.name}, init_from "
          f"{cfg.train.init_from}, gen_batch_size {cfg.rollout.gen_batch_size})")
    best = {}
    for name, runs in stats.items():
        dt, ntok, gen, rew = max(runs, key=lambda r: r[1] / r[2])
        best[name] = ntok / gen
        print(f"{name:>22}: {gen:7.1f} s generating {ntok:5.0f} model tokens = {ntok / gen:6.1f} tok/s "
              f"(batch {dt:.1f} s with tools; reward {rew:.2f}; runs: "
              f"{', '.join(f'{r[1] / r[2]:.1f}' for r in runs)} tok/s)")
    ratio = best["hf engine"] / best["transformers generate"]
    print(f"{'ratio':>22}: {ratio:.2f}x (model tokens/s while generating)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=["tokens", "rollout", "both"], default="both")
    ap.add_argument("--model", default="smollm2-135m", help="tokens scenario")
    ap.add_argument("--dtype", default="bfloat16", help="tokens scenario")
    ap.add_argument("--batch", type=int, default=24, help="tokens scenario (24: the default config's gen_batch_size)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens scenario")
    ap.add_argument("--config", default="configs/default.yaml", help="rollout scenario")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", action="store_true", help="tokens scenario: one untimed call of each first")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("overrides", nargs="*", help="rollout scenario: dotted config overrides")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch threads {torch.get_num_threads()}")
    ratios = {}
    if a.scenario in ("tokens", "both"):
        ratios["tokens"] = bench_tokens(a)
    if a.scenario in ("rollout", "both"):
        ratios["rollout"] = bench_rollout(a)
    print("\nhf engine vs transformers generate: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
