"""Problem sets: local JSONL/Parquet files, the benchmarks (local folder or HF hub), procedural tasks.

    load_problems("procedural", n=2000, difficulty=1, seed=0)
    load_problems("math500", limit=50)
    load_problems("my_problems.jsonl")
"""

from __future__ import annotations

from pathlib import Path

from taorl.data.benchmarks import BENCHMARKS, BenchmarkSpec, benchmark_names, load_benchmark, local_data_dir
from taorl.data.files import read_jsonl, read_parquet, read_problem_file, write_problems
from taorl.data.problem import Problem
from taorl.errors import UserError


def load_problems(spec: str, limit: int | None = None, seed: int = 0, *, n: int = 2000,
                  difficulty: int = 1, kinds: list[str] | None = None) -> list[Problem]:
    """Problems from ``spec``: "procedural", a benchmark name, or a .jsonl/.parquet path.

    ``limit`` keeps the first ``limit`` problems (file order, so subsets are stable across runs);
    ``seed``, ``n``, ``difficulty`` and ``kinds`` are the procedural generator's. Shuffling is the trainer's job.
    """
    if limit is not None and limit < 1:
        raise UserError(f"limit={limit}: expected a positive number of problems")
    key = str(spec).strip()
    if key == "procedural":
        from taorl.data.procedural import generate

        problems = generate(n if limit is None else min(n, limit), difficulty=difficulty, seed=seed, kinds=kinds)
    elif kinds:
        raise UserError(f"data '{spec}': kinds={kinds} applies only to 'procedural' problems")
    elif key.lower() in BENCHMARKS:
        problems = load_benchmark(key, limit=limit)
    elif Path(key).suffix.lower() in (".jsonl", ".json", ".parquet"):
        problems = read_problem_file(key)
    else:
        raise UserError(f"data '{spec}': expected 'procedural', a benchmark name ({', '.join(BENCHMARKS)}) "
                        "or a path ending in .jsonl or .parquet")
    return problems[:limit] if limit is not None else problems


def load_train_problems(data_cfg) -> list[Problem]:
    """The training pool described by a ``taorl.config.DataConfig``."""
    # kinds, like difficulty and n_problems, describe the procedural generator: another source ignores them
    kinds = data_cfg.kinds if str(data_cfg.train).strip() == "procedural" else None
    return load_problems(data_cfg.train, seed=data_cfg.seed, n=data_cfg.n_problems, difficulty=data_cfg.difficulty,
                         kinds=kinds)


__all__ = ["BENCHMARKS", "BenchmarkSpec", "Problem", "benchmark_names", "load_benchmark", "load_problems",
           "load_train_problems", "local_data_dir", "read_jsonl", "read_parquet", "read_problem_file",
           "write_problems"]
