"""The curve's points: each a real file, made and measured under one protocol, and cached.

* `latent-<loss>`: `distill --param latent --target-bpc B`, encoded to .ddz, measured.
* `distribution-<loss>` (D3): `distill --param distribution --target-bpc B`, measured with fresh
  samples every epoch, and `distribution-<loss>-frozen`: the same file with epoch 0's samples.
* `pixels` (reported as `pixels-float32` / `pixels-8bit`): vanilla pixel DM at one IPC, its
  8-bit .ddz measured.
* `jpeg-qQ` / `webp-qQ`: random real images packed per class into one mosaic file, as many per
  class as fit in B (`ddcodec.reports.packed`); with a rung (`webp-q25+vq`), labelled by the
  teacher, the label bits counted against the same budget.
* `full`: the whole training split, the ceiling.

Each point is a JSON record in OUT/points/ under a key of everything that determines it
(`PointStore`), so a run reuses finished points; every stage of a long point keeps its progress
beside it (a distillation's checkpoint, a measurement's), so a stopped run goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ddcodec import api
from ddcodec.data.datasets import Dataset
from ddcodec.distillation.config import LabelConfig
from ddcodec.distillation.labelling import (LabelPlan, label_bits, label_bits as count,
                                            label_split, labeller, rung_name)
from ddcodec.fileio import atomic_path
from ddcodec.reports.curve_config import CurveConfig
from ddcodec.reports.packed import largest_within
from ddcodec.sets.setfile import DistilledSet, load_set
from ddcodec.spent import SpentClock
from ddcodec.training.checkpoint import EvalCheckpoint, fingerprint
from ddcodec.training.trainer import evaluate_set
from ddcodec.units import bits_per_class

# A point's version changes when the code that produced it changes what it measures; the table
# keeps only current ones (latent 3: rate control on rounded-latent bits, slack-aware phase 2;
# all 4/2/2: every class draw keyed by (seed, purpose, class), ddcodec.seeds; latent 5: rate
# control anchors a retrain at the latents' count and keeps the closest probe; distribution 6:
# spreads on the 3 coarsest levels by default).
# A latent point's distillation keeps its state every this many steps beside its set (and on
# SIGTERM/Ctrl-C): a point of hours stopped by a session's end goes on from there, to the set
# an uninterrupted run writes, instead of starting again.
CHECKPOINT_EVERY = 25
SECONDS_EVERY = 60.0  # seconds between saves of a latent point's distillation seconds
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


def latent_point(store: PointStore, config: CurveConfig, loss: str, budget: float,
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
    set_path = store.path(spec, ".pt")
    checkpoint = Path(f"{set_path}.ckpt")
    resumed = checkpoint.is_file() or set_path.is_file()
    # the distillation's seconds over every process (a lower bound for a run resumed from a
    # checkpoint older than its seconds file)
    clock = SpentClock.start(store.path(spec, ".seconds-so-far"), resumed)

    def rate_notes(event) -> None:  # each rate-control probe, so a log explains a miss
        clock.tick(SECONDS_EVERY)
        if event.kind == "note" and event.stage == "rate control":
            say(f"{series} at {budget:,.0f} bits/class: {event.text}")

    if set_path.is_file():  # distilled before a stop in its measurement: the set is kept
        say(f"{series} at {budget:,.0f} bits/class: distilled before; measuring again")
        distilled = load_set(set_path)
        distill_seconds = clock.before
    else:
        if resumed:
            say(f"{series} at {budget:,.0f} bits/class: resuming from {checkpoint.name}")
        distilled = api.distill(config.data, set_path, force=True, device=device,
                                on_progress=rate_notes, checkpoint=checkpoint,
                                checkpoint_every=CHECKPOINT_EVERY, resume=resumed, **options)
        distill_seconds = clock.total()
        clock.save()  # a stop while measuring keeps the distillation's account
    after_distilling = time.perf_counter()
    ddz_path = store.path(spec, ".ddz")
    data = store.encode(set_path, ddz_path, keep_set=True)
    encoded = bits_per_class(len(data), distilled.num_classes)
    say(f"{series} at {budget:,.0f} bits/class: {encoded:,.0f} bits/class encoded; measuring")
    encode_seconds = time.perf_counter() - after_distilling
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
        "seconds_complete": clock.complete, "measure_seconds": report.get("seconds"),
        # the distillation and the measurement over every process, the encoding in this one
        "seconds": distill_seconds + encode_seconds + (report.get("seconds") or 0.0),
        "file": ddz_path.name})
    set_path.unlink()  # kept until the point is stored: a stop while measuring loses no set
    clock.clear()
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


def pixel_point(store: PointStore, config: CurveConfig, ipc: int, device: str,
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
        "seconds_complete": distilled.get("complete"),  # None: made before it was kept
        "measure_seconds": report.get("seconds"),
        "seconds": distilled["seconds"] + (report.get("seconds") or 0.0)})
    made.unlink()


def _distill_pixels(store: PointStore, config: CurveConfig, spec: dict, options: dict,
                    device: str, say: Event) -> None:
    """Distil and encode a pixel point's set, resumed from its checkpoint if one is there;
    `.distilled` (its seconds, all processes together, and its image shape) marks it
    done. The checkpoint goes only once the .ddz is written."""
    checkpoint = store.path(spec, ".ckpt")
    resume = checkpoint.is_file()
    clock = SpentClock.start(store.path(spec, ".seconds-so-far"), resume)
    say(f"vanilla pixels (DM, {config.pixel_iterations:,} iterations) at IPC {options['ipc']}: "
        + (f"distilling, resumed from its checkpoint ({clock.before / 60:.0f} min saved)"
           if resume else "distilling"))

    set_path = store.path(spec, ".pt")
    distilled = api.distill(config.data, set_path, force=True, device=device,
                            checkpoint=checkpoint, checkpoint_every=PIXEL_CHECKPOINT_EVERY,
                            resume=resume, keep_checkpoint=True,
                            on_iteration=clock.saver(PIXEL_CHECKPOINT_EVERY), **options)
    seconds = clock.total()
    store.encode(set_path, store.path(spec, ".ddz"), pixels="8bit")  # the series: 8-bit pixels
    with atomic_path(store.path(spec, ".distilled")) as tmp:
        tmp.write_text(json.dumps({"seconds": seconds, "complete": clock.complete,
                                   "image_shape": list(distilled.image_shape)}))
    checkpoint.unlink(missing_ok=True)
    clock.clear()


def packed_point(store: PointStore, config: CurveConfig, dataset: Dataset, codec: str,
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


def full_point(store: PointStore, config: CurveConfig, dataset: Dataset,
                device: torch.device, say: Event) -> dict:
    """The ceiling: the whole training split under the protocol, for `ceiling_epochs`."""
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
