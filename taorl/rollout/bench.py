"""Throughput of the hf engine next to transformers' own `generate`, measured side by side.

    python -m taorl.rollout.bench [--model smollm2-135m] [--dtype bfloat16] [--batch 8] [--tokens 128]

Both sample B sequences of exactly N new tokens (no stop: eos and the code-block stop are off, so
the work is the same) from the same chat prompt, at temperature 1. Prints tokens/s of each and
their ratio. Each is run `--repeats` times, interleaved, after one warm-up call; the best run is reported.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    import torch

    from taorl.config import ModelConfig
    from taorl.models import load_model
    from taorl.rollout.engine import SamplingParams
    from taorl.rollout.hf import HFEngine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    model, tok = load_model(ModelConfig(name=a.model, dtype=a.dtype))
    msgs = [{"role": "user", "content": "Compute 17*23 with Python and explain each step."}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    prompts = [list(prompt)] * a.batch
    n = a.batch * a.tokens

    engine = HFEngine(model, tok, gen_batch_size=a.batch)
    # eos ignored so every row produces exactly N tokens, like generate(min_new_tokens=N)
    engine.eos_ids = set()
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

    fns = {"hf engine": ours, "transformers generate": theirs}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(a.repeats):  # interleaved, so a busy moment of a shared machine hits both
        for name, fn in fns.items():
            times[name].append(fn())
    res = {name: min(ts) for name, ts in times.items()}
    for name, t in res.items():
        print(f"{name:>22}: {a.batch}x{a.tokens} in {t:.2f} s = {n / t:.1f} tok/s "
              f"(runs: {', '.join(f'{x:.1f}' for x in times[name])} s)")
    print(f"{'ratio':>22}: {res['transformers generate'] / res['hf engine']:.2f}x "
          f"({a.model}, {a.dtype}, torch threads {torch.get_num_threads()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
