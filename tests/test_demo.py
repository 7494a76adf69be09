"""`ddcodec demo`: the main job end to end (tiny settings here), with a summary of real files."""

import json

from PIL import Image

from conftest import write_npz
from ddcodec.demo import DemoConfig, print_summary, run_demo
from ddcodec.distillation import DistillConfig
from ddcodec.evaluate import EvalConfig


def test_demo_runs_the_whole_codec_and_reports_real_files(tmp_path, capsys):
    npz = write_npz(tmp_path / "t16.npz", size=16)
    config = DemoConfig(
        data=f"npz:{npz}", runs=1, eval=EvalConfig(epochs=2),
        latent=DistillConfig.of(param="latent", loss="dm", target_bpc=3000, shared_decoder=True,
                                fit_iterations=16, iterations=3, batch_real=8),
        pixel_dm=DistillConfig.of(loss="dm", ipc=1, iterations=2, batch_real=8))
    result = run_demo(config, tmp_path / "demo", "cpu")
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
    json.dumps(result)  # the --json output is serialisable


def test_demo_command_help(run_cli):
    code, out, _ = run_cli("demo", "--help")
    assert code == 0 and "--target-bpc" in out
