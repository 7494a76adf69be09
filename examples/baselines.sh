#!/usr/bin/env bash
# Distil the bundled CIFAR-10 subset with DM and a random real baseline, then compare them.
# A shortened protocol so it runs on a laptop CPU in a few minutes; drop the options for the
# field's full settings (20,000 DM iterations, 1000 epochs, 5 runs).
set -euo pipefail
out=${1:-out}
mkdir -p "$out"
ddcodec distill --loss dm --ipc 10 --iterations 200 --batch-real 64 -o "$out/dm10.pt" -f
ddcodec distill --loss none --ipc 10 -o "$out/random10.pt" -f
for s in random10 dm10; do
  ddcodec measure "$out/$s.pt" --epochs 300 --runs 3 --json |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"$s: {100*r['accuracy_mean']:.1f} ± {100*r['accuracy_std']:.1f} % at {r['bpc']:,.0f} bits/class\")"
done
