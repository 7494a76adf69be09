"""A process's own memory, as the platform reports it: the peak and what is resident now.

The peak is Linux's VmHWM, the high-water mark of this program's address space since it
started. `getrusage`'s ru_maxrss is not: a child forked from a large parent starts with the
parent's mark (the kernel copies it at fork and keeps it across exec), so a block distilled by
a process a benchmark spawned would report the benchmark's own peak. ru_maxrss is the fallback
where /proc is not there (macOS); Windows reports nothing.
"""

from __future__ import annotations

import sys


def status_kib(field: str) -> int | None:
    """A /proc/self/status field in KiB (Linux), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_mb() -> float | None:
    """This process's peak resident memory so far (MB), where the platform reports it."""
    hwm = status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def resident_mb() -> dict[str, float]:
    """This process's resident memory now (MB), split as Linux reports it: anonymous (what the
    process allocated) and file-backed (pages of mapped files it has read, such as the cached
    image tree: shared through the page cache and dropped under pressure). Empty where /proc is
    not there."""
    fields = {"RssAnon": "process_rss_anon_mb", "RssFile": "process_rss_file_mb"}
    out = {name: status_kib(field) for field, name in fields.items()}
    return {name: kib / 1024 for name, kib in out.items() if kib is not None}
