"""Execute notebooks on a profile and publish HTML copies under docs/notebooks/ (the stored .ipynb
files stay without outputs).

    .venv/bin/python notebooks/_publish.py                          # every notebook, PROFILE = "laptop"
    .venv/bin/python notebooks/_publish.py 00_quickstart 04_criterion1_failed_tools
    make notebooks NOTEBOOKS="00_quickstart 04_criterion1_failed_tools"

Each notebook runs top to bottom in a fresh kernel whose working directory is notebooks/, so its runs
land in notebooks/runs/<nb>/<time>/ as they do for a person. Its parameters cell is set to the
profile; a note at the top of the HTML says which profile, when, on how many cores, the wall time and
this command. docs/notebooks/index.md lists what is published. Plotly figures load plotly.js from
its CDN (PLOTLY_RENDERER=notebook_connected) so each page stays small.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "docs" / "notebooks"


def set_profile(nb, profile: str) -> None:
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None or not cell.source.startswith("PROFILE = "):
        raise SystemExit("notebook has no `PROFILE = ...` parameters cell")
    cell.source = f'PROFILE = "{profile}"'


def execute(name: str, profile: str, timeout_s: int) -> tuple[object, float]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    set_profile(nb, profile)
    os.environ["PLOTLY_RENDERER"] = "notebook_connected"  # inherited by the kernel
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                   allow_errors=False).execute()
    return nb, time.perf_counter() - t0


def relative_paths(text: str) -> str:
    """Paths as the reader's own: under the checkout relative (runs/...), under the home directory ~/..."""
    return text.replace(str(ROOT) + "/", "").replace(str(Path.home()) + "/", "~/")


STYLE = re.compile(r'<style type="text/css">(.*?)</style>\n?', re.DOTALL)
SHARED_CSS = "notebook.css"


def share_template_css(page: str) -> str:
    """Move the page template's CSS (the same ~7,000 lines in every page's <head>) into one
    docs/notebooks/notebook.css that every page links, instead of a copy per page."""
    head, sep, rest = page.partition("</head>")
    css = "\n".join(m.group(1).strip() for m in STYLE.finditer(head))
    if not css:
        return page  # already shared
    target = OUT / SHARED_CSS
    if target.exists() and target.read_text() != css + "\n":
        raise SystemExit(f"{target}: another nbconvert template wrote different CSS; republish every page")
    target.write_text(css + "\n")
    link = f'<link rel="stylesheet" href="{SHARED_CSS}">\n'
    head = STYLE.sub("", head)
    return head.replace("<title>", link + "<title>", 1) + sep + rest


def to_html(nb, name: str, profile: str, seconds: float, command: str) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    note = (f"**Executed copy.** `PROFILE = \"{profile}\"`, run top to bottom on {time.strftime('%Y-%m-%d')} "
            f"on a {os.cpu_count()}-core {platform.machine()} CPU (load average {os.getloadavg()[0]:.1f} "
            f"when it finished), in {seconds / 60:.1f} minutes, by `{command}`. The notebook itself "
            f"([notebooks/{name}.ipynb](../../notebooks/{name}.ipynb)) is stored without outputs.")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    body = share_template_css(relative_paths(body))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.html"
    path.write_text(body)
    return path


def write_index(command: str) -> None:
    """docs/notebooks/index.md from the timings of every published page."""
    timings = json.loads((OUT / "timings.json").read_text()) if (OUT / "timings.json").exists() else {}
    lines = ["# Executed notebooks", "",
             "HTML copies of the notebooks, executed top to bottom (outputs are from real runs). Made by",
             "", f"    {command}", "",
             "| notebook | profile | wall time | executed |", "| --- | --- | --- | --- |"]
    for name, t in sorted(timings.items()):
        lines.append(f"| [{name}]({name}.html) | `{t['profile']}` | {t['seconds'] / 60:.1f} min | {t['date']} |")
    missing = sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.ipynb") if p.stem not in timings)
    if missing:
        lines += ["", "Not published yet (CPU time): " + ", ".join(f"`{m}`" for m in missing) + "."]
    (OUT / "index.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all numbered ones)")
    ap.add_argument("--profile", default="laptop", help="PROFILE for the parameters cell (default laptop)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    a = ap.parse_args(argv)
    names = a.names or sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.ipynb"))
    for n in names:
        if not (HERE / f"{n}.ipynb").is_file():
            raise SystemExit(f"{n}: no notebooks/{n}.ipynb")
    command = ".venv/bin/python notebooks/_publish.py" + (f" --profile {a.profile}" if a.profile != "laptop" else "")
    timings_path = OUT / "timings.json"
    for n in names:
        print(f"[{n}] executing with PROFILE = {a.profile!r} ...", flush=True)
        nb, seconds = execute(n, a.profile, a.timeout)
        page = to_html(nb, n, a.profile, seconds, f"{command} {n}")
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        timings[n] = {"profile": a.profile, "seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d"),
                      "cpus": os.cpu_count()}
        timings_path.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
        write_index(command + " [NAMES...]")
        print(f"[{n}] {seconds / 60:.1f} min -> {page.relative_to(ROOT)}", flush=True)
    print(f"published: {OUT.relative_to(ROOT)}/index.md; runs beside the notebooks in notebooks/runs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
