"""Where a run computes, how, and what it ran on: the device a name asks for, how freed memory
is kept, whether networks are compiled, and the versions, device and threads a report
records."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

import torch

from ddcodec.errors import DDCodecError
from ddcodec.version import __version__


def resolve_device(name: str = "auto") -> torch.device:
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DDCodecError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise DDCodecError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


REUSE_MEMORY_ENV = "DDCODEC_REUSE_MEMORY"  # 0: glibc's own defaults
# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4


def reuse_freed_memory() -> bool:
    """Keep freed memory in the process for the next allocation (glibc; the command line,
    the benchmarks and the tests call it first; DDCODEC_REUSE_MEMORY=0 leaves glibc's
    defaults). By default glibc hands each freed block larger than its mmap threshold (128 KiB,
    adapting up to 32 MiB) back to the kernel, and the next batch's activations fault fresh
    zeroed pages in: on CPU a quarter to a third of a training step went to those faults
    (docs/BENCHMARKS.md, "Execution speed"). The results are the same bit for bit and the peak
    memory is the same, but the process holds its peak until it exits. True when applied."""
    if os.environ.get(REUSE_MEMORY_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; musl's refuses every setting (0)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    largest = 2 ** 31 - 1
    kept = mallopt(M_TRIM_THRESHOLD, largest) == 1  # never trim the heap's free top
    # blocks from the heap, not from mmap: reused when freed (glibc versions that cap the
    # threshold refuse it; then mmap is switched off outright)
    return kept and (mallopt(M_MMAP_THRESHOLD, largest) == 1 or mallopt(M_MMAP_MAX, 0) == 1)


COMPILE_ENV = "DDCODEC_COMPILE"  # set by --compile; child processes (--nproc) inherit it


def compiling() -> bool:
    """Whether networks are compiled (`--compile`, or DDCODEC_COMPILE=1): an execution choice
    like the thread count. Same arithmetic, rounded differently, so figures move within their
    seed-to-seed spread; faster after tens of seconds of compiling per batch shape and process
    (docs/BENCHMARKS.md, "Execution speed")."""
    return os.environ.get(COMPILE_ENV, "") not in ("", "0")


def set_compiling(on: bool) -> None:
    os.environ[COMPILE_ENV] = "1" if on else "0"


def compiled(fn):
    """`fn` (a network, or a function of networks and tensors) through torch.compile when
    compiling, else `fn` itself. A network keeps its own parameters and state dict; a new
    network of the same shape reuses the compiled code. A compiler that cannot run here (no C
    compiler, no Triton) is one clear error, not a traceback."""
    if not compiling():
        return fn
    # on a CPU-only machine with CUDA headers torch warns that it found no CUDA runtime: true,
    # and nothing a CPU run needs
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    forward = torch.compile(fn, dynamic=False)  # one kernel per batch shape: two an epoch

    def call(*args, **kwargs):
        try:
            return forward(*args, **kwargs)
        except Exception as exc:  # the compiler's own errors, whatever their class
            if not _from_compiler(exc):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DDCodecError(f"--compile: torch.compile could not compile the network here "
                               f"({first}); run without --compile") from exc
    return call


def _from_compiler(exc: BaseException) -> bool:
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:  # a torch without dynamo: nothing it raises comes from it
        return False
    return isinstance(exc, TorchDynamoException) or type(exc).__module__.startswith(
        ("torch._inductor", "torch._dynamo"))


def environment(device: torch.device) -> dict:
    """What produced a result: versions, the device (the GPU's name), threads, the date."""
    import datetime as dt
    import platform
    from importlib.metadata import PackageNotFoundError, version


    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    return {"ddcodec": __version__, "torch": torch.__version__,
            "constriction": installed("constriction"), "numpy": installed("numpy"),
            "python": platform.python_version(), "device": str(device), "device_name": name,
            "threads": torch.get_num_threads(), "compiled": compiling(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
