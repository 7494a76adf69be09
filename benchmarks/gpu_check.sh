#!/usr/bin/env bash
# What only a GPU can show, in at most 8 minutes of one CUDA card (benchmarks/gpu_check.py says
# what each step measures). Results go to OUT/gpu_check.jsonl one step at a time, so a run cut
# short still leaves figures. Back on the repository's machine,
# `python -m benchmarks.gpu_check --report OUT/gpu_check.jsonl` writes docs/BENCHMARKS.md's section.
#
#   python -m benchmarks.gpu_check --prepare  # here, once: 10 Tiny classes into .gpu-data/ (carry it)
#   bash benchmarks/gpu_check.sh [OUT]        # OUT default: runs/gpu-check
#
# Needs a Python with torch (CUDA) and ddcodec's dependencies. A machine with no package registry
# installs missing ones from wheels in WHEELS (default: .whl/), downloaded beforehand with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_17_x86_64 -d .whl constriction
set -euo pipefail
out=${1:-runs/gpu-check}
wheels=${WHEELS:-.whl}
mkdir -p "$out"
if ! python3 -c "import constriction, click, rich, torchvision" 2>/dev/null; then
  [ -d "$wheels" ] || { echo "gpu_check: missing dependencies and no wheels in $wheels" >&2; exit 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site "$wheels"/*.whl
  export PYTHONPATH=/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
# 470 s in all: the last step (1000 x 5) is cut short before the 8 minutes, the earlier lines stay
timeout 470 python3 -m benchmarks.gpu_check --out-dir "$out" || echo "gpu_check: stopped ($?)" >&2
echo "results: $out/gpu_check.jsonl (python -m benchmarks.gpu_check --report FILE writes the docs' section)"
