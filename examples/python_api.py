"""The Python API: the command line's verbs as functions returning Python objects.

    python examples/python_api.py [OUT_DIR]

Distils the bundled CIFAR-10 subset to a 12,000 bits-per-class budget, encodes it, decodes the
bytes back, and measures the file (shortened settings: a few minutes on a laptop CPU).
"""

import sys
from pathlib import Path

import torch

import ddcodec

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
out.mkdir(exist_ok=True)

distilled = ddcodec.distill("cifar10-subset", out / "api.pt", force=True, device="cpu",
                            param="latent", target_bpc=12_000, shared_decoder=True,
                            batch_real=64, fit_iterations=200, iterations=20)
rate = distilled.provenance["rate_control"]
print(f"{distilled.num_images} images; lambda {rate['lmbda']:.3g}, "
      f"{rate['achieved_bpc']:,.0f} bits/class for a target of {rate['target_bpc']:,.0f} "
      f"({'within' if rate['within_tolerance'] else 'outside'} ±5 %: these shortened settings "
      "leave the controllers few iterations)")

data, report = ddcodec.encode(out / "api.pt", out / "api.ddz", force=True)
print(f".ddz: {len(data):,} bytes = {report['bpc']:,.0f} bits per class")

decoded = ddcodec.decode(data)  # bytes, a path or "-" (stdin)
assert torch.equal(decoded.labels, distilled.labels)
assert torch.equal(decoded.to_set().images, distilled.images)  # bit-exact

result = ddcodec.measure(out / "api.ddz", epochs=50, runs=1, device="cpu")
print(f"accuracy {100 * result['accuracy_mean']:.1f} % at {result['bpc']:,.0f} bits per class")
