"""Shared by the benchmark scripts: replace one '## ' section of docs/BENCHMARKS.md in place,
write the JSON records beside it, and total the curve's recorded computing times."""

from __future__ import annotations

import re
from pathlib import Path

# Finished benchmark points (JSON records and the small .ddz files they measured) and the
# teacher they share live in the repository, not in an ignored folder: the long runs take more
# than one session, and a point computed once must survive a fresh checkout so the next run
# resumes instead of starting over. Intermediate set files (*.pt) stay ignored.
CACHE = Path(__file__).resolve().parent / "cache"
TEACHER = CACHE / "teacher.pt"
# The shared real data beside the checkout (nothing is downloaded at run time).
TINY = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiny-imagenet-200"

HEADER = ("# Benchmarks\n\nEvery figure here is produced by a script in `benchmarks/` and dated; "
          "each section says which script and how long it took.\n\n")


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

    root = Path(__file__).resolve().parents[1]
    path = out.parent / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(portable(record, root), indent=1))
    return path


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


def benchmark_parser(doc: str, root: Path, threads: bool = True):
    """The options every benchmark script shares: --quick (tiny settings, print only),
    --threads (torch threads) and --out (the report it rewrites)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="Tiny settings, to check the script; prints, writes nothing.")
    if threads:
        parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(root / "docs" / "BENCHMARKS.md"))
    return parser



def publish(args, name: str, heading: str, record: dict, text: str) -> None:
    """Print a benchmark's section; unless --quick, write its JSON record and put the section
    in the report."""
    print(text)
    if args.quick:
        return
    write_record(Path(args.out), name, record)
    replace_section(Path(args.out), heading, text)
