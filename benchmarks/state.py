"""Where every stopped benchmark run stands, read from the state it committed: one line per
checkpoint under benchmarks/cache (a measurement's finished networks and the running one's
epoch, a distillation's phase and step, a pixel run's iterations, a teacher's epochs, and the
hours spent so far where the run keeps them), and one per folder of block parts (how many
blocks are finished).

A fresh checkout has no logs; this is what tells the next session which runs to start again and
how far each has to go. It reads files only: nothing is computed or written.

    python -m benchmarks.state
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import CACHE, ROOT, benchmark_parser


def _measure(state: dict) -> str:
    done = ", ".join(f"{100 * acc:.2f} %" for _, acc in state["done"])
    running = state.get("current")
    epochs = (running or {}).get("trainer", {}).get("epochs_done")
    return (f"measuring: {len(state['done'])} network(s) done" + (f" ({done})" if done else "")
            + (f"; network {len(state['done']) + 1} at epoch {epochs}" if epochs else "")
            + f"; {state['seconds'] / 3600:.1f} h so far")


def _latent(state: dict) -> str:
    return f"latent distillation: phase {state['phase']}, {state['stage']}, step {state['step']}"


def _pixels(state: dict) -> str:
    return f"pixel distillation: {int(state['iterations']):,} iterations done"


def _teacher(state: dict) -> str:
    return f"teacher: {int(state['trainer']['epochs_done'])} epoch(s) done"


# a checkpoint's "format" tag -> what its progress reads as
DESCRIBE: dict[str, Callable[[dict], str]] = {
    "ddcodec-measure-checkpoint": _measure,
    "ddcodec-checkpoint": _latent,
    "ddcodec-pixel-checkpoint": _pixels,
    "ddcodec-teacher-checkpoint": _teacher,
}


def describe(path: Path) -> str:
    """One line of progress for the checkpoint at `path` (what it is when it cannot be read)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged file says so; the next run refuses it in its own line
        return "unreadable (damaged, or not ddcodec's)"
    tag = state.get("format") if isinstance(state, dict) else None
    if tag not in DESCRIBE:
        return f"unknown checkpoint ({tag!r})"
    try:
        return DESCRIBE[tag](state)
    except (KeyError, TypeError, ValueError):
        return f"a {tag} of an older layout"


def blocks_done(parts: Path) -> str:
    """A blocked distillation's folder of parts: how many of its blocks are finished."""
    names = sorted(p.stem for p in parts.glob("block-*-of-*.pt"))
    totals = sorted({int(name.rsplit("-", 1)[1]) for name in names})
    if not totals:
        return "blocked distillation: no block finished yet"
    if len(totals) > 1:  # parts left by runs of different block counts in one folder
        return (f"blocked distillation: {len(names)} parts of runs in "
                f"{' and '.join(map(str, totals))} blocks")
    return f"blocked distillation: {len(names)} of {totals[0]} blocks finished"


def spent(checkpoint: Path) -> str:
    """The hours the run's saved work took over every process, from the seconds file kept
    beside its checkpoint (`X.ckpt` or `X.pt.ckpt` -> `X.seconds-so-far`); '' without one."""
    from ddcodec.spent import saved_seconds

    seconds = saved_seconds(checkpoint.with_suffix("").with_suffix(".seconds-so-far"))
    return "" if seconds is None else f"; {seconds / 3600:.1f} h so far"


def rows(cache: Path) -> list[tuple[str, str]]:
    """(checkpoint or folder of block parts, relative to the repository, its progress), in path
    order."""
    found = [(p, describe(p) + spent(p)) for p in cache.rglob("*.ckpt")]
    found += [(p, blocks_done(p)) for p in cache.rglob("*.parts") if p.is_dir()]
    return [(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p), line)
            for p, line in sorted(found)]


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False, publishes=False)
    parser.add_argument("--cache", default=str(CACHE), help="The folder to read [default: the "
                        "benchmarks' cache].")
    args = parser.parse_args()
    cache = Path(args.cache).resolve()
    if not cache.is_dir():
        sys.exit(f"state: {args.cache} is not a folder")
    found = rows(cache)
    if not found:
        print("no run in progress: no checkpoint under the cache")
        return
    width = max(len(name) for name, _ in found)
    for name, progress in found:
        print(f"{name:<{width}}  {progress}")


if __name__ == "__main__":
    sys.exit(main())
