"""Shared test helpers: small learnable datasets made on the fly, and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddcodec.devices import reuse_freed_memory

ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"  # golden files: sets and .ddz of every format version

torch.set_num_threads(1)  # small ops: one thread is as fast and immune to a busy machine
reuse_freed_memory()  # as the command line does: the same bits, fewer page faults


def make_arrays(per_class: int = 12, classes: int = 3, size: int = 8, channels: int = 3,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HWC uint8 images where class c is a bright horizontal band at its own height: easy to learn
    with any channel count, so a trained network must beat chance."""
    rng = np.random.default_rng(seed)
    n = per_class * classes
    x = rng.integers(0, 70, size=(n, size, size, channels), dtype=np.uint8)
    y = np.repeat(np.arange(classes), per_class)
    band = max(1, size // classes)
    for i, c in enumerate(y):
        x[i, c * band:(c + 1) * band] = rng.integers(180, 255, size=(band, size, channels))
    return x, y.astype(np.uint8)


def write_npz(path: Path, layout: str = "hwc", per_class: int = 12, test_per_class: int = 6,
              **kwargs) -> Path:
    x_train, y_train = make_arrays(per_class=per_class, seed=0, **kwargs)
    x_test, y_test = make_arrays(per_class=test_per_class, seed=1, **kwargs)
    if layout == "chw":
        x_train, x_test = x_train.transpose(0, 3, 1, 2), x_test.transpose(0, 3, 1, 2)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def data_and_teacher(root: Path, epochs: int = 2, **npz) -> tuple[Path, Path]:
    """A tiny npz dataset in `root` and a teacher trained on it (a few seconds)."""
    import ddcodec

    data = write_npz(root / "data.npz", **npz)
    teacher = root / "teacher.pt"
    ddcodec.train_teacher(f"npz:{data}", teacher, device="cpu", epochs=epochs, holdout=0.2)
    return data, teacher


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Each test's ImageFolder cache in its own folder, never the user's ~/.cache."""
    monkeypatch.setenv("DDCODEC_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def eager_networks(monkeypatch):
    """Networks run eagerly unless a test compiles them (`--compile` sets DDCODEC_COMPILE for
    the process and its children): restored after each test."""
    monkeypatch.setenv("DDCODEC_COMPILE", "0")


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    return write_npz(tmp_path / "tiny.npz")


@pytest.fixture
def run_cli(capsys):
    """Run the real `main` in-process; return (exit code, stdout, stderr)."""
    from ddcodec.cli.commands import main

    def run(*args: str):
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
