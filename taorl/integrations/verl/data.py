"""taorl problems -> verl's RLHF Parquet (data.train_files / data.val_files).

    python -m taorl.integrations.verl.data OUT_DIR [--train procedural|<benchmark>|<file>] [--n 2000]
        [--difficulty 2] [--val math500] [--val-limit 100]

One row per problem, with the columns verl's RLHFDataset reads: data_source, prompt (chat messages:
taorl's system prompt, then the problem), ability, reward_model {style: rule, ground_truth},
extra_info {index, problem_id}, agent_name (tao_tir_agent). The system prompt is DataConfig's, so
a verl run sees the same instruction as `taorl train`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taorl.config import DataConfig


def rows(problems, source: str, system_prompt: str) -> list[dict]:
    system = (system_prompt or "").strip()
    out = []
    for i, p in enumerate(problems):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p.problem}]
        out.append({"data_source": source, "prompt": msgs, "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": str(p.answer)},
                    "extra_info": {"index": i, "problem_id": str(p.id)}, "agent_name": "tao_tir_agent"})
    return out


def write(problems, path: Path, source: str, system_prompt: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows(problems, source, system_prompt)), path)
    return path


def main(argv: list[str] | None = None) -> int:
    from taorl.data import load_problems

    ap = argparse.ArgumentParser(prog="python -m taorl.integrations.verl.data", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--train", default="procedural")
    ap.add_argument("--n", type=int, default=2000, help="procedural pool size")
    ap.add_argument("--difficulty", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val", default=None, help="a benchmark name or file (default: 64 held-out procedural)")
    ap.add_argument("--val-limit", type=int, default=None)
    a = ap.parse_args(argv)
    system = DataConfig().system_prompt
    out = Path(a.out_dir)
    train = load_problems(a.train, n=a.n, difficulty=a.difficulty, seed=a.seed)
    if a.val:
        val = load_problems(a.val, limit=a.val_limit)
    else:  # a different seed: synthetic held-out problems of the same generator
        val = load_problems("procedural", n=64, difficulty=a.difficulty, seed=a.seed + 1)
    t = write(train, out / "train.parquet", a.train, system)
    v = write(val, out / "val.parquet", a.val or "procedural", system)
    print(f"wrote {len(train)} problems to {t} and {len(val)} to {v}\n"
          f"next: data.train_files={t} data.val_files={v} (configs/verl/tao_rl.yaml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
