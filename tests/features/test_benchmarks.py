"""The benchmark scripts: one harness (shared parser, cache, publisher), run as modules, every
script a step of the report or named as none; and they refuse options that would be silently
ignored or out of range before they spend hours (one argparse line, exit status 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("stop, status, line", [
    ("interrupted", 130, "curve: interrupted in phase 2 at step 30; checkpoint saved; the same "
                         "command goes on from the cache"),
    ("ctrl-c", 130, "curve: interrupted; the same command goes on from the cache"),
    ("error", 1, "curve: imagefolder:x: no train/ folder"),
])
def test_a_stopped_or_refused_benchmark_ends_in_one_line(stop, status, line, monkeypatch,
                                                         capsys):
    """A session's end stops the long scripts; the log keeps one line, not a traceback."""
    from benchmarks.harness import run
    from ddcodec.errors import DDCodecError, Interrupted

    def main():
        raise {"interrupted": Interrupted("interrupted in phase 2 at step 30; checkpoint saved"),
               "ctrl-c": KeyboardInterrupt(),
               "error": DDCodecError("imagefolder:x: no train/ folder")}[stop]

    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "curve.py")])
    with pytest.raises(SystemExit) as stopped:
        run(main)
    assert stopped.value.code == status
    assert capsys.readouterr().err.splitlines() == [line]


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


@pytest.mark.parametrize("script", ["scale", "speed", "baselines"])
def test_a_report_without_its_record_is_refused_in_one_line(script, tmp_path):
    """--report-only (baselines: --timings-only) rewrites a section from the last record; a
    report with none beside it gets one line, not a traceback."""
    flag = "--timings-only" if script == "baselines" else "--report-only"
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", flag,
                             "--out", str(tmp_path / "B.md")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{script}: no record {tmp_path / 'benchmarks' / (script + '.json')} to report from: "
        "run the benchmark in full once (or pass the report's --out)"]


def test_the_scale_model_is_rebuilt_from_the_real_settings_blocks(tmp_path):
    """docs/scale.md's real-settings model: the median over blocks run whole (a block resumed
    part-way timed only its last part), the peak over all, and the per-step prediction's
    error; before the run, a line saying how to make it."""
    import json

    from benchmarks.scale import real_settings_lines

    record = {"date": "2026-12-06", "budget": 98_304, "nproc": 2,
              "settings": {"fit_iterations": 800, "iterations": 150, "phase2_budget": 300,
                           "batch_real": 32},
              "blocks": [{"seconds_per_class": s, "peak_mb": m, "resumed_from_step": r}
                         for s, m, r in ((300, 2500, None), (360, 2600, None),
                                         (30, 2400, 700), (330, 2550, None))]}
    path = tmp_path / "tiny_all.json"
    assert "Not measured yet" in "\n".join(real_settings_lines(path, 120.0))
    path.write_text(json.dumps(record))
    text = "\n".join(real_settings_lines(path, 120.0))
    assert "median **330 s per class**" in text and ("(over 3 blocks run whole; 300 to 360 s "
                                                    "on a shared machine") in text
    assert "peak memory per process **2,600 MB**" in text
    assert "| measured per block | 330 s | 92 h | 11.5 h | 1.4 h |" in text
    assert "took 2.8 times that" in text


def test_the_tiny_section_says_how_far_the_teacher_got_and_the_hours_spent():
    """Tiny's section between sessions: a teacher still training shows its saved epochs, every
    row waits as 'to come', and the CPU hours add up over what is done."""
    from benchmarks.harness import TINY_SETTINGS as SETTINGS
    from benchmarks.tiny_all import section

    record = {"date": "today", "machine": "here", "epochs": 100, "runs": 2, "budget": 98_304,
              "settings": SETTINGS, "blocks_count": 20, "nproc": 2, "command": "ddcodec distill",
              "teacher": {}, "ours": {}, "controls": [], "blocks": [], "hard_weight": 0.5,
              "ours_weighted": {}, "teacher_progress": {"epochs_saved": 3, "seconds": 3_240.0}}
    text = section(record)
    assert "* Teacher: training, 3 of 10 epochs saved (0.9 h so far)" in text
    assert text.count("| to come |") == 6 and "CPU time" not in text
    assert "| ours, hard weight 0.5 | – | to come |" in text
    assert "Vanilla pixel DM" not in text  # records from before it said its settings
    text = section({**record, "pixel": {"iterations": 500, "batch_real": 32}})
    assert "* Vanilla pixel DM: IPC 1, 500 iterations from random real images, ours' reference " \
           "batch of 32 real images per class" in text
    record.update(teacher={"seconds": 10_800.0, "epochs": 10, "epoch": 9, "train_images": 38_000,
                           "held_out_images": 2_000, "chosen_holdout_accuracy": 0.3,
                           "test_accuracy": 0.29},
                  teacher_progress={},
                  controls=[{"series": "pixels-8bit", "bpc": 98_669.0, "accuracy_mean": 4.0,
                             "accuracy_std": 0.1, "seconds": 7_200.0, "hard_weight": 0.0}])
    text = section(record)
    assert "**29.00 %** on the validation images (3.0 h)." in text
    assert ("CPU time so far, one thread each: teacher 3.0 h; vanilla pixel DM, IPC 1, 8-bit "
            "(made and measured) 2.0 h; 5.0 h in all.") in text
    # each labelled row of ours is held against the control of the same labels
    control = {"series": "webp-q25+vq", "bpc": 98_000.0, "accuracy_std": 0.2, "seconds": 60.0}
    record.update(ours={"bpc": 98_100.0, "accuracy_mean": 16.0, "accuracy_std": 0.3},
                  ours_weighted={"bpc": 98_100.0, "accuracy_mean": 18.0, "accuracy_std": 0.3},
                  controls=[{**control, "accuracy_mean": 14.0, "hard_weight": 0.0},
                            {**control, "accuracy_mean": 14.5, "hard_weight": 0.5}])
    text = section(record)
    assert ("as the papers label: **not met** (16.00 %, +2.00 points); hard weight 0.5: **met** "
            "(18.00 %, +3.50 points).") in text
    assert ("| random real, WebP q25, + the same teacher's VQ labels, hard weight 0.5 | 98,000 | "
            "14.50 ± 0.20 |") in text
    # each block's row says how it ran: a rank of the torchrun job, or a job of its own
    block = {"block": 19, "classes": 10, "seconds": 3_000.0, "seconds_per_class": 300.0,
             "peak_mb": 2_500.0, "allocated_mb": 900.0, "mapped_mb": 600.0,
             "block_bpc": 97_000.0, "phase2_iterations": 300, "resumed_from_step": None}
    record["blocks"] = [{**block, "ran_as": "a job of its own (--block)",
                         "peak_before_mb": 2_100.0},
                        {**block, "block": 0}]  # a part from before it was recorded
    text = section(record)
    assert "| 19 | 10 | a job of its own (--block) | 3000 | 300 | 2,500 | 2,100 | 900 |" in text
    assert "| 0 | 10 | – | 3000 | 300 | 2,500 | – | 900 |" in text
    # a block resumed part-way counts only its last part's seconds: left out of the median
    record["blocks"] = [{**block, "seconds_per_class": 200.0}, block,
                        {**block, "block": 1, "seconds_per_class": 60.0,
                         "resumed_from_step": 324}]
    text = section(record)
    assert "median 250 s per class over the blocks run whole; 200 to 300 s on a shared" in text
    record["blocks"] = record["blocks"][2:]
    assert "no block run whole yet" in section(record)
    assert "| 1 (resumed at step 324) | 10 | – | 3000 | 60 |" in text


def test_a_cifar10_baseline_row_prices_and_measures_its_own_8bit_file(tmp_path):
    """The honest ratio's denominator: a vanilla set's row gives the bits of its 8-bit .ddz
    (not the float tensor file) and that file's own accuracy, measured apart when rounding
    clipped the set (vanilla DM's pixels leave the image range); both cached, so a report
    needs no set file."""
    from benchmarks.cifar10 import FLOAT32_BPC, baseline_row
    from ddcodec import api
    from ddcodec.sets.setfile import load_set, save_set

    real, clipped = tmp_path / "real.pt", tmp_path / "clipped.pt"
    api.distill("cifar10-subset", real, device="cpu", loss="none", ipc=1, seed=0)
    out_of_range = load_set(real)
    out_of_range.images = out_of_range.images * 6.0  # as far out as DM's pixels go
    save_set(out_of_range, clipped)
    spec = {"epochs": 1, "runs": 1}
    rows = {}
    for path in (real, clipped):
        rows[path.stem] = baseline_row(path, 1, spec, str(tmp_path / path.stem),
                                       lambda: {}, True)
        assert rows[path.stem]["file_bpc"] == pytest.approx(
            8 * path.with_suffix(".ddz").stat().st_size / 10)
        assert rows[path.stem]["file_bpc"] < FLOAT32_BPC[1] / 2
    exact, lossy = rows["real"], rows["clipped"]
    assert exact["file_exact"] and exact["file_accuracy_mean"] == exact["accuracy_mean"]
    assert not lossy["file_exact"] and lossy["file_psnr_db"] < 20
    assert lossy["file_accuracy_mean"] == pytest.approx(api.measure(
        clipped.with_suffix(".ddz"), epochs=1, runs=1, seed=0,
        device="cpu")["accuracy_mean_percent"])
    assert len(list(tmp_path.glob("clipped-*.json"))) == 2
    clipped.unlink()  # from the cache alone
    assert baseline_row(clipped, 1, spec, str(tmp_path / "clipped"), None, False) == lossy


def test_the_cifar10_section_says_whether_each_baseline_stopped_rising():
    from benchmarks.cifar10 import convergence_lines

    rows = [{"ipc": 1, "iterations": 500, "accuracy_mean": 26.8},
            {"ipc": 1, "iterations": 2000, "accuracy_mean": 27.1},
            {"ipc": 10, "iterations": 2000, "accuracy_mean": 49.0},
            {"ipc": 10, "iterations": 500, "accuracy_mean": 46.5},
            {"ipc": 50, "iterations": 500, "accuracy_mean": 55.0}]
    text = "\n".join(convergence_lines(rows))
    assert "IPC 1: +0.30 points from 500 to 2,000 iterations: stopped rising." in text
    assert "IPC 10: +2.50 points from 500 to 2,000 iterations: still rising" in text
    assert "IPC 50: one count measured (500 iterations)" in text


def test_the_cifar10_dm_rows_give_the_hours_of_every_process_or_a_bound():
    """A DM row's distillation hours: whole when every process kept its seconds, a lower bound
    (≥) for a run resumed before they were kept, and the threads when not one."""
    from benchmarks.cifar10 import hours_cell

    assert hours_cell({"distill_s": 9_000.0, "distill_s_complete": True}) == "2.5"
    assert hours_cell({"distill_s": 3_658.8}) == "≥ 1.0"  # rows kept before the flag
    assert hours_cell({"distill_s": 3_600.0, "distill_s_complete": False,
                       "distill_threads": 2}) == "≥ 1.0 (2 threads)"
    assert hours_cell({"distill_s": None}) == "not recorded"
    # a bound is at least what a lower count of the same run took (it came first)
    run = [{"ipc": 10, "iterations": 2000, "distill_s": 3_658.8},
           {"ipc": 10, "iterations": 5000, "distill_s": 3_042.4},
           {"ipc": 1, "iterations": 2000, "distill_s": 9_000.0}]
    assert hours_cell(run[1], run) == "≥ 1.0" and hours_cell(run[1]) == "≥ 0.8"


def test_a_set_file_is_measured_once_per_protocol(tmp_path):
    """The headline's and tiny_all's measurements: cached per file content and protocol, so a
    resumed run never measures a file twice, and a report reads the cache alone."""
    from benchmarks.harness import measured_file
    from ddcodec import api

    path = tmp_path / "random.ddz"
    api.distill("cifar10-subset", tmp_path / "random.pt", device="cpu", loss="none", ipc=1)
    api.encode(tmp_path / "random.pt", path)
    said = []
    assert measured_file(path, 1, 1, tmp_path / "cache", False) == {}  # not measured yet
    row = measured_file(path, 1, 1, tmp_path / "cache", True, "ours", said.append)
    assert said == ["measuring ours (1 epochs x 1)"]
    assert row["bpc"] == pytest.approx(8 * path.stat().st_size / 10)
    assert 0 < row["accuracy_mean"] < 100
    assert measured_file(path, 1, 1, tmp_path / "cache", True, "ours", said.append) == row
    assert len(said) == 1  # the second call read the cache
    assert measured_file(path, 2, 1, tmp_path / "cache", False) == {}  # another protocol
    assert measured_file(tmp_path / "absent.ddz", 1, 1, tmp_path / "cache", True) == {}


def _series_record(ours: dict[int, float], budgets: tuple[int, ...]) -> dict:
    """A cifar10_series section record: every series of ours at `budgets` (the best one at
    `ours[budget]` %, the others 10 points below) beside vanilla DM IPC 1 and 10 as
    benchmarks/cifar10.py records them (IPC 10's 8-bit file a little below its float set)."""
    from benchmarks.cifar10_series import SERIES
    from ddcodec.reports.table import ratios

    points = [{"series": name, "budget_bpc": b, "bpc": b * 0.99, "seconds": 60.0,
               "accuracy_mean": ours[b] - (10 if name != SERIES[0] else 0), "accuracy_std": 0.3,
               "phase2_iterations": 224} for name in SERIES for b in budgets if b in ours]
    for ipc, float_acc, file_bpc, file_acc in ((1, 26.79, 24_562.4, 25.25),
                                               (10, 46.52, 188_240.8, 46.42)):
        common = {"ipc": ipc, "iterations": 500, "accuracy_std": 0.2}
        points += [{"series": "pixels-float32", "bpc": ipc * 98_304, "accuracy_mean": float_acc,
                    **common},
                   {"series": "pixels-8bit", "bpc": file_bpc, "accuracy_mean": file_acc,
                    **common}]
    table = {"points": points, "ratios": ratios(points, cifar10=True), "date": "today",
             "protocol": {"epochs": 300, "runs": 3, "data": "imagefolder:cifar10"}}
    return {"table": table, "budgets": list(budgets), "date": "today", "machine": "here",
            "settings": {"fit_iterations": 800, "iterations": 150, "batch_real": 64,
                         "phase2_budget": 300}, "headline": []}


@pytest.mark.parametrize("ours, line", [
    ({12_000: 45.57}, "* equal-accuracy ratio against vanilla DM IPC 10 of 100x in float32 and "
     "25x against its 8-bit file: not met so far (no series of ours reaches its 46.52 % (its "
     "8-bit file: 46.42 %) yet; our best point: 45.57 %)."),
    ({12_000: 45.57, 98_304: 46.45}, "* equal-accuracy ratio against vanilla DM IPC 10 of 100x "
     "in float32 and 25x against its 8-bit file: not met (best: latent-dm, its float set not "
     "reached and 2.1x)."),
    ({6_000: 52.0, 12_000: 55.0, 98_304: 60.0}, "* equal-accuracy ratio against vanilla DM IPC 10 "
     "of 100x in float32 and 25x against its 8-bit file: met (best: latent-dm, ≥ 165.5x and ≥ "
     "31.7x)."),
])
def test_the_cifar10_series_section_reports_the_ratio_target_as_measured(ours, line):
    """The IPC 10 ratio target's line, from a whole section record: none reached yet, only the
    8-bit file's (lower) accuracy reached, and reached at the smallest budget (lower bounds)."""
    from benchmarks.cifar10_series import section

    text = section(_series_record(ours, tuple(sorted({*ours, 98_304}))))  # 98,304 may be owed
    assert line in text.splitlines()


def test_the_cifar10_series_section_bounds_only_the_hours_it_could_not_keep():
    """A point resumed from a checkpoint whose seconds were kept counts every process; one
    resumed before they were kept is named as a lower bound."""
    from benchmarks.cifar10_series import section

    record = _series_record({12_000: 45.57}, (12_000, 98_304))
    ours = [p for p in record["table"]["points"] if "budget_bpc" in p]
    ours[0].update(resumed=True, seconds_complete=True)
    assert "lower bound" not in section(record)
    ours[1].update(resumed=True)  # a record from before the seconds were kept
    assert ("; 1 point(s) resumed from a checkpoint before the seconds were kept count only the "
            "time after it (a lower bound).") in section(record)


def test_the_cifar10_series_plot_draws_every_series_of_the_table(tmp_path):
    """docs/cifar10_curve.png, drawn from the same table as the section it sits in."""
    from benchmarks.cifar10_series import PLOT, draw_curve, section

    record = _series_record({12_000: 45.57, 98_304: 50.0}, (12_000, 98_304))
    draw_curve(record["table"], tmp_path / PLOT)
    assert (tmp_path / PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({PLOT})" in section(record)


def test_headline_measurements_run_cheapest_first_and_reuse_the_curves_own(tmp_path,
                                                                           monkeypatch):
    """A 1000 x 5 measurement of the 98,304 set costs about 14 CPU hours: the sets of 100 or
    130 images run first, so a session's end leaves their figures; a series point under the
    curve's protocol is the curve's own measurement, not measured again."""
    import benchmarks.cifar10_series as series

    files = {name: tmp_path / f"{name}.ddz" for name in ("big", "small", "dm")}
    for path in files.values():
        path.write_bytes(b"set")
    monkeypatch.setattr(series, "set_images", lambda path: {"big": 1130, "small": 130,
                                                            "dm": 100}[path.stem])
    measured = []

    def measured_file(path, epochs, runs, cache, compute, say=None):
        measured.append((path.stem, epochs, runs))
        return {"accuracy_mean": 50.0, "accuracy_std": 0.1, "bpc": 1.0, "seconds": 60.0,
                "images_per_class": 10}

    monkeypatch.setattr(series, "measured_file", measured_file)

    def point(accuracy):
        return {"accuracy_mean": accuracy, "accuracy_std": 0.3, "bpc": 12_282.4,
                "images_per_class": 13.0, "measure_seconds": 934.6}

    sets = {"latent-dm at 98,304": series.HeadlineSet(files["big"], point(52.77)),
            "latent-dm at 12,000": series.HeadlineSet(files["small"], point(45.57)),
            "vanilla DM IPC 10": series.HeadlineSet(files["dm"])}
    rows = series.headline_rows(tmp_path, sets, compute=True)
    assert measured == [("dm", 300, 3), ("dm", 1000, 5), ("small", 1000, 5), ("big", 1000, 5)]
    assert [(r["set"], r["epochs"]) for r in rows] == [
        ("latent-dm at 98,304", 300), ("latent-dm at 98,304", 1000), ("latent-dm at 12,000", 300),
        ("latent-dm at 12,000", 1000), ("vanilla DM IPC 10", 300), ("vanilla DM IPC 10", 1000)]
    assert rows[2]["accuracy_mean"] == 45.57 and rows[2]["seconds"] == 934.6


def test_the_headline_table_shows_how_far_the_fields_protocol_moves_a_figure():
    from benchmarks.cifar10_series import section

    record = _series_record({12_000: 45.57}, (12_000, 98_304))

    def row(name, epochs, runs, accuracy):
        return {"set": name, "epochs": epochs, "runs": runs, "accuracy_mean": accuracy,
                "accuracy_std": 0.2, "bpc": 188_240.8, "seconds": 600.0}

    record["headline"] = [row("vanilla DM IPC 10", 300, 3, 46.44),
                          row("vanilla DM IPC 10", 1000, 5, 47.9),
                          row("random real IPC 10", 300, 3, 28.95)]
    lines = section(record).splitlines()
    assert ("| vanilla DM IPC 10 | 188,241 | 46.44 ± 0.20 (10 min) | 47.90 ± 0.20 (10 min) "
            "| +1.46 |") in lines
    assert ("| random real IPC 10 | 188,241 | 28.95 ± 0.20 (10 min) | to come | – |") in lines
    # a headline set no protocol has measured yet (a new best DM count) is listed, not left out
    record["headline_sets"] = {"vanilla DM IPC 10": 188_240.8, "random real IPC 10": 170_767.2,
                               "vanilla DM IPC 10, 2,000 iterations": 196_292.0}
    lines = section(record).splitlines()
    assert "| vanilla DM IPC 10, 2,000 iterations | 196,292 | to come | to come | – |" in lines
    assert sum(line.startswith("| random real IPC 10 |") for line in lines) == 1


def test_the_series_take_each_vanilla_dm_ipc_at_its_best_count(tmp_path):
    """Converged DM is the best DM reached: at IPC 1 on CIFAR-10 its 2,000-iteration set
    measured below its 500-iteration one (its pixels drift out of range), so the ratios keep
    500 there, and IPC 10 its later, better count."""
    import json

    from benchmarks.cifar10_series import dm_points

    def row(ipc, n, accuracy, file_accuracy):
        return {"ipc": ipc, "iterations": n, "accuracy_mean": accuracy, "accuracy_std": 0.1,
                "float32_bpc": ipc * 98_304, "file_bpc": ipc * 24_000.0 + n,
                "file_accuracy_mean": file_accuracy, "file_accuracy_std": 0.1}

    record = tmp_path / "cifar10.json"
    record.write_text(json.dumps({"rows": [row(1, 500, 26.79, 25.25), row(1, 2000, 26.09, 23.43),
                                           row(10, 500, 46.52, 46.42),
                                           row(10, 2000, 48.0, 47.9)]}))
    points = {(p["series"], p["ipc"]): p for p in dm_points(record)}
    assert points["pixels-float32", 1]["iterations"] == 500
    assert points["pixels-8bit", 1]["accuracy_mean"] == 25.25
    assert points["pixels-8bit", 1]["bpc"] == 24_500.0
    assert points["pixels-float32", 10]["accuracy_mean"] == 48.0
    assert points["pixels-8bit", 10]["iterations"] == 2000


def test_vanilla_dm_spends_its_hours_on_the_ipcs_still_rising_first():
    """Breadth first over the counts, but IPC 1, which stopped rising at 2,000, runs its
    5,000 (a confirmation) after IPC 10's; the random floor comes after the first count."""
    from benchmarks.cifar10 import dm_schedule

    accuracy = {(1, 500): 26.79, (1, 2000): 26.09, (1, 5000): 26.0,
                (10, 500): 46.52, (10, 2000): 48.0, (10, 5000): 48.2}
    order = []

    def measure(ipc, n):
        order.append((ipc, n))
        return [{"ipc": ipc, "iterations": n, "accuracy_mean": accuracy[ipc, n]}]

    rows = dm_schedule((500, 2000, 5000), [1, 10], measure,
                       lambda: order.append("random"))
    assert order == [(1, 500), (10, 500), "random", (1, 2000), (10, 2000), (10, 5000),
                     (1, 5000)]
    assert len(rows) == 6


def test_a_runs_resume_state_is_committed_and_its_data_caches_are_not():
    """A fresh checkout holds only what is committed: a benchmark that outlasts a session goes
    on from its checkpoints only if git keeps them. Every kind of resume state the scripts write
    must not be ignored; the data caches rebuilt in a minute must be."""
    import shutil

    from benchmarks.harness import CACHE, CIFAR10_DIR
    from ddcodec.distillation.blocks import checkpoint_path
    from ddcodec.reports.points import MEASURE_CHECKPOINT

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    resume_state = [
        CACHE / "tiny-all" / "teacher.pt.ckpt",  # a teacher's epochs
        CACHE / "tiny-all" / "teacher.seconds-so-far",
        checkpoint_path(CACHE / "tiny-all" / "ours.ddz.parts" / "block-0003-of-0020.pt"),
        CACHE / "cifar10-series" / "points" / "latent-dm-0123456789ab.pt",  # a distilled point
        CACHE / "cifar10-series" / "points" / "latent-dm-0123456789ab.pt.ckpt",
        CACHE / "cifar10-series" / "points" / f"latent-dm-0123456789ab{MEASURE_CHECKPOINT}",
        CACHE / "cifar10-series" / "headline" / "0123456789ab.ckpt",
        CACHE / "cifar10-full" / "dm-ipc10.ckpt",  # vanilla DM's iterations
        CACHE / "cifar10-full" / "dm-ipc10-2000.pt.300-epochs.ckpt",
        CACHE / "hard-weight" / "0123456789ab.ckpt"]
    rebuilt = [CIFAR10_DIR / "train" / "0" / "00000.jpg", CACHE / "tiny-all" / "data" / "train",
               CACHE / "tiny-all" / "run.log", CACHE / "cifar10-series" / "run.log"]

    def ignored(paths):
        names = [str(p.relative_to(ROOT)) for p in paths]
        done = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT,
                              capture_output=True, text=True)
        return set(done.stdout.split())

    assert ignored(resume_state) == set()
    assert ignored(rebuilt) == {str(p.relative_to(ROOT)) for p in rebuilt}


def test_the_state_script_says_where_each_stopped_run_stands(tmp_path):
    """What a fresh checkout's next session reads instead of logs: per checkpoint, its kind and
    progress; a damaged file is named, not a traceback."""
    import torch

    from benchmarks import state
    from ddcodec.distillation.blocks import part_path
    from ddcodec.training.checkpoint import EvalCheckpoint

    measuring = EvalCheckpoint(tmp_path / "points" / "a.measure.ckpt", "digest")
    measuring.finished([(0, 0.4254), (1, 0.4268)])
    torch.save({"format": "ddcodec-pixel-checkpoint", "iterations": 850},
               tmp_path / "dm-ipc10.ckpt")
    torch.save({"format": "ddcodec-teacher-checkpoint", "trainer": {"epochs_done": 4}},
               tmp_path / "teacher.pt.ckpt")
    torch.save({"format": "ddcodec-checkpoint", "phase": 2, "stage": "joint", "step": 30},
               tmp_path / "latent-dm.pt.ckpt")
    torch.save({"format": "ddcodec-checkpoint", "phase": 2}, tmp_path / "old.pt.ckpt")
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "teacher.seconds-so-far").write_text("5400\n")  # the hours kept beside them
    (tmp_path / "dm-ipc10.seconds-so-far").write_text("not a number\n")
    parts = tmp_path / "ours.ddz.parts"
    parts.mkdir()
    for block in (0, 3):
        part_path(parts, block, 20).write_bytes(b"")
    found = dict((Path(name).name, line) for name, line in state.rows(tmp_path))
    assert found["a.measure.ckpt"].startswith("measuring: 2 network(s) done (42.54 %, 42.68 %)")
    assert found["dm-ipc10.ckpt"] == "pixel distillation: 850 iterations done"
    assert found["teacher.pt.ckpt"] == "teacher: 4 epoch(s) done; 1.5 h so far"
    assert found["latent-dm.pt.ckpt"] == "latent distillation: phase 2, joint, step 30"
    assert found["old.pt.ckpt"] == "a ddcodec-checkpoint of an older layout"
    assert found["broken.ckpt"].startswith("unreadable")
    assert found["ours.ddz.parts"] == "blocked distillation: 2 of 20 blocks finished"
    part_path(parts, 1, 10).write_bytes(b"")
    (tmp_path / "empty.ddz.parts").mkdir()
    found = dict((Path(name).name, line) for name, line in state.rows(tmp_path))
    assert found["ours.ddz.parts"] == "blocked distillation: 3 parts of runs in 10 and 20 blocks"
    assert found["empty.ddz.parts"] == "blocked distillation: no block finished yet"


def test_the_tiny_run_and_its_memory_check_run_one_command():
    """block_memory measures the Tiny run's own command (one candidate, the real budget and
    labels) as a job of one block, and its section gives the difference the candidates make."""
    from benchmarks.block_memory import section
    from benchmarks.harness import TINY_SETTINGS, tiny_distill_command

    command = tiny_distill_command("imagefolder:d", Path("t.pt"), Path("o.ddz"), TINY_SETTINGS,
                                   20, 2, 98_304)
    assert "--fit-candidates=1" in command and command[command.index("--labels") + 1] == "vq"
    assert "--lmbda=0.0001" in command  # DM's default overshot at 200 classes of 64 x 64
    rows = [{"candidates": 1, "block_s": 60.0, "peak_mb": 1_400.0, "allocated_mb": 1_000.0,
             "mapped_mb": 350.0},
            {"candidates": 5, "block_s": 70.0, "peak_mb": 1_800.0, "allocated_mb": 1_400.0,
             "mapped_mb": 350.0}]
    text = section({"date": "today", "version": "0", "machine": "here", "block": 19,
                    "blocks": 20, "classes_per_block": 10, "budget": 98_304,
                    "settings": {"fit_iterations": 32, "iterations": 4, "phase2_budget": 8,
                                 "batch_real": 32}, "checkpoint_every": 8, "rows": rows})
    assert "block 19 of 20 (10 classes at 64 x 64" in text
    assert "| 5 | 70 | 1,800 | 1,400 | 350 |" in text
    assert "5 candidates peak 400 MB above 1 (1.29x)" in text


def test_the_distribution_controls_section_marks_controls_not_measured_yet(tmp_path):
    """A curve point newer than its controls (the report rewritten from the cache) shows – in
    their cells instead of failing, and its sample sheet lands beside the report it rewrites."""
    from benchmarks import distribution_controls as controls

    measured = {"accuracy_mean": 53.74, "accuracy_std": 0.05}
    row = {"budget": 24_576, "latent": measured, "fresh": measured, "frozen": None,
           "sigma_median_per_level": [0.0, 2.1], "sample_psnr_db": 16.3}
    text = controls.section({"date": "d", "version": "v", "machine": "m", "rows": [row],
                             "labelled_rows": [{**row, "latent": None}]})
    assert "| 24,576 | 53.74 ± 0.05 | 53.74 ± 0.05 | – | – | – | – | 16.3 |" in text
    assert "| 24,576 | – | 53.74 ± 0.05 | – | – |" in text
    sheets = tmp_path / "report" / "grids"
    link = controls.sample_sheet(controls.POINTS / "distribution-dm-b71380c0dcba.ddz", "g.png",
                                 sheets)
    assert link == "grids/g.png" and (sheets / "g.png").stat().st_size > 0
