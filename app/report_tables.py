"""The tables of an experiment report (report.json, written by `taorl experiment`) as the dashboard
shows them: held-out intervals per arm and paired differences. Read from the report, never
recomputed; used by the Experiment and Ablations pages."""

from __future__ import annotations

import polars as pl

from taorl.experiment.report import verdict


def iv(d: dict | None) -> str:
    """'60.0 % [35.2, 84.8]' from a report interval dict (mean, low, high, n)."""
    if not d or d.get("mean") is None:
        return "–"
    if d.get("low") is None:
        return f"{100 * d['mean']:.1f} % (n={d['n']})"
    return f"{100 * d['mean']:.1f} % [{100 * d['low']:.1f}, {100 * d['high']:.1f}]"


def heldout_table(rep: dict) -> pl.DataFrame:
    """arm, seeds, one column per held-out metric at the report's final step."""
    metrics = rep["heldout_metrics"]
    return pl.DataFrame([{"arm": arm, "seeds": len(a["runs_done"]),
                          **{m.removeprefix("heldout/"): iv(a["final"].get(m)) for m in metrics if "tokens" not in m}}
                         for arm, a in rep["arms"].items()])


def paired_table(rep: dict, reading: bool = False) -> pl.DataFrame | None:
    """Each arm against the baseline, then the other arms pairwise (same seed): the difference of the
    primary metric with its interval and the per-seed differences (reading: the report's sentence)."""
    if not rep.get("paired"):
        return None
    primary = rep["primary"]
    delta = f"Δ {primary.removeprefix('heldout/')}"

    def row(name: str, d: dict, than: str) -> dict:
        r = {"comparison": name, delta: iv(d),
             "per seed": ", ".join(f"{s}: {100 * v:+.1f}" for s, v in sorted(d["per_seed"].items()))}
        if reading:
            r["reading"] = verdict(d, than)
        return r

    rows = [row(f"{arm} − {rep['baseline']}", p[primary], "the baseline") for arm, p in rep["paired"].items()]
    rows += [row(name, d, f"{d.get('vs', 'the other arm')}") for name, d in rep.get("pairs", {}).items()]
    return pl.DataFrame(rows)
