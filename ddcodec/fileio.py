"""Atomic output files: a failed or interrupted run never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from ddcodec.errors import DDCodecError


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to overwrite an existing output unless forced, before any expensive work starts."""
    path = Path(path)
    if path.exists() and not force:
        raise DDCodecError(f"{path} already exists; use -f/--force to overwrite it")
    if path.is_dir():
        raise DDCodecError(f"{path} is a directory, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DDCodecError(f"cannot write {path}: directory {parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # as a plainly created file would be
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_tagged(path: Path, tag: str, what: str) -> dict:
    """A torch file of ddcodec's own (weights_only) whose "format" entry is `tag`; one clear
    line for anything else."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DDCodecError(f"{path} is not a readable {what} (damaged, or not made by "
                           "ddcodec)") from exc
    if not isinstance(state, dict) or state.get("format") != tag:
        raise DDCodecError(f"{path} is not a ddcodec {what}")
    return state



def refuse_expanded(obj, where: str) -> None:
    """Refuse tensors that announce more values than their storage holds (a stride-0 expand or
    overlapping strides): a file of kilobytes could otherwise declare a set of gigabytes that
    the first copy materialises. Walks dicts, lists and tuples."""
    import torch

    if isinstance(obj, torch.Tensor):
        needed = obj.numel() * obj.element_size()
        stored = obj.untyped_storage().nbytes()
        if needed > stored:
            raise DDCodecError(f"{where} declares {obj.numel():,} values over a storage of "
                               f"{stored:,} bytes (an expanded or overlapping view): save it "
                               "with .contiguous() first")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            refuse_expanded(value, f"{where} '{key}'")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            refuse_expanded(value, f"{where}[{i}]")
