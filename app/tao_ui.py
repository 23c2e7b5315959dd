"""What every dashboard page shares: the runs directory, the sidebar (run, runs to compare, live
refresh), the cached readers and the guard that turns store errors into messages.

Caching: one taorl.store.queries.LiveRun per run directory (st.cache_resource); each rerun
refreshes its manifest and reads only newly published steps. Derived values are cached with
st.cache_data on LiveRun.key = (run dir, last published step, revision).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from taorl.experiment.layout import find_experiments
from taorl.store import NotARun, RunGone, SchemaVersionError, StoreError, list_runs
from taorl.store.queries import LiveRun
from taorl.viz.style import run_colors


def runs_root() -> Path:
    """--runs-dir from `streamlit run app/Home.py -- --runs-dir DIR`, else $TAORL_RUNS_DIR, else runs/."""
    argv = sys.argv
    if "--runs-dir" in argv and argv.index("--runs-dir") + 1 < len(argv):
        return Path(argv[argv.index("--runs-dir") + 1])
    return Path(os.environ.get("TAORL_RUNS_DIR", "runs"))


@st.cache_data(ttl=3, show_spinner=False)
def _list(root: str) -> list[tuple[str, str, str, int, str | None]]:
    # depth 5: the runs of an experiment under runs/ (runs/experiments/NAME/runs/ARM/seed-S) are listed too
    return [(str(r.path), r.run_id, r.status, r.last_step, r.error) for r in list_runs(root, max_depth=5)]


@st.cache_data(ttl=10, show_spinner=False)
def experiments(root: str) -> list[str]:
    """Experiment folders (taorl experiment's output) at or under the runs directory."""
    return [str(p) for p in find_experiments(root)]


def folder_label(root: Path, folder: str) -> str:
    """An experiment folder as the sidebar names it: its path under the runs directory (its own name
    when it is the runs directory, or that directory's parent)."""
    try:
        rel = Path(folder).relative_to(Path(root)).as_posix()
    except ValueError:
        return Path(folder).name
    return Path(folder).name if rel in ("", ".") else rel


def run_label(sel: Selection, path: str) -> str:
    """A run's label in the sidebar (what ?run= takes)."""
    return sel.labels.get(path) or _short(sel.root, path)


@st.cache_resource(show_spinner=False, max_entries=32)
def _live(path: str) -> LiveRun:
    return LiveRun(path)


def live_run(path: str) -> LiveRun:
    """The run's LiveRun, refreshed (new steps visible). Store errors propagate to guard()."""
    try:
        lr = _live(path)
        lr.refresh()
    except RunGone:
        _live.clear()
        raise
    return lr


@dataclass
class Selection:
    root: Path
    runs: list[str]  # all run paths, stable order (colours)
    labels: dict[str, str]  # path -> short label
    primary: str | None  # the run of single-run pages
    compare: list[str]  # primary first, then the runs chosen to compare
    live: bool
    every_s: float

    @property
    def colors(self) -> dict[str, str]:
        return run_colors([self.labels[p] for p in self.runs])

    def label(self, path: str) -> str:
        return self.labels.get(path, Path(path).name)


def shown_path(path: Path) -> str:
    """A folder as a person reads it: relative to the working directory or with ~ for the home folder,
    whichever of the two holds it more closely (the working directory on a tie), else absolute."""
    p = path.resolve()
    bases = [(Path.cwd().resolve(), ""), (Path.home().resolve(), "~")]
    for base, prefix in sorted(bases, key=lambda b: -len(b[0].parts)):  # stable: cwd first on a tie
        try:
            rel = p.relative_to(base).as_posix()
        except ValueError:
            continue
        if prefix:
            return prefix if rel == "." else f"{prefix}/{rel}"
        return rel
    return str(p)


def _short(root: Path, path: str) -> str:
    try:
        rel = str(Path(path).relative_to(root))
    except ValueError:
        rel = Path(path).name
    return Path(path).name if rel in ("", ".") else rel


def sidebar() -> Selection:
    """Run picker, comparison picker and the live switch (state kept in st.session_state and the
    `run` query parameter, so a link opens the same run)."""
    root = runs_root()
    infos = []
    if root.is_dir():
        try:
            infos = _list(str(root))
        except StoreError:
            infos = []
    runs = [p for p, *_ in infos]
    labels = {p: _short(root, p) for p in runs}
    if root.is_dir() and (root / "manifest.json").exists() and not runs:
        runs, labels = [str(root)], {str(root): root.name}
    sb = st.sidebar
    sb.caption(f"runs: `{shown_path(root)}`", help=str(root.resolve()))
    primary = None
    compare: list[str] = []
    if runs:
        want = st.query_params.get("run")
        by_label = {v: k for k, v in labels.items()}
        default = by_label.get(want, runs[0]) if want else runs[0]
        if "tao_run" not in st.session_state or st.session_state["tao_run"] not in runs:
            st.session_state["tao_run"] = default
        elif want and want in by_label and st.session_state.get("_tao_seen_param") != want:
            st.session_state["tao_run"] = by_label[want]
        st.session_state["_tao_seen_param"] = want
        primary = sb.selectbox("Run", runs, key="tao_run", format_func=lambda p: labels[p])
        if st.query_params.get("run") != labels[primary]:
            st.query_params["run"] = labels[primary]
        others = [p for p in runs if p != primary]
        if "tao_compare" in st.session_state:
            st.session_state["tao_compare"] = [p for p in st.session_state["tao_compare"] if p in others]
        chosen = sb.multiselect("Compare with", others, key="tao_compare", format_func=lambda p: labels[p],
                                help="runs overlaid on the curves, entropy, benchmark and ablation pages")
        compare = [primary, *chosen]
    live = sb.toggle("Live refresh", value=True, key="tao_live",
                     help="re-read the run directories periodically (new steps appear as they are published)")
    # a selectbox, not a select_slider: the slider's code (and moment.js) is not loaded on every first paint
    every = sb.selectbox("every", [2, 5, 10, 30, 60], index=1, key="tao_every",
                         format_func=lambda s: f"{s} s", disabled=not live)
    return Selection(root, runs, labels, primary, compare, live, float(every))


def guard(fn, *args, **kwargs):
    """Run a page body; store errors become messages, never tracebacks."""
    try:
        return fn(*args, **kwargs)
    except SchemaVersionError as e:
        st.warning(f"This run was written by a newer taorl: {e}")
    except RunGone as e:
        st.warning(f"The run directory disappeared: {e}")
    except NotARun as e:
        st.info(f"Not a run (yet): {e}")
    except StoreError as e:
        st.warning(f"Cannot read this run: {e}")
    except (FileNotFoundError, OSError) as e:  # deleted between the manifest check and a read
        st.warning(f"Files of the run are missing ({e.__class__.__name__}: {e}); it may have been deleted.")


def is_synthetic(lr: LiveRun) -> bool:
    """A run written by taorl.lab.synthetic (its manifest says "synthetic": true)."""
    m = lr.run.manifest
    return bool(m.get("synthetic") or (m.get("extra") or {}).get("synthetic"))


def synthetic_banner(sel: Selection, lrs: list[LiveRun]) -> None:
    """A warning at the top of the page when any shown run is synthetic: its numbers are made up
    by a generator (taorl synth), not measured."""
    fake = [sel.label(str(lr.run.path)) for lr in lrs if is_synthetic(lr)]
    if fake:
        st.warning(f"**Synthetic data**: {', '.join(f'`{f}`' for f in fake)} "
                   f"{'was' if len(fake) == 1 else 'were'} written by `taorl synth`, not by training. "
                   "The curves and benchmark numbers are generated to exercise the dashboard; they are "
                   "not results.", icon=":material/science:")


def unreadable_note(sel: Selection, lrs: list[LiveRun], slot=None) -> None:
    """Say which steps and tables of the shown runs could not be read (truncated or corrupt Parquet
    parts, a missing metrics/groups/trajectories part): the pages leave those steps out."""
    lines = []
    for lr in lrs:
        bad = lr.run.unreadable()
        if not bad:
            continue
        base = lr.run.path
        items = [f"step {u.step} `{u.table}` ({u.why}: `{_rel(base, u.path)}`)" for u in bad[:6]]
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        lines.append(f"`{sel.label(str(base))}`: " + "; ".join(items) + more)
    if lines:
        (slot or st).warning("**Unreadable files**: the pages leave these steps out of what they show.  \n"
                             + "  \n".join(lines), icon=":material/broken_image:")


def _rel(base: Path, path: str) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def page(sel: Selection, body, *, multi: bool = False) -> None:
    """Render a page body inside a (live) fragment. body(sel, lr) for single-run pages gets the
    primary LiveRun; multi=True: body(sel, {path: LiveRun}) over the compared runs."""
    if not sel.runs:
        st.info(f"No runs in `{sel.root}` yet. Start one with `taorl train configs/tiny.yaml`, or write "
                f"a demo with `taorl synth {sel.root}/demo`.")
        return

    def render():
        def inner():
            if multi:
                lrs = {}
                for p in sel.compare:
                    try:
                        lrs[p] = live_run(p)
                    except StoreError as e:
                        st.warning(f"{sel.label(p)}: {e}")
                if not lrs:
                    return
                synthetic_banner(sel, list(lrs.values()))
                if all(lr.run.last_step < 0 for lr in lrs.values()):
                    st.info("No step published yet: the page fills in as training goes.")
                    return
                slot = st.empty()
                body(sel, lrs)
                unreadable_note(sel, list(lrs.values()), slot)
            else:
                lr = live_run(sel.primary)
                synthetic_banner(sel, [lr])
                if lr.run.last_step < 0:
                    st.info(f"Run `{sel.label(sel.primary)}` has no published step yet (status "
                            f"{lr.run.status}). The page fills in as training goes.")
                    return
                slot = st.empty()
                body(sel, lr)
                unreadable_note(sel, [lr], slot)
        guard(inner)

    st.fragment(render, run_every=sel.every_s if sel.live else None)()


def ago(t: float) -> str:
    s = max(0.0, time.time() - t)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} days ago"


@st.cache_resource(show_spinner=False)
def _figures() -> dict:
    return {}


def cached_figure(key: tuple, build):
    """build() once per key (a LiveRun.key in it: a new step makes a new figure), shared by every
    browser tab: plotly's Python side takes ~0.1 s per figure, paid on each first paint otherwise."""
    cache = _figures()
    fig = cache.get(key)
    if fig is None:
        fig = build()
        if len(cache) >= 64:
            cache.pop(next(iter(cache)))
        cache[key] = fig
    return fig


def plot(fig, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", theme=None, key=key, config={"displaylogo": False})


def charts(specs: list[dict], cols: int, key: str) -> None:
    """Vega-Lite panels (taorl.viz.vega), `cols` to a row, each filling its column: what a page
    draws first, since a fresh tab loads Vega-Lite's code in a third of plotly's time."""
    for i in range(0, len(specs), cols):
        row = st.columns(cols)
        for j, spec in enumerate(specs[i:i + cols]):
            with row[j]:
                st.vega_lite_chart(spec=spec, width="stretch", theme=None, key=f"{key}-{i + j}")


def current() -> Selection:
    """The sidebar selection made by Home.py for this rerun."""
    sel = st.session_state.pop("_tao_sel", None)  # set by Home.py in this very run
    if sel is None:  # the page script run on its own (AppTest.switch_page runs it directly)
        sel = sidebar()
    return sel


def config_of(lr: LiveRun) -> dict:
    try:
        return lr.run.config() or {}
    except StoreError:
        return {}


def shaping_of(cfg: dict) -> tuple[bool, int | None]:
    s = (cfg.get("algo") or {}).get("shaping") or {}
    return bool(s.get("enabled", False)), s.get("window")
