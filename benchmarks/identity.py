"""Byte-identity proof for refactors: fixed-seed sets, their .ddz bytes, decoded images, accuracy.

Distils one latent DM, one GM and one TM set, one distributional DM set (short settings) and one
pixel DM set from the bundled CIFAR-10 subset, labels the latent DM set with a short teacher in
the VQ and VQAE rungs, re-encodes the golden test set, encodes each, decodes each and measures
each (short protocol), and prints
SHA-256 digests of every .ddz section payload, the decoded images and the accuracies. Run it
before and after a change that must not change outputs and compare the JSON files:

    python -m benchmarks.identity -o before.json      # on the old commit
    python -m benchmarks.identity -o after.json --compare before.json

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
    "distribution-dm": dict(param="distribution", loss="dm", spc=2, fit_iterations=40,
                            fit_candidates=2, iterations=6, batch_real=16),
}
LABELLED = {"latent-dm-vq": dict(codec="vq"), "latent-dm-vqae": dict(codec="vqae", k=8)}
TEACHER = dict(epochs=2)
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden_set.pt"
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
    teacher = work / "teacher.pt"
    jobs = {name: ("distill", config) for name, config in CASES.items()}
    jobs.update({name: ("label", config) for name, config in LABELLED.items()})
    jobs["golden"] = ("golden", {})
    for name, (how, config) in jobs.items():
        started = time.perf_counter()
        set_path = work / f"{name}.pt"
        if how == "distill":
            extra = {"experts": str(experts)} if config["loss"] == "tm" else {}
            api.distill(output=set_path, device="cpu", **config, **extra)
        elif how == "label":
            if not teacher.exists():
                api.train_teacher(output=teacher, device="cpu", **TEACHER)
            api.label(work / "latent-dm.pt", teacher, set_path, device="cpu", **config)
        else:
            set_path = GOLDEN
        data, _ = api.encode(set_path)
        ddz_path = work / f"{name}.ddz"
        ddz_path.write_bytes(data)
        decoded = api.decode(data)
        # the golden set's data is a test fixture: its bytes and images are the check
        report = api.measure(ddz_path, **MEASURE) if how != "golden" else {"accuracies": None}
        results[name] = {"ddz": digest(data), "ddz_bytes": len(data), **sections(data),
                         "decoded_images": digest(decoded.images.numpy().tobytes()),
                         "accuracy": report["accuracies"],
                         "seconds": round(time.perf_counter() - started, 1)}
        print(name, json.dumps(results[name]), flush=True)
    return results


def write_report(before: dict, after: dict, commit: str, head: str = "") -> None:
    """The comparison as the section "Byte-identity across a refactor" and its record."""
    import datetime as dt
    import platform
    import subprocess

    from benchmarks.harness import ROOT, replace_section, write_record

    head = head or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, cwd=ROOT).stdout.strip()
    rows = []
    for name, now in after.items():
        old = before[name]
        rows.append({"set": name, "bytes_before": old["ddz_bytes"],
                     "bytes_after": now["ddz_bytes"], "file_identical": old["ddz"] == now["ddz"],
                     "sections_identical": all(old.get(k) == v for k, v in now.items()
                                               if k.startswith("section_") or k == "header"),
                     "images_identical": old["decoded_images"] == now["decoded_images"],
                     "accuracy_before": old["accuracy"], "accuracy_after": now["accuracy"]})
    record = {"date": dt.date.today().isoformat(), "machine": platform.platform(),
              "before": commit, "after": head, "cases": CASES, "labelled": LABELLED,
              "teacher": TEACHER, "measure": MEASURE, "rows": rows}
    out = ROOT / "docs" / "BENCHMARKS.md"
    write_record(out, "identity", record)
    lines = ["## Byte-identity across a refactor", "",
             f"`python -m benchmarks.identity -o after.json --compare before.json --write "
             f"--before-commit {commit}` ({record['date']}, {record['machine']}, one thread), "
             f"before = commit {commit}, after = {head}: the same fixed-seed sets distilled from "
             "the bundled subset at short settings (latent DM, GM, TM, distributional DM, pixel "
             "DM at IPC 1), the latent DM set labelled by a 2-epoch teacher in the VQ and VQAE "
             "rungs, and the golden test set, each encoded, decoded and measured (20 epochs x 1 "
             "network; the golden set's data is a test fixture, so it is not measured).", "",
             "| set | bytes before | bytes after | file identical | decoded images identical | "
             "accuracy before | accuracy after |", "|---|---:|---:|---|---|---:|---:|"]

    def shown(acc):
        return "–" if acc is None else f"{100 * acc[0]:.2f} %"

    for r in rows:
        lines.append(f"| {r['set']} | {r['bytes_before']:,} | {r['bytes_after']:,} | "
                     f"{'yes' if r['file_identical'] else 'NO'} | "
                     f"{'yes' if r['images_identical'] else 'NO'} | "
                     f"{shown(r['accuracy_before'])} | {shown(r['accuracy_after'])} |")
    lines += ["", "Older files are covered by the test suite: `tests/fixtures/golden.ddz` "
              "(version 1) and `golden_v2.ddz` decode to the images, labels and latents of "
              "`golden_v3.ddz`, and the writers kept for that purpose "
              "(`encode_set(..., version=1 or 2)`) still reproduce them byte for byte."]
    replace_section(out, "## Byte-identity", "\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--compare", help="an earlier output to compare with")
    parser.add_argument("--before-commit", default="",
                        help="with --compare --write: the commit the earlier output came from")
    parser.add_argument("--write", action="store_true",
                        help="with --compare: write the comparison to docs/BENCHMARKS.md")
    parser.add_argument("--results", help="an output of this script to compare instead of "
                                          "running again (it is copied to -o)")
    args = parser.parse_args()
    if args.results:
        results = json.loads(Path(args.results).read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(Path(tmp))
    Path(args.output).write_text(json.dumps(results, indent=1))
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    if args.write:
        write_report(before, results, args.before_commit)
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
