"""Distillation in class blocks, on one process, on two gloo processes under torchrun, and as
separate jobs merged afterwards: the same .ddz bytes every way; failures named and resumed."""

import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import write_npz
from ddcodec import api
from ddcodec.distillation.blocks import block_ranges, load_part, part_path
from ddcodec.errors import DDCodecError

from conftest import ROOT
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
# DM, per-class decoders, fixed lambda, short: seconds per block
OPTIONS = ["--param", "latent", "--spc", "2", "--fit-iterations", "16", "--fit-candidates", "2",
           "--iterations", "3", "--batch-real", "4", "--arm-context", "8", "--levels", "3"]


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    npz = write_npz(root / "six.npz", classes=4, per_class=8, test_per_class=2, size=8)
    single = root / "one.ddz"
    run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "-o", str(single), "-q"])
    return npz, single.read_bytes()


def run(args, env=None, check=True):
    """ddcodec (or torchrun) in a fresh process with one thread per process, as torchrun
    gives its workers (float reductions depend on the thread count)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(done.stderr[-3000:])
    return done


def test_blocks_are_contiguous_and_balanced():
    assert block_ranges(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert block_ranges(200, 8)[7] == range(175, 200)
    with pytest.raises(DDCodecError, match="between 1 and the 4 classes"):
        block_ranges(4, 5)


def test_blocks_in_one_process_give_the_bytes_of_one_run(six, tmp_path):
    npz, single = six
    out = tmp_path / "b.ddz"
    run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
         "-o", str(out), "-q"])
    assert out.read_bytes() == single
    part = load_part(part_path(tmp_path / "b.ddz.parts", 1, 2))
    assert part["classes"] == [2, 3] and part["images"].dtype == torch.uint8
    learnt = load_part(part_path(tmp_path / "b.ddz.parts", 0, 2))["learnt"]
    assert part["learnt"]["ran_as"] == "one process"  # beside its time, for the record
    # the process's peak memory when each block began: block 1's is after block 0 ran
    assert 0 < learnt["process_peak_before_mb"] <= learnt["process_peak_mb"]
    assert part["learnt"]["process_peak_before_mb"] >= learnt["process_peak_mb"]


def test_two_gloo_processes_give_the_same_bytes(six, tmp_path):
    npz, single = six
    out = tmp_path / "t.ddz"
    done = run([*TORCHRUN[1:], "--nproc-per-node", "2", "-m", "ddcodec", "distill", "--data",
                f"npz:{npz}", *OPTIONS, "--blocks", "2", "-o", str(out), "-q"])
    assert out.read_bytes() == single, done.stderr[-2000:]
    assert [load_part(part_path(tmp_path / "t.ddz.parts", b, 2))["learnt"]["ran_as"]
            for b in (0, 1)] == ["rank 0 of 2", "rank 1 of 2"]


@pytest.mark.slow
def test_nproc_starts_torchrun_itself(six, tmp_path):
    npz, single = six
    out = tmp_path / "n.ddz"
    run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
         "--nproc", "2", "-o", str(out), "-q"])
    assert out.read_bytes() == single
    refused = run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--nproc", "2",
                   "-o", str(tmp_path / "x.ddz")], check=False)
    assert refused.returncode == 1 and "give --blocks B" in refused.stderr


@pytest.mark.slow
def test_nproc_reports_a_missed_target_as_one_process_does(six, tmp_path):
    """Rate control out of reach at these settings: the file is written and the exit status is
    3, under --nproc too (torchrun would call a rank's exit 3 a failure, with its traceback)."""
    npz, _ = six
    out = tmp_path / "m.ddz"
    missed = run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
                  "--nproc", "2", "--target-bpc", "9000", "-o", str(out)], check=False)
    assert missed.returncode == 3, missed.stderr[-2000:]
    assert out.is_file() and "rate control missed the target" in missed.stderr
    assert "Traceback" not in missed.stderr and "ChildFailedError" not in missed.stderr
    # a budget out of reach: each rank's one line, and none of torchrun's report
    refused = run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
                   "--nproc", "2", "--target-bpc", "2000", "-o", str(tmp_path / "r.ddz")],
                  check=False)
    assert refused.returncode == 1 and "is below what the decoders" in refused.stderr
    assert "Traceback" not in refused.stderr and "ChildFailedError" not in refused.stderr
    said = [line for line in refused.stderr.strip().splitlines()
            if not re.match(r"\[\d\d:\d\d:\d\d\] ", line)]  # all but progress lines
    assert len(said) == 2 and all(line.startswith("ddcodec: error: block ") for line in said)


@pytest.mark.slow
def test_a_killed_rank_fails_the_job_and_the_rerun_does_only_its_block(six, tmp_path):
    npz, single = six
    out = tmp_path / "k.ddz"
    parts = tmp_path / "k.ddz.parts"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        import ddcodec.distillation.blocks as blocks
        original = blocks.distill_block
        def killed(dataset, config, device, block, count, *args, **kwargs):
            if block == 1:  # wait for block 0's part, then die as a killed process would
                other = blocks.part_path(Path({str(parts)!r}), 0, count)
                deadline = time.time() + 300
                while not other.exists() and time.time() < deadline:
                    time.sleep(0.1)
                os._exit(9)
            return original(dataset, config, device, block, count, *args, **kwargs)
        blocks.distill_block = killed
    """))
    args = [*TORCHRUN[1:], "--nproc-per-node", "2", "-m", "ddcodec", "distill", "--data",
            f"npz:{npz}", *OPTIONS, "--blocks", "2", "-o", str(out)]
    failed = run(args, env={"PYTHONPATH": str(hook)}, check=False)
    assert failed.returncode != 0 and not out.exists()
    first = part_path(parts, 0, 2)
    assert first.is_file() and not part_path(parts, 1, 2).exists()
    assert part_path(parts, 1, 2).with_suffix(".running").is_file()
    stamp = first.stat().st_mtime_ns
    again = run(args)
    assert first.stat().st_mtime_ns == stamp  # block 0 was not distilled again
    assert "block 0: part found, skipped" in again.stderr
    assert "block 1: left unfinished by an earlier run (rank 1" in again.stderr
    # the finished block says how long it took and how much memory its process has peaked at
    assert re.search(r"block 1: done in [0-9.]+ s, peak memory of this process so far "
                     r"[0-9,]+ MB" + (r" \(now [0-9,]+ MB allocated, [0-9,]+ MB of mapped files\)"
                                      if sys.platform == "linux" else ""), again.stderr)
    assert out.read_bytes() == single
    assert not part_path(parts, 1, 2).with_suffix(".running").exists()


def _stop_hook(folder, how: str, step: int):
    """A sitecustomize that stops the process in block 1's fit step `step`: `kill` as a job's
    hard limit does (SIGKILL: nothing saved but the last periodic checkpoint), `term` as its
    soft limit does (SIGTERM: the step finishes and the block's state is saved)."""
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import os, signal
        import ddcodec.distillation.blocks as blocks
        original = blocks.distill_block
        def stopped(dataset, config, device, block, count, sizer=None, on_progress=None,
                    **kwargs):
            def hook(event):
                if on_progress is not None:
                    on_progress(event)
                if block == 1 and event.kind == "step" and event.stage == "fit" \\
                        and event.done == {step}:
                    os.kill(os.getpid(), signal.{'SIGKILL' if how == 'kill' else 'SIGTERM'})
            return original(dataset, config, device, block, count, sizer, hook, **kwargs)
        blocks.distill_block = stopped
    """))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "term"])
def test_a_stopped_run_goes_on_from_its_block_checkpoint_to_the_same_bytes(six, tmp_path, how):
    """A job stopped in the middle of a block (its time limit's SIGTERM, or SIGKILL) is run
    again with the same command: the finished block is kept, the stopped one goes on from its
    checkpoint, not from scratch, and the file is the uninterrupted run's, byte for byte."""
    npz, single = six
    out = tmp_path / "s.ddz"
    parts = tmp_path / "s.ddz.parts"
    hook = tmp_path / "hook"
    hook.mkdir()
    _stop_hook(hook, how, step=9)
    args = ["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
            "--checkpoint-every", "4", "-o", str(out)]
    stopped = run(args, env={"PYTHONPATH": str(hook)}, check=False)
    assert stopped.returncode != 0 and not out.exists()
    checkpoint = part_path(parts, 1, 2).with_suffix(".ckpt")
    assert part_path(parts, 0, 2).is_file() and checkpoint.is_file()
    if how == "term":  # the step finished and was saved; one line says how to go on
        assert stopped.returncode == 130
        assert "block 1 stopped; its state is saved" in stopped.stderr
        assert "Traceback" not in stopped.stderr
    again = run(args)
    saved_at = 9 if how == "term" else 8  # SIGKILL: the last periodic checkpoint (every 4)
    assert "block 0: part found, skipped" in again.stderr
    assert f"block 1: going on from its checkpoint (step {saved_at})" in again.stderr
    assert out.read_bytes() == single
    assert not checkpoint.exists()


@pytest.mark.slow
def test_a_stopped_nproc_run_saves_every_block_in_progress_and_goes_on(six, tmp_path):
    """`kill` of a `--nproc 2` run (a job's time limit): the signal reaches torchrun's workers,
    each finishes its step and saves its block; the exit status is 130 with one line per
    stopped block and no torchrun report; the same command then writes the same bytes."""
    import signal
    import time

    npz, single = six
    out = tmp_path / "p.ddz"
    parts = tmp_path / "p.ddz.parts"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""
        import time
        import ddcodec.distillation.blocks as blocks
        original = blocks.distill_block
        def slowed(dataset, config, device, block, count, sizer=None, on_progress=None, **kw):
            def hook(event):  # slow steps: the test's signal lands inside a block
                if on_progress is not None:
                    on_progress(event)
                if event.kind == "step" and event.stage == "fit":
                    time.sleep(0.3)
            return original(dataset, config, device, block, count, sizer, hook, **kw)
        blocks.distill_block = slowed
    """))
    args = ["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
            "--nproc", "2", "--checkpoint-every", "2", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(hook)}
    wrapper = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                               stderr=subprocess.PIPE)
    checkpoints = [part_path(parts, b, 2).with_suffix(".ckpt") for b in (0, 1)]
    deadline = time.time() + 300
    while not all(c.is_file() for c in checkpoints) and time.time() < deadline:
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGTERM)
    err = wrapper.communicate(timeout=300)[1]
    assert wrapper.returncode == 130, err[-2000:]
    said = [line for line in err.strip().splitlines() if not line.startswith("[")]
    assert sorted(said)[0].startswith("ddcodec: error: block 0 stopped; its state is saved")
    assert len(said) == 2 and "Traceback" not in err
    assert not out.exists() and all(c.is_file() for c in checkpoints)
    again = run(args)
    assert "going on from its checkpoint" in again.stderr
    assert out.read_bytes() == single


@pytest.mark.slow
def test_separate_jobs_merge_to_the_same_bytes_and_foreign_parts_are_refused(six, tmp_path,
                                                                              run_cli):
    npz, single = six
    out = tmp_path / "j.ddz"
    for block in ("0", "1"):
        run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
             "--block", block, "-o", str(out), "-q"])
    assert not out.exists()
    parts = sorted((tmp_path / "j.ddz.parts").glob("*.pt"))
    assert load_part(parts[1])["learnt"]["ran_as"] == "a job of its own (--block)"
    api.merge(parts, out)
    assert out.read_bytes() == single
    # a part made with other settings: refused in one line, nothing written
    other = tmp_path / "o.ddz"
    changed = [*OPTIONS[:-1], "4"]  # --levels 4
    run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *changed, "--blocks", "2",
         "--block", "1", "-o", str(other), "-q"])
    mixed = [parts[0], part_path(tmp_path / "o.ddz.parts", 1, 2)]
    code, _, err = run_cli("merge", *map(str, mixed), "-o", str(tmp_path / "m.ddz"))
    assert code == 1 and "different settings" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.ddz").exists()
    code, _, err = run_cli("merge", str(parts[0]), "-o", str(tmp_path / "m.ddz"))
    assert code == 1 and "blocks 1 of 2 are missing" in err
    damaged = load_part(parts[1])
    del damaged["classes"]
    torch.save(damaged, tmp_path / "damaged.pt")
    code, _, err = run_cli("merge", str(parts[0]), str(tmp_path / "damaged.pt"),
                           "-o", str(tmp_path / "m.ddz"))
    assert code == 1 and "damaged block part ('classes'" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_block_options_are_refused(six, run_cli, tmp_path):
    npz, _ = six
    for extra, message in [(["--blocks", "2", "--shared-decoder"], "leave out --shared-decoder"),
                           (["--blocks", "9"], "between 1 and the 4 classes"),
                           (["--blocks", "2", "--block", "2"], "--block must be in [0, 1]"),
                           (["--block", "0"], "--block needs --blocks"),
                           (["--blocks", "2", "--param", "pixels"], "--blocks needs --param")]:
        code, _, err = run_cli("distill", "--data", f"npz:{npz}", *OPTIONS, *extra,
                               "-o", str(tmp_path / "x.ddz"))
        assert code != 0 and message in err, (extra, err)
        assert not (tmp_path / "x.ddz").exists()


def test_distributional_sets_merge_their_scales_to_the_same_bytes(six, tmp_path):
    npz, _ = six
    options = dict(param="distribution", priors=2, fit_iterations=16, fit_candidates=2,
                   iterations=3, batch_real=4, arm_context=8, levels=3)
    api.distill(f"npz:{npz}", tmp_path / "one.ddz", **options)
    api.distill(f"npz:{npz}", tmp_path / "two.ddz", blocks=2, **options)
    assert (tmp_path / "one.ddz").read_bytes() == (tmp_path / "two.ddz").read_bytes()
    assert api.info(tmp_path / "two.ddz")["distribution"]["priors"] == 8


def test_trajectory_matching_in_blocks_uses_each_blocks_own_experts(six, tmp_path, monkeypatch):
    """D3's subtasks: k-way experts per block, each block's student matched to its own."""
    import json

    from ddcodec.data.datasets import load_dataset
    from ddcodec.distillation import objectives

    npz, _ = six
    report = api.experts(f"npz:{npz}", tmp_path / "experts", num_experts=1, epochs=3,
                         batch_size=8, blocks=2)
    assert report["blocks"] == 2 and report["trained"] == 2
    manifest = json.loads((tmp_path / "experts" / "block-0001-of-0002" / "experts.json")
                          .read_text())
    assert manifest["num_classes"] == 2 and manifest["data"].endswith("#classes=2-3")
    block = load_dataset(f"npz:{npz}").of_classes(range(2, 4))
    assert block.y_train.unique().tolist() == [0, 1] and block.class_names == ["2", "3"]
    used = []
    original = objectives.TrajectoryMatching.__init__

    def spy(self, dataset, experts, *args, **kwargs):
        used.append((experts.root.name, kwargs.get("first_class")))
        original(self, dataset, experts, *args, **kwargs)

    monkeypatch.setattr(objectives.TrajectoryMatching, "__init__", spy)
    api.distill(f"npz:{npz}", tmp_path / "tm.ddz", param="latent", loss="tm", spc=2,
                fit_iterations=8, fit_candidates=1, iterations=2, arm_context=8, levels=3,
                experts=str(tmp_path / "experts"), syn_steps=2, expert_epochs=1,
                max_start_epoch=1, blocks=2)
    assert used == [("block-0000-of-0002", 0), ("block-0001-of-0002", 2)]
    assert api.info(tmp_path / "tm.ddz")["num_classes"] == 4


def test_blocks_under_a_budget_with_global_soft_labels(tmp_path):
    """Each block reserves its share of the labels' bits; the global teacher labels the merged
    set; the whole file lands near the budget (below it by the blocks' extra headers, which
    one-class blocks of a toy set magnify)."""
    from conftest import data_and_teacher

    npz, teacher = data_and_teacher(tmp_path)
    distilled = api.distill(f"npz:{npz}", tmp_path / "s.ddz", param="latent",
                            fit_iterations=16, fit_candidates=1, iterations=4, batch_real=4,
                            arm_context=8, levels=3, blocks=3, labels="vq",
                            teacher=str(teacher), target_bpc=8000)
    assert distilled.soft_labels.codec == "vq" and distilled.num_classes == 3
    rate = distilled.provenance["rate_control"]
    assert rate["achieved_bpc"] == 8 * (tmp_path / "s.ddz").stat().st_size / 3
    assert -0.1 < rate["error"] < 0.02


def test_parts_of_resized_data_merge_at_their_size_and_odd_parts_are_refused(tmp_path,
                                                                             monkeypatch):
    from ddcodec.distillation import blocks as blocks_module

    npz = write_npz(tmp_path / "eight.npz", classes=2, per_class=4, test_per_class=2, size=8)
    options = dict(param="latent", spc=1, fit_iterations=8, iterations=1, batch_real=4,
                   arm_context=8, levels=3, blocks=2, resize=(16, 16))
    for block in (0, 1):
        assert api.distill(f"npz:{npz}", tmp_path / "r.ddz", block=block, **options) is None
    parts = sorted((tmp_path / "r.ddz.parts").glob("*.pt"))
    merged = api.merge(parts, tmp_path / "r.ddz")
    assert merged.provenance["resize"] == [16, 16] and merged.image_shape == (3, 16, 16)
    assert api.measure(tmp_path / "r.ddz", epochs=1, runs=1)["image_shape"] == [3, 16, 16]
    # a part of another format version; --block under torchrun
    old = load_part(parts[0])
    old["version"] = 99
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(DDCodecError, match="block part version 99"):
        load_part(tmp_path / "old.pt")
    monkeypatch.setenv("WORLD_SIZE", "2")
    from ddcodec.data.datasets import load_dataset
    from ddcodec.distillation import DistillConfig
    from ddcodec.distillation.latent import LatentTrainer

    with pytest.raises(DDCodecError, match="--block runs one block in one process"):
        blocks_module.run_blocks(load_dataset(f"npz:{npz}"),
                                 DistillConfig.of(param="latent", blocks=2), torch.device("cpu"),
                                 tmp_path / "x.parts", only=0, trainer_class=LatentTrainer)


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX's")
def test_a_block_another_process_is_distilling_is_refused_in_one_line(six, tmp_path, run_cli):
    """Two jobs on one block would write the same checkpoint and part: the second stops with
    one line naming the first, and the block is its once the first has gone."""
    npz, _ = six
    out = tmp_path / "c.ddz"
    marker = part_path(tmp_path / "c.ddz.parts", 1, 2).with_suffix(".running")
    marker.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); f.write('rank 0, pid 1 on elsewhere'); f.flush(); "
         "print('held', flush=True); time.sleep(120)", str(marker)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli("distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
                               "--block", "1", "-o", str(out))
        assert code == 1 and len(err.strip().splitlines()) == 1
        assert ("block 1 is being distilled by another process (rank 0, pid 1 on elsewhere)"
                in err)
        assert not part_path(tmp_path / "c.ddz.parts", 1, 2).exists()
    finally:
        holder.kill()
        holder.wait()
    done = run(["-m", "ddcodec", "distill", "--data", f"npz:{npz}", *OPTIONS, "--blocks", "2",
                "--block", "1", "-o", str(out)])
    assert "left unfinished by an earlier run (rank 0, pid 1 on elsewhere)" in done.stderr
    assert part_path(tmp_path / "c.ddz.parts", 1, 2).is_file() and not marker.exists()
