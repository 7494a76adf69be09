"""Hugging Face datasets, out and in (`decode --format hf`, `encode --from hf`).

Published distilled sets move to the Hub as an image column and a label column (Parquet, e.g.
the RDED/"rethinkdc" sets). An export here is what `datasets.load_from_disk` reads:

- `image`: an `Image` (PNG) for sets on the 8-bit grid; float sets (learnt pixels, ZCA) an
  `Array3D` float32 C x H x W in the set's normalised space, since PNG would round them;
- `label`: a `ClassLabel` with the class names;
- `soft_label` (soft-label files): the teacher's row, float32 K (static) or E x K (per epoch);
- the info's description: one sentence, then a `ddcodec-metadata:` line of JSON with the
  provenance (data, method, syn_lr, zca_eps, resize), the normalisation and the soft labels'
  temperature, loss and views: everything `encode --from hf` needs to rebuild the same set.

Reading takes a `save_to_disk` folder (a Dataset, or a DatasetDict whose `train` split is
used), a Parquet file, or a folder of Parquet files; a foreign set's columns are found by their
usual names. `datasets` is an optional dependency (`pip install ddcodec[hf]`); nothing here
touches the network (offline mode is set before `datasets` is imported).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ddcodec.data.datasets import Normalization
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.float16 import as_float16
from ddcodec.sets.setfile import DistilledSet
from ddcodec.version import __version__

METADATA_PREFIX = "ddcodec-metadata: "
IMAGE_COLUMNS = ("image", "img", "pixel_values", "images")
LABEL_COLUMNS = ("label", "labels", "fine_label", "target")
SOFT_COLUMNS = ("soft_label", "soft_labels")
PROVENANCE_KEYS = ("data", "method", "syn_lr", "zca_eps", "resize")


def hf_datasets():
    """The `datasets` module, offline; one line saying what to install without it."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise DDCodecError("Hugging Face datasets need the optional extra: pip install "
                           "'ddcodec[hf]' (or pip install datasets)") from None
    datasets.disable_progress_bars()  # ddcodec reports its own progress; stderr stays one line
    return datasets


# ------------------------------------------------------------------------------------ out

def write_hf(distilled: DistilledSet, images_uint8: torch.Tensor | None, root: Path) -> None:
    """Write `distilled` as a `save_to_disk` dataset in `root`; `images_uint8` (the set on the
    8-bit grid) become PNG images, else the float images an Array3D column."""
    if distilled.prior_sampler() is not None:
        raise DDCodecError("a distributional file draws fresh samples each epoch: export "
                           "fixed images with --samples S")
    datasets = hf_datasets()
    n, k = distilled.num_images, distilled.num_classes
    features = {"label": datasets.ClassLabel(names=list(distilled.class_names))}
    columns: dict = {"label": distilled.labels.tolist()}
    if images_uint8 is not None:
        from ddcodec.data.grid import to_pil

        features["image"] = datasets.Image()
        columns["image"] = [to_pil(image) for image in images_uint8]
    else:
        c, h, w = distilled.image_shape
        features["image"] = datasets.Array3D(shape=(c, h, w), dtype="float32")
        columns["image"] = distilled.images.to(torch.float32).numpy()
    soft = distilled.soft_labels
    if soft is not None:
        rows = soft.training_rows(distilled.labels).to(torch.float32)
        if soft.per_epoch:  # E x N x K -> one E x K array per image
            features["soft_label"] = datasets.Array2D(shape=(soft.epochs, k), dtype="float32")
            columns["soft_label"] = rows.transpose(0, 1).numpy()
        else:
            features["soft_label"] = datasets.Sequence(datasets.Value("float32"), length=k)
            columns["soft_label"] = rows.numpy()
    order = ["image", "label", *(["soft_label"] if soft is not None else [])]
    schema = datasets.Features({name: features[name] for name in order})
    table = datasets.Dataset.from_dict(
        {name: columns[name] for name in order}, features=schema,
        info=datasets.DatasetInfo(description=_description(distilled, images_uint8 is not None,
                                                           n), features=schema))
    table.save_to_disk(str(root))


def _description(distilled: DistilledSet, png: bool, n: int) -> str:
    soft = distilled.soft_labels
    meta = {"version": __version__,
            # "unknown" is what a decoded file without a method says; not a method to record
            "provenance": {k: distilled.provenance[k] for k in PROVENANCE_KEYS
                           if distilled.provenance.get(k) not in (None, "unknown")},
            "normalization": {"mean": list(distilled.normalization.mean),
                              "std": list(distilled.normalization.std)},
            "image": ("8-bit pixels (PNG); networks expect (pixel / 255 - mean) / std" if png
                      else "float32 C x H x W, already normalised (pixel / 255 = x * std + "
                           "mean" + ("; ZCA-whitened, see zca_eps" if distilled.zca_eps
                                     else "") + ")")}
    if soft is not None:
        meta["soft_labels"] = {"temperature": soft.temperature, "loss": soft.loss,
                               "codec": soft.codec, "epochs": soft.epochs,
                               "view_seed": soft.view_seed, "view_strategy": soft.view_strategy}
    sentence = (f"A distilled training set exported by ddcodec {__version__}: {n} images of "
                f"{distilled.num_classes} classes"
                + (f" from {distilled.provenance['data']}" if distilled.provenance.get("data")
                   else "") + ".")
    return f"{sentence}\n{METADATA_PREFIX}{json.dumps(meta)}"


# ------------------------------------------------------------------------------------- in

def read_hf(path: Path, normalization: Callable[[int], Normalization | None],
            data: str | None, class_names: list[str] | None) -> DistilledSet:
    """A Hugging Face dataset as a set (not yet class-ordered). `normalization(channels)`: the
    caller's (--normalization or --data, else None), used when the dataset records none."""
    table = _load(path)
    meta = _metadata(table)
    columns = table.column_names
    image_col = _column(columns, IMAGE_COLUMNS, "image", path)
    label_col = _column(columns, LABEL_COLUMNS, "label", path)
    soft_col = next((c for c in SOFT_COLUMNS if c in columns), None)
    if table.num_rows == 0:
        raise DDCodecError(f"{path}: the dataset has no rows")
    labels = torch.as_tensor(np.asarray(table[label_col]), dtype=torch.int64)
    feature = table.features[label_col]
    names = list(getattr(feature, "names", None) or class_names or [])
    if not names:
        names = [f"class_{i}" for i in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(names):
        raise DDCodecError(f"{path}: labels must lie in 0..{len(names) - 1}")
    images = _images(table, image_col, path)
    recorded = meta.get("normalization")
    try:
        norm = (Normalization.from_dict(recorded) if isinstance(recorded, dict)
                else normalization(int(images.shape[1])))
    except (KeyError, TypeError, ValueError) as exc:
        raise DDCodecError(f"{path}: the recorded normalisation is damaged ({exc})") from None
    if norm is None:
        raise DDCodecError(f"{path}: say which normalisation networks see with "
                           "--normalization or --data")
    if images.dtype == torch.uint8:
        images = norm.normalize(images)
    # a ddcodec export names its own provenance (so it re-encodes to the same bytes)
    recorded_provenance = meta.get("provenance") if meta else {"method": "imported-hf"}
    provenance = {"imported_from": str(path),
                  **{k: v for k, v in (recorded_provenance or {}).items()
                     if k in PROVENANCE_KEYS}}
    if data:
        provenance["data"] = data
    distilled = DistilledSet(images.contiguous(), labels, names, norm, provenance)
    if soft_col is not None:
        distilled.soft_labels = _soft_labels(table[soft_col], meta.get("soft_labels"), path,
                                             len(labels), len(names))
        if meta.get("soft_labels") is None:
            distilled.notes.append("soft labels read at temperature 1 with the ce loss (the "
                                   "dataset does not record them)")
        if distilled.soft_labels.codec == "float16":
            distilled.notes.append("soft labels stored as float16, the papers' convention")
    return distilled


def _load(path: Path):
    datasets = hf_datasets()
    try:
        if path.is_dir() and ((path / "state.json").is_file()
                              or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
        else:
            files = (sorted(str(p) for p in path.rglob("*.parquet")) if path.is_dir()
                     else [str(path)])
            if not files:
                raise DDCodecError(f"{path} holds neither a saved dataset nor Parquet files")
            with tempfile.TemporaryDirectory() as cache:  # never ~/.cache/huggingface
                loaded = datasets.Dataset.from_parquet(files, cache_dir=cache,
                                                       keep_in_memory=True)
    except DDCodecError:
        raise
    except Exception as exc:  # datasets and pyarrow raise many types for unreadable input
        raise DDCodecError(f"{path}: not a readable Hugging Face dataset "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if isinstance(loaded, datasets.DatasetDict):
        split = "train" if "train" in loaded else (next(iter(loaded)) if len(loaded) == 1
                                                   else None)
        if split is None:
            raise DDCodecError(f"{path} has splits {', '.join(loaded)} and none is 'train'")
        loaded = loaded[split]
    return loaded


def _metadata(table) -> dict:
    for line in (table.info.description or "").splitlines():
        if line.startswith(METADATA_PREFIX):
            try:
                meta = json.loads(line[len(METADATA_PREFIX):])
            except ValueError:
                raise DDCodecError("the dataset's ddcodec metadata is not JSON") from None
            return meta if isinstance(meta, dict) else {}
    return {}


def _column(columns: list[str], names: tuple[str, ...], what: str, path: Path) -> str:
    found = next((c for c in names if c in columns), None)
    if found is None:
        raise DDCodecError(f"{path}: no {what} column (looked for {', '.join(names)}; it has "
                           f"{', '.join(columns)})")
    return found


def _images(table, column: str, path: Path) -> torch.Tensor:
    """uint8 N x C x H x W (PIL images, or PNG/JPEG bytes), or float32 (arrays)."""
    from PIL import Image

    values = table.with_format("numpy")[column] if _is_array(table, column) else table[column]
    if isinstance(values, np.ndarray) or (values and isinstance(values[0], (list, np.ndarray))):
        images = torch.as_tensor(np.asarray(values, dtype=np.float32))
        if images.ndim != 4:
            raise DDCodecError(f"{path}: array images must be C x H x W each")
        return images
    pictures = []
    for value in values:
        if isinstance(value, dict) and value.get("bytes") is not None:
            value = Image.open(io.BytesIO(value["bytes"]))
        if not isinstance(value, Image.Image):
            raise DDCodecError(f"{path}: the {column} column holds neither images nor arrays")
        pictures.append(value)
    mode = "L" if all(p.mode in ("L", "1") for p in pictures) else "RGB"
    arrays = [np.asarray(p.convert(mode)) for p in pictures]
    if len({a.shape for a in arrays}) != 1:
        raise DDCodecError(f"{path}: the images differ in size; resize them to one size first")
    stacked = np.stack(arrays)
    stacked = stacked[:, :, :, None] if stacked.ndim == 3 else stacked
    return torch.from_numpy(stacked.transpose(0, 3, 1, 2).copy())


def _is_array(table, column: str) -> bool:
    feature = table.features[column]
    return type(feature).__name__ in ("Array2D", "Array3D", "Array4D", "Sequence", "List")


def _soft_labels(values, record: dict | None, path: Path, n: int, k: int):
    rows = torch.as_tensor(np.asarray(values, dtype=np.float32))
    record = record if isinstance(record, dict) else {}
    epochs = int(record.get("epochs", 0) or 0)
    if rows.ndim == 3:  # N x E x K: per-epoch rows need the views they were made on
        if not epochs or rows.shape[1] != epochs or not record.get("view_strategy"):
            raise DDCodecError(f"{path}: per-epoch soft labels need the views they were made "
                               "on (ddcodec's metadata records them)")
        rows = rows.transpose(0, 1).reshape(-1, k)
    elif rows.ndim != 2 or epochs:
        raise DDCodecError(f"{path}: soft labels must be one row of {k} per image")
    if rows.shape[0] != n * max(1, epochs) or rows.shape[1] != k:
        raise DDCodecError(f"{path}: soft labels are {tuple(rows.shape)}; expected one row of "
                           f"{k} per image")
    views = ({"epochs": epochs, "view_seed": int(record.get("view_seed", 0)),
              "view_strategy": str(record["view_strategy"])} if epochs else {})
    return as_float16(rows, temperature=float(record.get("temperature", 1.0)),
                      loss=str(record.get("loss", "ce")), **views)
