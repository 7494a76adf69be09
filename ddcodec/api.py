"""The Python API: the same verbs as the command line, returning Python objects."""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ddcodec.data import DEFAULT_SPEC, load_dataset
from ddcodec.errors import DDCodecError
from ddcodec.evaluate import evaluate_set

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig
    from ddcodec.protocol import MeasureConfig
    from ddcodec.setfile import DistilledSet


def resolve_device(name: str = "auto") -> torch.device:
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DDCodecError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise DDCodecError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def distill(data: str = DEFAULT_SPEC, output: str | os.PathLike | None = None, *,
            data_root: str | None = None, download: bool = False,
            resize: tuple[int, int] | None = None, force: bool = False, device: str = "auto",
            on_iteration: Callable[[int, float], None] | None = None,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
            resume: bool = False, on_progress: Callable | None = None,
            on_message: Callable[[str], None] | None = None, block: int | None = None,
            config: "DistillConfig | None" = None, **overrides):
    """Distil `data` under `config` (a DistillConfig; default: the defaults) with any flat
    option overridden by keyword (`spc=2`, `loss="gm"`, ...); write it to `output` if given.

    Latent runs keep their state in `checkpoint` (default: OUTPUT.ckpt) every
    `checkpoint_every` steps and on Ctrl-C; `resume=True` continues from it. The checkpoint is
    removed once the set is written.

    `blocks=B` (and torchrun) write each block to OUTPUT.parts/ and merge them; ranks other
    than 0 return None, and so does `block=b` (one block's part only, for job arrays: `merge`
    joins them). An OUTPUT ending in .ddz is written encoded, as `encode` would.
    """
    from ddcodec.distillation import DistillConfig, distill as run
    from ddcodec.fileio import check_writable
    from ddcodec.options import flatten

    base = flatten(config) if config is not None else {}
    cfg = DistillConfig.of(**{**base, **overrides})
    if block is not None and (cfg.blocks < 2 or output is None):
        raise DDCodecError("--block needs --blocks B (at least 2) and -o OUTPUT (the part goes "
                           "to OUTPUT.parts/)")
    if output is not None and block is None:
        check_writable(output, force)  # fail before the expensive part
    if checkpoint is None and output is not None:
        checkpoint = Path(f"{output}.ckpt")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume and not cfg.is_latent:
        raise DDCodecError("--resume applies to --param latent runs")
    dataset = load_dataset(data, data_root, download, resize)
    labelling = _distill_labeller(cfg, dataset, resolve_device(device))
    parts = Path(f"{output}.parts") if output is not None else None
    distilled = run(dataset, cfg, resolve_device(device), on_iteration, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every, resume=resume, on_progress=on_progress,
                    file_sizer=encoded_bits, labeller=labelling, parts=parts,
                    on_message=on_message, only_block=block)
    if distilled is None:  # another rank of a distributed run (rank 0 writes), or one block
        return None
    if resize is not None:
        distilled.provenance["resize"] = list(resize)
    if output is not None:
        write_set(distilled, output, force)
    if checkpoint is not None and cfg.is_latent and checkpoint.exists():
        checkpoint.unlink()
    return distilled


def merge(parts: "list[str | os.PathLike]", output: str | os.PathLike, *,
          data: str | None = None, data_root: str | None = None, force: bool = False,
          device: str = "auto"):
    """Join block parts made by separate runs (`distill --blocks B --block b`) into the set
    (or .ddz) one run would have written: the same bytes."""
    from ddcodec.distillation import blocks
    from ddcodec.distillation.run import RunHooks, merged_set
    from ddcodec.fileio import check_writable

    check_writable(output, force)
    paths = [Path(p) for p in parts]
    for path in paths:
        if not path.is_file():
            raise DDCodecError(f"{path} not found")
    loaded = [blocks.load_part(path) for path in paths]
    config, spec = blocks.config_of_parts(loaded)
    dataset = load_dataset(data or spec, data_root)
    size = tuple(int(v) for v in loaded[0]["images"].shape[-2:])
    resize = size if tuple(dataset.image_shape[1:]) != size else None
    if resize is not None:  # the parts were distilled from resized data (distill --resize)
        dataset = load_dataset(data or spec, data_root, resize=resize)
    merged = blocks.merge(loaded, dataset, config)
    labelling = _distill_labeller(config, dataset, resolve_device(device))
    distilled = merged_set(dataset, config, merged,
                           RunHooks(file_sizer=encoded_bits, labeller=labelling))
    if resize is not None:
        distilled.provenance["resize"] = list(resize)
    write_set(distilled, output, force)
    return distilled


def write_set(distilled, output: str | os.PathLike, force: bool) -> None:
    """A set file, or its .ddz when the name ends in .ddz."""
    from ddcodec.setfile import save_set

    if str(output).endswith(".ddz"):
        from ddcodec import ddz

        data, _ = ddz.encode(distilled)
        ddz.write_bytes(data, output, force)
    else:
        save_set(distilled, output, force=force)


def _distill_labeller(config: "DistillConfig", dataset, device: torch.device):
    """The teacher that labels a distilled set (None for hard labels), checked against the data
    before anything is trained."""
    from ddcodec.labelling import labeller, plan_for

    plan = plan_for(config, dataset.num_classes)
    if plan is None:
        return None
    made = labeller(config.labelling.teacher, plan, device)
    made.check_fits(dataset, f"the data {dataset.spec}")
    return made


def encoded_bits(distilled) -> int:
    """Bits of the .ddz a set encodes to: how rate control measures its trial files (their size
    only: the set it returns is encoded again, with the closed-loop check)."""
    from ddcodec.bitstream.codec import encode_set

    return 8 * len(encode_set(distilled, check=False)[0])


def experts(data: str = DEFAULT_SPEC, output: str | os.PathLike = "experts", *,
            data_root: str | None = None, download: bool = False,
            resize: tuple[int, int] | None = None, device: str = "auto",
            on_epoch: Callable[[int, int], None] | None = None, **config) -> dict:
    """Train the expert trajectories trajectory matching needs (ExpertConfig(**config)) into the
    folder `output`; experts already there are reused."""
    from ddcodec.distillation.experts import ExpertConfig, train_block_experts, train_experts

    cfg = ExpertConfig(**config)
    dataset = load_dataset(data, data_root, download, resize)
    train = train_block_experts if cfg.blocks > 1 else train_experts
    return train(dataset, Path(output), cfg, resolve_device(device), on_epoch)


def measure(set_path: "str | os.PathLike | DistilledSet", *,
            config: "MeasureConfig | None" = None,
            seed: int = 0, device: str = "auto", data: str | None = None,
            data_root: str | None = None,
            on_epoch: Callable[[int, int], None] | None = None, **overrides) -> dict:
    """Train fresh networks on the set (a set file, a .ddz, or a DistilledSet in memory, whose
    bits are those of its lossless .ddz) under the standard protocol; return the report.
    `config` (a MeasureConfig, default: the field's protocol) with any of its fields overridden
    by keyword (`epochs=300`, `runs=2`, ...)."""
    from dataclasses import replace

    from ddcodec.protocol import MeasureConfig

    try:
        measuring = replace(config or MeasureConfig(), **overrides)
    except TypeError as exc:
        raise DDCodecError(f"measure: {exc}") from None
    epochs, runs = measuring.epochs, measuring.runs
    if runs < 1:
        raise DDCodecError("--runs must be at least 1")
    distilled, raw, estimate = _load_for_measure(set_path)
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
    test_images = distilled.normalization.normalize(dataset.x_test)
    started = time.perf_counter()
    soft = None if measuring.hard_labels else distilled.soft_labels
    train_labels = distilled.labels if measuring.hard_labels else distilled.training_labels()
    resample = _resampler(distilled, train_labels, measuring)
    result = evaluate_set(distilled.images, train_labels, test_images, dataset.y_test,
                          distilled.num_classes, config, runs, seed, dev, on_epoch,
                          views=soft.views() if soft is not None else None, resample=resample)
    per_epoch = resample.images_per_epoch if resample is not None else distilled.num_images
    seconds = time.perf_counter() - started
    ranking = (_ranking(distilled, dataset, measuring, result.mean, test_images, seed, dev,
                        on_epoch) if measuring.baselines else {})
    if measuring.teacher:
        ranking["label_controls"] = _label_controls(distilled, dataset, measuring, len(raw),
                                                    test_images, seed, dev)
    file_bytes = len(raw)
    return {
        **ranking,
        "file": str(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "file_bytes": file_bytes,
        "bits": 8 * file_bytes,
        "bpc": 8 * file_bytes / distilled.num_classes,
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
            "steps_per_epoch": math.ceil(per_epoch / config.batch_size),
        },
        **({"distribution": _distribution_report(resample)} if resample is not None else {}),
        "test_data": spec,
        "num_test": int(dataset.x_test.shape[0]),
        "method": distilled.provenance.get("method"),
        **estimate,
        "device": str(dev),
        "seconds": seconds,
        # the field reports percent; the keys above keep fractions (as before), these say so
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
    }


def _resampler(distilled, train_labels, measuring):
    """A distributional set's per-epoch data (means and fresh samples), else None."""
    sampler = distilled.prior_sampler()
    if sampler is None:
        return None
    if train_labels.ndim == 3:
        raise DDCodecError("this distributional set carries per-epoch soft labels; it takes "
                           "one label per prior")
    from dataclasses import replace

    from ddcodec.distribution import Resampled

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


def _label_report(distilled, measuring, config) -> dict:
    soft = distilled.soft_labels
    if soft is None or measuring.hard_labels:
        return {"kind": "hard", **({"soft_labels_ignored": True} if soft is not None else {})}
    kind = (f"soft (per epoch: {soft.epochs} views per image, replayed)" if soft.per_epoch
            else "soft (static, one per image)")
    return {"kind": kind, "codec": soft.codec,
            "loss": config.label_loss, "temperature": config.label_temperature,
            "teacher": soft.teacher}


def _rung_size(soft) -> int:
    """The k of a soft-label rung: codebook entries (vq, vqae) or kept classes (topk)."""
    if soft.vq is not None:
        return int(soft.vq.codebook.shape[0])
    if soft.vqae is not None:
        return soft.vqae.shapes[0]
    return int(soft.topk.classes.shape[1]) if soft.topk is not None else 16


def _label_controls(distilled, dataset, measuring, file_bytes: int, test_images, seed: int,
                    device: torch.device) -> dict:
    """Without these, the teacher's knowledge is credited to the set: the same images trained
    on their hard labels, and the most random real images per class that, labelled by the same
    teacher in the same rung, fit in the set's bits per class (a lossless .ddz each)."""
    from ddcodec import ddz
    from ddcodec.distillation.random_subset import random_real_subset
    from ddcodec.setfile import DistilledSet
    from ddcodec.teacher import check_teacher_fits, load_teacher

    soft = distilled.soft_labels
    if soft is None:
        raise DDCodecError("--teacher: the set has no soft labels to control for")
    made = load_teacher(measuring.teacher)
    check_teacher_fits(made, distilled.num_classes, distilled.image_shape,
                       distilled.normalization, "the set")
    config = measuring.eval_config(distilled.provenance.get("syn_lr"), soft)

    def labelled_random(ipc: int):
        images, labels = random_real_subset(dataset, ipc, seed, distilled.normalization)
        plain = DistilledSet(images, labels, list(distilled.class_names),
                             distilled.normalization)
        return label(plain, measuring.teacher, temperature=soft.temperature, loss=soft.loss,
                     codec=soft.codec, k=_rung_size(soft), device=str(device),
                     epochs=soft.epochs, view_seed=soft.view_seed,
                     view_strategy=soft.view_strategy or None)

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
            "bpc": 8 * size / distilled.num_classes}
    return controls


def _ranking(distilled, dataset, measuring, synthetic: float, test_images, seed: int,
             device: torch.device, on_epoch) -> dict:
    """DD-Ranking's baselines under the same protocol and seeds (default lr: the learnt one
    belongs to the synthetic set): a random real subset with the set's images per class and
    label kind, and the whole training split; then HLR, IOR and LRS (ddcodec.ranking)."""
    from ddcodec.distillation.random_subset import random_real_subset
    from ddcodec.ranking import label_robust_score

    if distilled.soft_labels is not None:
        raise DDCodecError("--baselines: a soft-label set's random baseline needs its teacher's "
                           "labels on the random images; measure without --baselines")
    counts = torch.bincount(distilled.labels, minlength=distilled.num_classes).tolist()
    config = measuring.eval_config(None)
    runs, parts = measuring.runs, {}
    images, labels = random_real_subset(dataset, counts, seed, distilled.normalization)
    train = {"random": (images, labels),
             "full": (distilled.normalization.normalize(dataset.x_train), dataset.y_train)}
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


def environment(device: torch.device) -> dict:
    """What produced a result: versions, the device (the GPU's name), threads, the date."""
    import datetime as dt
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from ddcodec.version import __version__

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    return {"ddcodec": __version__, "torch": torch.__version__,
            "constriction": installed("constriction"), "numpy": installed("numpy"),
            "python": platform.python_version(), "device": str(device), "device_name": name,
            "threads": torch.get_num_threads(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _load_for_measure(source):
    """A set file, a .ddz or a set in memory -> (set, the file's bytes, the model's bit
    estimate if any). A set in memory is priced as its lossless .ddz."""
    from ddcodec import ddz
    from ddcodec.setfile import DistilledSet, load_set

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


def encode(source: "str | os.PathLike | DistilledSet",
           output: str | os.PathLike | None = None, force: bool = False, *,
           pixels: str = "lossless", source_format: str = "auto",
           normalization: str | None = None, data: str | None = None,
           labels: str | None = None, streams: int = 1) -> tuple[bytes, dict]:
    """Encode a set to .ddz bytes; write them to `output` ("-": stdout) if given.

    `source`: a DistilledSet, or a path to a ddcodec set file, MTT/DATM outputs, a tensor file
    or an ImageFolder (`source_format`, detected by default; see ddcodec.importers, which
    `normalization`, `data` and `labels` serve). `pixels`: "lossless" (exact, float values
    included) or "8bit" (rounded to 8 bits, declared lossy, with its error reported).
    `streams`: a latent set's latents in this many independent substreams (2 up to its number
    of decoders), which `decode(workers=N)` decodes in N processes."""
    from ddcodec import ddz
    from ddcodec.setfile import DistilledSet

    if output is not None and str(output) != "-":
        from ddcodec.fileio import check_writable

        check_writable(output, force)
    distilled, name = source, "<set>"
    if not isinstance(source, DistilledSet):
        from ddcodec.importers import ImportOptions, import_set

        distilled, name = import_set(source, source_format, ImportOptions(
            normalization, data, labels)), str(source)
    data, report = ddz.encode(distilled, pixels, name, streams)
    if output is not None:
        ddz.write_bytes(data, output, force)
    return data, report


def train_teacher(data: str = DEFAULT_SPEC, output: str | os.PathLike = "teacher.pt", *,
                  data_root: str | None = None, resize: tuple[int, int] | None = None,
                  force: bool = False, device: str = "auto", on_epoch=None, **config):
    """Train a teacher (TeacherConfig(**config)) on `data`'s training split, its checkpoint
    chosen on a held-out part of it, and write it to `output`."""
    from ddcodec import teacher
    from ddcodec.fileio import check_writable
    from ddcodec.teacher_config import TeacherConfig

    cfg = TeacherConfig(**config)
    check_writable(output, force)
    dataset = load_dataset(data, data_root, resize=resize)
    made = teacher.train_teacher(dataset, cfg, resolve_device(device), on_epoch)
    made.save(output, force=force)
    return made


def label(source: "str | os.PathLike | DistilledSet", teacher: str | os.PathLike,
          output: str | os.PathLike | None = None, *, temperature: float = 1.0,
          loss: str = "ce", codec: str = "float16", k: int | None = None, step_log2: int = -4,
          force: bool = False, device: str = "auto", source_format: str = "auto",
          normalization: str | None = None, data: str | None = None, epochs: int = 0,
          view_seed: int = 0, view_strategy: str | None = None):
    """Give a set soft labels: the teacher's softmax(logits / temperature) on each of its
    images (`epochs` E > 0: on E keyed views of each, one label per image and epoch, FKD
    style), stored in the `codec` rung (float16; vq with k entries, 16 by default; topk keeping
    k classes, 2 by default); write it to `output` if given and return it."""
    from ddcodec.fileio import check_writable
    from ddcodec.labelling import LabelPlan, labeller
    from ddcodec.setfile import DistilledSet, save_set

    plan = LabelPlan(codec, temperature, loss, k, step_log2, epochs=epochs, view_seed=view_seed,
                     **({"view_strategy": view_strategy} if view_strategy else {}))
    if output is not None:
        check_writable(output, force)
    distilled = source
    if not isinstance(source, DistilledSet):
        from ddcodec.importers import ImportOptions, import_set

        distilled = import_set(source, source_format, ImportOptions(normalization, data))
    made = labeller(teacher, plan, resolve_device(device))
    made.check_fits(distilled, "the set")
    labelled = made(distilled)
    if output is not None:
        save_set(labelled, output, force=force)
    return labelled


def test_split(data: str = DEFAULT_SPEC, *, normalization=None, data_root: str | None = None,
               resize: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The real test split of `data`: float images normalised with `normalization` (a set's
    own, so they match what it trains on; default: the data's) and int64 labels."""
    dataset = load_dataset(data, data_root, resize=resize)
    norm = normalization or dataset.normalization
    return norm.normalize(dataset.x_test), dataset.y_test.clone()


def decode(source: str | os.PathLike | bytes, output: str | os.PathLike | None = None,
           format: str = "pt", force: bool = False, samples: int = 0, workers: int = 1):
    """Decode a .ddz (path, "-" or bytes); export it to `output` in `format` if given.
    `samples`: a distributional file's means plus this many samples per prior (epoch 0), as
    one set of fixed images (what is returned and exported). `workers`: processes that decode
    a file's latent substreams (`encode(streams=S)`) side by side."""
    from ddcodec import ddz

    data = source if isinstance(source, (bytes, bytearray)) else ddz.read_input(source)
    ddz.check_is_ddz(bytes(data), "<bytes>" if isinstance(source, (bytes, bytearray))
                     else str(source))
    if output is not None and format in ddz.FILE_FORMATS and str(output) != "-":
        from ddcodec.fileio import check_writable

        check_writable(output, force)
    decoded = ddz.decode(bytes(data), bits=False, workers=workers)  # no bits: not a report
    if samples:
        decoded = ddz.with_samples(decoded, samples)
    if output is not None:
        ddz.export(decoded, output, format, force)
    return decoded


def info(source: str | os.PathLike | bytes) -> dict:
    from ddcodec import ddz

    data = source if isinstance(source, (bytes, bytearray)) else ddz.read_input(source)
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    ddz.check_is_ddz(bytes(data), name)
    return ddz.info(bytes(data), name=name)


def test(source: str | os.PathLike | bytes) -> bool:
    """Full integrity check; raises DDCodecError on any problem, returns True otherwise."""
    from ddcodec import ddz

    data = source if isinstance(source, (bytes, bytearray)) else ddz.read_input(source)
    ddz.check_is_ddz(bytes(data), "<bytes>" if isinstance(source, (bytes, bytearray))
                     else str(source))
    ddz.test(bytes(data))
    return True
