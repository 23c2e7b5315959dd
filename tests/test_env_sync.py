"""environment.yml must pin exactly what pyproject.toml pins for the venv `make setup` builds: the core
and every extra that the Makefile installs (app, notebooks, dev, trackers, trl)."""

import re
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
# extras whose pins are ranges on purpose, copied verbatim into environment.yml: TRL 1.15-1.16 (1.16's
# GRPOTrainer runs on a CPU, 1.15's needs a Triton GPU kernel; the [gpu] extra pins 1.15.0)
RANGE_EXTRAS = ("trl",)


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _setup_extras() -> list[str]:
    """The extras `make setup` installs into .venv (the Makefile's `pip install -q -e ".[...]"`)."""
    found = re.findall(r'\$\(BIN\)/pip install -q -e "\.\[([a-z,]+)\]"', (ROOT / "Makefile").read_text())
    assert len(found) == 1, f"expected one `$(BIN)/pip install -q -e \".[extras]\"` in the Makefile, found {found}"
    return found[0].split(",")


def _pyproject_pins() -> set[str]:
    project = _project()
    pins = {RANGES.get(d, d) for d in project["dependencies"]}
    for extra in _setup_extras():
        pins |= set(project["optional-dependencies"][extra])
    return pins


def _environment_pins() -> set[str]:
    """Every requirement of environment.yml's pip section (exact pins and ranges; not `-e .`)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {p for p in pip_section if not p.startswith("-")}


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_pins(), _environment_pins()
    assert py - env == set(), f"in pyproject.toml but not environment.yml: {sorted(py - env)}"
    assert env - py == set(), f"in environment.yml but not pyproject.toml: {sorted(env - py)}"


def test_setup_installs_the_extras_environment_yml_covers():
    """The Makefile's venv and environment.yml hold the same extras (the trl extra included)."""
    extras = set(_setup_extras())
    assert {"app", "notebooks", "dev", "trackers", "trl"} <= extras
    assert extras <= set(_project()["optional-dependencies"]), "make setup names an extra pyproject.toml lacks"
    text = (ROOT / "environment.yml").read_text()
    missing = [e for e in extras if f"# [{e}]" not in text]
    assert missing == [], f"environment.yml has no `# [extra]` section for {missing}"


def test_every_pin_is_exact():
    ranged = {p for e in RANGE_EXTRAS for p in _project()["optional-dependencies"][e]}
    loose = [p for p in _pyproject_pins() - ranged if "==" not in p]
    assert loose == [], f"unpinned CPU dependencies: {loose}"


def test_trl_range_holds_the_gpu_pin():
    """The [trl] range admits the TRL the [gpu] extra pins (the GPU stack was tested with it)."""
    from packaging.requirements import Requirement

    project = _project()["optional-dependencies"]
    (trl_range,) = [Requirement(p) for p in project["trl"] if Requirement(p).name == "trl"]
    (gpu_pin,) = [Requirement(p) for p in project["gpu"] if Requirement(p).name == "trl"]
    pinned = next(iter(gpu_pin.specifier)).version
    assert trl_range.specifier.contains(pinned), f"[gpu] pins trl {pinned}, outside [trl] {trl_range.specifier}"


def test_makefile_installs_the_same_torch():
    assert f"pip install -q {TORCH_PIN}" in (ROOT / "Makefile").read_text()


def test_transformers_range_ends_at_the_pin():
    """The core's transformers range: its top is the exact pin .venv gets, its bottom verl's release."""
    low, high = TRANSFORMERS_RANGE.removeprefix("transformers>=").split(",<=")
    assert TRANSFORMERS_PIN == f"transformers=={high}" and low == "5.10.4"
