"""What every benchmark script shares: one parser (--quick, --threads, --out, --report-only),
the cache of finished points, the data folders, and the publisher that replaces one '## '
section of docs/BENCHMARKS.md in place and writes its JSON record beside it. Scripts share code
through this module, never by importing each other."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository

# Finished benchmark points (JSON records and the small .ddz files they measured) and the
# teacher they share live in the repository, not in an ignored folder: the long runs take more
# than one session, and a point computed once must survive a fresh checkout so the next run
# resumes instead of starting over. Intermediate set files (*.pt) stay ignored.
CACHE = ROOT / "benchmarks" / "cache"
TEACHER = CACHE / "teacher.pt"
# The shared real data beside the checkout (nothing is downloaded at run time).
TINY = ROOT.parent / "shared" / "data" / "tiny-imagenet-200"
CIFAR10_ZIP = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.zip"
CIFAR10_DIR = CACHE / "cifar10-jpeg"  # the zip, unzipped once (ignored)

HEADER = ("# Benchmarks\n\nEvery figure here is produced by a script in `benchmarks/` and dated; "
          "each section says which script and how long it took.\n\n")


def spec_key(spec) -> str:
    """A finished point's key: the hash of everything that determines it (its settings, the
    data, the teacher's digest...), so a changed setting is a new point, never a stale one."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def cached_row(path: Path | None, spec, compute):
    """The point cache: the row stored at `path` (a JSON {spec, row}) when it is there, else
    `compute()`'s row, stored there (`compute` None: None when it is not cached; `path` None:
    always computed, never stored, as with --quick)."""
    import json

    if path is not None and path.is_file():
        return json.loads(path.read_text())["row"]
    if compute is None:
        return None
    row = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"spec": spec, "row": row}, indent=1))
    return row


def measure_set(path: Path, epochs: int, runs: int, checkpoint: Path | None = None,
                **options) -> dict:
    """A set file measured under a protocol (seed 0, CPU; `options`: measure's others, such as
    label_hard_weight): the row the scripts keep. Its progress is kept in `checkpoint`, so a
    stopped measurement of hours goes on from it."""
    from ddcodec import api

    report = api.measure(path, epochs=epochs, runs=runs, seed=0, device="cpu",
                         checkpoint=checkpoint, **options)
    row = {"accuracy_mean": report["accuracy_mean_percent"],
           "accuracy_std": report["accuracy_std_percent"], "bpc": report["bpc"],
           "seconds": report["seconds"], "images_per_class": report["images_per_class"]}
    if "labels" in report:
        row["labels"] = report["labels"]
    return row


def measured_file(path: Path, epochs: int, runs: int, cache: Path, compute: bool,
                  name: str = "", say=None, **options) -> dict:
    """A set file measured under a protocol (seed 0, CPU; `options`: measure's others, such as
    label_hard_weight), cached in `cache` per file content and protocol, so a file is never
    measured twice under one protocol. {} when the file is missing, or when the measurement is
    not cached and `compute` is False. `say(line)` is told when a measurement starts."""
    import hashlib

    if not path.is_file():
        return {}
    spec = {"set": hashlib.sha256(path.read_bytes()).hexdigest()[:12], "epochs": epochs,
            "runs": runs, "seed": 0, **options}  # no options: the keys of earlier rows

    prefix = f"{name}-" if name else ""
    row_path = cache / f"{prefix}{spec_key(spec)}.json"

    def measure() -> dict:
        resuming = row_path.with_suffix(".ckpt").is_file()
        if say:
            say(f"measuring {name or path.name} ({epochs} epochs x {runs})"
                + (", going on from its checkpoint" if resuming else ""))
        return measure_set(path, epochs, runs, row_path.with_suffix(".ckpt"), **options)

    return cached_row(row_path, spec, measure if compute else None) or {}


def replace_section(out: Path, heading: str, section: str) -> None:
    """Put `section` (which starts with `heading`) in place of the old one, or append it."""
    section = section.rstrip("\n") + "\n\n"
    text = out.read_text() if out.exists() else HEADER
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def portable(value, root: Path):
    """Strip machine-specific paths from a record: paths inside the repository become relative,
    other absolute paths (temporary files) keep only their name."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and re.match(r"[a-z]+:/[^/]", value):  # a data spec's path
        scheme, path = value.split(":", 1)
        return f"{scheme}:{portable(path, root)}"
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        try:
            return str(path.relative_to(root))
        except ValueError:
            return path.name
    return value


def write_record(out: Path, name: str, record: dict) -> Path:
    """Write docs/benchmarks/NAME.json beside the report, without machine-specific paths."""
    import json

    path = out.parent / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(portable(record, ROOT), indent=1))
    return path


def read_record(out: Path, name: str) -> dict:
    """docs/benchmarks/NAME.json beside the report, for a script that rewrites its section from
    the last record; one line when there is none yet."""
    import json

    from ddcodec.errors import DDCodecError

    path = out.parent / "benchmarks" / f"{name}.json"
    if not path.is_file():
        raise DDCodecError(f"no record {path} to report from: run the benchmark in full "
                           "once (or pass the report's --out)")
    return json.loads(path.read_text())


# Curve series that repeat other points: the best-quality envelopes of the packed baselines and
# the 8-bit twin of each vanilla float32 set (the same distillation, counted another way).
REPEATED_SERIES = ("jpeg", "webp", "pixels-8bit")


def curve_point_seconds(points: list[dict]) -> tuple[float, int, int]:
    """(seconds, timed, unique): the recorded computing time of the curve's points, each point
    once, and how many of the unique points carry a time. Their sum is what the curve costs
    from scratch, whatever the cache held when it last ran."""
    unique = [p for p in points if p["series"] not in REPEATED_SERIES]
    timed = [p["seconds"] for p in unique if p.get("seconds") is not None]
    return sum(timed), len(timed), len(unique)


def rate_control_misses(points: list[dict]) -> list[str]:
    """A line per point whose rate control ended outside its tolerance: such a point is not at
    its budget, so a comparison "at equal bits" must say so."""
    return [f"* {p['series']} asked for {p['budget_bpc']:,.0f} bits per class and landed on "
            f"{p['bpc']:,.0f} ({p['bpc'] / p['budget_bpc'] - 1:+.1%}): rate control missed; "
            "the point is shown at the bits of its real file."
            for p in points if p.get("within_tolerance") is False and p.get("budget_bpc")]


def run(main) -> None:
    """A script's entry: a problem the user can act on, or a stop (Ctrl-C; a scheduler's SIGTERM
    during a distillation), ends in one line as the CLI's do. What was done is in the cache."""
    from ddcodec.devices import reuse_freed_memory
    from ddcodec.errors import DDCodecError, Interrupted

    reuse_freed_memory()  # as the command line does: the same bits, a third faster on CPU
    name = Path(sys.argv[0]).stem
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(_stopped(name, "interrupted", 130))
    except DDCodecError as exc:
        sys.exit(_stopped(name, str(exc), 130 if isinstance(exc, Interrupted) else 1))


def _stopped(name: str, message: str, status: int) -> int:
    print(f"{name}: {message}" + ("; the same command goes on from the cache" * (status == 130)),
          file=sys.stderr)
    return status


def benchmark_parser(doc: str, root: Path = ROOT, threads: bool = True,
                     report_only: bool = False, publishes: bool = True):
    """The options every benchmark script shares: --quick (tiny settings, print only),
    --threads (torch threads), --out (the report it rewrites) and, for scripts that cache their
    points, --report-only (rewrite the section from the cache, compute nothing). A script that
    only reads (`publishes=False`) has neither --quick nor --out: they would do nothing."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if publishes:
        parser.add_argument("--quick", action="store_true",
                            help="Tiny settings, to check the script; prints, writes nothing.")
    if threads:
        parser.add_argument("--threads", type=int, default=2)
    if publishes:
        parser.add_argument("--out", default=str(root / "docs" / "BENCHMARKS.md"))
    if report_only:
        parser.add_argument("--report-only", action="store_true",
                            help="Rewrite the section from the cached points; compute nothing.")
    return parser


def unzip_cifar10(root: Path = CIFAR10_DIR) -> tuple[Path, float | None]:
    """The CIFAR-10 (JPEG q75 release) ImageFolder root (train/, test/), unzipped once; the
    seconds it took (None: it was there)."""
    import time
    import zipfile

    if (root / "train").is_dir() and (root / "test").is_dir():
        return root, None
    started = time.perf_counter()
    with zipfile.ZipFile(CIFAR10_ZIP) as archive:
        archive.extractall(root)
    return root, time.perf_counter() - started


def cifar10_jpeg(root: Path = CIFAR10_DIR) -> str:
    """The `--data` spec of the CIFAR-10 release as a user has it (`imagefolder:DIR`), named
    relative to the repository when inside it, so no record holds this machine's path."""
    root, _ = unzip_cifar10(root.resolve())
    return f"imagefolder:{root.relative_to(ROOT) if root.is_relative_to(ROOT) else root}"


def class_subset(classes: int, folder: Path) -> Path:
    """An ImageFolder of the first `classes` Tiny-ImageNet classes (symbolic links to the shared
    data, train and val), so the loader sees only them."""
    names = [line.split("\t")[0] for line in (TINY / "classes.tsv").read_text().splitlines()
             if line.strip()][:classes]
    for split in ("train", "val"):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            link = folder / split / name
            if not link.exists():
                os.symlink(TINY / split / name, link)
    return folder


def publish(args, name: str, heading: str, record: dict, text: str) -> None:
    """Print a benchmark's section; unless --quick, write its JSON record and put the section
    in the report."""
    print(text)
    if args.quick:
        return
    write_record(Path(args.out), name, record)
    replace_section(Path(args.out), heading, text)


# The shortened CPU protocol: 300 epochs (the field: 1000), 2 networks per point (the field: 5).
EPOCHS, RUNS = 300, 2
TEACHER_EPOCHS = 15  # as benchmarks/labels.py's teacher
LABELLED_RANDOM = ("webp", 25)  # the packed baseline that reached the most at every budget
IPC50_ITERATIONS = 100  # pixel DM at IPC 50 costs ~2.5 s per iteration on 2 cores
# Per loss: budgets (bits per class) and latent options. GM's reference inner loop (50 epochs of
# network training per update at 10 images per class) and MTT's 20 unrolled steps over every
# image are cut to what 2 cores allow; the losses are otherwise the references'.
PLAN = {
    "dm": ((6_000, 12_000, 24_576), {}),
    "gm": ((6_000, 12_000), {"outer_loop": 10, "inner_loop": 5, "iterations": 80}),
    "tm": ((6_000, 12_000), {"syn_steps": 10, "expert_epochs": 2, "max_start_epoch": 6,
                              "batch_syn": 64, "iterations": 40}),
}


def curve_configs(args) -> list:
    """The curve's plan: one CurveConfig per loss (DM first, with the baselines), and IPC 50
    last. benchmarks/curve.py measures it; benchmarks/warmup.py reuses its DM point."""
    from ddcodec.reports.curve import CurveConfig
    from ddcodec.distillation import DistillConfig
    from ddcodec.training.trainer import EvalConfig

    common = dict(eval=EvalConfig(epochs=args.epochs), runs=args.runs,
                  ceiling_epochs=1 if args.quick else CurveConfig().ceiling_epochs,
                  pixel_iterations=args.pixel_iterations, qualities=args.qualities,
                  pixel_ipcs=tuple(i for i in args.pixel_ipcs if i < 50))
    out = []
    for loss, (budgets, options) in PLAN.items():
        if loss == "tm" and not args.experts:
            print("no --experts: skipping latent-tm", file=sys.stderr)
            continue
        if args.quick:
            budgets = budgets[:1]
        latent = DistillConfig.of(**{"param": "latent", "iterations": args.iterations,
                                     "fit_iterations": args.fit_iterations,
                                     "batch_real": args.batch_real, "experts": args.experts,
                                     **options})
        # every config names the teacher, so each table keeps the labelled points; only DM's
        # computes them
        labelled = dict(teacher=args.teacher,
                        label_rungs=("float16", "vq") if loss == "dm" else (),
                        labelled_random=(LABELLED_RANDOM[0], min(args.qualities)))
        out.append(CurveConfig(budgets=budgets, losses=(loss,), distill=latent,
                               baselines=loss == "dm", **labelled, **common,
                               distribution_losses=("dm",) if loss == "dm" else ()))
    if 50 in args.pixel_ipcs:  # the slowest point last, with fewer DM iterations
        out.append(CurveConfig(**{**out[0].__dict__, "pixel_ipcs": (50,),
                                  "pixel_iterations": IPC50_ITERATIONS}))
    return out


def whole_blocks(record: dict) -> list[dict]:
    """benchmarks/tiny_all.py's blocks run whole: a block resumed part-way timed only its last
    part, so its seconds say nothing of a block's."""
    return [b for b in record.get("blocks", []) if not b.get("resumed_from_step")]


def median_whole_block_seconds(record: dict) -> float | None:
    """Seconds per class per process: the median over the blocks run whole; None before any."""
    import statistics

    whole = [b["seconds_per_class"] for b in whole_blocks(record)]
    return statistics.median(whole) if whole else None


def spread(record: dict) -> str:
    """The range of seconds per class over the blocks run whole: the shared machine's load
    moves them."""
    times = [b["seconds_per_class"] for b in whole_blocks(record)]
    return (f"; {min(times):.0f} to {max(times):.0f} s on a shared machine whose load varied"
            if len(times) > 1 else "")


# Tiny-ImageNet-200, all classes at real settings (benchmarks/tiny_all.py); benchmarks/
# block_memory.py runs the same command on one block.
TINY_BUDGET = 98_304  # one 8-bit 64 x 64 image per class
TINY_BLOCKS, TINY_NPROC = 20, 2  # blocks of 10 classes, 2 processes (one thread each)
# the settings the 10-class Tiny runs used (benchmarks/distribution.py), with the phase-2 cap,
# one phase-1 candidate per decoder (five took a block's peak memory over 8 GB,
# benchmarks/block_memory.py, and buy no accuracy, benchmarks/warmup.py) and lambda started at
# 1e-4: the rate term is bits per pixel of the whole set, so at 200 classes of 64 x 64 DM's
# default 0.1 (set on 10 classes of 32 x 32) weighs the utility about 80 times more. Block 19
# started at 0.1 overshot its first probe by 38 % and missed at +9.7 % after every round
TINY_SETTINGS = {"fit_iterations": 800, "iterations": 150, "phase2_budget": 300,
                 "batch_real": 32, "fit_candidates": 1, "lmbda": 1e-4}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tiny_teacher(data: str, path: Path, epochs: int, train: bool) -> dict:
    """The Tiny teacher's row (trained first when `train`; {} when it is not there), resumed
    from its per-epoch checkpoint after an interruption."""
    from ddcodec import api
    from ddcodec.labels.teacher import load_teacher
    from ddcodec.spent import SpentClock

    if not path.is_file():
        if not train:
            return {}
        # hours on 2 cores: saved every epoch, so a session's end loses at most the one running
        resume = Path(f"{path}.ckpt").is_file()
        # the seconds of the saved epochs
        clock = SpentClock.start(path.with_suffix(".seconds-so-far"), resume)
        say(f"teacher: {epochs} epochs on the training images"
            + (" (resuming from its checkpoint)" if resume else ""))

        def saved(epoch: int) -> None:
            clock.save()
            say(f"teacher: epoch {epoch + 1} of {epochs} saved")

        api.train_teacher(data, path, device="cpu", epochs=epochs, force=True,
                          checkpoint_every=1, resume=resume, on_epoch=saved)
        path.with_suffix(".seconds").write_text(f"{clock.total():.0f}\n")
        clock.clear()
    info = load_teacher(path).info
    seconds = path.with_suffix(".seconds")
    return {"seconds": float(seconds.read_text()) if seconds.is_file() else None,
            "epochs": info["config"]["epochs"], "epoch": info["epoch"],
            "train_images": info["train_images"], "held_out_images": info["held_out_images"],
            "chosen_holdout_accuracy": info["chosen_holdout_accuracy"],
            "test_accuracy": info["test_accuracy"]}


def tiny_distill_command(data: str, teacher: Path, out: Path, settings: dict, blocks: int,
                         nproc: int, budget: float) -> list[str]:
    """The command a user runs: the same one resumes a stopped run."""
    options = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    return [sys.executable, "-m", "ddcodec", "distill", "--data", data, "--param", "latent",
            "--loss", "dm", "--target-bpc", str(budget), "--labels", "vq", "--teacher",
            str(teacher), *options, "--blocks", str(blocks), "--nproc", str(nproc),
            "--checkpoint-every", "25", "--device", "cpu", "-o", str(out)]
