"""Where a run computes, and what it ran on: the device a name asks for, and the versions,
device and threads a report records."""

from __future__ import annotations

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
            "threads": torch.get_num_threads(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
