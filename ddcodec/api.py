"""The Python API: the same verbs as the command line, returning Python objects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ddcodec.data.datasets import DEFAULT_SPEC, load_dataset
from ddcodec.devices import resolve_device
from ddcodec.errors import DDCodecError, Interrupted

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig
    from ddcodec.training.protocol import MeasureConfig
    from ddcodec.sets.setfile import DistilledSet
    from ddcodec.reader import DDZ


def distill(data: str = DEFAULT_SPEC, output: str | os.PathLike | None = None, *,
            data_root: str | None = None, download: bool = False,
            resize: tuple[int, int] | None = None, force: bool = False, device: str = "auto",
            on_iteration: Callable[[int, float], None] | None = None,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
            resume: bool = False, keep_checkpoint: bool = False,
            on_progress: Callable | None = None,
            on_message: Callable[[str], None] | None = None, block: int | None = None,
            config: "DistillConfig | None" = None, **overrides):
    """Distil `data` under `config` (a DistillConfig; default: the defaults) with any flat
    option overridden by keyword (`spc=2`, `loss="gm"`, ...); write it to `output` if given.

    Latent and pixel runs keep their state in `checkpoint` (default: OUTPUT.ckpt) every
    `checkpoint_every` steps (latent runs also on Ctrl-C, pixel runs also after their last);
    `resume=True` continues from it. The checkpoint is removed once the set is written, unless
    `keep_checkpoint`: a pixel run resumed with more `iterations` then goes on from it, exactly
    as a run straight to them.

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
    if (resume or checkpoint_every) and cfg.param == "pixels" and cfg.loss == "none":
        raise DDCodecError("--resume and --checkpoint-every apply to runs that learn (a random "
                           "real subset has nothing to resume)")
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
    if checkpoint is not None and not keep_checkpoint and checkpoint.exists():
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
    from ddcodec.sets.setfile import save_set

    if str(output).endswith(".ddz"):
        from ddcodec.bitstream import ddz

        data, _ = ddz.encode(distilled)
        ddz.write_bytes(data, output, force)
    else:
        save_set(distilled, output, force=force)


def _distill_labeller(config: "DistillConfig", dataset, device: torch.device):
    """The teacher that labels a distilled set (None for hard labels), checked against the data
    before anything is trained."""
    from ddcodec.distillation.labelling import labeller, plan_for

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
            config: "MeasureConfig | None" = None, seed: int = 0, device: str = "auto",
            data: str | None = None, data_root: str | None = None,
            on_epoch: Callable[[int, int], None] | None = None,
            checkpoint: str | os.PathLike | None = None, **overrides) -> dict:
    """Train fresh networks on the set (a set file, a .ddz, or a DistilledSet in memory, whose
    bits are those of its lossless .ddz) under the standard protocol; return the report.
    `config` (a MeasureConfig, default: the field's protocol) with any of its fields overridden
    by keyword (`epochs=300`, `runs=2`, ...). `checkpoint`: a file that keeps a long
    measurement's progress; the same call goes on from it (removed when done)."""
    from ddcodec.evaluation import measure as measuring

    return measuring.measure(set_path, config=config, seed=seed, device=device, data=data,
                             data_root=data_root, on_epoch=on_epoch, checkpoint=checkpoint,
                             **overrides)


def encode(source: "str | os.PathLike | DistilledSet",
           output: str | os.PathLike | None = None, force: bool = False, *,
           pixels: str = "lossless", source_format: str = "auto",
           normalization: str | None = None, data: str | None = None,
           labels: str | None = None, streams: int = 1,
           zca_eps: float | None = None, images: str | None = None,
           fkd_seed: int | None = None, label_temperature: float | None = None,
           label_codec: str | None = None, label_k: int | None = None
           ) -> tuple[bytes, dict]:
    """Encode a set to .ddz bytes; write them to `output` ("-": stdout) if given.

    `source`: a DistilledSet, or a path to a ddcodec set file, MTT/DATM outputs, a tensor file
    or an ImageFolder (`source_format`, detected by default; see ddcodec.sets.importers, which
    `normalization`, `data` and `labels` serve). `pixels`: "lossless" (exact, float values
    included) or "8bit" (rounded to 8 bits, declared lossy, with its error reported).
    `streams`: a latent set's latents in this many independent substreams (2 up to its number
    of decoders), which `decode(workers=N)` decodes in N processes. `zca_eps`: imported tensors
    are ZCA-whitened (ddcodec.data.zca), fitted on `data` with this eps. `images`, `fkd_seed`,
    `label_temperature`: an FKD relabelling's images, sampler seed and training temperature
    (ddcodec.sets.fkd). `label_codec`/`label_k`: the soft labels re-coded in that rung."""
    from ddcodec.bitstream import ddz
    from ddcodec.sets.setfile import DistilledSet

    if output is not None and str(output) != "-":
        from ddcodec.fileio import check_writable

        check_writable(output, force)
    distilled, name = source, "<set>"
    if not isinstance(source, DistilledSet):
        from ddcodec.sets.importers import ImportOptions, import_set

        distilled, name = import_set(source, source_format, ImportOptions(
            normalization, data, labels, zca_eps, images, fkd_seed, label_temperature)), \
            str(source)
    if label_codec is not None:
        from dataclasses import replace

        from ddcodec.errors import DDCodecError
        from ddcodec.labels.soft import recoded

        if distilled.soft_labels is None:
            raise DDCodecError("--label-codec: the set has no soft labels to re-code")
        distilled = replace(distilled, soft_labels=recoded(distilled.soft_labels, label_codec,
                                                           label_k),
                            notes=[*distilled.notes, f"soft labels re-coded as {label_codec}"])
    data, report = ddz.encode(distilled, pixels, name, streams)
    if output is not None:
        ddz.write_bytes(data, output, force)
    return data, report


def train_teacher(data: str = DEFAULT_SPEC, output: str | os.PathLike = "teacher.pt", *,
                  data_root: str | None = None, resize: tuple[int, int] | None = None,
                  force: bool = False, device: str = "auto", on_epoch=None,
                  checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
                  resume: bool = False, **config):
    """Train a teacher (TeacherConfig(**config)) on `data`'s training split, its checkpoint
    chosen on a held-out part of it, and write it to `output`. `checkpoint_every` N: the run's
    state is saved every N epochs to `checkpoint` (default OUTPUT.ckpt), and `resume` goes on
    from it to the same teacher; the file is removed once the teacher is written."""
    from ddcodec.labels import teacher
    from ddcodec.fileio import check_writable
    from ddcodec.labels.teacher_config import TeacherConfig

    cfg = TeacherConfig(**config)
    check_writable(output, force)
    if checkpoint and not (checkpoint_every or resume):
        raise DDCodecError("a teacher's --checkpoint is written with --checkpoint-every N and "
                           "read with --resume; give one of them")
    saves = None
    if checkpoint_every or resume:
        saves = teacher.TeacherCheckpoint(Path(checkpoint or f"{output}.ckpt"),
                                          checkpoint_every, resume)
    dataset = load_dataset(data, data_root, resize=resize)
    try:
        made = teacher.train_teacher(dataset, cfg, resolve_device(device), on_epoch, saves)
    except KeyboardInterrupt:
        if saves is None or not saves.path.is_file():
            raise
        raise Interrupted(f"interrupted; the last saved epoch is in {saves.path}: rerun with "
                          "--resume") from None
    made.save(output, force=force)
    if saves is not None:
        saves.path.unlink(missing_ok=True)
    return made


def label(source: "str | os.PathLike | DistilledSet", teacher: str | os.PathLike,
          output: str | os.PathLike | None = None, *, temperature: float = 1.0,
          loss: str = "ce", codec: str = "float16", k: int | None = None, step_log2: int = -4,
          force: bool = False, device: str = "auto", source_format: str = "auto",
          normalization: str | None = None, data: str | None = None, epochs: int = 0,
          view_seed: int = 0, view_strategy: str | None = None, hard_weight: float = 0.0):
    """Give a set soft labels: the teacher's softmax(logits / temperature) on each of its
    images (`epochs` E > 0: on E keyed views of each, one label per image and epoch, FKD
    style), stored in the `codec` rung (float16; vq with k entries, 16 by default; topk keeping
    k classes, 2 by default), training on hard_weight one-hot + (1 - hard_weight) row; write it
    to `output` if given and return it."""
    from ddcodec.fileio import check_writable
    from ddcodec.distillation.labelling import LabelPlan, labeller
    from ddcodec.sets.setfile import DistilledSet, save_set

    plan = LabelPlan(codec, temperature, loss, k, step_log2, epochs=epochs, view_seed=view_seed,
                     **({"view_strategy": view_strategy} if view_strategy else {}),
                     hard_weight=hard_weight)
    if output is not None:
        check_writable(output, force)
    distilled = source
    if not isinstance(source, DistilledSet):
        from ddcodec.sets.importers import ImportOptions, import_set

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
           format: str = "pt", force: bool = False, samples: int = 0, workers: int = 1,
           unwhiten: bool = False):
    """Decode a .ddz (path, "-" or bytes); export it to `output` in `format` if given
    (`unwhiten`: a ZCA set's images un-whitened first, the transform rebuilt from its data).
    `samples`: a distributional file's means plus this many samples per prior (epoch 0), as
    one set of fixed images (what is returned and exported). `workers`: processes that decode
    a file's latent substreams (`encode(streams=S)`) side by side."""
    from ddcodec.bitstream import ddz

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
        ddz.export(decoded, output, format, force, unwhiten)
    return decoded


def info(source: "str | os.PathLike | bytes | DDZ") -> dict:
    """`ddcodec info`'s report of a .ddz (a path, "-", bytes, or a file `ddcodec.open` gave)."""
    from ddcodec.bitstream import ddz
    from ddcodec.reader import DDZ

    if isinstance(source, DDZ):
        return source.info()

    data = source if isinstance(source, (bytes, bytearray)) else ddz.read_input(source)
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    ddz.check_is_ddz(bytes(data), name)
    return ddz.info(bytes(data), name=name)


def test(source: str | os.PathLike | bytes) -> bool:
    """Full integrity check; raises DDCodecError on any problem, returns True otherwise."""
    from ddcodec.bitstream import ddz

    data = source if isinstance(source, (bytes, bytearray)) else ddz.read_input(source)
    ddz.check_is_ddz(bytes(data), "<bytes>" if isinstance(source, (bytes, bytearray))
                     else str(source))
    ddz.test(bytes(data))
    return True
