import json
import os
import subprocess
import sys

import pytest
import torch

import ddcodec
from conftest import FIXTURES

REQUIRED_MEASURE_KEYS = {"accuracy_mean", "accuracy_std", "accuracies", "runs", "epochs", "arch",
                         "num_images", "num_classes", "file_bytes", "bpc"}


def test_help_and_version(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0 and "distill" in out and "measure" in out
    code, out, _ = run_cli("--version")
    assert code == 0 and ddcodec.__version__ in out
    from importlib.metadata import version  # the installed package's metadata: single-sourced

    assert version("ddcodec") == ddcodec.__version__
    code, out, _ = run_cli("measure", "--help")
    assert code == 0 and "--epochs" in out and "--json" in out


def test_console_script_and_module_entry_points():
    proc = subprocess.run([sys.executable, "-m", "ddcodec", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and ddcodec.__version__ in proc.stdout
    script = os.path.join(os.path.dirname(sys.executable), "ddcodec")  # installed by pip
    assert os.path.isfile(script), "the package is not installed with its console script"
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and ddcodec.__version__ in proc.stdout


def test_usage_errors_exit_2(run_cli):
    assert run_cli("frobnicate")[0] == 2
    assert run_cli("distill", "--ipc", "0", "-o", "x.pt")[0] == 2
    code, _, err = run_cli("distill")  # -o is required
    assert code == 2 and "--output" in err


def test_distill_refuses_to_overwrite_without_force(run_cli, tmp_path, tiny_npz):
    out = tmp_path / "set.pt"
    out.write_bytes(b"precious")
    code, stdout, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "none",
                                "--ipc", "2", "-o", str(out))
    assert code == 1 and "already exists" in err and "-f" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    code, _, _ = run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "none", "--ipc", "2",
                         "-o", str(out), "-f", "-q")
    assert code == 0 and out.read_bytes() != b"precious"


def test_bad_input_is_one_line_and_exit_1(run_cli, tmp_path):
    code, out, err = run_cli("distill", "--data", "npz:/no/such.npz", "-o", str(tmp_path / "s.pt"))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("ddcodec: error:") and "not found" in err
    assert not (tmp_path / "s.pt").exists()
    code, _, err = run_cli("distill", "-v", "--data", "npz:/no/such.npz",
                           "-o", str(tmp_path / "s.pt"))
    assert code == 1 and "Traceback" in err  # -v shows where it came from
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    code, _, err = run_cli("measure", str(junk))
    assert code == 1 and "not a ddcodec set file" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("measure", str(tmp_path / "missing.pt"))
    assert code == 1 and "not found" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(run_cli, tmp_path, tiny_npz):
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--device", "cuda",
                           "-o", str(tmp_path / "s.pt"))
    assert code == 1 and "no CUDA GPU" in err


def test_failed_write_leaves_no_partial_file(run_cli, tmp_path, tiny_npz, monkeypatch):
    from pathlib import Path

    def disk_full(self, data):
        with open(self, "wb") as handle:
            handle.write(data[:len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "none",
                           "-o", str(tmp_path / "s.pt"), "--ipc", "2")
    assert code == 1 and "disk full" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.npz"]  # no output, no temp file


def test_distill_and_measure_json(run_cli, tmp_path, tiny_npz):
    out = tmp_path / "set.pt"
    code, stdout, _ = run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "dm",
                              "--ipc", "2", "--iterations", "2", "--batch-real", "4",
                              "-o", str(out), "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["num_images"] == 6 and summary["file_bytes"] == out.stat().st_size
    code, stdout, err = run_cli("measure", str(out), "--epochs", "3", "--runs", "2", "--json")
    # progress stays on stderr as plain lines off a terminal (--json only decides stdout)
    assert code == 0 and "measure the set" in err
    report = json.loads(stdout)  # exactly one JSON object
    assert REQUIRED_MEASURE_KEYS <= set(report)
    assert report["runs"] == 2 and report["epochs"] == 3 and report["arch"] == "convnet"
    # what made the number, and in which unit each accuracy is
    env = report["environment"]
    assert env["ddcodec"] and env["torch"] and env["constriction"] == "0.5.0"
    assert env["device"] == "cpu" and env["date"].startswith("20")
    assert report["units"]["accuracy_mean"].startswith("fraction")
    assert report["accuracy_mean_percent"] == pytest.approx(100 * report["accuracy_mean"])
    assert report["accuracies_percent"] == pytest.approx([100 * a for a in
                                                          report["accuracies"]])
    assert len(report["accuracies"]) == 2 and report["num_classes"] == 3
    assert report["bpc"] == pytest.approx(8 * out.stat().st_size / 3)


def test_measure_human_output_and_arch_option(run_cli, tmp_path, tiny_npz):
    out = tmp_path / "set.pt"
    assert run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "none", "--ipc", "2",
                   "-o", str(out), "-q")[0] == 0
    code, stdout, _ = run_cli("measure", str(out), "--epochs", "1", "--runs", "1",
                              "--arch", "resnet18")
    assert code == 0 and "accuracy" in stdout and "bits per class" in stdout
    assert "resnet18" in stdout
    code, _, err = run_cli("measure", str(out), "--arch", "nope")
    assert code == 2 and "'nope' is not one of 'convnet'" in err


def test_error_paths_without_other_coverage(run_cli, tmp_path, tiny_npz, monkeypatch):
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--resume",
                           "-o", str(tmp_path / "p.pt"))
    assert code == 1 and "no checkpoint to resume from" in err
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "none",
                           "--resume", "-o", str(tmp_path / "r.pt"))
    assert code == 1 and "apply to runs that learn" in err
    golden = os.path.join(FIXTURES, "golden_set.pt")
    assert run_cli("encode", golden, "-c", "--json")[0] == 2  # JSON and data on one stdout
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    ddz = os.path.join(FIXTURES, "golden.ddz")
    code, _, err = run_cli("decode", ddz, "--format", "imagefolder", "-o", str(folder))
    assert code == 1 and "already exists" in err and (folder / "mine.txt").exists()

    import ddcodec.api
    from ddcodec.errors import Interrupted

    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted in phase 2 at step 3; checkpoint saved to x.ckpt")

    monkeypatch.setattr(ddcodec.api, "distill", interrupted)
    code, _, err = run_cli("distill", "--param", "latent", "-o", str(tmp_path / "l.pt"))
    assert code == 130 and "checkpoint saved" in err
    assert len(err.strip().splitlines()) == 1


def test_decode_to_a_grid_shows_each_class_row_pixel_exactly(run_cli, tmp_path):
    import numpy as np
    from PIL import Image

    from ddcodec import api
    from ddcodec.data.grid import GAP, LABEL_WIDTH, TITLE_HEIGHT

    ddz = os.path.join(FIXTURES, "golden.ddz")
    out = tmp_path / "g.png"
    code, _, err = run_cli("decode", ddz, "--format", "grid", "-o", str(out))
    assert code == 0, err
    decoded = api.decode(ddz)
    n, c, h, w = decoded.images.shape
    classes = decoded.header.num_classes
    with Image.open(out) as png:
        sheet = np.asarray(png.convert("RGB"))
    per_class = max(int((decoded.labels == k).sum()) for k in range(classes))
    assert sheet.shape[0] == TITLE_HEIGHT + classes * (2 * h + GAP) + GAP
    assert sheet.shape[1] >= LABEL_WIDTH + min(per_class, 10) * (2 * w + GAP) + GAP
    for k in range(classes):  # the first image of each class, enlarged 2x, in row k
        first = int(np.flatnonzero(decoded.labels.numpy() == k)[0])
        y, x = TITLE_HEIGHT + k * (2 * h + GAP), LABEL_WIDTH + GAP
        tile = sheet[y:y + 2 * h:2, x:x + 2 * w:2]
        expected = decoded.images[first].permute(1, 2, 0).numpy()
        assert np.array_equal(tile, np.repeat(expected, 3, 2) if c == 1 else expected)
    code, _, err = run_cli("decode", ddz, "--format", "grid", "-o", str(out))
    assert code == 1 and "already exists" in err


def test_grid_and_png_export_refuse_what_they_cannot_draw():
    from ddcodec.errors import DDCodecError
    from ddcodec.data.grid import GAP, LABEL_WIDTH, class_grid, to_pil

    labels = torch.tensor([0, 1])
    with pytest.raises(DDCodecError, match="uint8"):
        class_grid(torch.zeros(2, 3, 4, 4), labels, ["a", "b"])
    with pytest.raises(DDCodecError, match="at least 1"):
        class_grid(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels, ["a", "b"], per_class=0)
    with pytest.raises(DDCodecError, match="1, 3 or 4 channels, not 2"):
        class_grid(torch.zeros(2, 2, 4, 4, dtype=torch.uint8), labels, ["a", "b"])
    assert to_pil(torch.zeros(4, 4, 4, dtype=torch.uint8)).mode == "RGBA"
    grey = class_grid(torch.full((2, 1, 4, 4), 200, dtype=torch.uint8), labels, ["a", "b"])
    assert grey.mode == "RGB" and grey.getpixel((LABEL_WIDTH + GAP, GAP)) == (200, 200, 200)


def test_the_command_line_starts_without_torch():
    """`ddcodec --help` and option parsing load no torch (about 2 s): the configs, the label
    rungs' names and the format's limits are torch-free."""
    code = "import sys, ddcodec.cli.commands; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_a_temperature_of_zero_is_refused_as_the_command_line_parses(run_cli, tmp_path):
    code, _, err = run_cli("label", str(tmp_path / "s.pt"), "--teacher", str(tmp_path / "t.pt"),
                           "-o", str(tmp_path / "o.pt"), "--temperature", "0")
    assert code == 2 and "--temperature" in err and "x>0" in err
