"""benchmarks/gpu_check.py on a CPU: the committed files still decode to the images recorded for
them (what a GPU machine's decode is held to), and a run cut short is reported as such."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_committed_files_decode_to_their_recorded_images():
    from benchmarks.gpu_check import FILES, decode_step

    files = decode_step("cpu")["files"]
    assert [f["file"] for f in files] == list(FILES)
    assert all(f["cpu_identical_to_record"] and f["device_subpixels_off"] == 0 for f in files)


def test_a_run_cut_short_is_published_with_the_steps_it_missed(tmp_path):
    from benchmarks.gpu_check import decode_step, env_step

    lines = [{"step": "env", **env_step("cpu")},
             {"step": "tests", "returncode": 0, "summary": ["3 passed in 9.1s"]},
             {"step": "decode", **decode_step("cpu")}]
    jsonl = tmp_path / "gpu_check.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in lines))
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n")
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--report", str(jsonl),
                          "--out", str(report)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    text = report.read_text()
    assert "## GPU check" in text and "3 passed" in text
    assert "golden_v3.ddz`: CPU decode identical to the recorded images" in text
    assert "Cut short before: iteration, headline, tiny_block." in text
    record = json.loads((tmp_path / "benchmarks" / "gpu_check.json").read_text())
    assert record["env"]["device"] == "cpu"
