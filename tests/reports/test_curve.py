"""The rate-utility curve: packed JPEG/WebP baselines, points reused, table, CSV and plot."""

import math
import csv
import json

import pytest
import torch
from PIL import Image

from conftest import write_npz
from ddcodec.distillation import DistillConfig
from ddcodec.training.trainer import EvalConfig
from ddcodec.reports.curve import CurveConfig, run_curve
from ddcodec.reports.points import POINT_VERSION, PointStore
from ddcodec.reports.table import bits_for_accuracy, build_table, compare
from ddcodec.data.datasets import load_dataset
from ddcodec.errors import DDCodecError
from ddcodec.reports.packed import largest_within, pack, unpack


@pytest.fixture
def npz16(tmp_path):
    return write_npz(tmp_path / "t16.npz", size=16)


def test_pack_round_trip_and_bits(npz16):
    data = load_dataset(f"npz:{npz16}")
    images = data.x_train[:5]
    for codec in ("jpeg", "webp"):
        low, high = pack(images, codec, 10), pack(images, codec, 95)
        assert len(low) < len(high)
        decoded = unpack(high, 5, data.image_shape)
        assert decoded.shape == images.shape and decoded.dtype == torch.uint8
        error = (decoded.float()[:, None] - images.float()[None]).abs().mean((2, 3, 4))
        assert torch.equal(error.argmin(1), torch.arange(5))  # every tile back in its place
        coarse = unpack(low, 5, data.image_shape)
        assert (coarse.float() - images.float()).abs().mean() > error.diagonal().mean()
    with pytest.raises(DDCodecError, match="unknown codec"):
        pack(images, "gif", 50)


def test_largest_within_fills_the_budget_and_no_more(npz16):
    data = load_dataset(f"npz:{npz16}")
    per_class, images, labels, bits = largest_within(data, "jpeg", 50, 6000)
    assert bits <= 6000 * 3 and per_class >= 1
    assert labels.tolist() == sorted(labels.tolist()) and len(images) == 3 * per_class
    more = largest_within(data, "jpeg", 50, 12000)
    assert more[0] > per_class  # a bigger budget buys more images
    assert largest_within(data, "jpeg", 50, 10) is None  # not one image fits


def test_packing_beats_one_file_per_image(npz16):
    data = load_dataset(f"npz:{npz16}")
    images = data.x_train[data.indices_of_class(0)][:9]
    packed = len(pack(images, "jpeg", 50))
    separate = sum(len(pack(images[i:i + 1], "jpeg", 50)) for i in range(9))
    assert packed < 0.6 * separate  # headers and tables are paid once


def test_bits_for_accuracy_interpolates_in_log_bits():
    series = [{"bpc": 1000, "accuracy_mean": 20.0}, {"bpc": 100000, "accuracy_mean": 40.0}]
    assert bits_for_accuracy(series, 30.0) == pytest.approx(10000)
    assert bits_for_accuracy(series, 10.0) == 1000
    assert bits_for_accuracy(series, 50.0) is None


def test_compare_uses_only_baselines_within_the_bits():
    points = [{"series": "latent-dm", "bpc": 5000, "accuracy_mean": 30.0},
              {"series": "jpeg", "bpc": 4900, "accuracy_mean": 25.0},
              {"series": "jpeg", "bpc": 9000, "accuracy_mean": 35.0},
              {"series": "pixels-8bit", "bpc": 17000, "accuracy_mean": 27.0}]
    row = compare(points)[0]
    assert row["jpeg"] == 25.0 and row["pixels-8bit"] is None and row["above_all"]


def test_curve_end_to_end_reuses_points(npz16, tmp_path):
    latent = DistillConfig.of(param="latent", iterations=4, fit_iterations=16, batch_real=8)
    config = CurveConfig(budgets=(3000,), data=f"npz:{npz16}", distill=latent,
                         eval=EvalConfig(epochs=3), runs=1, pixel_ipcs=(1,), pixel_iterations=2,
                         qualities=(50,))
    out = tmp_path / "curve"
    said = []
    table = run_curve(config, out, "cpu", on_event=said.append)
    series = {p["series"] for p in table["points"]}
    assert {"latent-dm", "pixels-float32", "pixels-8bit", "jpeg", "webp"} <= series
    latent = next(p for p in table["points"] if p["series"] == "latent-dm")
    # every rate-control probe is told and kept, one of them being the file written
    probes = [m for m in said if "rate control probe" in m]
    assert probes and len(probes) == len(latent["rate_attempts"])
    assert min(abs(a["bpc"] - latent["bpc"]) for a in latent["rate_attempts"]) < 1
    ddz = out / "points" / latent["file"]
    assert latent["bpc"] == 8 * ddz.stat().st_size / 3  # counted from the real file
    # every point's set teaches the bands (chance: 33 %); a mislabelled or empty set would not
    assert all(p["accuracy_mean"] >= 90 for p in table["points"]), table["points"]
    float32 = next(p for p in table["points"] if p["series"] == "pixels-float32")
    assert float32["bpc"] == 3 * 16 * 16 * 32
    rows = list(csv.DictReader(open(out / "curve.csv")))
    assert len(rows) == len(table["points"])
    assert json.loads((out / "curve.json").read_text())["points"] == table["points"]
    with Image.open(out / "curve.png") as png:
        assert png.size == (1425, 840)  # 9.5 x 5.6 inches at 150 dpi
    assert (out / "curve.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (out / "curve.svg").read_bytes()[:400]
    ceiling = table["ceiling"]  # the whole training split, the line above every point
    assert ceiling["num_images"] == 36 and ceiling["epochs"] == 20
    assert ceiling["accuracy_mean"] >= 90
    stamp = ddz.stat().st_mtime_ns
    again = run_curve(config, out, "cpu")  # every point reused: nothing re-distilled
    assert ddz.stat().st_mtime_ns == stamp
    assert [p["accuracy_mean"] for p in again["points"]] == [p["accuracy_mean"]
                                                             for p in table["points"]]
    # a point left by an older version of the code is kept on disk but not reported
    store = PointStore(out)
    record = json.loads(ddz.with_suffix(".json").read_text())
    stale_spec = {**record["spec"], "version": POINT_VERSION["latent"] - 1}
    store.put(stale_spec, {k: v for k, v in record.items() if k != "spec"})
    assert len(list((out / "points").glob("latent-dm-*.json"))) == 2
    rebuilt = build_table(store, config)
    assert [p for p in rebuilt["points"] if p["series"] == "latent-dm"] == [latent]


class Killed(Exception):
    pass


def test_a_stopped_latent_point_goes_on_from_its_checkpoint_to_the_same_file(
        npz16, tmp_path, monkeypatch):
    """A point of hours cut by a session's end: the next run resumes its distillation from the
    checkpoint kept beside the set, in a rate-control retrain round here, and writes the bytes
    an uninterrupted run writes, and counts the seconds of both processes."""
    import ddcodec.reports.points as points

    monkeypatch.setattr(points, "CHECKPOINT_EVERY", 2)
    monkeypatch.setattr(points, "SECONDS_EVERY", 0.0)  # the account kept at every step
    latent = DistillConfig.of(param="latent", iterations=4, fit_iterations=16, batch_real=8,
                              rate_tolerance=0.005)  # retrain rounds
    config = CurveConfig(budgets=(3000,), data=f"npz:{npz16}", distill=latent,
                         eval=EvalConfig(epochs=1), runs=1, baselines=False, ceiling_epochs=0)
    whole = run_curve(config, tmp_path / "whole", "cpu")["points"][0]
    assert len(whole["rate_attempts"]) >= 2 and not whole["resumed"]

    def stop_at_the_second_probe(message: str) -> None:
        if "rate control probe 2" in message:
            raise Killed

    stopped = tmp_path / "stopped"
    with pytest.raises(Killed):
        run_curve(config, stopped, "cpu", on_event=stop_at_the_second_probe)
    assert list((stopped / "points").glob("*.pt.ckpt"))
    kept = next((stopped / "points").glob("*.seconds-so-far"))
    before = float(kept.read_text())  # the stopped process's seconds
    said = []
    point = run_curve(config, stopped, "cpu", on_event=said.append)["points"][0]
    assert any("resuming from" in m for m in said) and point["resumed"]
    assert point["seconds_complete"] and point["distill_seconds"] > before > 0
    assert point["seconds"] > point["distill_seconds"] + point["measure_seconds"]
    assert not kept.exists()  # gone with the checkpoint
    assert ((stopped / "points" / point["file"]).read_bytes()
            == (tmp_path / "whole" / "points" / whole["file"]).read_bytes())
    assert point["rate_attempts"] == whole["rate_attempts"]
    assert not list((stopped / "points").glob("*.ckpt"))  # gone once the set is written
    assert not list((stopped / "points").glob("*.pt"))  # gone once the point is stored

    def stop_while_measuring(message: str) -> None:
        if message.endswith("encoded; measuring"):
            raise Killed

    again = tmp_path / "again"
    with pytest.raises(Killed):
        run_curve(config, again, "cpu", on_event=stop_while_measuring)
    distilling = float(next((again / "points").glob("*.seconds-so-far")).read_text())
    said = []
    point = run_curve(config, again, "cpu", on_event=said.append)["points"][0]
    assert any("distilled before; measuring again" in m for m in said)
    assert point["distill_seconds"] == distilling > 0 and point["seconds_complete"]
    assert not any("rate control probe" in m for m in said)  # not distilled again
    assert ((again / "points" / point["file"]).read_bytes()
            == (tmp_path / "whole" / "points" / whole["file"]).read_bytes())
    assert point["rate_attempts"] == whole["rate_attempts"]


def test_point_keys_do_not_depend_on_where_the_store_lies(tmp_path):
    import shutil

    here = tmp_path / "a" / "work"
    spec = {"series": "latent-dm", "protocol": {"data": f"imagefolder:{here / 'data'}"}}
    PointStore(here).put(spec, {"bpc": 1.0})
    assert json.loads(PointStore(here).path(spec).read_text())["spec"]["protocol"] == {
        "data": "imagefolder:./data"}
    moved = tmp_path / "b" / "elsewhere"
    shutil.copytree(here, moved)  # a fresh checkout in another folder
    spec_there = {"series": "latent-dm", "protocol": {"data": f"imagefolder:{moved / 'data'}"}}
    assert PointStore(moved).get(spec_there)["bpc"] == 1.0
    outside = {"series": "latent-dm", "protocol": {"data": f"imagefolder:{tmp_path / 'x'}"}}
    assert PointStore(moved).get(outside) is None  # other data is another point


def test_curve_refuses_bad_settings(tmp_path):
    with pytest.raises(DDCodecError, match="positive"):
        CurveConfig(budgets=(0,))
    with pytest.raises(DDCodecError, match="--experts"):
        CurveConfig(losses=("tm",))
    with pytest.raises(DDCodecError, match="hard-weight"):
        CurveConfig(label_hard_weight=1.5)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DDCodecError, match="not a folder"):
        run_curve(CurveConfig(), tmp_path / "file", "cpu")


def test_curve_command_refuses_bad_budget_lists(run_cli, tmp_path):
    code, _, err = run_cli("curve", "-o", str(tmp_path / "c"), "--budgets", "6000,lots")
    assert code == 2 and "comma-separated numbers" in err
    assert not (tmp_path / "c").exists()


def test_curve_with_a_teacher_adds_labelled_series_counted_whole(npz16, tmp_path):
    """latent + VQ labels and random real + the same teacher's VQ labels, each point's bits the
    whole file's (labels included) and within the budget's reach; another teacher's points in
    the same folder are not reported."""
    from ddcodec import api

    teacher = tmp_path / "teacher.pt"
    api.train_teacher(f"npz:{npz16}", teacher, device="cpu", epochs=2, holdout=0.2)
    latent = DistillConfig.of(param="latent", iterations=4, fit_iterations=16, batch_real=8)
    config = CurveConfig(budgets=(3000,), data=f"npz:{npz16}", distill=latent,
                         eval=EvalConfig(epochs=3), runs=1, pixel_ipcs=(), qualities=(50,),
                         codecs=("webp",), ceiling_epochs=0, teacher=str(teacher),
                         label_rungs=("vq",), labelled_random=("webp", 50))
    out = tmp_path / "curve"
    table = run_curve(config, out, "cpu")
    by = {p["series"]: p for p in table["points"]}
    assert {"latent-dm", "latent-dm+vq", "webp-q50", "webp-q50+vq"} <= set(by)
    labelled = by["latent-dm+vq"]
    ddz = out / "points" / labelled["file"]
    assert labelled["bpc"] == 8 * ddz.stat().st_size / 3  # the whole file, labels included
    assert api.decode(str(ddz)).to_set().soft_labels.codec == "vq"
    assert 0 < labelled["labels"]["label_bpc"] <= 0.1 * 3000
    random = by["webp-q50+vq"]
    assert random["bpc"] <= 3000 and random["labels"]["label_bpc"] > 0
    # the labels take bits: never more images than the same codec without them
    assert random["images_per_class"] <= by["webp-q50"]["images_per_class"]
    assert table["teacher"]["chosen_holdout_accuracy"] is not None
    row = next(r for r in table["comparison"] if r["series"] == "latent-dm+vq")
    assert "webp-q50+vq" in row
    other = tmp_path / "other.pt"
    api.train_teacher(f"npz:{npz16}", other, device="cpu", epochs=1, holdout=0.2)
    rebuilt = build_table(PointStore(out), CurveConfig(**{**config.__dict__,
                                                          "teacher": str(other)}))
    assert not any("+" in p["series"] for p in rebuilt["points"])
    # a hard weight makes new labelled points beside these; the unlabelled ones are shared
    weighted = run_curve(CurveConfig(**{**config.__dict__, "label_hard_weight": 0.5}), out,
                         "cpu")
    heavy = {p["series"]: p for p in weighted["points"]}
    assert heavy["latent-dm"] == by["latent-dm"] and heavy["webp-q50"] == by["webp-q50"]
    assert heavy["latent-dm+vq"]["file"] != labelled["file"]
    made = api.decode(str(out / "points" / heavy["latent-dm+vq"]["file"])).to_set()
    assert made.soft_labels.hard_weight == 0.5
    assert {p["series"]: p for p in build_table(PointStore(out), config)["points"]} == by


def test_curve_distribution_series_measure_one_file_fresh_and_frozen(npz16, tmp_path):
    from ddcodec.reports.curve import _legend

    latent = DistillConfig.of(param="latent", iterations=4, fit_iterations=16, batch_real=8)
    config = CurveConfig(budgets=(3000,), data=f"npz:{npz16}", distill=latent,
                         eval=EvalConfig(epochs=3), runs=1, baselines=False, ceiling_epochs=0,
                         distribution_losses=("dm",))
    out = tmp_path / "curve"
    table = run_curve(config, out, "cpu")
    by = {p["series"]: p for p in table["points"]}
    assert {"latent-dm", "distribution-dm", "distribution-dm-frozen"} == set(by)
    fresh, frozen = by["distribution-dm"], by["distribution-dm-frozen"]
    assert fresh["file"] == frozen["file"] and fresh["bpc"] == frozen["bpc"]
    ddz = out / "points" / fresh["file"]
    assert fresh["bpc"] == 8 * ddz.stat().st_size / 3
    assert fresh["steps_per_epoch"] == 1 and len(fresh["sigma_median_per_level"]) >= 1
    assert all(_legend(name) for name in by)
    assert {r["series"] for r in table["comparison"]} == set(by)
    stamp = ddz.stat().st_mtime_ns
    again = run_curve(config, out, "cpu")  # both reused
    assert ddz.stat().st_mtime_ns == stamp and again["points"] == table["points"]


def test_curve_measures_on_its_own_data_not_the_path_a_moved_file_remembers(tmp_path):
    """A store carried to another folder (a fresh clone) completes its missing points: measure
    reads the curve's data, not the path a header records; and no header names the folder the
    store was made in, only the data's place inside the store ("npz:./data.npz")."""
    import shutil

    from ddcodec import api

    here = tmp_path / "a" / "work"
    here.mkdir(parents=True)
    write_npz(here / "data.npz", size=16)
    latent = DistillConfig.of(param="latent", iterations=4, fit_iterations=16, batch_real=8)

    def config(root):
        return CurveConfig(budgets=(3000,), data=f"npz:{root / 'data.npz'}", distill=latent,
                           eval=EvalConfig(epochs=3), runs=1, baselines=False, ceiling_epochs=0,
                           distribution_losses=("dm",))

    run_curve(config(here), here, "cpu")
    files = sorted((here / "points").glob("*.ddz"))
    assert files and all(api.info(f)["meta"]["data"] == "npz:./data.npz" for f in files)
    assert not any(str(tmp_path).encode() in f.read_bytes() for f in files)
    moved = tmp_path / "b" / "work"
    shutil.copytree(here, moved)
    shutil.rmtree(tmp_path / "a")  # the path inside every header is gone
    frozen = next((moved / "points").glob("distribution-dm-frozen-*.json"))
    frozen.unlink()
    table = run_curve(config(moved), moved, "cpu")
    by = {p["series"]: p for p in table["points"]}
    assert by["distribution-dm-frozen"]["accuracy_mean"] >= 90  # re-measured, on the moved data
    assert by["distribution-dm-frozen"]["file"] == by["distribution-dm"]["file"]  # reused file


def test_curve_measurements_show_their_epochs_through_the_display():
    from ddcodec.reports.points import Reporter, _epochs
    from ddcodec.progress import Display

    said, shown = [], Display()
    reporter = Reporter(said.append, shown.measuring)
    config = CurveConfig()
    on_epoch = _epochs(reporter, "latent-dm at 6,000 bits/class: measuring", config)
    on_epoch(0, 0)
    assert shown.current[:3] == ("latent-dm at 6,000 bits/class: measuring", 1,
                                 config.runs * config.eval.epochs)
    reporter("a line")
    assert said == ["a line"]
    assert _epochs(said.append, "x", config) is None  # a plain callback shows no epochs


def test_equal_accuracy_ratios_come_in_pairs_and_the_papers_row_says_cross_protocol():
    """Against vanilla DM: the float32 count (the papers' convention) and the same baseline's
    own 8-bit .ddz (the honest one), always together; on CIFAR-10 also the papers' published
    table, marked cross-protocol."""
    from ddcodec.reports.table import PAPERS_VANILLA_DM, ratios

    points = [
        {"series": "pixels-float32", "ipc": 1, "bpc": 98_304.0, "accuracy_mean": 30.0},
        {"series": "pixels-8bit", "ipc": 1, "bpc": 24_700.0, "accuracy_mean": 30.0},
        {"series": "latent-dm", "bpc": 6_000.0, "accuracy_mean": 20.0},
        {"series": "latent-dm", "bpc": 12_000.0, "accuracy_mean": 40.0},
    ]
    (row,) = ratios(points)
    # 30 % lies halfway between 20 and 40: halfway in log bits between 6,000 and 12,000
    bits = math.sqrt(6_000 * 12_000)
    assert row["latent_bpc"] == pytest.approx(bits)
    assert row["ratio"] == pytest.approx(98_304 / bits)
    assert row["ratio_8bit"] == pytest.approx(24_700 / bits)
    assert not row["cross_protocol"] and not row["lower_bound"]
    rows = ratios(points, cifar10=True)
    papers = [r for r in rows if r["cross_protocol"]]
    assert [r["ipc"] for r in papers] == list(PAPERS_VANILLA_DM)
    first = papers[0]  # 26.0 % at 98,304 bits: reached between 6,000 and 12,000
    assert "cross-protocol" in first["reference"] and first["ratio_8bit"] is None
    assert first["ratio"] == pytest.approx(98_304 / first["latent_bpc"])
    assert papers[1]["latent_bpc"] is None and papers[1]["ratio"] is None  # 48.9 %: not reached
    # an 8-bit file that clips the float set's pixels and loses accuracy is matched at its own
    # accuracy (25 %: a quarter of the way from 20 to 40), the float32 count at the float's
    points[1] = {**points[1], "accuracy_mean": 25.0}
    (row,) = ratios(points)
    assert row["ratio"] == pytest.approx(98_304 / bits)
    file_bits = math.exp(math.log(6_000) + 0.25 * math.log(2))
    assert row["latent_bpc_8bit"] == pytest.approx(file_bits)
    assert row["ratio_8bit"] == pytest.approx(24_700 / file_bits)
    assert row["reference_8bit_accuracy"] == 25.0 and not row["lower_bound_8bit"]


def test_a_packed_point_stopped_while_measuring_goes_on_to_the_same_figures(npz16, tmp_path,
                                                                           monkeypatch):
    """A curve point's measurement keeps its progress beside the point: stopped after its
    first network, the next run trains only the second and reports what an unbroken run does;
    nothing is left behind."""
    import ddcodec.training.trainer as trainer
    from ddcodec.training import checkpoint

    monkeypatch.setattr(checkpoint, "SAVE_EVERY_S", 0.0)
    config = CurveConfig(budgets=(3000,), losses=(), data=f"npz:{npz16}",
                         eval=EvalConfig(epochs=3), runs=2, pixel_ipcs=(), qualities=(50,),
                         codecs=("webp",), ceiling_epochs=0)
    unbroken = run_curve(config, tmp_path / "unbroken", "cpu")["points"]
    tested, real_accuracy = [], trainer.accuracy

    def stop_at_the_second(*args, **kwargs):
        tested.append(1)
        if len(tested) == 2:
            raise KeyboardInterrupt
        return real_accuracy(*args, **kwargs)

    monkeypatch.setattr(trainer, "accuracy", stop_at_the_second)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        run_curve(config, out, "cpu")
    assert len(list((out / "points").glob("*.measure.ckpt"))) == 1
    tested.clear()
    monkeypatch.setattr(trainer, "accuracy", lambda *a, **k: (tested.append(1),
                                                               real_accuracy(*a, **k))[1])
    resumed = run_curve(config, out, "cpu")["points"]
    assert len(tested) == 1  # the first network came from the checkpoint
    assert [p["accuracies"] for p in resumed] == [p["accuracies"] for p in unbroken]
    packed = next(p for p in resumed if p["series"] == "webp-q50")
    earlier = packed["resumed_from_seconds"]  # the first network's time, saved in the stop
    assert earlier > 0 and packed["seconds"] >= packed["measure_seconds"] >= earlier
    assert not list((out / "points").glob("*.ckpt"))


def test_a_pixel_point_stopped_while_distilling_goes_on_to_the_same_file(npz16, tmp_path,
                                                                        monkeypatch):
    """A vanilla pixel point keeps its distillation's checkpoint beside it: stopped after its
    first checkpoint, the next run goes on from it (not from iteration 0) to the very file an
    unbroken run writes, counts the seconds of both processes, and leaves nothing behind."""
    import ddcodec.distillation.pixels as pixels
    from ddcodec.reports import points

    monkeypatch.setattr(points, "PIXEL_CHECKPOINT_EVERY", 1)
    config = CurveConfig(budgets=(3000,), losses=(), data=f"npz:{npz16}",
                         eval=EvalConfig(epochs=3), runs=1, pixel_ipcs=(1,), pixel_iterations=4,
                         qualities=(), codecs=(), ceiling_epochs=0)
    unbroken = run_curve(config, tmp_path / "unbroken", "cpu")["points"]
    real_save, saved, stop_at = pixels._save, [], [2]

    def stop_after_the_second_save(path, config, dataset, done, *rest):
        real_save(path, config, dataset, done, *rest)
        saved.append(done)
        if done in stop_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(pixels, "_save", stop_after_the_second_save)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        run_curve(config, out, "cpu")
    assert [p.suffix for p in (out / "points").iterdir()].count(".ckpt") == 1
    said, saved[:], stop_at[:] = [], [], []
    resumed = run_curve(config, out, "cpu", on_event=said.append)["points"]
    assert saved == [3, 4]  # iterations 3 and 4 only: the first two came from the checkpoint
    assert any("resumed from its checkpoint" in m for m in said)
    files = [sorted((run / "points").glob("pixels-*.ddz")) for run in (tmp_path / "unbroken", out)]
    assert len(files[0]) == 1 and files[0][0].read_bytes() == files[1][0].read_bytes()
    assert [p["accuracies"] for p in resumed] == [p["accuracies"] for p in unbroken]
    pixel = next(p for p in resumed if p["series"] == "pixels-8bit")
    assert pixel["seconds"] == pytest.approx(pixel["distill_seconds"] + pixel["measure_seconds"])
    assert pixel["seconds_complete"]  # the stopped process kept its seconds with its checkpoint
    left = {p.suffix for p in (out / "points").iterdir()}
    assert left <= {".json", ".ddz", ".csv"}, left


def test_a_pixel_point_stopped_while_measuring_is_not_distilled_again(npz16, tmp_path,
                                                                    monkeypatch):
    """Once its .ddz is written, a pixel point stopped in its measurement goes on measuring
    the same file: no iteration of its distillation runs again, and the figures are an
    unbroken run's."""
    import ddcodec.distillation.pixels as pixels
    import ddcodec.training.trainer as trainer

    config = CurveConfig(budgets=(3000,), losses=(), data=f"npz:{npz16}",
                         eval=EvalConfig(epochs=3), runs=1, pixel_ipcs=(1,), pixel_iterations=4,
                         qualities=(), codecs=(), ceiling_epochs=0)
    unbroken = run_curve(config, tmp_path / "unbroken", "cpu")["points"]
    real_accuracy = trainer.accuracy

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "accuracy", stop)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        run_curve(config, out, "cpu")
    assert list((out / "points").glob("pixels-*.ddz"))
    monkeypatch.setattr(trainer, "accuracy", real_accuracy)
    iterations = []
    monkeypatch.setattr(pixels, "make_objective", lambda *a, **k: iterations.append(1))
    resumed = run_curve(config, out, "cpu")["points"]
    assert not iterations  # the objective was never even built: nothing distilled again
    assert [p["accuracies"] for p in resumed] == [p["accuracies"] for p in unbroken]
    assert {p.suffix for p in (out / "points").iterdir()} <= {".json", ".ddz", ".csv"}
