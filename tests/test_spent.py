"""The seconds a resumable run spent, kept over the processes that worked on it."""

import time

from ddcodec.spent import SpentClock, saved_seconds


def test_a_resumed_run_counts_the_seconds_of_the_processes_before_it(tmp_path):
    path = tmp_path / "run.seconds-so-far"
    first = SpentClock.start(path, resuming=False)
    assert first.complete and first.before == 0.0
    first.before = 100.0  # as if it had run 100 s: saved beside its checkpoint
    first.save()
    assert float(path.read_text()) >= 100.0
    second = SpentClock.start(path, resuming=True)
    assert second.complete and second.before == float(path.read_text())
    time.sleep(0.05)
    assert second.total() >= second.before + 0.05
    second.clear()
    assert not path.exists()


def test_a_checkpoint_without_its_seconds_gives_a_lower_bound(tmp_path):
    """A run begun before its seconds were kept: what this process spends, marked as such."""
    clock = SpentClock.start(tmp_path / "absent.seconds-so-far", resuming=True)
    assert not clock.complete and clock.before == 0.0
    (tmp_path / "cut.seconds-so-far").write_text("")  # as a kill mid-write would leave it
    cut = SpentClock.start(tmp_path / "cut.seconds-so-far", resuming=True)
    assert not cut.complete and cut.before == 0.0
    assert saved_seconds(tmp_path / "cut.seconds-so-far") is None
    (tmp_path / "stale.seconds-so-far").write_text("5000\n")
    fresh = SpentClock.start(tmp_path / "stale.seconds-so-far", resuming=False)
    assert fresh.complete and fresh.before == 0.0  # a run started afresh ignores a leftover


def test_a_tick_saves_only_once_its_interval_has_passed(tmp_path):
    """For runs whose checkpoints another layer saves: the account is kept every `every_s`."""
    path = tmp_path / "run.seconds-so-far"
    clock = SpentClock.start(path, resuming=False)
    clock.tick(3600.0)
    assert not path.exists()
    clock.tick(0.0)
    assert path.is_file() and float(path.read_text()) >= 0.0


def test_the_saver_keeps_the_seconds_at_the_checkpoints_iterations(tmp_path):
    """The on_iteration hook of a run checkpointed every n iterations saves at those alone."""
    path = tmp_path / "run.seconds-so-far"
    save = SpentClock.start(path, resuming=False).saver(3)
    save(0, 1.0)
    save(1, 1.0)
    assert not path.exists()
    save(2, 1.0)  # the third iteration: its checkpoint is saved next
    assert path.is_file()
