"""Print the pip requirements of the verl venv (Makefile target verl-venv), one per line.

verl 0.9.1 declares transformers>=5.5.3,<5.11 while taorl's core pins transformers==5.17.0, so
`pip install -e ".[verl]"` cannot resolve. The verl venv therefore takes verl's transformers and the
rest of taorl's pins: this prints the [verl] and [dev] extras plus the core pins except
transformers; the Makefile installs them, then taorl itself with --no-deps. Run as a script (taorl
need not be installed): python taorl/integrations/verl/requirements.py
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

LEFT_TO_VERL = ("transformers",)


def requirements(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    core = [d for d in project["dependencies"] if not d.split("=")[0].split("<")[0].split(">")[0].strip()
            in LEFT_TO_VERL]
    return extras["verl"] + core + extras["dev"]


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[3]
    sys.stdout.write("\n".join(requirements(root / "pyproject.toml")) + "\n")
