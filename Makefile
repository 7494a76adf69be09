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

# The main job on the bundled CIFAR-10 subset (CPU, a few minutes).
demo: $(STAMP)
	mkdir -p out
	$(BIN)/ddcodec distill --loss dm --ipc 10 --iterations 100 --batch-real 64 -o out/dm_ipc10.pt -f
	$(BIN)/ddcodec distill --loss none --ipc 10 -o out/random_ipc10.pt -f
	$(BIN)/ddcodec encode out/dm_ipc10.pt -f
	$(BIN)/ddcodec encode out/random_ipc10.pt -f
	$(BIN)/ddcodec info out/dm_ipc10.ddz
	$(BIN)/ddcodec measure out/random_ipc10.ddz --epochs 300 --runs 2
	$(BIN)/ddcodec measure out/dm_ipc10.ddz --epochs 300 --runs 2

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/baselines.py
	$(BIN)/python benchmarks/latent.py
	$(BIN)/python benchmarks/codec_speed.py
	$(BIN)/ddcodec experts -o bench_runs/experts --num-experts 4 --epochs 10 --device cpu -q
	$(BIN)/python benchmarks/curve.py --experts bench_runs/experts

clean:
	rm -rf $(VENV) out build dist *.egg-info
