"""The benchmark scripts refuse options that would be silently ignored or out of range, before
they spend hours: one argparse line, exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("args, message", [
    (["--classes", "5"], "--classes needs --tiny"),
    (["--tiny", "--classes", "1"], "--classes: from 2 to Tiny-ImageNet's 200"),
    (["--tiny", "--classes", "201"], "--classes: from 2 to Tiny-ImageNet's 200"),
])
def test_labels_benchmark_refuses_bad_class_counts(args, message):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "labels.py"), *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
