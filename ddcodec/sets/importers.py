"""Sets written by other tools, read into a `DistilledSet` so any method's set can be priced.

A registry of importers, one per source format (`encode --from NAME`; `auto` detects):

- `set`: a ddcodec set file;
- `mtt`: MTT/DATM outputs, `images_best.pt` + `labels_best.pt` (+ optional `lr_best.pt`, the
  learnt student learning rate), as a folder or the images file; the tensors are normalised,
  so the normalisation must be given;
- `tensors`: one `.pt` holding DD-Ranking's `image_tensor` / `hard_labels` (or `images` /
  `labels`) dict, or a bare image tensor whose labels are class-major with equal counts (what
  DD-Ranking assumes without labels); normalised, so the normalisation must be given;
- `imagefolder`: one sub-folder of images per class (8-bit pixels);
- `fkd`: an FKD-style relabelling folder (SRe2L, CDA, LPLD: epoch_*/batch_*.tar) with the images
  it relabelled (`--images`); ddcodec.sets.fkd;
- `hf`: a Hugging Face dataset (`save_to_disk` folder or Parquet; ddcodec.sets.hf).

Normalisation specs (`--normalization`): a dataset name (`cifar10`, `cifar100`, `imagenet`,
...), `MEAN,STD` (one pair for every channel, or C means then C stds), or a JSON file with
`mean` and `std` (ddcodec's own exports write one). Class names come from `--data`, else from
a `classes.json`/`normalization.json` beside the set, else `class_0, class_1, ...`.
Everything an importer had to decide is recorded in the set's provenance and notes.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ddcodec.data.datasets import STANDARD_NORMALIZATION, Normalization
from ddcodec.errors import DDCodecError
from ddcodec.fileio import refuse_expanded
from ddcodec.names import SET_SOURCES
from ddcodec.registry import registrar
from ddcodec.sets.setfile import SET_FORMAT, DistilledSet, load_set, set_from_dict
from ddcodec.data.datasets import load_dataset
from ddcodec.data.image_folders import class_folders, image_files, read_common_images

IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALIZATIONS = {**STANDARD_NORMALIZATION, "imagenet": IMAGENET_NORMALIZATION}
MTT_FILES = ("images_best.pt", "labels_best.pt", "lr_best.pt")
ZCA_SOURCES = ("mtt", "tensors")  # formats whose float tensors may live in a whitened space


@dataclass(frozen=True)
class ImportOptions:
    """What the source format does not say by itself."""

    normalization: str | None = None  # a spec (see the module docstring)
    data: str | None = None  # the dataset the set was distilled from (class names, provenance)
    labels: str | None = None  # a separate labels file (tensors)
    zca_eps: float | None = None  # the set is ZCA-whitened (ddcodec.data.zca) with this eps
    images: str | None = None  # fkd: the relabelled images (an ImageFolder or tensor file)
    fkd_seed: int | None = None  # fkd: the relabelling's sampler seed (default 42, SRe2L's)
    label_temperature: float | None = None  # fkd: the training temperature (default 3)


Importer = Callable[[Path, ImportOptions], DistilledSet]
IMPORTERS: dict[str, Importer] = {}
register_importer = registrar(IMPORTERS)


def import_set(path: str | os.PathLike, source: str = "auto",
               options: ImportOptions | None = None) -> DistilledSet:
    """Read a set in any supported format (`source`, or detected with `auto`)."""
    path, options = Path(path), options or ImportOptions()
    if not path.exists():
        raise DDCodecError(f"{path} not found")
    name = detect(path) if source == "auto" else source
    if name not in IMPORTERS:
        raise DDCodecError(f"unknown set format {source!r}; choose {', '.join(SET_SOURCES)}")
    if options.zca_eps is not None and name not in ZCA_SOURCES:
        raise DDCodecError(f"--zca is for whitened tensors ({' or '.join(ZCA_SOURCES)}); this "
                           f"is {name!r}" + (", which records its own whitening"
                                             if name == "set" else ""))
    return IMPORTERS[name](path, options)


def detect(path: Path) -> str:
    if path.suffix == ".parquet":
        return "hf"
    if path.is_dir():
        if (path / "images_best.pt").is_file():
            return "mtt"
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return "hf"
        if (path / "epoch_0").is_dir() or (path / "fkd" / "epoch_0").is_dir():
            return "fkd"
        if any(p.is_dir() for p in path.iterdir()):
            return "imagefolder"
        raise DDCodecError(f"{path} holds neither images_best.pt nor class folders; say what "
                           "it is with --from")
    if path.name == "images_best.pt":
        return "mtt"
    with open(path, "rb") as handle:
        if handle.read(4) == b"DDZ\x1a":
            raise DDCodecError(f"{path} is already a .ddz file")
    raw = _load_tensor_file(path)
    if isinstance(raw, dict) and raw.get("format") == SET_FORMAT:
        return "set"
    return "tensors"


def _load_tensor_file(path: Path):
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a non-torch or corrupt file
        raise DDCodecError(f"{path} is not a readable torch file (or holds more than plain "
                           "tensors)") from None
    refuse_expanded(raw, str(path))
    return raw


def parse_normalization(spec: str, channels: int) -> Normalization:
    """A normalisation from a dataset name, MEAN,STD numbers or a JSON file."""
    text = spec.strip()
    if text.lower() in NORMALIZATIONS:
        norm = NORMALIZATIONS[text.lower()]
    elif text.lower().endswith(".json"):
        try:
            norm = Normalization.from_dict(json.loads(Path(text).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DDCodecError(f"--normalization {text}: not a JSON file with 'mean' and "
                               f"'std' ({exc})") from None
    else:
        try:
            numbers = [float(v) for v in text.split(",")]
        except ValueError:
            raise DDCodecError(f"--normalization {text!r}: use a dataset name "
                               f"({', '.join(sorted(NORMALIZATIONS))}), MEAN,STD or a JSON "
                               "file") from None
        if len(numbers) == 2:
            numbers = [numbers[0]] * channels + [numbers[1]] * channels
        if len(numbers) != 2 * channels:
            raise DDCodecError(f"--normalization {text!r}: give 2 or {2 * channels} numbers "
                               f"for {channels}-channel images")
        try:
            norm = Normalization.from_dict({"mean": numbers[:channels],
                                            "std": numbers[channels:]})
        except ValueError as exc:
            raise DDCodecError(f"--normalization {text!r}: {exc}") from None
    if len(norm.mean) != channels:
        raise DDCodecError(f"--normalization {text} has {len(norm.mean)} channels; the images "
                           f"have {channels}")
    return norm


def _recorded_zca(options: ImportOptions, beside: Path) -> ImportOptions:
    """A ddcodec export of a ZCA set records its eps (and data) in normalization.json."""
    recorded = beside / "normalization.json"
    if options.zca_eps is not None or not recorded.is_file():
        return options
    try:
        zca = json.loads(recorded.read_text()).get("zca")
    except (OSError, ValueError, AttributeError):
        return options
    if not isinstance(zca, dict) or "eps" not in zca:
        return options
    try:
        eps = float(zca["eps"])
    except (TypeError, ValueError):
        raise DDCodecError(f"{recorded}: zca eps {zca['eps']!r} is not a number") from None
    data = options.data or (zca.get("data") if isinstance(zca.get("data"), str) else None)
    return replace(options, zca_eps=eps, data=data)


def _check_zca(options: ImportOptions) -> None:
    if options.zca_eps is None:
        return
    if not (math.isfinite(options.zca_eps) and options.zca_eps > 0):
        raise DDCodecError(f"--zca-eps {options.zca_eps} is not a positive number")
    if not options.data:
        raise DDCodecError("--zca needs --data SPEC: the whitening is rebuilt from that data's "
                           "training images (as MTT and DD-Ranking fit it)")


def _normalization(options: ImportOptions, channels: int, beside: Path, what: str
                   ) -> tuple[Normalization, str]:
    """The given normalisation, else one the set's folder records, else the data's."""
    if options.normalization:
        return parse_normalization(options.normalization, channels), options.normalization
    recorded = beside / "normalization.json"
    if recorded.is_file():
        return parse_normalization(str(recorded), channels), str(recorded)
    if options.zca_eps is not None:  # MTT and DD-Ranking whiten [0, 1] pixels (no mean/std)
        return (Normalization((0.0,) * channels, (1.0,) * channels),
                "ZCA on [0, 1] pixels, as MTT and DD-Ranking fit it")
    if options.data:
        return load_dataset(options.data).normalization, f"the data ({options.data})"
    raise DDCodecError(f"{what} tensors are normalised: say how with --normalization "
                       f"({', '.join(sorted(NORMALIZATIONS))}, MEAN,STD or FILE.json)")


def _class_names(options: ImportOptions, labels: torch.Tensor, beside: Path) -> list[str]:
    if options.data:
        return list(load_dataset(options.data).class_names)
    recorded = _recorded_class_names(beside)
    if recorded:
        return recorded
    count = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1 if len(
        labels) else 0
    return [f"class_{i}" for i in range(count)]


def _recorded_class_names(folder: Path) -> list[str] | None:
    """Class names a ddcodec export wrote beside the set, if any."""
    for name in ("classes.json", "normalization.json"):
        recorded = folder / name
        if recorded.is_file():
            try:
                names = json.loads(recorded.read_text()).get("class_names")
            except (OSError, ValueError, AttributeError):
                names = None
            if isinstance(names, list) and names:
                return [str(n) for n in names]
    return None


def _assemble(images, labels, options: ImportOptions, beside: Path, method: str, source: Path,
              what: str, syn_lr: float | None = None) -> DistilledSet:
    """Validate through the set loader (one set of rules for every format), then order the
    images by class, as the file stores them."""
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.is_floating_point()):
        raise DDCodecError(f"{what}: images must be a float N x C x H x W tensor")
    if not isinstance(labels, torch.Tensor):
        raise DDCodecError(f"{what}: labels must be a tensor")
    options = _recorded_zca(options, beside)
    _check_zca(options)
    norm, norm_source = _normalization(options, int(images.shape[1]), beside, what)
    names = _class_names(options, labels, beside)
    provenance = {"method": method, "imported_from": str(source),
                  "normalization_source": norm_source}
    if options.data:
        provenance["data"] = options.data
    if options.zca_eps is not None:
        provenance["zca_eps"] = options.zca_eps
    if syn_lr is not None:
        provenance["syn_lr"] = syn_lr
    distilled = set_from_dict({"images": images, "labels": labels, "class_names": names,
                               "normalization": norm.to_dict(), "provenance": provenance})
    return _class_ordered(distilled)


def _class_ordered(distilled: DistilledSet) -> DistilledSet:
    """The set with its images in class order (stable), soft labels following."""
    order = torch.argsort(distilled.labels, stable=True)
    if torch.equal(order, torch.arange(len(order))):
        return distilled
    soft = distilled.soft_labels
    if soft is not None:
        soft = soft.take(order)
    distilled.images, distilled.labels = distilled.images[order], distilled.labels[order]
    distilled.soft_labels = soft
    distilled.notes.append("images reordered by class (stable), as the file stores them")
    return distilled


@register_importer("set")
def _ddcodec_set(path: Path, options: ImportOptions) -> DistilledSet:
    return load_set(path)


@register_importer("mtt")
def _mtt(path: Path, options: ImportOptions) -> DistilledSet:
    folder = path if path.is_dir() else path.parent
    images_file = path if path.is_file() else folder / "images_best.pt"
    labels_file = Path(options.labels) if options.labels else folder / "labels_best.pt"
    for needed in (images_file, labels_file):
        if not needed.is_file():
            raise DDCodecError(f"MTT set: {needed} not found (MTT writes images_best.pt and "
                               "labels_best.pt side by side)")
    images, labels = _load_tensor_file(images_file), _load_tensor_file(labels_file)
    syn_lr = None
    lr_file = folder / "lr_best.pt"
    if lr_file.is_file():
        lr = _load_tensor_file(lr_file)
        if not isinstance(lr, (torch.Tensor, float, int)) or (
                isinstance(lr, torch.Tensor) and lr.numel() != 1):
            raise DDCodecError(f"{lr_file}: expected one learning rate")
        syn_lr = float(lr)
        if not (math.isfinite(syn_lr) and syn_lr > 0):
            raise DDCodecError(f"{lr_file}: the learning rate {syn_lr} is not positive")
    return _assemble(images, labels, options, folder, "imported-mtt", images_file,
                     f"MTT set {images_file}", syn_lr)


@register_importer("tensors")
def _tensors(path: Path, options: ImportOptions) -> DistilledSet:
    raw = _load_tensor_file(path)
    labels = None
    if isinstance(raw, dict):
        images = raw.get("image_tensor", raw.get("images"))
        labels = raw.get("hard_labels", raw.get("labels"))
        if images is None:
            raise DDCodecError(f"{path} holds a dict without 'image_tensor' or 'images'")
    else:
        images = raw
    if options.labels:
        labels = _load_tensor_file(Path(options.labels))
    if labels is None:
        labels = _class_major_labels(images, options, path)
    return _assemble(images, labels, options, path.parent, "imported-tensors", path,
                     f"tensor set {path}")


def _class_major_labels(images, options: ImportOptions, path: Path) -> torch.Tensor:
    """DD-Ranking's rule without labels: [0]*ipc + [1]*ipc + ..., which needs the class count."""
    if not options.data:
        raise DDCodecError(f"{path} has no labels: give --labels FILE, or --data SPEC so the "
                           "images can be split class-major into equal counts")

    classes = load_dataset(options.data).num_classes
    n = int(images.shape[0]) if isinstance(images, torch.Tensor) else 0
    if n == 0 or n % classes:
        raise DDCodecError(f"{path}: {n} images do not split into {classes} equal classes; "
                           "give --labels FILE")
    return torch.arange(classes).repeat_interleave(n // classes)


@register_importer("hf")
def _hugging_face(path: Path, options: ImportOptions) -> DistilledSet:
    from ddcodec.sets.hf import read_hf

    if options.labels:
        raise DDCodecError("--labels is for tensor files; a Hugging Face dataset has its label "
                           "column")
    data = load_dataset(options.data) if options.data else None  # loaded once

    def normalization(channels: int) -> Normalization | None:
        if options.normalization:
            return parse_normalization(options.normalization, channels)
        return data.normalization if data is not None else None

    names = list(data.class_names) if data is not None else None
    distilled = read_hf(path, normalization, options.data, names)
    if distilled.soft_labels is not None and distilled.soft_labels.per_epoch:
        order = torch.argsort(distilled.labels, stable=True)
        if not torch.equal(order, torch.arange(len(order))):
            raise DDCodecError(f"{path}: per-epoch soft labels belong to their images' order; "
                               "the images must be in class order")
    return _class_ordered(distilled)


FKD_RECORD = "fkd.json"  # what ddcodec's `decode --format fkd` records beside the folders
LOG_P_LOGITS = "T log p"  # fkd.json's "logits": ddcodec wrote T x log(p) as the logits


@register_importer("fkd")
def _fkd(path: Path, options: ImportOptions) -> DistilledSet:
    """A relabelling folder (epoch_*/batch_*.tar) and the images it relabelled, in the order
    the relabelling drew them from (torchvision ImageFolder order, or the tensors' own)."""
    from ddcodec.names import FKD_VIEW_STRATEGY
    from ddcodec.labels.rungs.float16 import as_float16
    from ddcodec.sets.fkd import DEFAULT_SEED, DEFAULT_TEMPERATURE, read_relabel

    if not path.is_dir():
        raise DDCodecError(f"{path} is not a relabelling folder (epoch_0/batch_0.tar, ...)")
    record = _fkd_record(path)
    relabel = path / "fkd" if (path / "fkd").is_dir() else path
    images = Path(options.images) if options.images else next(
        (p for p in (path / "images", path / "images.pt") if p.exists()), None)
    if images is None:
        raise DDCodecError("--from fkd needs the relabelled images: --images DIR (an "
                           "ImageFolder) or FILE (tensors)")
    if not images.exists():
        raise DDCodecError(f"{images} not found")
    inner = replace(options, images=None, fkd_seed=None, label_temperature=None)
    if options.normalization is None and "mean" in record and "std" in record:
        inner = replace(inner, normalization=str(path / FKD_RECORD))
    base = IMPORTERS[detect(images)](images, inner)
    if any("reordered by class" in note for note in base.notes):
        raise DDCodecError(f"{images}: the relabelling drew images by their index, so they must "
                           "be in class order (as an ImageFolder holds them)")
    seed = options.fkd_seed if options.fkd_seed is not None else int(
        record.get("seed", DEFAULT_SEED))
    temperature = (options.label_temperature if options.label_temperature is not None
                   else float(record.get("temperature", DEFAULT_TEMPERATURE)))
    views, rows = read_relabel(relabel, base.num_images, base.num_classes,
                               tuple(base.image_shape[1:]), seed, temperature,
                               log_probabilities=record.get("logits") == LOG_P_LOGITS
                               and options.label_temperature in (None, temperature))
    if record.get("logits_dtype_source") in ("float16", "float32"):  # ddcodec's export
        views = replace(views, logits_dtype=record["logits_dtype_source"])
    base.soft_labels = as_float16(rows, temperature=temperature,
                                  loss=str(record.get("loss", "kl")),
                                  epochs=views.epochs, view_seed=0,
                                  view_strategy=FKD_VIEW_STRATEGY)
    base.fkd = views
    base.provenance.update(method=str(record.get("method", "imported-fkd")),
                           relabel=str(relabel))
    base.notes.append(f"{views.epochs} epochs of {views.batches} batches of {views.batch_size} "
                      f"views ({views.mix}); logits {views.logits_dtype} -> softmax(logits / "
                      f"{temperature:g}) as float16 rows")
    base.check_fkd()
    return base


def _fkd_record(path: Path) -> dict:
    recorded = path / FKD_RECORD
    if not recorded.is_file():
        return {}
    try:
        record = json.loads(recorded.read_text())
    except (OSError, ValueError):
        raise DDCodecError(f"{recorded} is not JSON") from None
    return record if isinstance(record, dict) else {}


@register_importer("imagefolder")
def _imagefolder(path: Path, options: ImportOptions) -> DistilledSet:
    if not path.is_dir():
        raise DDCodecError(f"{path} is not a folder of class folders")
    names = class_folders(path)
    files = image_files(path, names)
    images, labels = read_common_images(files, path)
    channels = int(images.shape[1])
    if options.normalization:
        norm = parse_normalization(options.normalization, channels)
    elif options.data:
        norm = load_dataset(options.data).normalization
    else:
        raise DDCodecError("an ImageFolder set needs the normalisation networks will see: "
                           "--normalization or --data")
    recorded = _recorded_class_names(path)  # ddcodec's own exports name folders 000_name
    if recorded and len(recorded) == len(names):
        names = recorded
    provenance = {"method": "imported-imagefolder", "imported_from": str(path)}
    if options.data:
        provenance["data"] = options.data
    return _class_ordered(DistilledSet(norm.normalize(images), labels, names, norm, provenance))
