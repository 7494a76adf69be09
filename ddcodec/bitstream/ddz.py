"""File-level verbs on .ddz files: encode, decode (to pt, ImageFolder or MTT files), info, test.

Inputs may be a path or `-` (stdin); outputs are written atomically and never overwrite
without `force`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from ddcodec.units import bits_per_class
from ddcodec.labels.rungs import rung
from ddcodec.bitstream import format as fmt
from ddcodec.coding.bytesio import FormatError, Reader
from ddcodec.bitstream.codec import Decoded, decode_bytes, encode_set, pixel_coding
from ddcodec.errors import DDCodecError, LimitError
from ddcodec.fileio import atomic_path, check_writable
from ddcodec.sets.setfile import DistilledSet, load_set, save_set
from ddcodec.data.grid import class_grid, to_pil
from ddcodec.sets.setfile import SET_FORMAT, set_bytes

FORMATS = ("pt", "imagefolder", "mtt", "grid", "hf", "fkd")
FILE_FORMATS = ("pt", "grid")
UNWHITENED_FORMATS = ("pt", "mtt", "hf")  # un-whitened images are floats off the 8-bit grid  # one file (atomic, --force to replace); the others: a folder


def is_ddz(path: str | os.PathLike) -> bool:
    if str(path) == "-":
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == fmt.MAGIC
    except OSError:
        return False


def is_ddz_bytes(data: bytes) -> bool:
    return data[:4] == fmt.MAGIC


def read_input(path: str | os.PathLike) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    path = Path(path)
    if not path.is_file():
        raise DDCodecError(f"{path} not found")
    return path.read_bytes()


def check_is_ddz(data: bytes, name: str) -> None:
    """A file that is not a .ddz gets a line saying what it is, when we can tell."""
    if data[:4] == fmt.MAGIC:
        return
    if data[:2] == b"PK":  # torch's zip container: a set file, or tensors to import
        import io

        try:
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception:
            raw = None

        if isinstance(raw, dict) and raw.get("format") == SET_FORMAT:
            raise DDCodecError(f"{name} is a ddcodec set file, not a .ddz: use encode to make "
                               "one (or measure it as it is)")
        raise DDCodecError(f"{name} is a torch file, not a .ddz: use encode to make one")


def encode(source: "str | os.PathLike | DistilledSet", pixels: str = "lossless",
           name: str | None = None, streams: int = 1) -> tuple[bytes, dict]:
    """A set (a set file's path, or in memory) -> (.ddz bytes, report with estimated bits per
    part and how the pixels were coded)."""
    distilled = source if isinstance(source, DistilledSet) else load_set(source)
    name = name or ("<set>" if isinstance(source, DistilledSet) else str(source))
    started = time.perf_counter()
    try:
        data, bits = encode_set(distilled, pixels=pixels, streams=streams)
    except LimitError as exc:  # a value no .ddz may hold: say which set it came from
        raise LimitError(f"cannot encode {name}: {exc}") from None
    except ValueError as exc:
        raise DDCodecError(f"cannot encode {name}: {exc}") from exc
    seconds = time.perf_counter() - started
    header = fmt.read_header(Reader(data, "file"))
    return data, {"file_bytes": len(data), "estimated_bits": bits, "seconds": seconds,
                  "num_classes": distilled.num_classes,
                  "bpc": bits_per_class(len(data), distilled.num_classes),
                  "pixels": pixel_coding(header),
                  "training_estimate_bits": distilled.provenance.get("estimated_bits"),
                  "notes": list(distilled.notes)}


def decode(data: bytes, bits: bool = True, workers: int = 1,
           device: str | torch.device = "cpu") -> Decoded:
    """A .ddz's contents; `bits=False` skips the ideal bits only reports need; `workers`
    processes decode latent substreams side by side; `device` runs a latent file's float
    synthesis (the CPU's images are the reference)."""
    return decode_bytes(data, bits=bits, workers=workers, device=device)


def with_samples(decoded: Decoded, samples: int) -> Decoded:
    """A distributional file as fixed images: per class, its priors' means, then `samples`
    samples of each (epoch 0, as measure's first epoch), each with its prior's label (soft
    labels re-indexed in their rung, so exactly the file's values)."""

    sampler = decoded.sampler
    if sampler is None:
        raise DDCodecError("--samples is for distributional files (distill --param "
                           "distribution); this file has fixed images")
    drawn = sampler.images(0, samples)
    prior = torch.cat([torch.arange(decoded.header.num_images), sampler.prior_of_sample(samples)])
    labels = decoded.labels[prior]
    order = torch.argsort(labels, stable=True)  # a class's means, then its samples
    images = torch.cat([decoded.images, drawn])[order]
    header = replace(decoded.header,
                     samples_per_class=[n * (1 + samples)
                                        for n in decoded.header.samples_per_class],
                     meta={**decoded.header.meta,
                           "samples": f"means + {samples} samples per prior (epoch 0)"})
    soft = decoded.soft_labels.take(prior[order]) if decoded.soft_labels is not None else None
    return replace(decoded, header=header, images=images, labels=labels[order],
                   soft_labels=soft, sampler=None)


def write_bytes(data: bytes, output: str | os.PathLike, force: bool) -> None:
    if str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = check_writable(output, force)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def export(decoded: Decoded, output: str | os.PathLike, form: str, force: bool,
           unwhiten: bool = False) -> Path:
    """Write decoded images as a ddcodec set file, an ImageFolder tree, MTT tensors or one PNG
    contact sheet (a row per class); "-" writes a file format to stdout. `unwhiten`: a ZCA
    set's images un-whitened first (the transform rebuilt from its data; pt and mtt only)."""
    if form not in FORMATS:
        raise DDCodecError(f"unknown --format {form!r}; choose {', '.join(FORMATS)}")
    distilled = decoded.to_set()
    if unwhiten:
        if form not in UNWHITENED_FORMATS:
            raise DDCodecError("--unwhiten writes float tensors: use --format "
                               f"{' or '.join(UNWHITENED_FORMATS)}")
        distilled = _unwhitened(distilled)
    if str(output) == "-":
        if form not in FILE_FORMATS:
            raise DDCodecError(f"--format {form} writes a folder, not a stream: give -o FOLDER")
        write_bytes(set_bytes(distilled) if form == "pt" else _grid_bytes(decoded), "-", force)
        return Path("-")
    if form == "grid":
        return _write_grid(decoded, output, force)
    if form == "imagefolder" and decoded.exact_floats:
        raise DDCodecError("this file holds exact float pixels and PNG holds 8 bits: export "
                           "with --format pt or mtt to keep them")
    if form == "pt":
        return save_set(distilled, output, force=force)
    out = Path(output)
    if out.exists() and not force:
        raise DDCodecError(f"{out} already exists; use -f/--force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise DDCodecError(f"cannot write {out}: directory {parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        if form == "imagefolder":
            _write_imagefolder(decoded, tmp)
        elif form == "hf":
            _write_hf(decoded, distilled, tmp, unwhiten)
        elif form == "fkd":
            _write_fkd(decoded, distilled, tmp)
        else:
            _write_mtt(distilled, tmp)
        _write_normalization(distilled, tmp, form)
        _usual_permissions(tmp)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_hf(decoded: Decoded, distilled: DistilledSet, root: Path, unwhiten: bool) -> None:
    """A `datasets.load_from_disk` folder: PNG images for files on the 8-bit grid, else the
    exact float images (ddcodec.sets.hf)."""
    from ddcodec.sets.hf import write_hf

    on_grid = not decoded.exact_floats and not unwhiten
    write_hf(distilled, decoded.images_uint8() if on_grid else None, root)


def _write_fkd(decoded: Decoded, distilled: DistilledSet, root: Path) -> None:
    """The relabelling as the relabel-training scripts read it: images/ (an ImageFolder; a float
    set's tensors in images.pt), fkd/epoch_*/batch_*.tar, and fkd.json (seed, temperature,
    normalisation), which `encode --from fkd` reads back."""
    from ddcodec.sets.fkd import write_relabel

    views, soft = distilled.fkd, distilled.soft_labels
    if views is None:
        raise DDCodecError("--format fkd is for files with an FKD relabelling's views (encode "
                           "--from fkd)")
    if decoded.exact_floats:
        torch.save({"images": distilled.images.contiguous(), "labels": distilled.labels},
                   root / "images.pt")
    else:
        (root / "images").mkdir()
        _write_imagefolder(replace(decoded, soft_labels=None), root / "images")
    write_relabel(root / "fkd", views, soft.probabilities, soft.temperature)
    n = distilled.normalization
    (root / "fkd.json").write_text(json.dumps({
        "seed": views.seed, "batch_size": views.batch_size, "epochs": views.epochs,
        "mix": views.mix, "temperature": soft.temperature, "loss": soft.loss,
        "mean": list(n.mean), "std": list(n.std), "class_names": distilled.class_names,
        **{k: distilled.provenance[k] for k in ("method", "data")
           if distilled.provenance.get(k) not in (None, "unknown")},
        "logits": "T log p", "logits_dtype_source": views.logits_dtype,
        "note": "logits are T x log(p) in float32: softmax(logits / T) gives the stored "
                "labels; train with --temperature T and --fkd-seed seed"}, indent=1))


def _unwhitened(distilled: DistilledSet) -> DistilledSet:
    from ddcodec.data.datasets import load_dataset

    spec = distilled.provenance.get("data")
    if distilled.zca_eps is not None and not spec:
        raise DDCodecError("--unwhiten: the file does not name the data its whitening was "
                           "fitted on")
    resize = distilled.provenance.get("resize")  # the whitening was fitted at the set's size
    return distilled.unwhitened(load_dataset(spec, resize=tuple(resize) if resize else None)
                                if spec else None)


def _write_grid(decoded: Decoded, output: str | os.PathLike, force: bool) -> Path:
    path = check_writable(output, force)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_grid_bytes(decoded, title=path.stem))
    return path


def _grid_bytes(decoded: Decoded, title: str = "decoded") -> bytes:
    """The grid PNG's bytes: a labelled row of images per class."""
    import io

    sheet = class_grid(decoded.images_uint8(), decoded.labels, list(decoded.header.class_names),
                       title=f"{title}: {decoded.header.num_images} images, "
                             f"{bits_per_class(decoded.file_bytes, decoded.header.num_classes):,.0f} "
                             "bits/class")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def _usual_permissions(root: Path) -> None:
    """mkdtemp makes a private (0700) folder; an export gets what mkdir would give (0777 and
    files 0666, less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)


MAX_FOLDER_NAME = 100  # well inside every file system's 255-byte limit


def _folder_name(name: str, index: int) -> str:
    """A portable folder name: ASCII, led by the class index (so unique and in class order),
    cut to MAX_FOLDER_NAME with a digest of the full name when the name is long."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "class"
    folder = f"{index:03d}_{safe}"
    if len(folder) > MAX_FOLDER_NAME:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        folder = f"{folder[:MAX_FOLDER_NAME - 9]}_{digest}"
    return folder


def _write_imagefolder(decoded: Decoded, root: Path) -> None:
    names = decoded.header.class_names
    folders = [_folder_name(n, i) for i, n in enumerate(names)]
    counters = [0] * len(names)
    for image, label in zip(decoded.images_uint8(), decoded.labels.tolist()):
        folder = root / folders[label]
        folder.mkdir(exist_ok=True)
        to_pil(image).save(folder / f"{counters[label]:05d}.png")
        counters[label] += 1
    (root / "classes.json").write_text(json.dumps(
        {"folders": folders, "class_names": names}, indent=1))
    soft = decoded.soft_labels
    if soft is not None:  # by file name: a distribution per image, or E of them (per epoch)
        counters = [0] * len(names)
        rows = {}
        per_image = soft.training_rows(decoded.labels)
        per_image = per_image.transpose(0, 1) if soft.per_epoch else per_image
        for label, row in zip(decoded.labels.tolist(), per_image.tolist()):
            rows[f"{folders[label]}/{counters[label]:05d}.png"] = row
            counters[label] += 1
        (root / "soft_labels.json").write_text(json.dumps(
            {"temperature": soft.temperature, "loss": soft.loss, "codec": soft.codec,
             **_views_record(soft), **_mix_record(soft), "labels": rows}))


def _mix_record(soft) -> dict:
    """A hard weight: the rows written are already mixed with each image's class."""
    return {"hard_weight": soft.hard_weight,
            "mixed": "each row is hard_weight one-hot(class) + (1 - hard_weight) the teacher's"
            } if soft.hard_weight else {}


def _views_record(soft) -> dict:
    """Per-epoch labels: how to regenerate the views they were made on."""
    if not soft.per_epoch:
        return {}
    if soft.fkd:
        return {"epochs": soft.epochs, "views": "an FKD relabelling's (the fkd views section; "
                                                "decode --format fkd writes it)"}
    return {"epochs": soft.epochs, "view_seed": soft.view_seed,
            "view_strategy": soft.view_strategy,
            "views": "ddcodec.data.augment.LabelViews(view_seed, view_strategy)(images, epoch, "
                     "sample indices); labels[file][epoch]"}


def _write_mtt(distilled: DistilledSet, root: Path) -> None:
    torch.save(distilled.images.contiguous(), root / "images_best.pt")
    torch.save(distilled.labels.contiguous(), root / "labels_best.pt")
    soft = distilled.soft_labels
    if soft is not None:  # probabilities: N x classes, or epochs x N x classes
        torch.save(soft.training_rows(distilled.labels).contiguous(),
                   root / "soft_labels_best.pt")
        if soft.per_epoch:
            (root / "soft_label_views.json").write_text(json.dumps(_views_record(soft)))
    if "syn_lr" in distilled.provenance:
        torch.save(torch.tensor(distilled.provenance["syn_lr"]), root / "lr_best.pt")


def _write_normalization(distilled: DistilledSet, root: Path, form: str) -> None:
    n = distilled.normalization
    note = ("PNG pixels are 0..255; networks expect (pixel / 255 - mean) / std"
            if form == "imagefolder" else
            "tensors are already normalised: pixel / 255 = images * std + mean")
    record = {"mean": list(n.mean), "std": list(n.std), "note": note,
              "class_names": distilled.class_names}
    if distilled.zca_eps is not None:
        record["note"] = ("tensors are ZCA-whitened: networks need the test images whitened "
                          "the same way (see zca)")
        record["zca"] = {"eps": distilled.zca_eps, "data": distilled.provenance.get("data"),
                         "fit": "unbiased covariance of the data's training images after the "
                                "normalisation above; W = U diag((S + eps)^-1/2) U^T; "
                                "whitened = (flat(x) - mean) @ W (kornia ZCAWhitening)"}
    (root / "normalization.json").write_text(json.dumps(record, indent=1))


def info(data: bytes, name: str = "-") -> dict:
    return describe(decode_bytes(data), name)


def describe(decoded: Decoded, name: str = "-") -> dict:
    """`info`'s report of a decoded file (its ideal bits included: decode with bits=True)."""
    h = decoded.header
    data_bytes = decoded.file_bytes
    estimated = sum(decoded.estimated_bits.values())
    report = {
        "file": name, "file_bytes": data_bytes, "format_version": h.version,
        "kind": h.kind.name.lower(),
        "num_classes": h.num_classes, "num_images": h.num_images,
        "image_shape": [h.channels, h.height, h.width],
        "samples_per_class": h.samples_per_class, "class_names": h.class_names,
        "normalization": {"mean": h.mean, "std": h.std},
        "bpc": bits_per_class(data_bytes, h.num_classes),
        "bpp": 8 * data_bytes / (h.num_images * h.height * h.width),
        "estimated_bits": estimated,
        "estimated_bits_parts": decoded.estimated_bits,
        "sections": decoded.section_bytes,
        "float32_bits_per_class": 32 * h.num_images * h.channels * h.height * h.width
                                  / h.num_classes,
        "pixels": pixel_coding(h),
        "labels": label_report(decoded),
        "meta": h.meta,
        "skipped_sections": [f"{t:#04x}" for t in decoded.skipped_sections],
    }
    if h.latent:
        report["decoder"] = {"preset": h.latent.decoder, "arm_context": h.latent.arm_context,
                             "arm_hidden": h.latent.arm_hidden, "levels": h.latent.levels,
                             "shared": h.shared_decoder, "gain": h.latent.gain,
                             "k": h.latent.k}
    if decoded.sampler is not None:
        report["distribution"] = distribution_report(decoded)
    return report


def distribution_report(decoded: Decoded) -> dict:
    """A distributional file's priors: how many, the samples each adds per epoch, and the
    spreads (latent steps) per level: median and range over the priors."""
    scales = decoded.sampler.scales
    sigma = scales.sigma().flatten(0, 1)  # priors x levels
    return {"priors": int(sigma.shape[0]), "samples_per_prior": scales.samples,
            "seed": scales.seed,
            "images_per_epoch": int(sigma.shape[0]) * (1 + scales.samples),
            "sigma_median_per_level": [float(v) for v in sigma.median(0).values],
            "sigma_min_per_level": [float(v) for v in sigma.min(0).values],
            "sigma_max_per_level": [float(v) for v in sigma.max(0).values],
            "scales_bits": decoded.estimated_bits.get("scales", 0.0)}


def label_report(decoded: Decoded) -> dict:
    """Hard labels cost nothing (the class counts are in the header); soft labels their
    section, shown next to the papers' float16 count of the same distributions."""
    soft = decoded.soft_labels
    if soft is None:
        return {"kind": "hard", "bits": 0}
    kind = (f"soft (per epoch: {soft.epochs} per image)" if soft.per_epoch
            else "soft (one per image)")
    fkd = decoded.fkd
    if fkd is not None:
        batches = f"{fkd.batches} batch{'es' if fkd.batches != 1 else ''}"
        kind = (f"soft (per epoch: an FKD relabelling, {fkd.epochs} epochs of {batches} of "
                f"{fkd.batch_size}, {fkd.mix})")
    views_bits = 8 * decoded.section_bytes.get("fkd views", 0)
    return {"kind": kind, "codec": soft.codec, "loss": soft.loss, **_views_record(soft),
            "temperature": soft.temperature,
            **({"hard_weight": soft.hard_weight} if soft.hard_weight else {}),
            "bits": 8 * decoded.section_bytes.get("labels", 0),
            "float16_bits": soft.float16_bits,
            **({"views_bits": views_bits} if fkd is not None else {}),
            **rung(soft.codec).info(soft)}


def test(data: bytes) -> Decoded:
    """Full integrity check: header and payload CRCs, every section, latent CRC, the images."""
    decoded = decode_bytes(data, bits=False)
    if decoded.images.shape[0] != decoded.header.num_images:
        raise FormatError("decoded image count does not match the header")
    return decoded
