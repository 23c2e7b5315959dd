"""Training sets by name, like the benchmarks: ONE table from a name to its local files and its hub dataset.

    data.train: simplelr_math_35      the set the released TAO-RL code trains on (SimpleRL-Zoo, MATH lv 3-5)
    data.train: dapo_math_17k         DAPO's math set (duplicates dropped at load)
    data.train: deepscaler            DeepScaleR-Preview's 40k problems
    data.train: ORG/NAME              any hub dataset (data.split, data.problem_field, data.answer_field)
    data.train: ORG/NAME/dir/f.parquet   one file of a hub dataset repository
    data.train: path.jsonl|.parquet   a local file (other field names: data.problem_field / answer_field)

Where a named set is read from, first match wins (the data folder is $TAORL_DATA_DIR, else the
``shared/benchmarks`` folder beside the checkout, as for the benchmarks):
1. the folder, in the released code's layout: ``<folder>/simplelr_math_35/train.parquet``;
2. the folder, in the hub's layout (``hf download ORG/NAME --repo-type dataset --local-dir <folder>/ORG/NAME``):
   ``<folder>/hkust-nlp/SimpleRL-Zoo-Data/simplelr_qwen_level3to5/train.parquet``;
3. the Hugging Face cache, when its hub file was downloaded before (read with no network);
4. the hub: the one file, downloaded into that cache (``hf_hub_download``; taorl.data.hub), unless
   offline or unreachable;
5. then a set with an ``offline_copy`` reads that file of the folder instead, saying so
   (simplelr_math_35 -> train_math.jsonl: MATH train levels 3-5, the same source, 5,000 problems).
A bare ``ORG/NAME`` is read from ``<folder>/ORG/NAME/`` (the split's files) or with
``datasets.load_dataset(ORG/NAME, split=data.split)``.

Every set is then mapped to problems (taorl.data.fields), answers normalised for the grader,
repeated problems dropped (counted; a plain problem/answer file named by its path is taken as
written), and, unless data.decontaminate=false, problems that are also
held-out benchmark problems dropped (counted; taorl.data.decontaminate). The hub facts in the table
were checked against the public dataset pages where the search could reach them; the rest says
"unverified" (data/README.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taorl.data.benchmarks import BENCHMARKS, load_benchmark, local_data_dir
from taorl.data.decontaminate import decontaminate, problem_key
from taorl.data.fields import (
    _MISSING,
    ANSWER_FIELDS,
    ID_FIELDS,
    PROBLEM_FIELDS,
    answer_text,
    chat_text,
    lookup,
    pick_field,
    problem_text,
    strip_wrapper,
)
from taorl.data.problem import Problem
from taorl.errors import UserError

log = logging.getLogger("taorl.data")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class TrainSetSpec:
    name: str
    title: str
    hub_repo: str
    hub_file: str  # the file inside the hub repository (datasets' data_files)
    local: tuple[str, ...]  # paths tried under the data folder, in order
    size: str
    licence: str
    offline_copy: str | None = None  # a file of the data folder with the same source, used offline
    offline_note: str = ""
    prefix: str = ""  # instruction text wrapped around each problem by the dataset, removed at load
    suffix: str = ""


_DAPO_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of "
                "the form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n")
_DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'

TRAIN_SETS: dict[str, TrainSetSpec] = {
    s.name: s
    for s in [
        TrainSetSpec(
            "simplelr_math_35", "SimpleRL-Zoo MATH levels 3-5 (the released TAO-RL code's train.sh: "
            "simplelr_math_35/train)", "hkust-nlp/SimpleRL-Zoo-Data", "simplelr_qwen_level3to5/train.parquet",
            ("simplelr_math_35/train.parquet", "simplelr_math_35/train.jsonl",
             "hkust-nlp/SimpleRL-Zoo-Data/simplelr_qwen_level3to5/train.parquet"),
            size="~8.5k problems (8,523: unverified, a third-party script's check)",
            licence="Apache-2.0 (dataset card)",
            offline_copy="train_math.jsonl",
            offline_note="MATH train levels 3-5, the same source; 5,000 problems"),
        TrainSetSpec(
            "dapo_math_17k", "DAPO-Math-17k (DAPO, ByteDance Seed / Tsinghua AIR)", "BytedTsinghua-SIA/DAPO-Math-17k",
            "data/dapo-math-17k.parquet",
            ("dapo_math_17k/train.parquet", "BytedTsinghua-SIA/DAPO-Math-17k/data/dapo-math-17k.parquet"),
            size="~1.7M rows of ~17.4k distinct problems, each repeated (repeats dropped at load)",
            licence="Apache-2.0 (dataset card)", prefix=_DAPO_PREFIX, suffix=_DAPO_SUFFIX),
        TrainSetSpec(
            "deepscaler", "DeepScaleR-Preview-Dataset (AIME, AMC, Omni-MATH, STILL)",
            "agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json",
            ("deepscaler/train.parquet", "deepscaler/train.jsonl",
             "agentica-org/DeepScaleR-Preview-Dataset/deepscaler.json"),
            size="40,315 problems", licence="MIT (dataset card)"),
    ]
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


# ----------------------------------------------------------------------------------------- sources
@dataclass
class Source:
    """Where a data.train value will be read from, found without reading it."""

    kind: str  # procedural | benchmark | file | offline_copy | hub
    label: str  # one line for the user
    paths: list[Path] = field(default_factory=list)
    hub_repo: str | None = None
    hub_file: str | None = None
    split: str = "train"
    spec: TrainSetSpec | None = None
    note: str = ""
    plain: bool = False  # a user's file named by its path: the strict problem/answer reader applies


def _folder_source(folder: Path, split: str) -> Source:
    """The data files of one split in a dataset folder laid out like a hub repository: named after
    the split (train.parquet, train-00000-of-00001.parquet, a train/ folder), else the only file."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    named = [p for p in files if p.stem == split or p.stem.startswith(f"{split}-") or p.parent.name == split]
    files = named or (files if len(files) == 1 else [])
    if not files:
        raise UserError(f"{folder}: no data file of split {split!r} (expected {split}.parquet, "
                        f"{split}-*.parquet or a {split}/ folder; set data.split)")
    return Source("file", f"{folder} ({len(files)} file(s) of split {split!r})", files, split=split)


def _hub_cached(repo: str, filename: str) -> Path | None:
    """The file of a hub dataset already in the Hugging Face cache (read with no network), else None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo, filename, repo_type="dataset")
    except Exception:  # noqa: BLE001 - a cache we cannot read is a cache miss
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def resolve_source(train: str, split: str = "train") -> Source:
    """Find where ``train`` (a data.train value) is read from: no data is read, the hub is not asked
    (except to test that it can be reached when a named set is not here)."""
    text = str(train).strip()
    key = _key(text)
    if text == "procedural":
        return Source("procedural", "the built-in procedural generator (taorl.data.procedural)")
    if text.lower() in BENCHMARKS:
        return Source("benchmark", f"benchmark {text.lower()} (taorl.data.benchmarks)")
    folder = local_data_dir()
    if key in TRAIN_SETS:
        spec = TRAIN_SETS[key]
        for rel in spec.local:
            if folder is not None and (folder / rel).is_file():
                return Source("file", str(folder / rel), [folder / rel], spec=spec)
        cached = _hub_cached(spec.hub_repo, spec.hub_file)
        if cached is not None:
            return Source("file", f"{cached} (Hugging Face cache of {spec.hub_repo})", [cached], spec=spec)
        from taorl.data.hub import hub_offline, hub_reachable, unreachable_reason

        copy = folder / spec.offline_copy if folder is not None and spec.offline_copy else None
        if copy is not None and copy.is_file() and (hub_offline() or not hub_reachable()):
            note = (f"{spec.name}: not in the data folder and {unreachable_reason()}; using the offline copy "
                    f"{copy} ({spec.offline_note})")
            return Source("offline_copy", f"{copy} (offline copy: {spec.offline_note})", [copy], spec=spec, note=note)
        return Source("hub", f"hub {spec.hub_repo}/{spec.hub_file}", hub_repo=spec.hub_repo,
                      hub_file=spec.hub_file, spec=spec)
    path = Path(text).expanduser()
    if path.suffix.lower() in DATA_SUFFIXES:
        if path.is_file():
            return Source("file", str(path), [path], plain=True)
        parts = text.split("/")
        if len(parts) >= 3 and not text.startswith((".", "/", "~")):  # ORG/NAME/path/in/repo.parquet
            repo, inner = "/".join(parts[:2]), "/".join(parts[2:])
            if folder is not None and (folder / text).is_file():
                return Source("file", str(folder / text), [folder / text])
            cached = _hub_cached(repo, inner)
            if cached is not None:
                return Source("file", f"{cached} (Hugging Face cache of {repo})", [cached])
            return Source("hub", f"hub {repo}/{inner}", hub_repo=repo, hub_file=inner)
        raise UserError(f"{text}: no such file (data.train); expected a JSONL/Parquet file, a training set "
                        f"by name ({', '.join([*TRAIN_SETS, 'math_train'])}), 'procedural', a benchmark or a hub "
                        "dataset ORG/NAME (taorl data list shows what is here)")
    if path.is_dir():  # a local folder of data files, laid out like a hub repository
        return _folder_source(path, split)
    parts = text.split("/")
    if len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~")):  # ORG/NAME
        if folder is not None and (folder / text).is_dir():
            return _folder_source(folder / text, split)
        return Source("hub", f"hub {text} (split {split!r})", hub_repo=text, split=split)
    raise UserError(f"data.train={text!r}: unknown; expected 'procedural', a benchmark name, a training set "
                    f"by name ({', '.join([*TRAIN_SETS, 'math_train'])}), a .jsonl/.parquet file or a hub "
                    "dataset ORG/NAME (taorl data list shows what is here)")


# ----------------------------------------------------------------------------------------- reading
def _file_records(path: Path):
    from taorl.data.files import iter_jsonl_records

    if path.suffix.lower() == ".parquet":
        import polars as pl

        try:
            df = pl.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
            raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
        return ((f"{path}: row {i}", rec) for i, rec in enumerate(df.iter_rows(named=True)))
    return iter_jsonl_records(path)


@dataclass
class Mapped:
    problems: list[Problem]
    rows: int = 0
    duplicates: int = 0
    no_answer: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def map_records(records, *, name: str, problem_field: str | None = None, answer_field: str | None = None,
                prefix: str = "", suffix: str = "") -> Mapped:
    """Problems from (where, record) pairs of any layout: fields picked once (from the first record),
    rows without an answer skipped, repeated problems (same taorl.data.decontaminate.problem_key) dropped."""
    from taorl.rewards.normalize import normalize_reference

    out = Mapped([])
    seen: set[str] = set()  # problem keys kept
    seen_raw: set[str] = set()  # their raw texts: an exact repeat (DAPO-Math-17k's ~100 copies) skips the work
    paths: tuple[str, str, str | None] | None = None
    for i, (where, rec) in enumerate(records):
        if not isinstance(rec, dict):
            raise UserError(f"{where}: got a {type(rec).__name__}, expected a record with a problem and an answer")
        if paths is None:
            ppath = pick_field(rec, problem_field, PROBLEM_FIELDS, "problem", where, "data.problem_field")
            apath = pick_field(rec, answer_field, ANSWER_FIELDS, "answer", where, "data.answer_field")
            ipath = next((c for c in ID_FIELDS if lookup(rec, c) is not _MISSING), None)
            paths = (ppath, apath, ipath)
            out.fields = {"problem": ppath, "answer": apath}
        ppath, apath, ipath = paths
        out.rows += 1
        value = lookup(rec, ppath)
        raw_text = value if isinstance(value, str) else chat_text(value) if isinstance(value, list) else None
        if raw_text is not None and raw_text in seen_raw:
            out.duplicates += 1
            continue
        text = problem_text(value)
        if text is None:
            raise UserError(f"{where}: field {ppath!r} is not a problem statement (got {value!r:.60}); "
                            "name another with data.problem_field")
        text = strip_wrapper(text, prefix, suffix)
        raw = answer_text(lookup(rec, apath))
        if raw is None:
            out.no_answer += 1
            continue
        k = problem_key(text)
        if k in seen:
            out.duplicates += 1
            continue
        seen.add(k)
        if raw_text is not None:
            seen_raw.add(raw_text)
        rid = lookup(rec, ipath) if ipath else _MISSING
        if rid is _MISSING or rid is None:
            rid = i
        pid = str(rid) if isinstance(rid, str) and not rid.isdigit() else f"{name}-{rid}"
        top = {c.split(".")[0] for c in (ppath, apath)}
        meta: dict[str, Any] = {k2: v for k2, v in rec.items()
                                if k2 not in top and isinstance(v, (str, int, float, bool)) and k2 != "id"}
        meta["raw_answer"] = raw
        out.problems.append(Problem(pid, text, normalize_reference(raw, problem_id=pid), name, meta))
    return out


@dataclass
class TrainSet:
    problems: list[Problem]
    report: dict[str, Any]

    def summary(self) -> str:
        r = self.report
        line = f"data {r['train']}: {len(self.problems)} problems from {r['source']}"
        extras = []
        if r.get("duplicates"):
            extras.append(f"{r['duplicates']} repeats dropped")
        if r.get("no_answer"):
            extras.append(f"{r['no_answer']} without an answer skipped")
        d = r.get("decontamination") or {}
        if d and not d["by_benchmark"]:
            extras.append("NOT decontaminated: no benchmark file here (set TAORL_DATA_DIR)")
        elif d:
            by = ", ".join(f"{b} {n}" for b, n in d["by_benchmark"].items() if n)
            extras.append(f"{d['dropped']} also in a benchmark dropped" + (f" ({by})" if by else ""))
            if d["not_checked"]:
                extras.append(f"not checked against {', '.join(d['not_checked'])}")
        return line + (f" ({'; '.join(extras)})" if extras else "")


def load_train_set(data_cfg) -> TrainSet:
    """The training pool described by a taorl.config.DataConfig, with what was done to it (for the manifest)."""
    from taorl.data import load_problems

    src = resolve_source(data_cfg.train, getattr(data_cfg, "split", "train"))
    if src.note:
        log.info(src.note)
    pf, af = getattr(data_cfg, "problem_field", None), getattr(data_cfg, "answer_field", None)
    report: dict[str, Any] = {"train": str(data_cfg.train), "source": src.label, "kind": src.kind}
    if src.note:
        report["note"] = src.note
    if src.kind == "procedural":
        problems = load_problems("procedural", seed=data_cfg.seed, n=data_cfg.n_problems,
                                 difficulty=data_cfg.difficulty, kinds=data_cfg.kinds)
    elif src.kind == "benchmark":  # kinds, difficulty, n_problems describe the generator: ignored here
        problems = load_benchmark(str(data_cfg.train))
    elif src.plain and not (pf or af):
        from taorl.data.files import read_problem_file

        problems = read_problem_file(src.paths[0])  # a plain problem/answer file: the strict reader
    else:
        spec = src.spec
        name = spec.name if spec else Path(str(data_cfg.train)).stem.replace("/", "_")
        if src.kind == "offline_copy":  # a taorl-layout file: problem / answer, no wrapper
            records, prefix, suffix = _file_records(src.paths[0]), "", ""
        elif src.kind == "hub":
            from taorl.data.hub import download_hub_file, load_hub_rows

            what = f"data.train={data_cfg.train}"
            if src.hub_file:  # one file: downloaded into the HF cache and read like a local one
                records = _file_records(Path(download_hub_file(src.hub_repo, src.hub_file, what=what)))
            else:
                rows = load_hub_rows(src.hub_repo, what=what, split=src.split)
                records = ((f"{src.hub_repo} row {i}", r) for i, r in enumerate(rows))
            prefix, suffix = (spec.prefix, spec.suffix) if spec else ("", "")
        else:
            records = (wr for p in src.paths for wr in _file_records(p))
            prefix, suffix = (spec.prefix, spec.suffix) if spec else ("", "")
        mapped = map_records(records, name=name, problem_field=pf, answer_field=af, prefix=prefix, suffix=suffix)
        problems = mapped.problems
        report.update(rows=mapped.rows, duplicates=mapped.duplicates, no_answer=mapped.no_answer,
                      fields=mapped.fields)
    if not problems:
        raise UserError(f"data.train={data_cfg.train!r}: no problems in {src.label}")
    if src.kind != "procedural" and getattr(data_cfg, "decontaminate", True):
        benches = [b for b in BENCHMARKS if b not in ("math_train", str(data_cfg.train).lower())]
        problems, dec = decontaminate(problems, benches)
        report["decontamination"] = dec.report()
        if not problems:
            raise UserError(f"data.train={data_cfg.train!r}: every problem is also a benchmark problem "
                            "(decontamination dropped all; data.decontaminate=false keeps them)")
    report["problems"] = len(problems)
    return TrainSet(problems, report)
