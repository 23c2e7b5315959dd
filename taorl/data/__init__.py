"""Problem sets: local JSONL/Parquet files, the benchmarks and the training sets by name (local folder
or HF hub), hub datasets with field mapping, procedural tasks.

    load_problems("procedural", n=2000, difficulty=1, seed=0)
    load_problems("math500", limit=50)
    load_problems("simplelr_math_35")          # a training set by name (taorl.data.train_sets)
    load_problems("my_problems.jsonl")
    load_train_set(cfg.data)                   # the training pool + what was dropped (manifest)
"""

from __future__ import annotations

from pathlib import Path

from taorl.data.benchmarks import BENCHMARKS, BenchmarkSpec, benchmark_names, load_benchmark, local_data_dir
from taorl.data.files import read_jsonl, read_parquet, read_problem_file, write_problems
from taorl.data.problem import Problem
from taorl.data.train_sets import TRAIN_SETS, TrainSet, TrainSetSpec, load_train_set, resolve_source
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
    elif Path(key).suffix.lower() in (".jsonl", ".json", ".parquet") and (
            Path(key).exists() or key.count("/") < 2 or key.startswith((".", "/", "~"))):
        problems = read_problem_file(key)
    else:  # a training set by name, a hub dataset ORG/NAME (or a file in one); decontamination is the trainer's
        from types import SimpleNamespace

        cfg = SimpleNamespace(train=key, split="train", problem_field=None, answer_field=None,
                              decontaminate=False, kinds=None)
        problems = load_train_set(cfg).problems
    return problems[:limit] if limit is not None else problems


def load_train_problems(data_cfg) -> list[Problem]:
    """The training pool described by a ``taorl.config.DataConfig`` (load_train_set(...).problems)."""
    return load_train_set(data_cfg).problems


__all__ = ["BENCHMARKS", "TRAIN_SETS", "BenchmarkSpec", "Problem", "TrainSet", "TrainSetSpec", "benchmark_names",
           "load_benchmark", "load_problems", "load_train_problems", "load_train_set", "local_data_dir", "read_jsonl",
           "read_parquet", "read_problem_file", "resolve_source", "write_problems"]
