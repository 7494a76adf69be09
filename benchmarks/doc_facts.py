"""Sizes the docs quote that no other benchmark prints, read from files: so that every figure in
docs/ has a script and a raw record behind it.

- the header of every committed .ddz under benchmarks/cache (bytes: fewest, most, files);
- the scales section of the curve's distributional files (bits per class: least, most);
- random real images of the bundled subset (IPC 1 and 10, seed 0) as lossless 8-bit .ddz
  files: bits per class and per subpixel.

    python -m benchmarks.doc_facts      # seconds; writes docs/benchmarks/doc_facts.json
"""

from __future__ import annotations

import datetime as dt
import platform

from benchmarks.harness import CACHE, ROOT, benchmark_parser, publish, run
from ddcodec import __version__

HEADING = "## Sizes quoted in the docs"


def committed_ddz() -> list:
    """The .ddz files git tracks under benchmarks/cache (ignored work files left out)."""
    import subprocess

    out = subprocess.run(["git", "ls-files", "--", str(CACHE.relative_to(ROOT))], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sorted(ROOT / line for line in out.splitlines() if line.endswith(".ddz"))


def main() -> None:
    args = benchmark_parser(__doc__, threads=False).parse_args()
    import ddcodec
    from ddcodec.data.datasets import load_dataset
    from ddcodec.distillation.random_subset import random_real_subset
    from ddcodec.sets.setfile import DistilledSet

    files = committed_ddz()
    infos = {path: ddcodec.info(path) for path in files}
    headers = [i["sections"]["header"] for i in infos.values()]
    scales = [8 * i["sections"]["scales"] / i["num_classes"] for p, i in infos.items()
              if "scales" in i["sections"] and "curve" in p.parts]
    ds = load_dataset("cifar10-subset")
    random_real = []
    for ipc in (1, 10):
        images, labels = random_real_subset(ds, ipc, 0)
        data, _ = ddcodec.encode(DistilledSet(images, labels, list(ds.class_names),
                                              ds.normalization, {"data": "cifar10-subset"}))
        subpixels = images.numel()
        random_real.append({"ipc": ipc, "bpc": 8 * len(data) / ds.num_classes,
                            "bits_per_subpixel": 8 * len(data) / subpixels})
    record = {"date": str(dt.date.today()), "version": __version__,
              "machine": platform.machine(),
              "header_bytes": {"min": min(headers), "max": max(headers), "files": len(headers)},
              "scales_bpc": {"min": min(scales), "max": max(scales), "files": len(scales)},
              "random_real_8bit": random_real}
    publish(args, "doc_facts", HEADING, record, section(record))


def section(record: dict) -> str:
    h, s = record["header_bytes"], record["scales_bpc"]
    lines = [HEADING, "",
             f"`python -m benchmarks.doc_facts` ({record['date']}; raw record "
             "docs/benchmarks/doc_facts.json): sizes read from files, quoted in docs/bpc.md and "
             "docs/distribution.md.", "",
             f"* Header of the {h['files']} committed .ddz files under benchmarks/cache: "
             f"{h['min']} to {h['max']} bytes.",
             f"* Scales section of the curve's {s['files']} distributional files: "
             f"{s['min']:.0f} to {s['max']:.0f} bits per class."]
    for r in record["random_real_8bit"]:
        lines.append(f"* Random real images of the bundled subset, IPC {r['ipc']}, as a lossless "
                     f"8-bit .ddz: {r['bpc']:,.0f} bits per class, "
                     f"{r['bits_per_subpixel']:.2f} bits per subpixel.")
    return "\n".join(lines)


if __name__ == "__main__":
    run(main)
