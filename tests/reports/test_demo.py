"""`ddcodec demo`: the main job end to end (tiny settings here), with a summary of real files."""

import json

from PIL import Image

from conftest import write_npz
from ddcodec.reports.demo import DemoConfig, print_summary, run_demo
from ddcodec.distillation import DistillConfig
from ddcodec.training.trainer import EvalConfig
from ddcodec.progress import Display


def test_demo_runs_the_whole_codec_and_reports_real_files(tmp_path, capsys):
    npz = write_npz(tmp_path / "t16.npz", size=16)
    config = DemoConfig(
        data=f"npz:{npz}", runs=1, eval=EvalConfig(epochs=2),
        latent=DistillConfig.of(param="latent", loss="dm", target_bpc=3000, shared_decoder=True,
                                fit_iterations=16, iterations=3, batch_real=8),
        pixel_dm=DistillConfig.of(loss="dm", ipc=1, iterations=2, batch_real=8))
    shown = _Recording()
    result = run_demo(config, tmp_path / "demo", "cpu", shown)
    names = [r["name"] for r in result["rows"]]
    assert names == ["latent", "random", "dm"]
    for r in result["rows"]:
        ddz = tmp_path / "demo" / r["file"].split("/")[-1]
        assert r["bpc"] == 8 * ddz.stat().st_size / 3  # from the file
        assert r["accuracy_mean"] >= 90  # the bands are learnt: chance is 33 %
    assert (tmp_path / "demo" / "latent_png" / "classes.json").is_file()
    with Image.open(tmp_path / "demo" / "latent_grid.png") as grid:
        assert grid.format == "PNG" and grid.size[0] > 110
    assert len(list((tmp_path / "demo" / "latent_png").rglob("*.png"))) == 3 * result["rows"][0][
        "images_per_class"]
    print_summary(result)
    err = capsys.readouterr().err
    assert "latent DM (ddcodec)" in err and "rate control" in err
    # the shortened baseline says how long it ran, in the rows and the table
    assert result["rows"][2]["label"] == "pixel DM, IPC 1, 2 iterations (8-bit)"
    assert "2 iterations" in err
    json.dumps(result)  # the --json output is serialisable
    # the measurements are planned from the start (the overall ETA counts them) and each
    # measuring stage counts its epochs, with an ETA once its first epochs are timed
    first_plan = [name for name, _, _ in shown.plans[0]]
    assert first_plan[0] == "latent DM (ddcodec): measuring" and len(first_plan) == 4
    assert any("phase 1/3 fit" in [n for n, _, _ in plan] for plan in shown.plans[1:])
    for label in ("latent DM (ddcodec)", "random real, IPC 1",
                  "pixel DM, IPC 1, 2 iterations (8-bit)"):
        steps = [(done, total) for stage, done, total in shown.updates
                 if stage == f"{label}: measuring"]
        assert steps[-1] == (2, 2)
    assert shown.measuring_lines and all("ETA --:--" not in line
                                         for line in shown.measuring_lines)


class _Recording(Display):
    """A display that keeps what it was told."""

    def __init__(self):
        super().__init__()
        self.plans, self.updates, self.measuring_lines = [], [], []

    def plan(self, stages):
        self.plans.append(list(stages))
        super().plan(stages)

    def update(self, stage, done, total, text=""):
        super().update(stage, done, total, text)
        self.updates.append((stage, done, total))
        if stage.endswith("measuring") and done >= 2:
            self.measuring_lines.append(self.line())


def test_demo_command_help(run_cli):
    code, out, _ = run_cli("demo", "--help")
    assert code == 0 and "--target-bpc" in out
