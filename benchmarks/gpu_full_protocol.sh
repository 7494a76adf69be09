#!/usr/bin/env bash
# The field's full protocol on a CUDA GPU, hours of GPU time (benchmarks/gpu_check.sh is the 8-minute
# check): distillation at reference-sized settings and evaluation
# with 1000 epochs x 5 ConvNet-D3 per set, on the bundled CIFAR-10 subset. Needs only this
# repository (the subset is bundled, ~17.5 MB in all) and a Python with ddcodec's dependencies:
#
#   bash benchmarks/gpu_full_protocol.sh [OUT_DIR]       # OUT_DIR default: runs/gpu
#
# Writes OUT_DIR/results.jsonl (one JSON object per set: what, bpc, accuracy, wall seconds) and
# prints a summary. CPU timings for the speed-up come from docs/benchmarks/*.json.
set -euo pipefail
out=${1:-runs/gpu}
mkdir -p "$out"
ddc() { if command -v ddcodec >/dev/null; then ddcodec "$@"; else python3 -m ddcodec "$@"; fi; }
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
results="$out/results.jsonl"
: > "$results"

run() {  # run NAME DISTILL-OPTIONS...
  local name=$1; shift
  local t0=$(date +%s.%N)
  ddc distill --device cuda -q -f -o "$out/$name.pt" "$@"
  local t1=$(date +%s.%N)
  ddc encode -q -f "$out/$name.pt" -o "$out/$name.ddz"
  ddc measure "$out/$name.ddz" --device cuda --epochs 1000 --runs 5 --json > "$out/$name.measure.json"
  local t2=$(date +%s.%N)
  python3 - "$name" "$t0" "$t1" "$t2" "$out/$name.measure.json" >> "$results" <<'PY'
import json, sys
name, t0, t1, t2, path = sys.argv[1], *map(float, sys.argv[2:5]), sys.argv[5]
r = json.load(open(path))
print(json.dumps({"set": name, "bpc": r["bpc"], "images_per_class": r["images_per_class"],
                  "accuracy_mean": r["accuracy_mean"], "accuracy_std": r["accuracy_std"],
                  "epochs": r["epochs"], "runs": r["runs"], "distill_seconds": t1 - t0,
                  "measure_seconds": t2 - t1}))
PY
  tail -n 1 "$results"
}

run random_ipc10 --loss none --ipc 10
run dm_ipc10 --loss dm --ipc 10 --iterations 20000
run latent_dm_24576 --param latent --loss dm --target-bpc 24576 --shared-decoder \
    --fit-iterations 1000 --iterations 2000
run latent_dm_245760 --param latent --loss dm --target-bpc 245760 \
    --fit-iterations 1000 --iterations 2000
python3 - "$results" <<'PY'
import json, sys
print(f"{'set':<20} {'bits/class':>12} {'accuracy %':>14} {'distill s':>10} {'measure s':>10}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['set']:<20} {r['bpc']:>12,.0f} {100 * r['accuracy_mean']:>8.2f} ± "
          f"{100 * r['accuracy_std']:.2f} {r['distill_seconds']:>10.0f} {r['measure_seconds']:>10.0f}")
PY
