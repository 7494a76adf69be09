"""`measure`: train fresh networks on a set under the field's protocol and report accuracy
beside the set's real bits, with the controls that keep the report honest (hard labels on the
same images, labelled random real images at equal bits, DD-Ranking's baselines and score)."""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from ddcodec.units import bits_per_class
from ddcodec.bitstream import ddz
from ddcodec.data.datasets import load_dataset
from ddcodec.devices import environment, resolve_device
from ddcodec.distillation.labelling import LabelPlan, labeller
from ddcodec.distillation.random_subset import random_real_subset
from ddcodec.errors import DDCodecError, Interrupted
from ddcodec.evaluation.ranking import label_robust_score
from ddcodec.labels.rungs import rung
from ddcodec.labels.soft import check_soft_labels
from ddcodec.labels.teacher import check_teacher_fits, load_teacher
from ddcodec.sets.distributional import Resampled
from ddcodec.sets.setfile import DistilledSet, load_set
from ddcodec.training.checkpoint import EvalCheckpoint, fingerprint
from ddcodec.training.protocol import MeasureConfig
from ddcodec.training.trainer import evaluate_set


def measure(set_path: "str | os.PathLike | DistilledSet", *,
            config: "MeasureConfig | None" = None,
            seed: int = 0, device: str = "auto", data: str | None = None,
            data_root: str | None = None,
            on_epoch: Callable[[int, int], None] | None = None,
            checkpoint: str | os.PathLike | None = None, **overrides) -> dict:
    """Train fresh networks on the set (a set file, a .ddz, or a DistilledSet in memory, whose
    bits are those of its lossless .ddz) under the standard protocol; return the report.
    `config` (a MeasureConfig, default: the field's protocol) with any of its fields overridden
    by keyword (`epochs=300`, `runs=2`, ...). `checkpoint`: a file that keeps the progress of
    a long measurement (ddcodec.training.checkpoint), removed when it is done."""
    try:
        measuring = replace(config or MeasureConfig(), **overrides)
    except TypeError as exc:
        raise DDCodecError(f"measure: {exc}") from None
    epochs, runs = measuring.epochs, measuring.runs
    if runs < 1:
        raise DDCodecError("--runs must be at least 1")
    distilled, raw, estimate = load_for_measure(set_path)
    if measuring.hard_labels and measuring.label_hard_weight is not None:
        raise DDCodecError("--hard-labels trains on the classes alone: --label-hard-weight has "
                           "no labels to weigh")
    distilled = _with_hard_weight(distilled, measuring.label_hard_weight)
    controls = {"--frozen-samples": measuring.frozen_samples,
                "--samples": measuring.samples is not None,
                "--spread-scale": measuring.spread_scale is not None}
    if any(controls.values()) and distilled.prior_sampler() is None:
        which = next(name for name, used in controls.items() if used)
        raise DDCodecError(f"{which} is for distributional sets (distill --param "
                           "distribution); this set has fixed images")
    path = set_path if isinstance(set_path, (str, os.PathLike)) else "<set in memory>"
    spec = data or distilled.provenance.get("data")
    if not spec:
        raise DDCodecError(f"{path} does not say which data it came from; pass --data")
    resize = distilled.provenance.get("resize")
    dataset = load_dataset(spec, data_root, resize=tuple(resize) if resize else None)
    if dataset.image_shape != distilled.image_shape or dataset.num_classes != distilled.num_classes:
        raise DDCodecError(
            f"{path} holds {distilled.num_classes} classes of {distilled.image_shape} images but "
            f"{spec} has {dataset.num_classes} classes of {dataset.image_shape}")
    config = measuring.eval_config(distilled.provenance.get("syn_lr"), distilled.soft_labels)
    dev = resolve_device(device)
    space = distilled.input_space(dataset)  # a ZCA set's test images are whitened alike
    test_images = space.normalize(dataset.x_test)
    started = time.perf_counter()
    soft = None if measuring.hard_labels else distilled.soft_labels
    train_labels = distilled.labels if measuring.hard_labels else distilled.training_labels()
    resample = _resampler(distilled, train_labels, measuring)
    replay = None
    if soft is not None and soft.fkd:  # the relabelling's own batches, views and mixing
        from ddcodec.sets.fkd import FkdReplay

        replay = FkdReplay(distilled.images, distilled.fkd, soft.probabilities)
    kept = (EvalCheckpoint(checkpoint, fingerprint(
        hashlib.sha256(raw).hexdigest(), config.to_dict(), seed, dev.type,
        _fingerprinted(measuring))) if checkpoint is not None else None)
    try:
        result = evaluate_set(distilled.images, train_labels, test_images, dataset.y_test,
                              distilled.num_classes, config, runs, seed, dev, on_epoch,
                              views=soft.views() if soft is not None else None,
                              resample=resample, replay=replay, checkpoint=kept)
    except KeyboardInterrupt:
        if kept is None or not kept.path.is_file():
            raise
        raise Interrupted(f"measuring interrupted; its progress (saved at most "
                          f"{kept.every_s:.0f} s before) is in {kept.path}: the same command "
                          "goes on from it") from None
    per_epoch = resample.images_per_epoch if resample is not None else distilled.num_images
    seconds = kept.seconds() if kept is not None else time.perf_counter() - started
    ranking = (_ranking(distilled, dataset, measuring, result.mean, space, test_images, seed,
                        dev, on_epoch) if measuring.baselines else {})
    if measuring.teacher:
        ranking["label_controls"] = _label_controls(distilled, dataset, measuring, len(raw),
                                                    test_images, seed, dev)
    file_bytes = len(raw)
    if kept is not None:
        kept.remove()
    return {
        **ranking,
        "file": str(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "file_bytes": file_bytes,
        "bits": 8 * file_bytes,
        "bpc": bits_per_class(file_bytes, distilled.num_classes),
        "num_images": distilled.num_images,
        "num_classes": distilled.num_classes,
        "images_per_class": distilled.num_images / distilled.num_classes,
        "image_shape": list(distilled.image_shape),
        "accuracy_mean": result.mean,
        "accuracy_std": result.std,
        "accuracies": list(result.accuracies),
        "runs": runs,
        "epochs": epochs,
        "arch": config.arch,
        "seeds": list(result.seeds),
        "labels": _label_report(distilled, measuring, config),
        "protocol": {
            "optimizer": "sgd", "lr": config.lr, "momentum": config.momentum,
            "weight_decay": config.weight_decay, "batch_size": config.batch_size,
            "lr_schedule": f"x0.1 at epoch {epochs // 2}", "dsa": config.dsa,
            "dsa_strategy": config.dsa_strategy if config.dsa else None,
            "accuracy": "final epoch, whole test set",
            "images_per_epoch": per_epoch,
            "steps_per_epoch": (replay.views.batches if replay is not None
                                else math.ceil(per_epoch / config.batch_size)),
            **({"batches": "the FKD relabelling's own: batches of "
                f"{replay.views.batch_size}, its crops, flips and {replay.views.mix} "
                "mixing, no DSA"} if replay is not None else {}),
        },
        **({"distribution": _distribution_report(resample)} if resample is not None else {}),
        "test_data": spec,
        "num_test": int(dataset.x_test.shape[0]),
        "method": distilled.provenance.get("method"),
        **estimate,
        "device": str(dev),
        "seconds": seconds,
        # the field reports percent; the keys above are fractions, these percents, and `units` says so
        "accuracy_mean_percent": 100 * result.mean,
        "accuracy_std_percent": 100 * result.std,
        "accuracies_percent": [100 * a for a in result.accuracies],
        "units": {"accuracy_mean": "fraction of the test set (0-1)",
                  "accuracy_std": "fraction, population std over runs",
                  "accuracies": "fraction, one per run",
                  "accuracy_mean_percent": "percent", "accuracy_std_percent": "percent",
                  "accuracies_percent": "percent", "bits": "bits of the whole file",
                  "bpc": "bits per class of the whole file", "seconds": "wall-clock seconds"},
        "environment": environment(dev),
        **({"resumed_from_seconds": kept.before} if kept is not None and kept.before else {}),
    }


def _resampler(distilled, train_labels, measuring):
    """A distributional set's per-epoch data (means and fresh samples), else None."""
    sampler = distilled.prior_sampler()
    if sampler is None:
        return None
    if train_labels.ndim == 3:
        raise DDCodecError("this distributional set carries per-epoch soft labels; it takes "
                           "one label per prior")
    if measuring.spread_scale is not None:
        sampler = replace(sampler, spread_scale=measuring.spread_scale)
    return Resampled(distilled.images, train_labels, sampler, distilled.normalization,
                     frozen=measuring.frozen_samples, samples=measuring.samples)


def _distribution_report(resample) -> dict:
    return {"priors": resample.sampler.num_priors,
            "samples_per_prior": resample.samples,
            "file_samples_per_prior": resample.sampler.samples_per_prior,
            "spread_scale": resample.sampler.spread_scale,
            "resampled": "epoch 0's samples at every epoch (frozen control)" if resample.frozen
            else "fresh samples every epoch"}


def _fingerprinted(measuring: MeasureConfig) -> dict:
    """The options a checkpoint belongs to: any count of runs shares it (network s is the
    same in each); the hard weight only when given (the set's own is in its bytes), so that
    checkpoints made before the option existed still resume."""
    options = {k: v for k, v in asdict(measuring).items() if k != "runs"}
    if options["label_hard_weight"] is None:
        del options["label_hard_weight"]
    return options


def _with_hard_weight(distilled, weight: float | None):
    """The set with --label-hard-weight in place of its own (None: as it is)."""
    if weight is None:
        return distilled
    soft = distilled.soft_labels
    if soft is None:
        raise DDCodecError("--label-hard-weight weighs soft labels; this set has hard labels "
                           "only")
    weighed = replace(soft, hard_weight=weight)
    check_soft_labels(weighed, distilled.num_images, distilled.num_classes)
    return replace(distilled, soft_labels=weighed)


def _label_report(distilled, measuring, config) -> dict:
    soft = distilled.soft_labels
    if soft is None or measuring.hard_labels:
        return {"kind": "hard", **({"soft_labels_ignored": True} if soft is not None else {})}
    kind = (f"soft (per epoch: {soft.epochs} views per image, replayed"
            + (", an FKD relabelling's batches" if soft.fkd else "") + ")" if soft.per_epoch
            else "soft (static, one per image)")
    return {"kind": kind, "codec": soft.codec,
            "loss": config.label_loss, "temperature": config.label_temperature,
            "hard_weight": soft.hard_weight, "teacher": soft.teacher}


def _label_controls(distilled, dataset, measuring, file_bytes: int, test_images, seed: int,
                    device: torch.device) -> dict:
    """Without these, the teacher's knowledge is credited to the set: the same images trained
    on their hard labels, and the most random real images per class that, labelled by the same
    teacher in the same rung, fit in the set's bits per class (a lossless .ddz each)."""
    soft = distilled.soft_labels
    if soft is None:
        raise DDCodecError("--teacher: the set has no soft labels to control for")
    if distilled.zca_eps is not None:
        raise DDCodecError("--teacher: a teacher labels unwhitened images; the controls are "
                           "not defined for a ZCA set")
    if soft.fkd:
        raise DDCodecError("--teacher: an FKD relabelling's views belong to its own images; "
                           "the labelled random control is not defined for it")
    made = load_teacher(measuring.teacher)
    check_teacher_fits(made, distilled.num_classes, distilled.image_shape,
                       distilled.normalization, "the set")
    config = measuring.eval_config(distilled.provenance.get("syn_lr"), soft)

    def labelled_random(ipc: int):
        images, labels = random_real_subset(dataset, ipc, seed, distilled.normalization)
        plain = DistilledSet(images, labels, list(distilled.class_names),
                             distilled.normalization)
        plan = LabelPlan(soft.codec, soft.temperature, soft.loss, rung(soft.codec).size(soft),
                         epochs=soft.epochs, view_seed=soft.view_seed,
                         hard_weight=soft.hard_weight,
                         **({"view_strategy": soft.view_strategy} if soft.view_strategy else {}))
        made = labeller(measuring.teacher, plan, device)
        made.check_fits(plain, "the set")
        return made(plain)

    most = min(len(dataset.indices_of_class(c)) for c in range(distilled.num_classes))
    best, low, high = None, 1, most
    while low <= high:  # the largest IPC whose file fits (sizes grow with IPC)
        mid = (low + high) // 2
        candidate = labelled_random(mid)
        size = len(ddz.encode(candidate)[0])
        if size <= file_bytes:
            best, low = (mid, candidate, size), mid + 1
        else:
            high = mid - 1

    def run(images, labels, views=None) -> dict:
        result = evaluate_set(images, labels, test_images, dataset.y_test,
                              distilled.num_classes, config, measuring.runs, seed, device,
                              views=views)
        return {"accuracy_mean": result.mean, "accuracy_std": result.std,
                "accuracies": list(result.accuracies), "accuracy_mean_percent": 100 * result.mean}

    controls = {"same_images_hard_labels": run(distilled.images, distilled.labels)}
    if best is None:
        controls["random_real_same_teacher"] = {"note": "not one labelled real image per class "
                                                        "fits in the set's bits"}
    else:
        ipc, candidate, size = best
        controls["random_real_same_teacher"] = {
            **run(candidate.images, candidate.training_labels(), candidate.soft_labels.views()),
            "images_per_class": ipc,
            "bpc": bits_per_class(size, distilled.num_classes)}
    return controls


def _ranking(distilled, dataset, measuring, synthetic: float, space, test_images, seed: int,
             device: torch.device, on_epoch) -> dict:
    """DD-Ranking's baselines under the same protocol and seeds (default lr: the learnt one
    belongs to the synthetic set): a random real subset with the set's images per class and
    label kind, and the whole training split; then HLR, IOR and LRS (ddcodec.evaluation.ranking)."""
    if distilled.soft_labels is not None:
        raise DDCodecError("--baselines: a soft-label set's random baseline needs its teacher's "
                           "labels on the random images; measure without --baselines")
    counts = torch.bincount(distilled.labels, minlength=distilled.num_classes).tolist()
    config = measuring.eval_config(None)
    runs, parts = measuring.runs, {}
    images, labels = random_real_subset(dataset, counts, seed, space)
    train = {"random": (images, labels), "full": (space.normalize(dataset.x_train),
                                                  dataset.y_train)}
    for offset, (name, (x, y)) in enumerate(train.items(), start=1):
        started = time.perf_counter()
        tell = (lambda run, epoch, o=offset: on_epoch(o * runs + run, epoch)) if on_epoch else None
        result = evaluate_set(x, y, test_images, dataset.y_test, distilled.num_classes, config,
                              runs, seed, device, tell)
        parts[name] = {"accuracy_mean": result.mean, "accuracy_std": result.std,
                       "accuracies": list(result.accuracies),
                       "accuracy_mean_percent": 100 * result.mean,
                       "num_images": int(x.shape[0]), "lr": config.lr,
                       "seconds": time.perf_counter() - started}
    parts["random"]["images_per_class"] = counts
    metrics = label_robust_score(synthetic, parts["random"]["accuracy_mean"],
                                 parts["full"]["accuracy_mean"], measuring.lrs_lambda)
    return {"baselines": parts, "ranking": {
        **metrics, "definition": "HLR = full - synthetic, IOR = synthetic - random (fractions); "
                                 "alpha = lambda IOR - (1 - lambda) HLR; "
                                 "LRS = (e^alpha - e^-1) / (e - e^-1), as DD-Ranking defines it"}}


def load_for_measure(source):
    """A set file, a .ddz or a set in memory -> (set, the file's bytes, the model's bit
    estimate if any). A set in memory is priced as its lossless .ddz."""
    if isinstance(source, DistilledSet):
        data, _ = ddz.encode(source)
        bits = source.provenance.get("estimated_bits")
        estimate = {"format": "in-memory set, priced as its lossless .ddz"}
        if bits:
            estimate.update(estimated_bits=bits, estimated_bpc=bits["total"] / source.num_classes)
        return source, data, estimate
    path = Path(source)
    if str(path) != "-" and not path.is_file():
        raise DDCodecError(f"{path} not found")
    if ddz.is_ddz(path):
        raw = ddz.read_input(path)
        decoded = ddz.decode(raw)
        bits = decoded.estimated_bits
        return decoded.to_set(), raw, {
            "format": "ddz", "estimated_bits": {**bits, "total": sum(bits.values())},
            "estimated_bpc": sum(bits.values()) / decoded.header.num_classes}
    distilled = load_set(path)
    raw = path.read_bytes()
    bits = distilled.provenance.get("estimated_bits")
    estimate = {"format": "set"}
    if bits:
        estimate.update(estimated_bits=bits, estimated_bpc=bits["total"] / distilled.num_classes)
    return distilled, raw, estimate
