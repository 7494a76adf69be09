# Each target makes its own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on the bundled CIFAR-10 subset (CPU; times in docs/BENCHMARKS.md): latent DM to 12,000 bits
# per class, encode, decode, check, measure next to the vanilla IPC-1 baselines, summary table.
demo: $(STAMP)
	$(BIN)/ddcodec demo -o out/demo

# two worker processes (pytest-xdist), one torch thread each (tests/conftest.py): both cores
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# The whole report (docs/BENCHMARKS.md, plots, image grids), timed step by step; each step's
# last time is in its section "Reproducing this report".
bench: $(STAMP)
	$(BIN)/python -m benchmarks.all

clean:
	rm -rf $(VENV) out build dist *.egg-info
