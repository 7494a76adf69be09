"""The benchmark scripts: one harness (shared parser, cache, publisher), run as modules, every
script a step of the report or named as none; and they refuse options that would be silently
ignored or out of range before they spend hours (one argparse line, exit status 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "harness", "all"))


def _source(name: str) -> str:
    return (ROOT / "benchmarks" / f"{name}.py").read_text()


def test_every_script_is_a_step_of_the_report_or_says_why_not():
    from benchmarks import all as report

    steps = {arg.removeprefix("benchmarks.") for _, command, _ in report.STEPS
             for arg in command if arg.startswith("benchmarks.")}
    assert set(SCRIPTS) == steps | set(report.NOT_STEPS)
    assert not steps & set(report.NOT_STEPS)


@pytest.mark.parametrize("name", SCRIPTS + ["all"])
def test_scripts_share_code_through_the_harness_only(name):
    """Run as `python -m benchmarks.NAME`: no sys.path edits, no script importing another."""
    import ast

    source = _source(name)
    assert "sys.path.insert" not in source
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0] if not node.module.startswith("benchmarks")
                         else node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not imported & (set(SCRIPTS) | {"report", "harness"})
    assert {m for m in imported if m.startswith("benchmarks")} <= {"benchmarks.harness"}
    if name not in ("identity", "all"):  # identity compares two commits; all runs the steps
        assert "ArgumentParser(" not in source and "benchmark_parser(" in source


@pytest.mark.parametrize("args, message", [
    (["--classes", "5"], "--classes needs --tiny"),
    (["--tiny", "--classes", "1"], "--classes: from 2 to Tiny-ImageNet's 200"),
    (["--tiny", "--classes", "201"], "--classes: from 2 to Tiny-ImageNet's 200"),
])
def test_labels_benchmark_refuses_bad_class_counts(args, message):
    result = subprocess.run([sys.executable, "-m", "benchmarks.labels", *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
