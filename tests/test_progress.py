"""Progress never goes silent: a piped run prints plain lines with the numbers (stage, steps,
what the step measured, elapsed, overall ETA) at each stage and every --log-every seconds;
phase 3 and rate-control probes are visible."""

import io
import re
import time

import pytest

from ddcodec.progress import EtaModel, PlainDisplay

LINE = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] (.*)$")


def stamped(err: str) -> list[tuple[int, str]]:
    out = []
    for line in err.splitlines():
        m = LINE.match(line)
        if m:
            h, mi, s, text = m.groups()
            out.append((int(h) * 3600 + int(mi) * 60 + int(s), text))
    return out


def test_a_piped_latent_run_prints_every_stage_with_its_numbers(run_cli, tiny_npz, tmp_path):
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--param", "latent",
                           "--spc", "2", "--fit-iterations", "16", "--iterations", "6",
                           "--batch-real", "8", "--log-every", "1", "-o",
                           str(tmp_path / "s.pt"))
    assert code == 0, err
    lines = stamped(err)
    texts = [t for _, t in lines]
    assert any(re.match(r"phase 1/3 fit \d+/16: fit loss [\d.e-]+, [\d.]+ s/it; elapsed "
                        r"\d+:\d\d, ETA (\d+:\d\d|--:--)$", t) for t in texts), texts
    assert any(t.startswith("phase 2/3 joint ") and "latent bits/class" in t for t in texts)
    assert any(t.startswith("phase 3/3 weight quantisation ") and "step pair" in t
               for t in texts)
    gaps = [b - a for (a, _), (b, _) in zip(lines, lines[1:])]
    assert max(gaps, default=0) <= 3  # --log-every 1, whatever the step is doing


@pytest.mark.slow
def test_rate_control_probes_are_notes(run_cli, tiny_npz, tmp_path):
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--param", "latent",
                           "--spc", "2", "--fit-iterations", "16", "--iterations", "6",
                           "--batch-real", "8", "--target-bpc", "8000", "-o",
                           str(tmp_path / "s.pt"))
    assert code in (0, 3), err
    probes = [t for _, t in stamped(err) if t.startswith("rate control probe")]
    assert probes and re.match(r"rate control probe 1: [\d,]+ of 8,000 bits/class "
                               r"\([+-][\d.]+%\), lambda [\d.e+-]+ -> [\d.e+-]+: ", probes[0])
    assert "phase 1/3 fit" in err


def test_the_ticker_speaks_while_a_step_runs():
    stream = io.StringIO()
    shown = PlainDisplay(log_every=0.05, stream=stream)
    shown.update("measure", 1, 10, "run 1/1")
    time.sleep(0.3)  # one long step: no update at all
    shown.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 4 and all("measure 1/10: run 1/1; elapsed" in line for line in lines)


class Writes(io.StringIO):
    """A stream that keeps each write call apart, as a pipe shared by processes sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_each_line_is_one_write_so_ranks_sharing_a_pipe_never_splice():
    stream = Writes()
    shown = PlainDisplay(log_every=60, stream=stream)
    shown.note("block 0: left unfinished by an earlier run; distilling it again")
    shown.update("measure", 1, 10, "run 1/1")
    shown.close()
    assert len(stream.calls) == 2 and all(LINE.match(call) and call.endswith("\n")
                                           for call in stream.calls)


def test_the_overall_eta_counts_every_stage_left():
    eta = EtaModel()
    eta.plan([("fit", 100, 1.0), ("joint", 50, 2.0), ("quantise", 10, 0.5)])
    assert eta.remaining() is None  # nothing measured yet
    eta.step("fit", 0, 100, now=0.0)
    eta.step("fit", 10, 100, now=5.0)  # 0.5 s per fit step
    assert eta.remaining() == pytest.approx(90 * 0.5 + 50 * 1.0 + 10 * 0.25)
    eta.step("fit", 100, 100, now=50.0)
    eta.step("joint", 0, 50, now=50.0)
    eta.step("joint", 10, 50, now=60.0)  # measured: 1 s per joint step
    assert eta.remaining() == pytest.approx(40 * 1.0 + 10 * 0.25)
    eta.step("joint", 50, 50, now=100.0)
    eta.step("quantise", 1, 10, now=100.0)
    eta.step("quantise", 10, 10, now=109.0)  # 1 s a pair
    eta.step("joint", 40, 60, now=500.0)  # rate control re-enters: the gap is not a step
    assert eta.remaining() == pytest.approx(20 * 1.0)


# ---------------------------------------------------------------- unreachable budgets, early
LATENT = ("--param", "latent", "--fit-iterations", "40", "--iterations", "6",
          "--batch-real", "8")


def test_a_budget_below_the_decoders_cost_is_refused_at_once(run_cli, tiny_npz, tmp_path):
    started = time.perf_counter()
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", *LATENT,
                           "--target-bpc", "500", "-o", str(tmp_path / "s.pt"))
    assert code == 1 and time.perf_counter() - started < 10
    assert "below what the decoders, labels and header alone cost" in err
    assert re.search(r"reachable from about [\d,]+", err)
    assert not (tmp_path / "s.pt").exists()


def test_a_budget_a_fixed_spc_cannot_spend_is_refused_after_the_warm_up(run_cli, tiny_npz,
                                                                        tmp_path):
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", *LATENT, "--spc", "1",
                           "--target-bpc", "200000", "-o", str(tmp_path / "s.pt"))
    assert code == 1, err
    m = re.search(r"out of reach with --spc 1: after 40 fit steps.*reachable: about ([\d,]+) "
                  r"to ([\d,]+) bits/class", err)
    assert m and int(m[1].replace(",", "")) < int(m[2].replace(",", "")) < 200_000
    assert not (tmp_path / "s.pt").exists()


@pytest.mark.slow
def test_a_missed_target_writes_the_set_and_exits_3(run_cli, tiny_npz, tmp_path):
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", *LATENT, "--spc", "2",
                           "--target-bpc", "8000", "--rate-tolerance", "0.0001", "-o",
                           str(tmp_path / "s.pt"))
    assert code == 3, err
    assert "missed the target" in err and "exit status 3" in err
    assert (tmp_path / "s.pt").is_file()


def test_measured_side_information_above_the_budget_is_refused():
    from ddcodec.distillation.rate_control import RateControl, Unreachable

    rate = RateControl.start(20_000, 10, 0.05, 0.1, 5e-6, 100, 1_000)
    rate.set_side_bits(150_000)  # measured, under the budget: re-aims the latents
    assert rate.latent_target == pytest.approx(5_000)
    with pytest.raises(Unreachable, match=r"\(25,000 bits/class, measured\)"):
        rate.set_side_bits(250_000)


def test_a_measuring_stage_counts_epochs_and_shows_an_eta_after_the_first():
    import time

    from ddcodec.progress import Display

    shown = Display()
    on_epoch = shown.measuring("set: measuring", runs=2, epochs=5)
    on_epoch(0, 0)
    assert "ETA --:--" in shown.line()  # one report: no pace yet
    time.sleep(0.01)
    on_epoch(0, 1)
    line = shown.line()
    assert "set: measuring 2/10" in line and "ETA --:--" not in line
    on_epoch(1, 4)
    assert shown.current[1:3] == (10, 10)


def test_measure_json_still_reports_progress_on_a_piped_stderr(tmp_path):
    """--json decides what goes to stdout; progress on stderr follows the same rules as
    without it (plain lines every --log-every seconds when stderr is not a terminal)."""
    import json
    import subprocess
    import sys

    from conftest import write_npz
    from ddcodec import api

    npz = write_npz(tmp_path / "t.npz", size=8)
    api.distill(f"npz:{npz}", tmp_path / "s.pt", loss="none", ipc=2, device="cpu")
    run = subprocess.run([sys.executable, "-m", "ddcodec", "measure", str(tmp_path / "s.pt"),
                          "--epochs", "30", "--runs", "1", "--json", "--log-every", "1",
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # stdout: one JSON object, nothing else
    assert report["epochs"] == 30
    lines = [line for line in run.stderr.splitlines() if "measure the set" in line]
    assert lines and all("elapsed" in line and "ETA" in line for line in lines)
    quiet = subprocess.run([sys.executable, "-m", "ddcodec", "measure", str(tmp_path / "s.pt"),
                            "--epochs", "2", "--runs", "1", "--json", "-q", "--device", "cpu"],
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""  # -q alone silences it
