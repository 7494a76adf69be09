"""The rate-utility curve: accuracy against bits per class, for our latent sets and baselines.

Every point is a real file whose bytes are counted, trained on under one protocol:

* `latent-<loss>`: `distill --param latent --target-bpc B`, encoded to .ddz, measured.
* `distribution-<loss>` (D3): `distill --param distribution --target-bpc B`, measured with fresh
  samples every epoch, and `distribution-<loss>-frozen`: the same file with epoch 0's samples.
* `pixels-float32` / `pixels-8bit`: vanilla pixel sets (pixel DM) at IPC 1/10/50, counted as
  float32 (the papers' convention: images only) and as an 8-bit .ddz (`encode --pixels 8bit`:
  rounded, declared lossy). Both are measured on the decoded .ddz, i.e. the 8-bit rounding of
  the float set (<= 1/510 per pixel).
* `jpeg-qQ` / `webp-qQ`: random real images packed per class into one mosaic file, as many per
  class as fit in B (`ddcodec.reports.packed`); `jpeg` / `webp` is the best quality at each budget.

Points are cached in OUT/points/*.json under a key of everything that determines them, so
re-running with the same arguments reuses finished points and adding budgets or losses to the
same folder extends the table. The table (JSON and CSV) and plot are rebuilt from every cached
point measured under the requested protocol.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import torch

from ddcodec.units import bits_per_class
from ddcodec.version import __version__
from ddcodec.data.datasets import Dataset, load_dataset
from ddcodec.labels.rungs import rung_names, spec_of
from ddcodec.errors import DDCodecError
from ddcodec.reports.curve_config import SHARED_DECODER_BELOW, CurveConfig  # noqa: F401 - re-exported
from ddcodec.fileio import atomic_path
from ddcodec import api
from ddcodec.devices import resolve_device
from ddcodec.distillation.config import LabelConfig
from ddcodec.distillation.labelling import (LabelPlan, label_bits, label_bits as count,
                                            label_split, labeller, rung_name)
from ddcodec.labels.teacher import load_teacher
from ddcodec.reports.packed import largest_within
from ddcodec.reports.plot import Ceiling, Series, rate_utility_plot
from ddcodec.sets.setfile import DistilledSet, load_set
from ddcodec.training.checkpoint import EvalCheckpoint, fingerprint
from ddcodec.training.trainer import evaluate_set

# A point's version changes when the code that produced it changes what it measures; the table
# keeps only current ones (latent 3: rate control on rounded-latent bits, slack-aware phase 2;
# all 4/2/2: every class draw keyed by (seed, purpose, class), ddcodec.seeds; latent 5: rate
# control anchors a retrain at the latents' count and keeps the closest probe; distribution 6:
# spreads on the 3 coarsest levels by default).
# A latent point's distillation keeps its state every this many steps beside its set (and on
# SIGTERM/Ctrl-C): a point of hours stopped by a session's end goes on from there, to the set
# an uninterrupted run writes, instead of starting again.
CHECKPOINT_EVERY = 25
# a point's measurement keeps its progress beside it (ddcodec.training.checkpoint): a point of
# 1000 epochs x 5 stopped part-way loses minutes, not hours
MEASURE_CHECKPOINT = ".measure.ckpt"
POINT_VERSION = {"latent": 5, "distribution": 6, "pixels": 2, "packed": 2, "full": 1}
Event = Callable[[str], None]


@dataclass
class Reporter:
    """What a curve run tells: a line per part (`say`), and, for each measurement, an
    `on_epoch` callback from `measuring(stage, runs, epochs)` (a ddcodec.progress.Display's)
    so that a measuring stage shows its epochs and its ETA."""

    say: Event
    measuring: Callable | None = None

    def __call__(self, message: str) -> None:
        self.say(message)

    def epochs(self, stage: str, config: "CurveConfig"):
        """The on_epoch callback of a measurement called `stage` (None: nothing shown)."""
        if self.measuring is None:
            return None
        return self.measuring(stage, config.runs, config.eval.epochs)


def _key(record_kind: dict) -> str:
    text = json.dumps(record_kind, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class PointStore:
    """Finished points on disk, one JSON each, named by the hash of what determines them."""

    def __init__(self, root: Path):
        self.root = root / "points"
        self.root.mkdir(parents=True, exist_ok=True)

    def local(self, value):
        """`value` with paths inside this store's folder written relative to it ("./data"), so
        a point keeps its key, and is found, wherever the checkout lies."""
        if isinstance(value, dict):
            return {k: self.local(v) for k, v in value.items()}
        if isinstance(value, str):
            return value.replace(f"{self.root.parent.resolve()}/", "./")
        return value

    def encode(self, set_path: Path, ddz_path: Path, keep_set: bool = False,
               **options) -> bytes:
        """Encode a point's set to its .ddz, the data it names written as `local` writes it
        (a class subset inside the store: "imagefolder:./data"), so a committed file never
        names the machine it was made on; the set file is removed once encoded (unless
        `keep_set`: the caller removes it once the point is stored)."""
        distilled = load_set(set_path)
        if "data" in distilled.provenance:
            distilled.provenance["data"] = self.local(str(distilled.provenance["data"]))
        data, _ = api.encode(distilled, ddz_path, force=True, **options)
        if not keep_set:
            set_path.unlink()
        return data

    def path(self, spec: dict, suffix: str = ".json") -> Path:
        return self.root / f"{spec['series']}-{_key(self.local(spec))}{suffix}"

    def get(self, spec: dict) -> dict | None:
        path = self.path(spec)
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
        return None

    def put(self, spec: dict, record: dict) -> dict:
        record = {"spec": self.local(spec), **record}
        with atomic_path(self.path(spec)) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
        return record

    def all(self) -> list[dict]:
        records = []
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return records


def _accuracy_fields(report: dict) -> dict:
    return {"accuracy_mean": 100 * report["accuracy_mean"],
            "accuracy_std": 100 * report["accuracy_std"],
            "accuracies": [100 * a for a in report["accuracies"]]}


def _measure_images(images_uint8: torch.Tensor, labels: torch.Tensor, dataset: Dataset,
                    config: CurveConfig, device: torch.device, checkpoint: Path) -> dict:
    """Images in memory measured under the curve's protocol, the progress kept in `checkpoint`
    (a stop goes on from it; removed when done). Its seconds count the earlier processes'
    saved work, as `measure`'s do."""
    images = hashlib.sha256(images_uint8.numpy().tobytes() + labels.numpy().tobytes())
    kept = EvalCheckpoint(checkpoint, fingerprint(images.hexdigest(), config.eval.to_dict(),
                                                  config.seed, device.type))
    result = evaluate_set(dataset.normalization.normalize(images_uint8), labels,
                          dataset.test_images(), dataset.y_test, dataset.num_classes,
                          config.eval, config.runs, config.seed, device, checkpoint=kept)
    seconds, earlier = kept.seconds(), kept.before
    kept.remove()
    return {**_accuracy_fields({"accuracy_mean": result.mean, "accuracy_std": result.std,
                                "accuracies": result.accuracies}),
            "measure_seconds": seconds, "resumed_from_seconds": earlier}


def teacher_digest(path: str | Path) -> str:
    """What identifies a teacher in a point's key: its bytes, not its path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _latent_point(store: PointStore, config: CurveConfig, loss: str, budget: float,
                  device: str, say: Event, rung: str | None = None,
                  param: str = "latent") -> dict:
    """A latent (or distributional) set at one budget, with hard labels or a rung's; a
    distributional one is measured twice: resampled every epoch, and with frozen samples."""
    options = {**config.latent_options(loss, budget), "param": param}
    shared = options["shared_decoder"]
    series = f"{param}-{loss}" + (f"+{rung}" if rung else "")
    spec = {"series": series, "budget_bpc": budget, "distill": options,
            "protocol": config.protocol(), "version": POINT_VERSION[param]}
    if loss == "tm":  # the experts folder's name is not what determines the point
        spec["distill"] = {**options, "experts": Path(options["experts"]).name}
    if rung:
        weight = _weight(config)  # absent at 0: earlier points keep their keys
        options = {**options, "labels": rung, "teacher": config.teacher, **weight}
        spec["distill"] = {**spec["distill"], "labels": rung,
                           "teacher": teacher_digest(config.teacher), **weight}
    found = store.get(spec)
    if found:
        if param == "distribution":
            _frozen_point(store, config, spec, found, device, say)
        return found
    say(f"{series} at {budget:,.0f} bits/class: distilling")
    started = time.perf_counter()
    set_path = store.path(spec, ".pt")

    def rate_notes(event) -> None:  # each rate-control probe, so a log explains a miss
        if event.kind == "note" and event.stage == "rate control":
            say(f"{series} at {budget:,.0f} bits/class: {event.text}")

    checkpoint = Path(f"{set_path}.ckpt")
    resumed = checkpoint.is_file() or set_path.is_file()
    if set_path.is_file():  # distilled before a stop in its measurement: the set is kept
        say(f"{series} at {budget:,.0f} bits/class: distilled before; measuring again")
        distilled = load_set(set_path)
    else:
        if resumed:
            say(f"{series} at {budget:,.0f} bits/class: resuming from {checkpoint.name}")
        distilled = api.distill(config.data, set_path, force=True, device=device,
                                on_progress=rate_notes, checkpoint=checkpoint,
                                checkpoint_every=CHECKPOINT_EVERY, resume=resumed, **options)
    distill_seconds = time.perf_counter() - started  # this process's part when resumed
    ddz_path = store.path(spec, ".ddz")
    data = store.encode(set_path, ddz_path, keep_set=True)
    say(f"{series} at {budget:,.0f} bits/class: {bits_per_class(len(data), distilled.num_classes):,.0f} "
        "bits/class encoded; measuring")
    report = api.measure(ddz_path, data=config.data, epochs=config.eval.epochs, runs=config.runs,
                         seed=config.seed, device=device, on_epoch=_epochs(
                             say, f"{series} at {budget:,.0f} bits/class: measuring", config),
                         checkpoint=store.path(spec, MEASURE_CHECKPOINT))
    rate = distilled.provenance.get("rate_control", {})
    labels = {}
    if rung:
        labels = {"labels": label_split(distilled, 8 * len(data))}
    spread = ({"sigma_median_per_level": distilled.provenance.get("sigma_median_per_level"),
               "steps_per_epoch": report["protocol"]["steps_per_epoch"]}
              if param == "distribution" else {})
    record = store.put(spec, {
        "series": series, "budget_bpc": budget, "bpc": report["bpc"], **labels,
        "file_bytes": report["file_bytes"], **_accuracy_fields(report),
        "images_per_class": report["images_per_class"], "lmbda": rate.get("lmbda"),
        "quant_mse": rate.get("quant_mse"), "within_tolerance": rate.get("within_tolerance"),
        "rate_attempts": rate.get("attempts"),
        "phase2_iterations": rate.get("phase2_iterations"),  # the effort, retrain rounds included
        "syn_lr": distilled.provenance.get("syn_lr"), "shared_decoder": shared, **spread,
        "distill_seconds": distill_seconds, "resumed": resumed,
        "measure_seconds": report.get("seconds"),
        "seconds": time.perf_counter() - started, "file": ddz_path.name})
    set_path.unlink()  # kept until the point is stored: a stop while measuring loses no set
    if param == "distribution":
        _frozen_point(store, config, spec, record, device, say)
    return record


def _frozen_point(store: PointStore, config: CurveConfig, spec: dict, fresh: dict,
                  device: str, say: Event) -> dict:
    """The control of a distributional point: its very file, trained on epoch 0's samples at
    every epoch."""
    base, plus, rung = fresh["series"].partition("+")
    series = f"{base}-frozen{plus}{rung}"
    frozen_spec = {**spec, "series": series, "frozen_samples": True}
    found = store.get(frozen_spec)
    if found:
        return found
    stage = f"{series} at {fresh['budget_bpc']:,.0f} bits/class: measuring"
    say(stage)
    report = api.measure(store.path(spec, ".ddz"), data=config.data, epochs=config.eval.epochs,
                         runs=config.runs, seed=config.seed, device=device, frozen_samples=True,
                         on_epoch=_epochs(say, stage, config),
                         checkpoint=store.path(frozen_spec, MEASURE_CHECKPOINT))
    keep = ("budget_bpc", "bpc", "labels", "file_bytes", "images_per_class", "lmbda",
            "shared_decoder", "sigma_median_per_level", "file")
    return store.put(frozen_spec, {**{k: fresh[k] for k in keep if k in fresh},
                                   "series": series, **_accuracy_fields(report),
                                   "measure_seconds": report.get("seconds"),
                                   "seconds": report.get("seconds")})


PIXEL_CHECKPOINT_EVERY = 25  # iterations between a pixel point's checkpoints


def _pixel_point(store: PointStore, config: CurveConfig, ipc: int, device: str,
                 say: Event) -> None:
    """Vanilla pixel DM at `ipc`, its 8-bit .ddz measured. Each stage resumes: the distillation
    from its checkpoint (its seconds kept beside it), the measurement from its own."""
    options = {"param": "pixels", "loss": "dm", "ipc": ipc, "iterations": config.pixel_iterations,
               "batch_real": config.distill.matching.batch_real, "seed": config.seed}
    spec = {"series": "pixels", "ipc": ipc, "distill": options, "protocol": config.protocol(),
            "version": POINT_VERSION["pixels"]}
    if store.get(spec):
        return
    ddz_path, made = store.path(spec, ".ddz"), store.path(spec, ".distilled")
    if not (ddz_path.is_file() and made.is_file()):
        _distill_pixels(store, config, spec, options, device, say)
    distilled = json.loads(made.read_text())
    stage = f"vanilla pixels (DM, {config.pixel_iterations:,} iterations) at IPC {ipc}: measuring"
    say(stage)
    report = api.measure(ddz_path, data=config.data, epochs=config.eval.epochs,
                         runs=config.runs, seed=config.seed, device=device,
                         on_epoch=_epochs(say, stage, config),
                         checkpoint=store.path(spec, MEASURE_CHECKPOINT))
    c, h, w = distilled["image_shape"]
    store.put(spec, {
        "series": "pixels", "ipc": ipc, "bpc_8bit": report["bpc"],
        "bpc_float32": ipc * c * h * w * 32, **_accuracy_fields(report),
        "file": ddz_path.name, "distill_seconds": distilled["seconds"],
        "measure_seconds": report.get("seconds"),
        "seconds": distilled["seconds"] + (report.get("seconds") or 0.0)})
    made.unlink()


def _distill_pixels(store: PointStore, config: CurveConfig, spec: dict, options: dict,
                    device: str, say: Event) -> None:
    """Distil and encode a pixel point's set, resumed from its checkpoint if one is there;
    `.distilled` (its seconds, all processes together, and its image shape) marks it
    done. The checkpoint goes only once the .ddz is written."""
    checkpoint, so_far = store.path(spec, ".ckpt"), store.path(spec, ".seconds-so-far")
    resume = checkpoint.is_file()
    before = float(so_far.read_text()) if resume and so_far.is_file() else 0.0
    say(f"vanilla pixels (DM, {config.pixel_iterations:,} iterations) at IPC {options['ipc']}: "
        + (f"distilling, resumed from its checkpoint ({before / 60:.0f} min saved)"
           if resume else "distilling"))
    started = time.perf_counter()

    def keep_seconds(iteration: int, loss: float) -> None:  # the checkpoint is saved next
        if (iteration + 1) % PIXEL_CHECKPOINT_EVERY == 0:
            so_far.write_text(f"{before + time.perf_counter() - started:.0f}\n")

    set_path = store.path(spec, ".pt")
    distilled = api.distill(config.data, set_path, force=True, device=device,
                            checkpoint=checkpoint, checkpoint_every=PIXEL_CHECKPOINT_EVERY,
                            resume=resume, keep_checkpoint=True, on_iteration=keep_seconds,
                            **options)
    seconds = before + time.perf_counter() - started
    store.encode(set_path, store.path(spec, ".ddz"), pixels="8bit")  # the series: 8-bit pixels
    with atomic_path(store.path(spec, ".distilled")) as tmp:
        tmp.write_text(json.dumps({"seconds": seconds,
                                   "image_shape": list(distilled.image_shape)}))
    checkpoint.unlink(missing_ok=True)
    so_far.unlink(missing_ok=True)


def _packed_point(store: PointStore, config: CurveConfig, dataset: Dataset, codec: str,
                  quality: int, budget: float, device: torch.device, say: Event,
                  rung: str | None = None) -> dict | None:
    """Random real images packed as JPEG/WebP, as many per class as fit in the budget; with a
    rung, each candidate is labelled by the teacher (VQ: the codebook rule of `distill
    --labels`, at this budget) and its label bits count against the same budget."""
    series = f"{codec}-q{quality}" + (f"+{rung}" if rung else "")
    spec = {"series": series, "budget_bpc": budget, "codec": codec,
            "quality": quality, "protocol": config.protocol(),
            "version": POINT_VERSION["packed"]}
    if rung:
        spec.update(labels=rung, teacher=teacher_digest(config.teacher), **_weight(config))
    found = store.get(spec)
    if found:
        return found if found.get("bpc") else None
    label_bits = _random_labeller(config, dataset, rung, budget, device) if rung else None
    started = time.perf_counter()
    best = largest_within(dataset, codec, quality, budget, config.seed,
                          extra_bits=label_bits and label_bits.bits)
    if best is None:
        store.put(spec, {"series": series, "budget_bpc": budget, "bpc": None,
                         "note": "not one image per class fits"})
        return None
    per_class, images, labels, bits = best
    say(f"{series} at {budget:,.0f} bits/class: {per_class} images per class; measuring")
    extra, train_labels = {}, labels
    if label_bits is not None:
        soft = label_bits.label(images, labels)
        train_labels = soft.training_rows(labels)

        extra = {"labels": {"rung": rung_name(soft), "label_bpc": count(soft) /
                            dataset.num_classes}}
    made = time.perf_counter() - started  # in this process; the measurement, in all of them
    measured = _measure_images(images, train_labels, dataset, config, device,
                               store.path(spec, MEASURE_CHECKPOINT))
    return store.put(spec, {
        "series": series, "codec": codec, "quality": quality,
        "budget_bpc": budget, "bpc": bits / dataset.num_classes, "images_per_class": per_class,
        **extra, **measured, "seconds": made + measured["measure_seconds"]})


class _LabelledBits:
    """Soft labels of uint8 images for the packed series, and their bits."""

    def __init__(self, made, dataset: Dataset):
        self.made, self.dataset = made, dataset

    def label(self, images_uint8: torch.Tensor, labels: torch.Tensor):
        plain = DistilledSet(self.dataset.normalization.normalize(images_uint8), labels,
                             list(self.dataset.class_names), self.dataset.normalization)
        return self.made(plain).soft_labels

    def bits(self, images_uint8: torch.Tensor, labels: torch.Tensor) -> int:
        return label_bits(self.label(images_uint8, labels))


def _weight(config: CurveConfig) -> dict:
    """The labelled points' hard weight as their keys and distill options name it (nothing at
    0, so points made before it existed keep their keys)."""
    return {"label_hard_weight": config.label_hard_weight} if config.label_hard_weight else {}


def _random_labeller(config: CurveConfig, dataset: Dataset, rung: str, budget: float,
                     device: torch.device) -> _LabelledBits:
    wanted = LabelConfig()  # the defaults distill --labels uses
    plan = LabelPlan(rung, wanted.label_temperature, wanted.label_loss,
                     budget_bits=budget * dataset.num_classes, share=wanted.label_share,
                     hard_weight=config.label_hard_weight)
    made = labeller(config.teacher, plan, device)
    made.check_fits(dataset, f"the data {dataset.spec}")
    return _LabelledBits(made, dataset)


def _epochs(say, stage: str, config: CurveConfig):
    """The measurement's on_epoch callback when `say` is a Reporter that shows epochs."""
    return say.epochs(stage, config) if isinstance(say, Reporter) else None


def run_curve(config: CurveConfig, out: Path, device: str = "auto",
              on_event: Event | None = None, measuring: Callable | None = None) -> dict:
    """Compute the curve's missing points into `out`. `on_event` gets a line per part;
    `measuring(stage, runs, epochs)` gives each measurement's on_epoch callback (a display's
    `measuring`), so measuring stages count epochs and show an ETA."""
    say = Reporter(on_event or (lambda message: None), measuring)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DDCodecError(f"{out} exists and is not a folder")
    store = PointStore(out)
    dev = resolve_device(device)
    dataset = load_dataset(config.data)
    started = time.perf_counter()
    rungs = config.label_rungs if config.teacher else ()
    for budget in sorted(config.budgets):
        for loss in config.losses:
            _latent_point(store, config, loss, budget, device, say)
            # the distributional points next: their comparison with the plain latent set is
            # the D3 question, so an interrupted run has answered it first
            if loss in config.distribution_losses:
                for rung in (None, *rungs[-1:]):
                    _latent_point(store, config, loss, budget, device, say, rung,
                                  param="distribution")
            for rung in rungs:
                _latent_point(store, config, loss, budget, device, say, rung)
        if rungs and config.baselines:
            codec, quality = config.labelled_random
            _packed_point(store, config, dataset, codec, quality, budget, dev, say, rungs[-1])
    if config.baselines:
        for budget in sorted(config.budgets):
            for codec in config.codecs:
                for quality in config.qualities:
                    _packed_point(store, config, dataset, codec, quality, budget, dev, say)
        for ipc in config.pixel_ipcs:
            _pixel_point(store, config, ipc, device, say)
    if config.ceiling_epochs:
        _full_point(store, config, dataset, dev, say)
    table = build_table(store, config)
    table["seconds_this_run"] = time.perf_counter() - started
    write_outputs(table, out)
    return table


def _kind(spec: dict) -> str:
    series = spec.get("series", "")
    if is_ours(series):
        return "distribution" if series.startswith("distribution-") else "latent"
    return series if series in ("pixels", "full") else "packed"


def _full_point(store: PointStore, config: CurveConfig, dataset: Dataset,
                device: torch.device, say: Event) -> dict:
    """The ceiling: the whole training split under the protocol, for `ceiling_epochs`."""
    from dataclasses import replace


    spec = {"series": "full", "epochs": config.ceiling_epochs, "protocol": config.protocol(),
            "version": POINT_VERSION["full"]}
    found = store.get(spec)
    if found:
        return found
    n = int(dataset.x_train.shape[0])
    say(f"the whole training split ({n:,} images, {config.ceiling_epochs} epochs): measuring")
    started = time.perf_counter()
    result = evaluate_set(dataset.train_images(), dataset.y_train, dataset.test_images(),
                          dataset.y_test, dataset.num_classes,
                          replace(config.eval, epochs=config.ceiling_epochs), config.runs,
                          config.seed, device)
    return store.put(spec, {
        "series": "full", "num_images": n, "epochs": config.ceiling_epochs,
        **_accuracy_fields({"accuracy_mean": result.mean, "accuracy_std": result.std,
                            "accuracies": result.accuracies}),
        "seconds": time.perf_counter() - started})


def build_table(store: PointStore, config: CurveConfig) -> dict:
    """Every cached point measured under this protocol, the best-quality envelopes of the
    packed codecs, the comparison at each latent budget and the equal-accuracy bit ratio."""
    protocol = store.local(config.protocol())
    points, ceiling = [], None
    digest = teacher_digest(config.teacher) if config.teacher else None
    for record in store.all():
        spec = record.get("spec", {})
        if spec.get("protocol") != protocol or spec.get("version") != POINT_VERSION[_kind(spec)]:
            continue
        teacher = spec.get("teacher") or spec.get("distill", {}).get("teacher")
        if teacher is not None and teacher != digest:  # labelled by another teacher, or none
            continue
        weight = spec.get("label_hard_weight", spec.get("distill", {}).get("label_hard_weight"))
        if teacher is not None and (weight or 0.0) != config.label_hard_weight:
            continue  # labelled points of another hard weight
        if record["series"] == "full":
            if spec.get("epochs") == config.ceiling_epochs:
                ceiling = {k: v for k, v in record.items() if k != "spec"}
            continue
        if record["series"] == "pixels":
            common = {k: record[k] for k in ("ipc", "accuracy_mean", "accuracy_std",
                                             "accuracies", "file", "seconds", "distill_seconds",
                                             "measure_seconds")
                      if k in record}
            common["iterations"] = spec.get("distill", {}).get("iterations")  # said in reports
            points.append({"series": "pixels-float32", "bpc": record["bpc_float32"], **common})
            points.append({"series": "pixels-8bit", "bpc": record["bpc_8bit"], **common})
        elif record.get("bpc"):
            points.append({k: v for k, v in record.items() if k != "spec"})
    for codec in ("jpeg", "webp"):
        by_budget: dict[float, dict] = {}
        for p in points:
            if p.get("codec") == codec and p["series"] != codec and "+" not in p["series"]:
                best = by_budget.get(p["budget_bpc"])
                if best is None or p["accuracy_mean"] > best["accuracy_mean"]:
                    by_budget[p["budget_bpc"]] = p
        points += [{**p, "series": codec} for p in by_budget.values()]
    points.sort(key=lambda p: (p["series"], p["bpc"]))
    return {"date": time.strftime("%Y-%m-%d"), "ddcodec_version": __version__,
            "protocol": {**protocol, "note": "ConvNet-D3, SGD 0.01 (MTT sets: learnt lr), "
                                             "momentum 0.9, wd 5e-4, batch 256, lr x0.1 at "
                                             "half, DSA, final-epoch accuracy"},
            "points": points, "comparison": compare(points),
            "ratios": ratios(points, cifar10="cifar10" in config.data.lower()),
            "ceiling": ceiling, **_teacher_record(config)}


def _teacher_record(config: CurveConfig) -> dict:
    """The teacher behind the labelled series, with its own accuracy (reported, never used)."""
    if not config.teacher:
        return {}

    made = load_teacher(config.teacher)
    return {"teacher": {"digest": teacher_digest(config.teacher), "arch": made.arch, **{
        k: made.info.get(k) for k in ("epoch", "chosen_holdout_accuracy", "test_accuracy",
                                      "data")}}}


def _series(points: list[dict], name: str) -> list[dict]:
    return sorted((p for p in points if p["series"] == name), key=lambda p: p["bpc"])


def is_ours(series: str) -> bool:
    """A series of ddcodec's own sets (latent, or distributional) rather than a baseline."""
    return series.startswith(("latent-", "distribution-"))


def accuracy_at(points: list[dict], bpc: float) -> float | None:
    """Best accuracy among points of at most `bpc` bits per class (None if none fits)."""
    fitting = [p["accuracy_mean"] for p in points if p["bpc"] <= bpc]
    return max(fitting) if fitting else None


def compare(points: list[dict]) -> list[dict]:
    """At each latent point: the best each baseline reaches with no more bits per class."""
    rows = []
    labelled = sorted({p["series"] for p in points
                       if "+" in p["series"] and not is_ours(p["series"])})
    baselines = ("pixels-float32", "pixels-8bit", "jpeg", "webp", *labelled)
    for p in points:
        if not is_ours(p["series"]):
            continue
        row = {"series": p["series"], "bpc": p["bpc"], "accuracy": p["accuracy_mean"]}
        for name in baselines:
            row[name] = accuracy_at(_series(points, name), p["bpc"] * 1.0)
        row["above_all"] = all(row[name] is None or p["accuracy_mean"] > row[name]
                               for name in baselines)
        rows.append(row)
    return rows


def bits_for_accuracy(series: list[dict], accuracy: float) -> float | None:
    """Bits per class where a curve first reaches `accuracy`, interpolated in log bits."""
    for lo, hi in zip([None] + series[:-1], series):
        if hi["accuracy_mean"] >= accuracy:
            if lo is None or lo["accuracy_mean"] >= accuracy:
                return hi["bpc"]
            t = (accuracy - lo["accuracy_mean"]) / (hi["accuracy_mean"] - lo["accuracy_mean"])
            return math.exp(math.log(lo["bpc"]) + t * (math.log(hi["bpc"]) - math.log(lo["bpc"])))
    return None


# Vanilla DM on CIFAR-10 as its paper reports it (Zhao & Bilen, WACV 2023, Table 1: lossless
# originals, GPU, 1000 epochs x 5 networks): IPC -> (accuracy %, float32 bits per class)
PAPERS_VANILLA_DM = {1: (26.0, 98_304), 10: (48.9, 983_040), 50: (63.0, 4_915_200)}


def ratios(points: list[dict], cifar10: bool = False) -> list[dict]:
    """Equal-accuracy bit ratios of each of our curves against vanilla pixel DM, always two
    together: against the baseline's float32 count (the papers' convention) and against the
    same baseline's own 8-bit .ddz (the honest one). With `cifar10`, a third row per IPC
    against the papers' published vanilla DM table, labelled as the cross-protocol comparison
    it is (their accuracies come from lossless images, GPUs and 1000 epochs x 5).

    Each ratio is taken at its own reference's accuracy: the float set's for the float32
    count, the 8-bit file's for that file (rounding to 8 bits clips vanilla DM's out-of-range
    pixels, which can cost it accuracy; the curve measures the 8-bit file for both)."""
    eight = {p["ipc"]: p for p in _series(points, "pixels-8bit") if "ipc" in p}
    references = [(f"pixels float32 IPC {r['ipc']}", r["ipc"], r["accuracy_mean"], r["bpc"],
                   eight.get(r["ipc"]), False) for r in _series(points, "pixels-float32")]
    if cifar10:
        references += [(f"the papers' vanilla DM IPC {ipc} (cross-protocol)", ipc, accuracy,
                        bits, None, True)
                       for ipc, (accuracy, bits) in PAPERS_VANILLA_DM.items()]
    rows = []
    for label, ipc, accuracy, bits_ref, file_point, published in references:
        for name in sorted({p["series"] for p in points if is_ours(p["series"])}):
            curve = _series(points, name)
            bits = bits_for_accuracy(curve, accuracy)
            file_bits = (bits_for_accuracy(curve, file_point["accuracy_mean"])
                         if file_point else None)
            rows.append({"series": name, "reference": label, "ipc": ipc,
                         "reference_bpc": bits_ref, "reference_accuracy": accuracy,
                         "reference_8bit_bpc": file_point["bpc"] if file_point else None,
                         "reference_8bit_accuracy": (file_point["accuracy_mean"] if file_point
                                                     else None),
                         "cross_protocol": published,
                         "latent_bpc": bits, "latent_bpc_8bit": file_bits,
                         "ratio": bits_ref / bits if bits else None,
                         "ratio_8bit": file_point["bpc"] / file_bits if file_bits else None,
                         # reached already at the smallest budget measured: a lower bound
                         "lower_bound": bool(bits) and bits == curve[0]["bpc"],
                         "lower_bound_8bit": bool(file_bits) and file_bits == curve[0]["bpc"]})
    return rows


LABELS = {"latent-dm": "latent DM (ours, .ddz)", "latent-gm": "latent GM (ours, .ddz)",
          "latent-tm": "latent TM (ours, .ddz)",
          "pixels-float32": "vanilla pixels (DM), float32 (the papers' count)",
          "pixels-8bit": "vanilla pixels (DM), rounded to an 8-bit .ddz",
          "jpeg": "random real, packed JPEG (best quality)",
          "webp": "random real, packed WebP (best quality)",
          "distribution-dm": "distributional DM, fresh samples each epoch (ours, .ddz)",
          "distribution-dm-frozen": "the same distributional files, samples frozen at epoch 0"}
STYLE = {"latent-dm": ("#1f77b4", False, "o"), "latent-gm": ("#2ca02c", False, "s"),
         "latent-tm": ("#9467bd", False, "d"), "pixels-float32": ("#d62728", True, "^"),
         "pixels-8bit": ("#ff7f0e", True, "^"), "jpeg": ("#7f7f7f", True, "s"),
         "webp": ("#8c564b", True, "d"), "distribution-dm": ("#393b79", False, "v"),
         "distribution-dm-frozen": ("#9c9ede", False, "v")}
RUNG_PALETTE = (("#17becf", "P"), ("#e377c2", "*"), ("#bcbd22", "X"), ("#98df8a", "h"),
                ("#c49c94", "p"), ("#f7b6d2", "8"))  # by the registry's order, then again


def _rung_legend(rung: str) -> tuple[str, tuple[str, str]] | None:
    """A registered rung's legend name and (colour, marker); None for any other text."""
    names = rung_names()
    if rung not in names:
        return None
    return (f"{spec_of(rung).display} soft labels",
            RUNG_PALETTE[names.index(rung) % len(RUNG_PALETTE)])


def _legend(name: str) -> tuple[str, tuple[str, bool, str]] | None:
    """Legend text and style of a series; labelled series ("latent-dm+vq", "webp-q25+vq")
    are named from their base series and rung."""
    if name in LABELS:
        return LABELS[name], STYLE[name]
    base, _, rung = name.partition("+")
    legend = _rung_legend(rung)
    if legend is None:
        return None
    rung_text, (color, marker) = legend
    if base in LABELS and base.startswith("distribution-"):
        text = LABELS[base].replace(" (ours, .ddz)", "")
        return f"{text} + {rung_text}", (STYLE[base][0], False, marker)
    if base.startswith("latent-"):
        return f"latent {base[7:].upper()} + {rung_text} (ours, .ddz)", (color, False,
                                                                               marker)
    codec, _, quality = base.partition("-q")
    return (f"random real, packed {codec.upper()} q{quality} + the same teacher's "
            f"{rung_text}", (color, True, marker))


def write_outputs(table: dict, out: Path) -> None:
    with atomic_path(out / "curve.json") as tmp:
        tmp.write_text(json.dumps(table, indent=1) + "\n")
    columns = ["series", "bpc", "accuracy_mean", "accuracy_std", "images_per_class", "ipc",
               "quality", "budget_bpc", "lmbda"]
    with atomic_path(out / "curve.csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            for p in table["points"]:
                writer.writerow(p)
    series = []
    names = list(LABELS) + sorted({p["series"] for p in table["points"]} - set(LABELS))
    for name in names:
        pts, legend = _series(table["points"], name), _legend(name)
        if pts and legend:
            label, (color, dashed, marker) = legend
            notes = [f"IPC {p['ipc']}" if p.get("ipc") else "" for p in pts]
            series.append(Series(label, [p["bpc"] for p in pts],
                                 [p["accuracy_mean"] for p in pts],
                                 [p["accuracy_std"] for p in pts], color, dashed, marker,
                                 notes=notes))
    if series:
        protocol, full = table["protocol"], table.get("ceiling")
        ceiling = None if not full else Ceiling(
            f"whole training split ({full['num_images']:,} images, {full['epochs']} epochs): "
            f"{full['accuracy_mean']:.1f} %", full["accuracy_mean"], full["accuracy_std"])
        rate_utility_plot(series, out / "curve",
                          title=f"Rate-utility on {protocol['data']} ({protocol['epochs']} "
                                f"epochs x {protocol['runs']} ConvNet-D3, {table['date']})",
                          x_label="bits per class (whole file; log scale)",
                          y_label="test accuracy (%)", ceiling=ceiling)
