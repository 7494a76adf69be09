"""Encode/decode speed of two versions of ddcodec, side by side on this machine.

Checks out `--before REV` into a temporary git worktree, makes a latent set (10 classes x 10
samples, phase 1 only) and a lossless pixel set (10 real images per class) with the older code
(whose set files both versions read), then times encode and decode of each set in alternating
fresh processes, one thread each: old, new, old, new, ... Each process reports the median of
`--repeats` runs; the table gives the median over `--rounds` processes. Alternating processes is
as close to "side by side in one process" as two versions of one package allow.

    python -m benchmarks.codec_ab --before 04e44e8        # about 2 minutes on 2 cores
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import ROOT, benchmark_parser


MAKE_SETS = """
from ddcodec import api
api.distill("cifar10-subset", "{lat}", force=True, device="cpu", param="latent", spc=10,
            fit_iterations=20, iterations=0, fit_candidates=1)
api.distill("cifar10-subset", "{pix}", force=True, device="cpu", loss="none", ipc=10)
"""

TIME_ONE = """
import statistics, sys, time, torch
torch.set_num_threads(1)
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.sets.setfile import load_set
s = load_set(sys.argv[1])
data, _ = encode_set(s)
enc, dec = [], []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); encode_set(s); enc.append(time.perf_counter() - t)
    t = time.perf_counter(); decode_bytes(data); dec.append(time.perf_counter() - t)
print(statistics.median(enc), statistics.median(dec))
"""


def run(code: str, source: Path, *args: str) -> str:
    """Run `code` with the ddcodec of `source` (from a neutral folder: `python -c` puts the
    working directory first on sys.path, which would shadow PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    check = ("import ddcodec, sys\n"
             "assert ddcodec.__file__.startswith(sys.argv[-1]), ddcodec.__file__\n")
    out = subprocess.run([sys.executable, "-c", check + code, *args, str(source)], env=env,
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return out.stdout.strip()


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--before", required=True, help="the older commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.before],
                       cwd=ROOT, check=True)
        try:
            sets = {"latent": Path(tmp) / "latent.pt", "pixels": Path(tmp) / "pixels.pt"}
            run(MAKE_SETS.format(lat=sets["latent"], pix=sets["pixels"]), old)
            times = {(v, k): [] for v in ("old", "new") for k in sets}
            for _ in range(args.rounds):
                for kind, path in sets.items():
                    for version, source in (("old", old), ("new", ROOT)):
                        enc, dec = map(float, run(TIME_ONE, source, str(path),
                                                  str(args.repeats)).split())
                        times[(version, kind)].append((enc, dec))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    print(f"{'set':8s} {'step':7s} {'old (s)':>9s} {'new (s)':>9s} {'change':>8s}")
    for kind in sets:
        for step, column in (("encode", 0), ("decode", 1)):
            a = statistics.median(t[column] for t in times[("old", kind)])
            b = statistics.median(t[column] for t in times[("new", kind)])
            print(f"{kind:8s} {step:7s} {a:9.4f} {b:9.4f} {b / a - 1:+8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
