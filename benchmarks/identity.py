"""Byte-identity proof for refactors: fixed-seed sets, their .ddz bytes, decoded images, accuracy.

Distils one latent DM, one GM and one TM set (short settings) and one pixel DM set from the
bundled CIFAR-10 subset, encodes each, decodes each and measures each (short protocol), and prints
SHA-256 digests of every .ddz section payload, the decoded images and the accuracies. Run it
before and after a change that must not change outputs and compare the JSON files:

    python benchmarks/identity.py -o before.json      # on the old commit
    python benchmarks/identity.py -o after.json --compare before.json

Header bytes are digested separately, so a format-version change that only touches the header
and the end record shows as exactly that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from ddcodec import api

CASES = {
    "latent-dm": dict(param="latent", loss="dm", spc=2, fit_iterations=40, fit_candidates=2,
                      iterations=6, batch_real=16),
    "latent-gm": dict(param="latent", loss="gm", spc=2, fit_iterations=40, fit_candidates=2,
                      iterations=2, outer_loop=2, inner_loop=1, batch_real=16),
    "latent-tm": dict(param="latent", loss="tm", spc=2, fit_iterations=40, fit_candidates=2,
                      iterations=3, syn_steps=2, expert_epochs=1, max_start_epoch=1),
    "pixels-dm": dict(param="pixels", loss="dm", ipc=1, iterations=5, batch_real=16),
}
MEASURE = dict(epochs=20, runs=1, seed=0, device="cpu")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def sections(data: bytes) -> dict[str, str]:
    """Digests of the header and of each section's payload, read from the container framing."""
    import struct

    header_len = struct.unpack_from("<I", data, 8)[0]
    pos = 12 + header_len + 4
    out = {"header": digest(data[:pos])}
    while pos < len(data):
        tag, length = data[pos], struct.unpack_from("<I", data, pos + 1)[0]
        out[f"section_{tag & 0x7F}"] = digest(data[pos + 5:pos + 5 + length])
        pos += 5 + length
    return out


def run(work: Path) -> dict:
    torch.set_num_threads(1)
    experts = work / "experts"
    api.experts(output=experts, num_experts=1, epochs=2, device="cpu")
    results = {}
    for name, config in CASES.items():
        started = time.perf_counter()
        extra = {"experts": str(experts)} if config["loss"] == "tm" else {}
        set_path = work / f"{name}.pt"
        api.distill(output=set_path, device="cpu", **config, **extra)
        data, _ = api.encode(set_path)
        ddz_path = work / f"{name}.ddz"
        ddz_path.write_bytes(data)
        decoded = api.decode(data)
        report = api.measure(ddz_path, **MEASURE)
        results[name] = {"ddz": digest(data), "ddz_bytes": len(data), **sections(data),
                         "decoded_images": digest(decoded.images.numpy().tobytes()),
                         "accuracy": report["accuracies"],
                         "seconds": round(time.perf_counter() - started, 1)}
        print(name, json.dumps(results[name]), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--compare", help="an earlier output to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(Path(tmp))
    Path(args.output).write_text(json.dumps(results, indent=1))
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    same = True
    for name, now in results.items():
        for key, value in now.items():
            if key == "seconds":
                continue
            old = before.get(name, {}).get(key)
            verdict = "same" if old == value else "DIFFERENT"
            same &= verdict == "same" or key in ("header", "section_0", "ddz", "ddz_bytes")
            print(f"{name:10s} {key:15s} {verdict}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
