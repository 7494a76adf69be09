"""Reading ImageFolder trees at scale: decoded in a thread pool, with progress, and cached.

Tiny-ImageNet-200 is 50,000 JPEGs; decoding them costs tens of seconds, every run. The decoded
arrays are cached in one file per tree, keyed by everything that determines them: the format
version, the requested size, and every file's path (relative to the tree), size and
modification time, with its label. A changed, added or removed file gives another key, so a
stale cache is never read. The cache lives in `$DDCODEC_CACHE`, else `$XDG_CACHE_HOME/ddcodec`,
else `~/.cache/ddcodec`; deleting it is always safe. A cache that cannot be written (a read-only
home) only costs the speed-up.

A cached tree is memory-mapped, not read: a process's resident memory holds only the pages it
touches, and distillation touches only its classes' images (every real batch is a per-class
gather). So a process distilling a block of 10 classes out of 200 (or 1,000) does not hold the
whole training split, and processes on one machine share the pages they read through the page
cache. The first load of a tree decodes all of it once (its peak holds the split), writes the
cache and then maps it too.

Progress: while a tree is decoded, (images done, images in all) goes to the callback that
`ddcodec.events.loading_progress` set.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ddcodec.events import loading_callback
from ddcodec.fileio import atomic_path

CACHE_ENV = "DDCODEC_CACHE"
CACHE_VERSION = 1
WORKERS = 4  # Pillow releases the GIL while it decodes


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ddcodec"


def cache_key(root: Path, files: list[tuple[Path, int]], extra: str) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{extra}".encode())
    for path, label in files:
        stat = path.stat()
        rel = os.path.relpath(path, root)
        digest.update(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}|{label}\n".encode())
    return digest.hexdigest()[:24]


def read_cached(key: str) -> dict | None:
    """The cached arrays, memory-mapped (copy-on-write: a change stays in this process)."""
    path = cache_dir() / f"imagefolder-{key}.pt"
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a damaged cache entry is read afresh (and rewritten)
        return None


def write_cached(key: str, arrays: dict) -> bool:
    """Whether the cache entry was written."""
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"imagefolder-{key}.pt") as tmp:
            torch.save(arrays, tmp)
    except OSError:
        return False  # no cache, only slower next time
    return True


def decode_all(files: list[tuple[Path, int]], decode: Callable[[Path], np.ndarray],
               what: str = "images") -> list[np.ndarray]:
    """decode(path) of every file, in order, on a thread pool, telling progress as it goes."""
    report = loading_callback()
    total, out = len(files), []
    step = max(1, total // 200)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for done, array in enumerate(pool.map(decode, (p for p, _ in files)), start=1):
            out.append(array)
            if report is not None and (done % step == 0 or done == total):
                report(done, total)
    return out
