# Two entry points: `make demo` (the main job) and `make test` (the suite CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# Three workers on two cores: most of the suite waits on nodes, servers and subprocesses, not the CPU.
# One file per worker at a time, so a module's devnet fixture is built once.
test: lint
	$(VENV)/bin/pytest -q -n 3 --dist loadfile

demo: $(STAMP)
	$(VENV)/bin/chainrisk demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
