"""A process's own memory: the peak a block records and the resident split scale.py reads."""

import mmap
import subprocess
import sys

import numpy as np
import pytest

from ddcodec.memory import peak_mb, resident_mb

LINUX = pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status is Linux's")


@LINUX
def test_a_child_of_a_large_parent_reports_its_own_peak():
    """ru_maxrss would hand the child this process's mark (copied at fork, kept across exec):
    a block run by a benchmark's subprocess once recorded the benchmark's 4 GB as its own."""
    big = mmap.mmap(-1, 256 * 2 ** 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, 256 * 2 ** 20, 4096):
        big[offset] = 1
    assert peak_mb() > 256
    child = subprocess.run(
        [sys.executable, "-c", "import resource; from ddcodec.memory import peak_mb; "
         "print(peak_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
        capture_output=True, text=True, check=True)
    own, inherited = map(float, child.stdout.split())
    assert own < 128  # a bare interpreter
    assert inherited > 256  # what the kernel's ru_maxrss says, the reason peak_mb does not use it
    big.close()


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status is Linux's")
def test_resident_memory_tells_allocated_from_mapped_pages(tmp_path):
    """The split scale.py relies on: touching a mapped file's pages grows the file-backed part,
    allocating grows the anonymous part, each by about what was touched."""
    import mmap

    path = tmp_path / "mapped.bin"
    np.arange(64 * 2 ** 20 // 8, dtype=np.int64).tofile(path)
    before = resident_mb()
    mapped = np.memmap(path, dtype=np.int64, mode="r")
    assert int(mapped.sum()) > 0  # touch every page
    after_map = resident_mb()
    # fresh anonymous pages, touched (not numpy's, which the reusing allocator may serve from
    # pages an earlier test freed and kept)
    allocated = mmap.mmap(-1, 64 * 2 ** 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, 64 * 2 ** 20, 4096):
        allocated[offset] = 1
    after_alloc = resident_mb()
    assert after_map["process_rss_file_mb"] - before["process_rss_file_mb"] > 48
    assert abs(after_map["process_rss_anon_mb"] - before["process_rss_anon_mb"]) < 16
    assert after_alloc["process_rss_anon_mb"] - after_map["process_rss_anon_mb"] > 48
    del mapped, allocated
