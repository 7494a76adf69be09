"""The `ddcodec` command line: compressor conventions (zstd/xz-like) over the Python API.

Exit status: 0 success, 1 runtime or input error (one line on stderr; traceback with -v),
2 usage error. `--json` prints exactly one JSON object on stdout; everything meant for people
goes to stderr, progress bars only on a terminal.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import click

from ddcodec.units import bits_per_class
from ddcodec.cli import render
from ddcodec.version import __version__
from ddcodec.reports.curve_config import CurveOptions
from ddcodec.reports.demo import DemoOptions
from ddcodec.distillation.config import DistillConfig, ExpertConfig
from ddcodec.errors import DDCodecError, Interrupted
from ddcodec.names import DEFAULT_ZCA_EPS, PIXEL_MODES, SET_SOURCES
from ddcodec.options import click_options
from ddcodec.training.checkpoint import SAVE_EVERY_S
from ddcodec.training.protocol import MeasureConfig
from ddcodec.labels.options import LabelOptions
from ddcodec.labels.rungs import rung, rung_names
from ddcodec.labels.teacher_config import TeacherConfig
from ddcodec.cli.options import (checkpoint_options, common_options, compile_option, data_options,
                                 set_verbose, state, threads_option)
from ddcodec.cli.torchrun import STATUS_FILE_ENV, relaunch_under_torchrun

EXIT_TARGET_MISSED = 3  # distill: the set is written, but outside --target-bpc's tolerance


def _info(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="ddcodec")
def cli():
    """Dataset distillation as data compression: distil a training set into a small file,
    and measure its size in bits per class and the accuracy it trains to."""


@cli.command()
@data_options
@click_options(DistillConfig)
@checkpoint_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Distilled-set file to write (set.pt).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--block", "only_block", type=click.IntRange(min=0), default=None,
              help="With --blocks B: distil only this block (0 to B-1) into OUTPUT.parts/ and "
                   "stop, for job arrays; `ddcodec merge` joins the parts.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --blocks: start this many processes on this machine (torchrun "
                   "--standalone, one thread each; gloo on CPU, NCCL on GPUs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@common_options
@compile_option
def distill(data_spec, data_root, download, resize, checkpoint, checkpoint_every, resume,
            keep_checkpoint, output, force, only_block, nproc, as_json, quiet, verbose, seed,
            device, log_every, **options):
    """Distil a training set into a small synthetic set (set.pt)."""
    from ddcodec import api
    from ddcodec.data.datasets import parse_size
    from ddcodec.progress import display

    if nproc > 1:
        if options.get("blocks", 1) < 2:
            raise DDCodecError("--nproc shares blocks among processes: give --blocks B (at "
                               "least 2)")
        relaunch_under_torchrun(nproc)

    started = time.perf_counter()
    config = DistillConfig.of(**options, seed=seed)
    with display(quiet or config.loss == "none", log_every) as shown:
        iterations, label = config.matching.iterations, f"distill {config.loss}"

        def on_iteration(i: int, value: float) -> None:
            shown.update(label, i + 1, iterations, f"{config.loss.upper()} loss {value:.4g}")

        distilled = api.distill(
            data_spec, output, data_root=data_root, download=download,
            resize=parse_size(resize), force=force, device=device, on_iteration=on_iteration,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
            keep_checkpoint=keep_checkpoint, on_progress=shown.handle,
            on_message=lambda m: shown.say("blocks", m), block=only_block, config=config)
    if distilled is None:  # one block's part, or a rank other than 0 (rank 0 reports)
        if only_block is not None:
            _info(quiet, f"wrote block {only_block} of {config.blocks} to {output}.parts/; "
                         f"`ddcodec merge {output}.parts/*.pt -o {output}` joins them")
        return
    if not _distill_summary(distilled, output, time.perf_counter() - started, as_json, quiet):
        _exit_target_missed()


def _exit_target_missed() -> None:
    """Exit 3 (the set is written, the budget missed); under `--nproc` the status goes to the
    launcher's file instead, since torchrun would call a rank's exit 3 a failure."""
    status_file = os.environ.get(STATUS_FILE_ENV)
    if status_file:
        Path(status_file).write_text(str(EXIT_TARGET_MISSED))
        return
    raise click.exceptions.Exit(EXIT_TARGET_MISSED)


def _distill_summary(distilled, output: str, seconds: float, as_json: bool, quiet: bool) -> bool:
    """Print what was written; False when rate control missed its target."""
    size = os.path.getsize(output)
    estimated = distilled.provenance.get("estimated_bits")
    summary = {
        "output": output, "file_bytes": size, "bpc": bits_per_class(size, distilled.num_classes),
        "num_images": distilled.num_images, "num_classes": distilled.num_classes,
        "method": distilled.provenance.get("method"), "seconds": seconds,
        "provenance": distilled.provenance,
    }
    if estimated:
        summary["estimated_bpc"] = estimated["total"] / distilled.num_classes
    rate = distilled.provenance.get("rate_control")
    met = not rate or rate["within_tolerance"]
    if distilled.soft_labels is not None:
        from ddcodec.api import encoded_bits
        from ddcodec.distillation.labelling import label_split

        summary["label_split"] = label_split(distilled, encoded_bits(distilled))
    if as_json:
        click.echo(json.dumps(summary))
        return met
    _info(quiet, f"wrote {output}: {distilled.num_images} images ({distilled.num_classes} "
                 f"classes), {size:,} bytes, {seconds:.1f} s")
    if estimated:
        parts = ", ".join(f"{k} {v / distilled.num_classes:,.0f}" for k, v in estimated.items()
                          if k != "total")
        _info(quiet, f"estimated {summary['estimated_bpc']:,.0f} bits/class ({parts}); "
                     f"phase-1 fit {distilled.provenance['fit_psnr']:.1f} dB PSNR")
    else:
        _info(quiet, f"{summary['bpc']:,.0f} bits/class as stored")
    if distilled.soft_labels is not None:
        split = summary["label_split"]
        _info(quiet, f"labels: {split['rung']}, {split['label_bpc']:,.0f} bits/class "
                     f"({split['label_share']:.1%} of the {split['file_bpc']:,.0f} of its .ddz; "
                     f"float16 would take {split['float16_bpc']:,.0f}); images, decoders and "
                     f"header {split['rest_bpc']:,.0f}")
    sigma = distilled.provenance.get("sigma_median_per_level")
    if sigma:
        _info(quiet, f"distribution: {distilled.num_images // distilled.num_classes} priors per "
                     "class, each its mean and fresh samples in measure; median sigma per level "
                     f"(latent steps, fine to coarse) {', '.join(f'{v:.2g}' for v in sigma)}")
    if "syn_lr" in distilled.provenance:
        _info(quiet, f"learnt student learning rate {distilled.provenance['syn_lr']:.4g} "
                     "(stored; measure trains with it)")
    if rate:
        verdict = "within" if rate["within_tolerance"] else "OUTSIDE"
        _info(quiet, f"rate control: {rate['achieved_bpc']:,.0f} bits/class in the encoded .ddz "
                     f"for a target of {rate['target_bpc']:,.0f} ({rate['error']:+.1%}, {verdict} "
                     f"±{rate['tolerance']:.0%}); {rate['why']}")
        if not met:
            click.echo(f"ddcodec: warning: rate control missed the target by "
                       f"{rate['error']:+.1%}; the set is written; exit status "
                       f"{EXIT_TARGET_MISSED}; try more --iterations or another --spc", err=True)
    return met


@cli.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The merged set (set.pt), or its .ddz if the name ends in .ddz.")
@click.option("--data", "data_spec", default=None,
              help="The data the parts were made from [default: what the parts record].")
@click.option("--data-root", default=None, help="Where torchvision's files live.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@common_options
def merge(parts, output, data_spec, data_root, force, as_json, quiet, verbose, seed, device,
          log_every):
    """Join block parts of separate runs (distill --blocks B --block b) into one set: the
    bytes one run would have written."""
    from ddcodec import api

    started = time.perf_counter()
    distilled = api.merge(list(parts), output, data=data_spec, data_root=data_root,
                          force=force, device=device)
    if not _distill_summary(distilled, output, time.perf_counter() - started, as_json, quiet):
        _exit_target_missed()


@cli.command()
@data_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The teacher file to write (teacher.pt).")
@click_options(TeacherConfig)
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file [default: OUTPUT.ckpt]; removed once the teacher is written.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Save the run's state every N epochs (0: never).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint, to the teacher an "
                                             "unbroken run writes.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@common_options
def teacher(data_spec, data_root, download, resize, output, checkpoint, checkpoint_every, resume,
            force, as_json, quiet, verbose, seed, device, log_every, **options):
    """Train a teacher for soft labels; its checkpoint is chosen on a held-out part of the
    training split (never the test split)."""
    from ddcodec import api
    from ddcodec.data.datasets import parse_size
    from ddcodec.progress import display

    epochs = options["epochs"]
    with display(quiet, log_every) as shown:
        made = api.train_teacher(data_spec, output, data_root=data_root, resize=parse_size(resize),
                           force=force, device=device,
                           on_epoch=lambda e: shown.update("teacher", e + 1, epochs),
                           checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                           resume=resume, seed=seed, **options)
    info = made.info
    if as_json:
        click.echo(json.dumps({"output": output, **info}))
        return
    _info(quiet, f"wrote {output}: {made.arch}, epoch {info['epoch']} of {epochs} "
                 f"({options['pick']} on {info['held_out_images']:,} held-out training images: "
                 f"{100 * info['chosen_holdout_accuracy']:.1f} %); test accuracy "
                 f"{100 * info['test_accuracy']:.1f} % (reported, not used)")


@cli.command()
@click.argument("set_file", type=click.Path())
@click.option("--teacher", "teacher_file", required=True, type=click.Path(dir_okay=False),
              help="A teacher from `ddcodec teacher`.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The labelled set file to write.")
@click_options(LabelOptions)
@click.option("--from", "source_format", type=click.Choice(SET_SOURCES), default="auto",
              show_default=True, help="What SET is (as encode --from).")
@click.option("--normalization", default=None, help="As encode --normalization.")
@click.option("--data", default=None, help="As encode --data.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@common_options
def label(set_file, teacher_file, output, temperature, loss, codec, k, epochs, hard_weight,
          source_format, normalization, data, force, as_json, quiet, verbose, seed, device,
          log_every):
    """Give a set soft labels from a teacher (one distribution per image, or per image and
    epoch), stored as float16, top-k or vector-quantised, every bit of them counted when the set
    is encoded."""
    from ddcodec import api

    labelled = api.label(set_file, teacher_file, output, temperature=temperature, loss=loss,
                         codec=codec, k=k, force=force, device=device,
                         source_format=source_format, normalization=normalization, data=data,
                         epochs=epochs, view_seed=seed, hard_weight=hard_weight)
    soft = labelled.soft_labels
    summary = {"output": output, "codec": soft.codec, "temperature": soft.temperature,
               "loss": soft.loss, "hard_weight": soft.hard_weight,
               "num_images": labelled.num_images, "epochs": soft.epochs,
               "float16_bits_per_class": soft.float16_bits / labelled.num_classes,
               **rung(soft.codec).info(soft)}
    if as_json:
        click.echo(json.dumps(summary))
        return
    extra = f", {summary['codebook']} codebook entries" if "codebook" in summary else ""
    per = f" x {soft.epochs} epochs" if soft.per_epoch else ""
    _info(quiet, f"wrote {output}: {labelled.num_images}{per} soft labels ({soft.codec}{extra}, "
                 f"T {soft.temperature:g}, loss {soft.loss}"
                 + (f", hard weight {soft.hard_weight:g}" if soft.hard_weight else "")
                 + "); encode it to count their bits")


@cli.command()
@data_options
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder for the experts (finished experts in it are reused).")
@click_options(ExpertConfig)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@common_options
def experts(data_spec, data_root, download, resize, output, as_json, quiet, verbose, seed, device,
            log_every, **options):
    """Train expert trajectories on the real data for trajectory matching (--loss tm)."""
    from ddcodec import api
    from ddcodec.data.datasets import parse_size
    from ddcodec.progress import display

    num_experts, epochs = options["num_experts"], options["epochs"]
    started = time.perf_counter()
    with display(quiet, log_every) as shown:
        def on_epoch(index: int, epoch: int) -> None:
            shown.update("experts", index * epochs + epoch + 1, num_experts * epochs,
                         f"expert {index + 1}/{num_experts}")

        report = api.experts(data_spec, output, data_root=data_root, download=download,
                             resize=parse_size(resize), device=device, on_epoch=on_epoch,
                             seed=seed, **options)
    report["seconds"] = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps(report))
        return
    _info(quiet, f"{output}: {report['trained']} experts trained, {report['reused']} reused, "
                 f"{epochs} epochs each, {report['seconds']:.1f} s")


@cli.command()
@click.argument("set_file", type=click.Path(dir_okay=False))
@click_options(MeasureConfig)
@click.option("--data", "data_spec", default=None,
              help="Test data [default: the data the set was made from].")
@click.option("--data-root", envvar="DDCODEC_DATA_ROOT", default=None,
              help="Folder with torchvision dataset files.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Keep the progress of a long measurement in this file (every "
                   f"{SAVE_EVERY_S / 60:g} minutes and after each network); the same command "
                   "goes on from it. Removed when the measurement is done.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@common_options
@compile_option
def measure(set_file, data_spec, data_root, checkpoint, as_json, quiet, verbose, seed, device,
            log_every, **options):
    """Train fresh networks on a distilled set and report accuracy and bits per class."""
    from ddcodec import api
    from ddcodec.progress import display

    config = MeasureConfig(**options)
    runs, epochs = config.runs, config.epochs
    parts = ["the set"] + (["a random real subset", "the whole training split"]
                           if config.baselines else [])
    with display(quiet, log_every) as shown:
        shown.plan([(f"measure {part}", runs * epochs, 1.0) for part in parts])

        def on_epoch(run: int, epoch: int) -> None:
            part, run = divmod(run, runs)
            shown.update(f"measure {parts[part]}", run * epochs + epoch + 1, runs * epochs,
                         f"run {run + 1}/{runs}")

        report = api.measure(set_file, config=config, seed=seed, device=device,
                             data=data_spec, data_root=data_root, on_epoch=on_epoch,
                             checkpoint=checkpoint)
    if as_json:
        click.echo(json.dumps(report))
        return
    render.measure_table(report)


@cli.command()
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder for the points, table (curve.json, curve.csv) and plot (curve.png, "
                   ".pdf, .svg); finished points in it are reused.")
@click_options(CurveOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON on stdout.")
@common_options
@compile_option
def curve(output, as_json, quiet, verbose, seed, device, log_every, **options):
    """Rate-utility curve: distil, encode and measure at each budget, next to vanilla pixels and
    JPEG/WebP real subsets at equal bits; writes a table and a plot."""
    from ddcodec.progress import display
    from ddcodec.reports.curve import run_curve

    config = CurveOptions(**options).config(seed)
    with display(quiet, log_every) as shown:
        table = run_curve(config, output, device, on_event=lambda m: shown.say("curve", m),
                          measuring=shown.measuring)
    if as_json:
        click.echo(json.dumps(table))
        return
    render.curve_table(table, output, quiet)


@cli.command()
@click.option("-o", "--output", default="out/demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the demo's files.")
@click_options(DemoOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@common_options
@compile_option
def demo(output, as_json, quiet, verbose, seed, device, log_every, **options):
    """The main job in a few minutes: distil (latent DM to a budget), encode, decode, check and
    measure, next to the vanilla IPC-1 baselines; prints a summary table."""
    from ddcodec.progress import display
    from ddcodec.reports.demo import print_summary, run_demo

    with display(quiet, log_every) as shown:
        result = run_demo(DemoOptions(**options).config(seed), output, device, shown)
    if as_json:
        click.echo(json.dumps(result))
    elif not quiet:
        print_summary(result)


def _default_output(source: str, suffix: str) -> str:
    if source == "-":
        raise click.UsageError("reading from stdin needs -o OUTPUT (or -c)")
    from pathlib import Path

    return str(Path(source).with_suffix(suffix))


@cli.command()
@click.argument("set_file", type=click.Path())
@click.option("-o", "--output", default=None,
              help="The .ddz to write; '-' for stdout [default: SET with suffix .ddz].")
@click.option("--from", "source_format", type=click.Choice(SET_SOURCES), default="auto",
              show_default=True,
              help="What SET is: a ddcodec set file; MTT/DATM outputs (a folder or "
                   "images_best.pt, with labels_best.pt and optional lr_best.pt beside it); a "
                   "tensor file (DD-Ranking's image_tensor/hard_labels); an ImageFolder; a "
                   "Hugging Face dataset (a save_to_disk folder or Parquet; needs ddcodec[hf]).")
@click.option("--normalization", default=None, metavar="NAME|MEAN,STD|FILE.json",
              help="How imported tensors are normalised: cifar10, cifar100, imagenet (or "
                   "another dataset's name), MEAN,STD, or a JSON file with mean and std.")
@click.option("--data", default=None, metavar="SPEC",
              help="The dataset an imported set comes from (class names, normalisation, and "
                   "what measure tests on).")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="Labels of an imported set kept in a separate file.")
@click.option("--zca", is_flag=True,
              help="The imported tensors are ZCA-whitened (MTT/DATM/DD-Ranking --zca): the file "
                   "records it, and measure whitens the test images the same way, the "
                   "transform rebuilt from --data's training images ([0, 1] pixels unless "
                   "--normalization says otherwise).")
@click.option("--zca-eps", type=float, default=None, metavar="EPS",
              help="The whitening's eps [default: 0.1, MTT's and DD-Ranking's; implies --zca].")
@click.option("--images", "fkd_images", default=None, type=click.Path(),
              help="--from fkd: the relabelled images, an ImageFolder or a tensor file "
                   "[default: SET/images or SET/images.pt].")
@click.option("--fkd-seed", type=click.IntRange(0, None), default=None,
              help="--from fkd: the relabelling's sampler seed (its --fkd-seed) [default: 42, "
                   "or what the folder's fkd.json records].")
@click.option("--label-temperature", type=click.FloatRange(0, None, min_open=True),
              default=None,
              help="--from fkd: the temperature the relabel training uses; the labels are "
                   "softmax(logits / T) [default: 3, SRe2L's, or fkd.json's].")
@click.option("--label-codec", type=click.Choice(rung_names()), default=None,
              help="Re-code the set's soft labels in this rung of the ladder (imported "
                   "relabellings come as float16).")
@click.option("--label-k", type=click.IntRange(1, None), default=None,
              help="--label-codec's size: codebook entries (vq, vqae) or kept classes (topk).")
@click.option("--pixels", type=click.Choice(PIXEL_MODES), default="lossless",
              show_default=True,
              help="lossless: sets on the 8-bit grid as 8-bit pixels, any other set as its "
                   "exact float values; 8bit: round to 8-bit pixels, declared lossy (the error "
                   "and PSNR are reported and recorded).")
@click.option("--streams", type=click.IntRange(1, None), default=1, show_default=True,
              help="Latent sets: code the latents in this many independent substreams (2 up to "
                   "the number of decoders; a few bytes each), which `decode --workers N` "
                   "decodes in N processes.")
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True,
              help="Overwrite an existing output; allow binary output to a terminal.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout "
                                                      "(not with output on stdout).")
@click.option("-q", "--quiet", is_flag=True)
@threads_option
@click.option("-v", "--verbose", count=True, callback=set_verbose, is_eager=True)
def encode(set_file, output, source_format, normalization, data, labels, zca, zca_eps,
           fkd_images, fkd_seed, label_temperature, label_codec, label_k, pixels, streams,
           to_stdout, force, as_json, quiet, verbose):
    """Write a distilled set as a range-coded .ddz file: a ddcodec set, or another method's
    (MTT/DATM, DD-Ranking tensors, an ImageFolder), priced in honest bits."""
    from ddcodec import api

    output = "-" if to_stdout else (output or _default_output(set_file, ".ddz"))
    if output == "-":
        if as_json:
            raise click.UsageError("--json and output on stdout exclude each other")
        if sys.stdout.isatty() and not force:
            raise DDCodecError("refusing to write a binary .ddz to a terminal; use -o FILE, "
                               "a pipe, or -f")
    data, report = api.encode(set_file, output, force=force, pixels=pixels,
                              source_format=source_format, normalization=normalization,
                              data=data, labels=labels, streams=streams,
                              zca_eps=zca_eps if zca_eps is not None else
                              (DEFAULT_ZCA_EPS if zca else None), images=fkd_images,
                              fkd_seed=fkd_seed, label_temperature=label_temperature,
                              label_codec=label_codec, label_k=label_k)
    report["output"] = output
    if as_json:
        click.echo(json.dumps(report))
        return
    for note in report["notes"]:
        click.echo(f"ddcodec: note: {note}", err=True)
    bits = report["estimated_bits"]
    _info(quiet, f"wrote {output}: {len(data):,} bytes = {report['bpc']:,.0f} bits/class "
                 f"(estimated {sum(bits.values()) / report['num_classes']:,.0f} + framing), "
                 f"pixels {render.pixel_text(report['pixels'])}, {report['seconds']:.2f} s")


# never the name of the set the file was encoded from
DECODED_NAMES = {"pt": ".decoded.pt", "imagefolder": ".imagefolder", "mtt": ".mtt",
                 "grid": ".grid.png", "hf": ".hf", "fkd": ".fkd"}


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", default=None,
              help="Where to write; '-' for stdout (pt and grid) [default: SOURCE's stem + "
                   ".decoded.pt, .imagefolder/, .mtt/, .grid.png, .hf/ or .fkd/].")
@click.option("-c", "--stdout", "to_stdout", is_flag=True,
              help="Write to stdout (pt and grid formats).")
@click.option("--format", "form",
              type=click.Choice(["pt", "imagefolder", "mtt", "grid", "hf", "fkd"]),
              default="pt", show_default=True,
              help="pt: a ddcodec set file (plain tensors); imagefolder: one folder of PNGs per "
                   "class; mtt: images_best.pt + labels_best.pt; grid: one PNG, a labelled row "
                   "of (up to 10) images per class, to look at; hf: a Hugging Face dataset "
                   "folder (datasets.load_from_disk; needs ddcodec[hf]); fkd: an FKD "
                   "relabelling (images/, fkd/epoch_*/batch_*.tar) for relabel training.")
@click.option("-f", "--force", is_flag=True,
              help="Overwrite an existing output; allow binary output to a terminal.")
@click.option("--samples", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Distributional files: export each prior's mean and this many samples "
                   "(those measure trains on at epoch 0), each with its prior's label.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes that decode a file's latent substreams (encode --streams) side "
                   "by side; files without substreams decode in one.")
@click.option("--unwhiten", is_flag=True,
              help="ZCA files: export the images un-whitened (the inverse transform rebuilt "
                   "from the file's data), as plain normalised tensors (pt, mtt or hf).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True)
@threads_option
@click.option("-v", "--verbose", count=True, callback=set_verbose, is_eager=True)
def decode(source, output, to_stdout, form, force, samples, workers, unwhiten, as_json, quiet,
           verbose):
    """Rebuild the training images and labels from a .ddz file ('-' reads stdin)."""
    from ddcodec import api

    if to_stdout:
        output = "-"
    output = output or _default_output(source, DECODED_NAMES[form])
    if output == "-":
        if form not in ("pt", "grid"):
            raise click.UsageError(f"--format {form} writes a folder: give -o FOLDER")
        if as_json:
            raise click.UsageError("--json and output on stdout exclude each other")
        if sys.stdout.isatty() and not force:
            raise DDCodecError("refusing to write binary output to a terminal; use -o FILE, "
                               "a pipe, or -f")
    started = time.perf_counter()
    decoded = api.decode(source, output, format=form, force=force, samples=samples,
                         workers=workers, unwhiten=unwhiten)
    seconds = time.perf_counter() - started
    summary = {"output": output, "format": form, "num_images": decoded.header.num_images,
               "num_classes": decoded.header.num_classes, "seconds": seconds}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _info(quiet, f"wrote {'stdout' if output == '-' else output} ({form}): "
                     f"{summary['num_images']} images of {summary['num_classes']} classes, "
                     f"{seconds:.2f} s")


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="One summary line instead of the table.")
@threads_option
@click.option("-v", "--verbose", count=True, callback=set_verbose, is_eager=True)
def info(source, as_json, quiet, verbose):
    """Sizes and bits per section of a .ddz file, its bpc, estimated against actual."""
    from ddcodec import api

    report = api.info(source)
    if as_json:
        click.echo(json.dumps(report))
        return
    kind = report["kind"]
    extra = (f"decoder {report['decoder']['preset']} "
             f"{'shared' if report['decoder']['shared'] else 'per class'}"
             if kind == "latent" else render.pixel_text(report["pixels"]))
    summary = (f"{report['num_images']} images of {report['num_classes']} classes "
               f"{tuple(report['image_shape'])}, {kind} ({extra}); "
               f"{report['bpc']:,.0f} bits/class from the file")
    if quiet:
        click.echo(f"{source}: {summary}")
        return
    render.info_table(report, source, summary)


@cli.command(name="test")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object on stdout ({file, ok, error}).")
@click.option("-q", "--quiet", is_flag=True)
@threads_option
@click.option("-v", "--verbose", count=True, callback=set_verbose, is_eager=True)
def test_command(source, as_json, quiet, verbose):
    """Check a .ddz completely (checksums, every section, a full decode); exit 0 or 1."""
    from ddcodec import api

    if not as_json:
        api.test(source)
        _info(quiet, f"{source}: OK")
        return
    try:
        api.test(source)
        error = None
    except DDCodecError as exc:
        error = str(exc)
    click.echo(json.dumps({"file": source, "ok": error is None, "error": error}))
    if error is not None:
        raise click.exceptions.Exit(1)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"ddcodec: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    from ddcodec.devices import reuse_freed_memory

    reuse_freed_memory()  # a third faster on CPU, the same bits (its docstring)
    try:
        code = cli.main(args=argv, prog_name="ddcodec", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.UsageError as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(1)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted; no output was written", 130)
    except Interrupted as exc:
        status_file = os.environ.get(STATUS_FILE_ENV)
        if status_file:  # under `--nproc`: the wrapper exits 130 too, not torchrun's 1
            Path(status_file).write_text("130")
        _fail(str(exc), 130)
    except BrokenPipeError:
        sys.stderr.close()  # a closed pipe (e.g. `| head`) is not an error of ours
        sys.exit(0)
    except DDCodecError as exc:
        if state["verbose"]:
            traceback.print_exc()
        _fail(str(exc))
    except Exception as exc:  # anything unforeseen: still one line, traceback only with -v
        if state["verbose"]:
            traceback.print_exc()
        text = (str(exc) or "unexpected failure").splitlines()[0]
        _fail(f"internal error: {text} (rerun with -v for details, and please report it)")
