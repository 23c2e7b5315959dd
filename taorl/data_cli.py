"""`taorl data list` and `taorl data show NAME [--limit N]`: what problem sets this machine has, and a
few problems of one with their answers as the grader reads them (raw -> normalised reference)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace


def _count(path: Path) -> int | None:
    """Problems in a local file without parsing it (JSONL lines, Parquet row count)."""
    try:
        if path.suffix.lower() == ".parquet":
            import polars as pl

            return int(pl.scan_parquet(path).select(pl.len()).collect().item())
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    except Exception:  # noqa: BLE001 - a listing must not fail on one bad file
        return None


def _where(name: str) -> tuple[str, int | None]:
    """(where NAME would be read from here, its problem count when local)."""
    from taorl.data import resolve_source
    from taorl.errors import UserError

    try:
        src = resolve_source(name)
    except UserError as e:
        return f"not here ({e})", None
    if src.kind == "hub":
        return f"not here; read from the hub ({src.label.removeprefix('hub ')}) at its first use", None
    if src.kind == "benchmark":
        from taorl.data import BENCHMARKS, local_data_dir

        folder = local_data_dir()
        path = folder / BENCHMARKS[name].file if folder is not None else None
        return (str(path), _count(path)) if path is not None and path.is_file() else ("not here", None)
    n = _count(src.paths[0]) if len(src.paths) == 1 else None
    return src.label, n


def data_list(args) -> int:
    from taorl.data import BENCHMARKS, TRAIN_SETS, local_data_dir
    from taorl.data.hub import endpoint, hub_offline, hub_reachable

    folder = local_data_dir()
    hub = ("offline (HF_HUB_OFFLINE)" if hub_offline() else
           f"reachable ({endpoint()})" if hub_reachable() else f"not reachable ({endpoint()})")
    print(f"data folder: {folder or 'none (set TAORL_DATA_DIR)'}   hub: {hub}")
    print("\ntraining sets (data.train=NAME)")
    for spec in TRAIN_SETS.values():
        where, n = _where(spec.name)
        count = f"{n} problems, " if n is not None else ""
        print(f"  {spec.name:<17} {spec.title}")
        print(f"  {'':<17} here: {count}{where}")
        print(f"  {'':<17} hub: {spec.hub_repo} {spec.hub_file}; {spec.size}; licence {spec.licence}")
    where, n = _where("math_train")
    print(f"  {'math_train':<17} MATH train levels 3-5 (local only): "
          + (f"{n} problems, {where}" if n is not None else where))
    print(f"  {'procedural':<17} built-in generator of exact-arithmetic problems (data.difficulty, data.kinds)")
    print(f"  {'ORG/NAME':<17} any hub dataset or a .jsonl/.parquet file (data.split, data.problem_field, "
          "data.answer_field)")
    print("\nbenchmarks (held out: taorl eval --benchmarks; training problems equal to one are dropped)")
    for b in BENCHMARKS.values():
        if b.name == "math_train":
            continue
        path = folder / b.file if folder is not None else None
        here = f"{_count(path)} problems, {path}" if path is not None and path.is_file() else \
            f"not here (hub {b.hub_repo})"
        print(f"  {b.name:<17} {here}")
    print("\nnext: taorl data show NAME --limit 3   (problems and answers as the grader reads them)")
    return 0


def data_show(args) -> int:
    from taorl.data import load_train_set

    cfg = SimpleNamespace(train=args.name, split=args.split, problem_field=args.problem_field,
                          answer_field=args.answer_field, decontaminate=not args.no_decontaminate, kinds=None,
                          seed=0, n_problems=max(args.limit, 1), difficulty=args.difficulty)
    ts = load_train_set(cfg)
    print(ts.summary())
    fields = ts.report.get("fields")
    if fields:
        print(f"fields: problem <- {fields['problem']}, answer <- {fields['answer']}")
    for p in ts.problems[: args.limit]:
        raw = p.meta.get("raw_answer", p.answer)
        text = textwrap.shorten(" ".join(p.problem.split()), width=args.width, placeholder=" ...")
        print(f"\n[{p.id}] {text}")
        print(f"  answer: {p.answer!r}" + (f"   (raw: {raw!r})" if str(raw) != p.answer else ""))
    return 0


def data_main(args) -> int:
    from taorl.errors import UserError

    if args.action == "show" and not args.name:
        raise UserError("data show: give a NAME (taorl data list shows what is here), e.g. taorl data show "
                        "simplelr_math_35 --limit 3")
    if args.action == "show" and args.limit < 1:
        raise UserError(f"--limit {args.limit}: expected a positive number of problems")
    return data_list(args) if args.action == "list" else data_show(args)
