"""What only a GPU can show, in minutes: CUDA tests, decode identity, CPU-vs-GPU time per
iteration and one headline point under the field's protocol (1000 epochs x 5 networks).

Each step appends one JSON line to OUT/gpu_check.jsonl the moment it ends, so a run cut short
(a lease's end) still leaves every finished step's figures. The steps, in order:

1. `env`: the card, torch and the CPU threads.
2. `tests`: `pytest tests/gpu` (CUDA synthesis, distillation and measurement).
3. `decode`: committed .ddz files decoded on this machine's CPU, their images' SHA-256 against
   the digests recorded here (`--record-digests`: benchmarks/decode_digests.json), then the same
   files' float synthesis on the GPU against the CPU's images (subpixels one 8-bit level away).
4. `iteration`: seconds per phase-2 iteration of pixel DM (IPC 10) and latent DM (10 images per
   class), reference batch 256, on the CPU and on the GPU: each timed at two iteration counts and
   differenced, so setup and phase 1 cancel.
5. `headline`: the curve's distributional + VQ point at about 12,000 bits per class, measured at
   1000 epochs x 5 ConvNet-D3 on the GPU, beside its figure under the curve's CPU protocol
   (curve.json: 300 epochs x 2).
6. `tiny_block` (when `--prepare` has copied 10 Tiny-ImageNet classes into .gpu-data/, which
   the device run carries): one block of 10 classes at benchmarks/tiny_all.py's settings (98,304
   bits per class, hard labels: no teacher travels), its seconds per class beside the CPU's
   median per block in docs/benchmarks/tiny_all.json.

    python -m benchmarks.gpu_check --prepare             # here: 10 Tiny classes into .gpu-data/
    bash benchmarks/gpu_check.sh [OUT]                   # on a CUDA machine, at most 8 minutes
    python -m benchmarks.gpu_check --report OUT/gpu_check.jsonl   # the BENCHMARKS.md section
    python -m benchmarks.gpu_check --device cpu --quick  # the script itself, on a CPU, seconds

Everything but the Tiny block runs on the bundled CIFAR-10 subset and committed files: the device
machine takes the repository and nothing beside it (carry .gpu-data for the Tiny block).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import (ROOT, TINY, benchmark_parser, median_whole_block_seconds, publish,
                                run)
from ddcodec import __version__, api

DIGESTS = ROOT / "benchmarks" / "decode_digests.json"
POINTS = ROOT / "benchmarks" / "cache" / "curve" / "points"
# committed files of each kind the decoder knows: latent, latent + VQ labels, distributional,
# pixels; their CPU images are the reference a decode on any machine must reproduce
FILES = ("tests/fixtures/golden_v3.ddz",
         "benchmarks/cache/curve/points/latent-dm+vq-83e7026bdf1c.ddz",
         "benchmarks/cache/curve/points/distribution-dm+vq-b01937d9da27.ddz",
         "benchmarks/cache/curve/points/pixels-91179f262c96.ddz")
HEADLINE = "distribution-dm+vq-b01937d9da27.ddz"
GPU_DATA = ROOT / ".gpu-data" / "tiny10"  # ignored; carried to the device machine
TINY_BLOCK = dict(param="latent", loss="dm", target_bpc=98_304, fit_iterations=800,
                  iterations=150, phase2_budget=300, batch_real=32)  # tiny_all's settings
HEADING = "## GPU check"
RUNS = {"pixel DM, IPC 10": dict(param="pixels", loss="dm", ipc=10, batch_real=256),
        "latent DM, 10 images per class": dict(param="latent", loss="dm", spc=10,
                                               fit_iterations=20, fit_candidates=1,
                                               batch_real=256)}


def image_digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()


def decode_step(device: str) -> dict:
    """Each committed file decoded on this CPU against its recorded digest, and synthesised on
    `device` against the CPU's images."""
    from ddcodec.bitstream.ddz import decode

    recorded = json.loads(DIGESTS.read_text())
    files = []
    for name in FILES:
        data = (ROOT / name).read_bytes()
        started = time.perf_counter()
        cpu = decode(data, bits=False).images
        cpu_s = time.perf_counter() - started
        started = time.perf_counter()
        other = decode(data, bits=False, device=device).images
        other_s = time.perf_counter() - started
        gap = (cpu.int() - other.int()).abs()
        files.append({"file": name, "images": int(cpu.shape[0]),
                      "cpu_identical_to_record": image_digest(cpu) == recorded[name],
                      "device_subpixels_off": int((gap > 0).sum()),
                      "device_max_levels_off": int(gap.max()) if gap.numel() else 0,
                      "subpixels": int(gap.numel()), "cpu_s": cpu_s, "device_s": other_s})
    return {"files": files}


def seconds_per_iteration(settings: dict, device: str, counts: tuple[int, int]) -> float:
    """(time to `counts[1]` - time to `counts[0]`) / their difference: setup and phase 1, the
    same at both counts (same seed), cancel. The data is loaded and the device woken by an
    untimed run first, so neither lands in the first count's time."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        api.distill("cifar10-subset", Path(tmp) / "warm.pt", device=device, iterations=1,
                    seed=0, force=True, **settings)
        for n in counts:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            api.distill("cifar10-subset", Path(tmp) / f"{n}.pt", device=device, iterations=n,
                        seed=0, force=True, **settings)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    return (times[1] - times[0]) / (counts[1] - counts[0])


def iteration_step(device: str, quick: bool) -> dict:
    rows = []
    for name, settings in RUNS.items():
        settings = {**settings, "batch_real": 8} if quick else settings
        cpu = seconds_per_iteration(settings, "cpu", (1, 2) if quick else (2, 6))
        other = seconds_per_iteration(settings, device, (1, 2) if quick else (5, 45))
        rows.append({"run": name, "cpu_s": cpu, "device_s": other,
                     "speedup": cpu / other if other > 0 else None})
    return {"rows": rows}


def headline_step(device: str, quick: bool) -> dict:
    epochs, runs = (2, 1) if quick else (1000, 5)
    report = api.measure(POINTS / HEADLINE, epochs=epochs, runs=runs, seed=0, device=device)
    curve = json.loads((ROOT / "docs" / "benchmarks" / "curve.json").read_text())
    short = next(p for p in curve["points"]
                 if p.get("file") == HEADLINE and p["series"] == "distribution-dm+vq")
    return {"file": HEADLINE, "bpc": report["bpc"], "epochs": epochs, "runs": runs,
            "accuracy_mean": report["accuracy_mean_percent"],
            "accuracy_std": report["accuracy_std_percent"], "seconds": report["seconds"],
            "cpu_short_accuracy": short["accuracy_mean"],
            "cpu_protocol": curve["protocol"]}


def prepare() -> Path:
    """Copy the first 10 Tiny-ImageNet classes (train and val, about 10 MB) into .gpu-data/,
    which a device run carries (the data beside the checkout does not travel)."""
    import shutil

    names = [line.split("\t")[0] for line in (TINY / "classes.tsv").read_text().splitlines()
             if line.strip()][:10]
    for split in ("train", "val"):
        for name in names:
            target = GPU_DATA / split / name
            if not target.is_dir():
                shutil.copytree(TINY / split / name, target)
    return GPU_DATA


def tiny_block_step(device: str, quick: bool) -> dict:
    """One block of 10 Tiny classes at real settings on `device`, beside the CPU's per-block
    seconds per class from benchmarks/tiny_all.py's record."""
    if not GPU_DATA.is_dir():
        return {"skipped": "no .gpu-data/tiny10 (python -m benchmarks.gpu_check --prepare)"}
    from ddcodec import api

    settings = {**TINY_BLOCK, **(dict(fit_iterations=8, iterations=2, phase2_budget=None,
                                      batch_real=4, target_bpc=None) if quick else {})}
    settings = {k: v for k, v in settings.items() if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        made = api.distill(f"imagefolder:{GPU_DATA}", Path(tmp) / "block.pt", device=device,
                           seed=0, force=True, **settings)
        seconds = time.perf_counter() - started
    record = ROOT / "docs" / "benchmarks" / "tiny_all.json"
    cpu = median_whole_block_seconds(json.loads(record.read_text())) if record.is_file() else None
    rate = made.provenance.get("rate_control", {})
    return {"classes": 10, "seconds": seconds, "seconds_per_class": seconds / 10,
            "cpu_seconds_per_class": cpu, "bpc": rate.get("achieved_bpc"),
            "phase2_iterations": rate.get("phase2_iterations"), "settings": settings}


def tests_step(device: str) -> dict:
    if device != "cuda":
        return {"skipped": "no CUDA device: tests/gpu runs only on one"}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/gpu"], cwd=ROOT, capture_output=True, text=True, timeout=150)
    return {"returncode": out.returncode, "summary": out.stdout.strip().splitlines()[-1:],
            "seconds": time.perf_counter() - started}


def env_step(device: str) -> dict:
    return {"date": str(dt.date.today()), "version": __version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
            "machine": platform.machine(), "cpu_threads": torch.get_num_threads()}


def run_steps(out: Path, device: str, quick: bool) -> None:
    steps = {"env": lambda: env_step(device), "tests": lambda: tests_step(device),
             "decode": lambda: decode_step(device),
             "iteration": lambda: iteration_step(device, quick),
             "headline": lambda: headline_step(device, quick),
             "tiny_block": lambda: tiny_block_step(device, quick)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")  # this run's lines only
    for name, step in steps.items():
        started = time.perf_counter()
        try:
            row = {"step": name, **step()}
        except Exception as exc:  # a failed step is a finding; the next steps still run
            row = {"step": name, "error": f"{type(exc).__name__}: {exc}"}
        row["step_s"] = time.perf_counter() - started
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def section(rows: dict) -> str:
    env = rows["env"]
    lines = [HEADING, "", f"`bash benchmarks/gpu_check.sh` ({env['date']}, {env['device']}, "
             f"torch {env['torch']}, {env['cpu_threads']} CPU threads); raw: "
             "docs/benchmarks/gpu_check.json. Bundled CIFAR-10 subset and committed files.", ""]
    t = rows.get("tests", {})
    lines.append(f"* CUDA tests (`pytest tests/gpu`): {' '.join(t.get('summary', [])) or t}")
    for f in rows.get("decode", {}).get("files", []):
        same = "identical to" if f["cpu_identical_to_record"] else "**differs from**"
        lines.append(f"* `{f['file']}`: CPU decode {same} "
                     f"the recorded images; GPU synthesis {f['device_subpixels_off']:,} of "
                     f"{f['subpixels']:,} subpixels off, at most {f['device_max_levels_off']} "
                     "level(s)")
    if "iteration" in rows:
        lines += ["", "| run | CPU s/iteration | GPU s/iteration | GPU speed-up |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['run']} | {r['cpu_s']:.3f} | {r['device_s']:.4f} | "
                  f"{r['speedup']:.1f}x |" for r in rows["iteration"]["rows"]]
    h = rows.get("headline")
    if h and "accuracy_mean" in h:
        lines += ["", f"Headline point `{h['file']}` ({h['bpc']:,.0f} bits per class): "
                  f"**{h['accuracy_mean']:.2f} ± {h['accuracy_std']:.2f} %** at {h['epochs']} "
                  f"epochs x {h['runs']} on the GPU ({h['seconds']:.0f} s), beside "
                  f"{h['cpu_short_accuracy']:.2f} % under the curve's CPU protocol "
                  f"({h['cpu_protocol']['epochs']} epochs x {h['cpu_protocol']['runs']})."]
    b = rows.get("tiny_block")
    if b and "seconds" in b:
        cpu = b.get("cpu_seconds_per_class")
        lines += ["", f"Tiny-ImageNet, one block of 10 classes at benchmarks/tiny_all.py's "
                  f"settings (hard labels): {b['seconds']:.0f} s on the GPU, "
                  f"{b['seconds_per_class']:.1f} s per class"
                  + (f", against {cpu:.0f} s per class per CPU process in tiny_all's blocks "
                     f"({cpu / b['seconds_per_class']:.0f}x)." if cpu else
                     " (no CPU per-block record yet).")]
    missing = [s for s in ("env", "tests", "decode", "iteration", "headline", "tiny_block")
               if s not in rows]
    if missing:
        lines += ["", "Cut short before: " + ", ".join(missing) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--out-dir", default="runs/gpu-check")
    parser.add_argument("--prepare", action="store_true",
                        help="Copy 10 Tiny-ImageNet classes into .gpu-data/ for the device run.")
    parser.add_argument("--record-digests", action="store_true",
                        help="Write benchmarks/decode_digests.json from this CPU's decode.")
    parser.add_argument("--report", metavar="JSONL",
                        help="Write the BENCHMARKS.md section from a run's gpu_check.jsonl.")
    args = parser.parse_args()
    if args.prepare:
        print(f"copied into {prepare()}: carry .gpu-data to the device machine")
        return
    if args.record_digests:
        from ddcodec.bitstream.ddz import decode

        DIGESTS.write_text(json.dumps({name: image_digest(decode(
            (ROOT / name).read_bytes(), bits=False).images) for name in FILES}, indent=1) + "\n")
        return
    if args.report:
        rows = {}
        for line in Path(args.report).read_text().splitlines():
            row = json.loads(line)
            rows[row["step"]] = row
        args.quick = False
        publish(args, "gpu_check", HEADING, rows, section(rows))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch (--device cpu checks the script)")
    os.environ.setdefault("DDCODEC_LOG_EVERY", "600")
    run_steps(Path(args.out_dir) / "gpu_check.jsonl", args.device, args.quick)


if __name__ == "__main__":
    run(main)
