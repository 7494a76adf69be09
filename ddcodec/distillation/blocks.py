"""Distillation in class blocks (D3's subtasks), on one process or many (torch.distributed).

The classes are cut into B contiguous blocks. Each block is distilled by its own trainer over
its classes only; since every random draw of a class is keyed by the class and every loss term
is per class (see LatentTrainer), a block's payload does not depend on which process runs it or
what else that process runs. Each finished block is written atomically as a part file
`OUTPUT.parts/block-BBBB-of-NNNN.pt`; a re-run skips the parts that are there (with the same
settings). A block in progress keeps its state in `block-BBBB-of-NNNN.ckpt` beside its part
(every `--checkpoint-every` steps, and on SIGINT/SIGTERM), so a stopped run, started again with
the same command, goes on with that block where it stopped. The merge checks every part and
rebuilds one payload in class order, so the output (and its .ddz, byte for byte) does not
depend on the number of processes or on the interruptions.

Under torchrun (WORLD_SIZE > 1) rank r distils blocks r, r + N, r + 2N, ... (B fixed, N any),
then rank 0 merges. gloo on CPU, NCCL on GPUs with one device per local rank.

Rate control (`--target-bpc`) runs per block on the block's own file (the block's classes
alone, plus the estimated bits of the soft labels the merge adds), so every block lands on the
per-class budget and the merged file (one header instead of B) lands on it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

import torch

from ddcodec.data.datasets import Dataset
from ddcodec.distillation.partition import block_ranges  # noqa: F401 - used and re-exported
from ddcodec.errors import DDCodecError, Interrupted
from ddcodec.fileio import atomic_path, load_tagged
from ddcodec.memory import peak_mb, resident_mb
from ddcodec.sets.payload import LatentPayload
from ddcodec.distillation.budget import label_cost
from ddcodec.distillation.config import DistillConfig, recorded_settings
from ddcodec.distillation.output import latent_set
from ddcodec.sets.distributional import Scales
from ddcodec.sets.payload import EstimatedBits

PART_FORMAT = "ddcodec-block"
PART_VERSION = 1


def settings_digest(config, dataset: Dataset) -> str:
    """What must agree between parts to merge them: the resolved settings and the data."""
    text = json.dumps({"config": recorded_settings(config), "data": dataset.spec,
                       "shape": list(dataset.image_shape), "classes": dataset.class_names},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def part_path(folder: Path, block: int, blocks: int) -> Path:
    return folder / f"block-{block:04d}-of-{blocks:04d}.pt"


def _block_file_bits(dataset: Dataset, config, classes: range, sizer) -> Callable:
    """How rate control sizes a block: the .ddz of the block's classes alone, plus the
    estimated bits of the soft labels the merge will give them (one global teacher labels the
    merged set, so a block reserves its share)."""
    local = replace(dataset, class_names=[dataset.class_names[c] for c in classes])
    labels = round(label_cost(dataset, config).per_class(config.latent.spc) * len(classes))

    def file_bits(uint8_images: torch.Tensor, payload: LatentPayload) -> int:
        groups = tuple(replace(g, classes=(i,)) for i, g in enumerate(payload.groups))
        block = replace(payload, groups=groups)
        return sizer(latent_set(local, config, uint8_images, block, {})) + labels

    return file_bits


def distill_block(dataset: Dataset, config, device: torch.device, block: int, blocks: int,
                  sizer=None, on_progress=None, *, trainer_class,
                  checkpoint: Path | None = None, checkpoint_every: int = 0,
                  say: Callable[[str], None] = lambda m: None) -> dict:
    """Train one block with the representation's trainer (LatentTrainer or a subclass); return
    its part (plain tensors and values, weights_only-loadable). The block keeps its state in
    `checkpoint` (every `checkpoint_every` steps, and on SIGINT/SIGTERM) and goes on from it
    when it is there: a killed job's block resumes where it stopped."""
    classes = block_ranges(dataset.num_classes, blocks)[block]
    file_bits = (_block_file_bits(dataset, config, classes, sizer)
                 if config.latent.target_bpc is not None else None)
    started, peak_before = time.perf_counter(), peak_mb()
    trainer = trainer_class(dataset, config, device, checkpoint, checkpoint_every,
                            on_progress=on_progress, file_bits=file_bits, classes=classes)
    resume, resumed_at = checkpoint is not None and checkpoint.is_file(), None
    if resume:
        try:
            resumed_at = trainer.saved_step()
            say(f"block {block}: going on from its checkpoint (step {resumed_at})")
        except DDCodecError as exc:  # another run's settings, or damaged: start afresh
            say(f"block {block}: its checkpoint is not this run's ({exc}); starting afresh")
            checkpoint.unlink()
            resume = False
    try:
        images, payload, learnt = trainer.run(resume=resume)
    except Interrupted:
        raise Interrupted(f"block {block} stopped; its state is saved in {checkpoint}: run "
                          "the same command again to go on") from None
    # what a block cost, for planning (docs/scale.md); not in the .ddz. A resumed block's
    # seconds are this process's part only, from the step it went on from. The peak before the
    # block tells the block's own memory from the data load's (the first load of a tree
    # decodes all of it) and from an earlier block's in the same process.
    learnt = {**learnt, "block_seconds": time.perf_counter() - started,
              "resumed_from_step": resumed_at, "process_peak_before_mb": peak_before,
              "process_peak_mb": peak_mb(), **resident_mb()}
    return {"format": PART_FORMAT, "version": PART_VERSION, "block": block, "blocks": blocks,
            "classes": list(classes), "settings": settings_digest(config, dataset),
            "config": recorded_settings(config), "data": dataset.spec,
            "payload": payload.to_dict(), "images": images.contiguous(),
            "learnt": json.loads(json.dumps(learnt, default=str))}


def save_part(part: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(part, tmp)


def load_part(path: Path) -> dict:
    part = load_tagged(path, PART_FORMAT, "block part")
    if part.get("version") != PART_VERSION:
        raise DDCodecError(f"{path}: block part version {part.get('version')}; this ddcodec "
                           f"reads {PART_VERSION}")
    kinds = {"block": int, "blocks": int, "classes": list, "settings": str, "config": dict,
             "data": str, "payload": dict, "images": torch.Tensor, "learnt": dict}
    for key, kind in kinds.items():
        if not isinstance(part.get(key), kind):
            raise DDCodecError(f"{path}: damaged block part ('{key}' missing or not a "
                               f"{kind.__name__})")
    if part["images"].dtype != torch.uint8 or part["images"].ndim != 4:
        raise DDCodecError(f"{path}: damaged block part (images must be uint8 N x C x H x W)")
    return part


def finished(path: Path, digest: str) -> bool:
    """A part already there with the same settings (a re-run skips its block)."""
    if not path.is_file():
        return False
    try:
        return load_part(path).get("settings") == digest
    except DDCodecError:
        return False


def merge(parts: list[dict], dataset: Dataset, config) -> tuple[torch.Tensor, LatentPayload,
                                                                dict]:
    """Every block's part -> the decoded images, the whole payload (class order) and what the
    blocks learnt. Refuses parts of other settings, missing or repeated blocks."""
    if not parts:
        raise DDCodecError("nothing to merge: no block parts")
    digest = settings_digest(config, dataset)
    blocks = parts[0]["blocks"]
    seen = {}
    for part in parts:
        if part.get("settings") != digest or part.get("blocks") != blocks:
            raise DDCodecError(f"block {part.get('block')} was made with other settings or "
                               "data than the rest; re-run it with the same options")
        if part["block"] in seen:
            raise DDCodecError(f"block {part['block']} is given twice")
        seen[part["block"]] = part
    missing = sorted(set(range(blocks)) - set(seen))
    if missing:
        raise DDCodecError(f"blocks {', '.join(map(str, missing))} of {blocks} are missing")
    ordered = [seen[b] for b in range(blocks)]
    ranges = block_ranges(dataset.num_classes, blocks)
    for b, part in enumerate(ordered):
        if part["classes"] != list(ranges[b]):
            raise DDCodecError(f"block {b} holds classes {part['classes']}, expected "
                               f"{list(ranges[b])}")
    raws = [part["payload"] for part in ordered]
    bits = [EstimatedBits.from_dict(raw["estimated_bits"]) for raw in raws]
    total = {name: sum(getattr(b, name) for b in bits) for name in bits[0].to_dict()
             if name != "total"}
    psnrs = [raw.get("fit_psnr") for raw in raws if raw.get("fit_psnr") is not None]
    whole = {**raws[0], "groups": [g for raw in raws for g in raw["groups"]],
             "estimated_bits": total, "fit_psnr": sum(psnrs) / len(psnrs) if psnrs else None}
    if raws[0].get("scales") is not None:
        first = Scales.from_dict(raws[0]["scales"])
        codes = torch.cat([Scales.from_dict(raw["scales"]).codes for raw in raws])
        whole["scales"] = Scales(codes, first.samples, first.seed).to_dict()
    payload = LatentPayload.from_dict(whole, dataset.image_shape, dataset.num_classes)
    images = torch.cat([part["images"] for part in ordered])
    learnt = {"blocks": blocks, "per_block": [part["learnt"] for part in ordered]}
    return images, payload, learnt


def config_of_parts(parts: list[dict]):
    """The settings the parts were made with (what `ddcodec merge` rebuilds the set under)."""
    configs = {json.dumps(p.get("config"), sort_keys=True, default=str) for p in parts}
    if len(configs) != 1 or not isinstance(parts[0].get("config"), dict):
        raise DDCodecError("the parts were made with different settings; merge parts of one run")
    datas = {p.get("data") for p in parts}
    if len(datas) != 1:
        raise DDCodecError(f"the parts come from different data ({', '.join(map(str, datas))})")
    return DistillConfig.of(**parts[0]["config"]), parts[0]["data"]


# ----------------------------------------------------------------------- torch.distributed

def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0"))


def start_group(device: torch.device) -> torch.device:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA, one device per local rank);
    return this rank's device."""
    import torch.distributed as dist

    rank, size, local = world()
    if size == 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=timedelta(hours=12))
    return device


def _marker(path: Path) -> Path:
    return path.with_suffix(".running")


@contextmanager
def claimed(marker: Path, block: int, who: str) -> Iterator[str]:
    """Hold a block's `.running` marker, locked, while this process distills the block; yield
    what an earlier, stopped run wrote in it ('' when none). A second process on the same block
    (a job array's duplicate, a rerun while the first still runs) would write the same
    checkpoint and part: it stops with one line naming the first instead. The lock is the
    kernel's (flock), so it goes with the process that holds it, however that ends; where there
    is no flock (Windows) the marker only names its writer."""
    with open(marker, "a+") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                raise DDCodecError(f"block {block} is being distilled by another process "
                                   f"({handle.read().strip() or 'unnamed'}); wait for it or "
                                   f"stop it, then run again") from None
        handle.seek(0)
        earlier = handle.read().strip()
        handle.seek(0)
        handle.truncate()
        handle.write(who)
        handle.flush()
        yield earlier


def checkpoint_path(path: Path) -> Path:
    """A block's checkpoint, beside its part: what a killed run goes on from."""
    return path.with_suffix(".ckpt")


def run_blocks(dataset: Dataset, config, device: torch.device, parts: Path, sizer=None,
               on_progress=None, say: Callable[[str], None] = lambda m: None,
               only: int | None = None, *, trainer_class, checkpoint_every: int = 0
               ) -> tuple[torch.Tensor, LatentPayload, dict] | None:
    """This rank's blocks (or block `only`, for a job array), then (rank 0, all blocks) the
    merge; otherwise None. A block that fails names itself and stops this rank (torchrun then
    stops the job); finished parts stay, and a block a killed process left unfinished (its
    `.running` marker) is named when the next run takes it up."""
    import torch.distributed as dist

    blocks = config.blocks
    if only is not None and not 0 <= only < blocks:
        raise DDCodecError(f"--block must be in [0, {blocks - 1}] for --blocks {blocks}")
    if only is not None and world()[1] > 1:
        raise DDCodecError("--block runs one block in one process: leave out torchrun (or "
                           "--block, to share every block among the processes)")
    device = start_group(device)
    rank, size, _ = world()
    digest = settings_digest(config, dataset)
    mine = [only] if only is not None else list(range(rank, blocks, size))
    ranges = block_ranges(dataset.num_classes, blocks)
    for block in mine:
        path = part_path(parts, block, blocks)
        if finished(path, digest):
            say(f"block {block}: part found, skipped")
            continue
        parts.mkdir(parents=True, exist_ok=True)
        with claimed(_marker(path), block, f"rank {rank}, pid {os.getpid()} on "
                     f"{socket.gethostname()}") as earlier:
            if finished(path, digest):  # another process finished it since the check above
                _marker(path).unlink()
                say(f"block {block}: part found, skipped")
                continue
            if earlier:
                say(f"block {block}: left unfinished by an earlier run ({earlier}); "
                    "distilling it again")
            say(f"block {block} of {blocks} (classes {ranges[block][0]}-{ranges[block][-1]}) "
                f"on rank {rank}")
            try:
                part = distill_block(dataset, config, device, block, blocks, sizer,
                                     on_progress, trainer_class=trainer_class, say=say,
                                     checkpoint=checkpoint_path(path),
                                     checkpoint_every=checkpoint_every)
            except Interrupted:
                raise
            except DDCodecError as exc:
                raise DDCodecError(f"block {block} failed on rank {rank}: {exc}") from None
            except Exception as exc:
                raise DDCodecError(f"block {block} failed on rank {rank}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            # how the block ran, for the record beside its time (not in the .ddz)
            part["learnt"]["ran_as"] = (f"rank {rank} of {size}" if size > 1 else
                                        "a job of its own (--block)" if only is not None
                                        else "one process")
            save_part(part, path)
            checkpoint_path(path).unlink(missing_ok=True)
            _marker(path).unlink()
        learnt = part["learnt"]
        peak, anon, mapped = (learnt["process_peak_mb"], learnt.get("process_rss_anon_mb"),
                              learnt.get("process_rss_file_mb"))
        say(f"block {block}: done in {learnt['block_seconds']:.1f} s" + (
            f", peak memory of this process so far {peak:,.0f} MB" if peak else "") + (
            f" (now {anon:,.0f} MB allocated, {mapped:,.0f} MB of mapped files)"
            if anon is not None and mapped is not None else ""))
    if size > 1:
        dist.barrier()
    if rank != 0 or only is not None:
        return None
    return merge([load_part(part_path(parts, b, blocks)) for b in range(blocks)], dataset,
                 config)
