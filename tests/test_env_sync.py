"""environment.yml must pin exactly what pyproject.toml pins (core + app/notebooks/dev/trackers extras)."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


# torch is a range in pyproject.toml (CPU 2.13 here, 2.11 with vLLM on a GPU); the environment file
# and the Makefile install the exact CPU build.
TORCH_RANGE, TORCH_PIN = "torch>=2.11,<2.14", "torch==2.13.0"
# transformers is a range too (5.10.4 with the [verl] extra, whose verl 0.9.1 needs <5.11); its upper
# bound is inclusive, so pip installs exactly 5.17.0 without [verl], the pin of environment.yml
TRANSFORMERS_RANGE, TRANSFORMERS_PIN = "transformers>=5.10.4,<=5.17.0", "transformers==5.17.0"
RANGES = {TORCH_RANGE: TORCH_PIN, TRANSFORMERS_RANGE: TRANSFORMERS_PIN}


def _pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {RANGES.get(d, d) for d in project["dependencies"]}
    for extra in ("app", "notebooks", "dev", "trackers"):
        pins |= set(project["optional-dependencies"][extra])
    return pins


def _environment_pins() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {p for p in pip_section if "==" in p}


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_pins(), _environment_pins()
    assert py - env == set(), f"in pyproject.toml but not environment.yml: {sorted(py - env)}"
    assert env - py == set(), f"in environment.yml but not pyproject.toml: {sorted(env - py)}"


def test_every_pin_is_exact():
    loose = [p for p in _pyproject_pins() if "==" not in p]
    assert loose == [], f"unpinned CPU dependencies: {loose}"


def test_makefile_installs_the_same_torch():
    assert f"pip install -q {TORCH_PIN}" in (ROOT / "Makefile").read_text()


def test_transformers_range_ends_at_the_pin():
    """The core's transformers range: its top is the exact pin .venv gets, its bottom verl's release."""
    low, high = TRANSFORMERS_RANGE.removeprefix("transformers>=").split(",<=")
    assert TRANSFORMERS_PIN == f"transformers=={high}" and low == "5.10.4"
