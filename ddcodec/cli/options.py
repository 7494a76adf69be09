"""The options several commands share, and the process-wide settings they apply on parsing
(threads, compiling, verbosity): one place, so every command spells them the same way."""

from __future__ import annotations

import click

from ddcodec.names import BUNDLED_DATA

state = {"verbose": 0}  # -v's count, read when an error is reported


def set_verbose(ctx, param, value):
    state["verbose"] = value
    return value


def _set_threads(ctx, param, value):
    if value:
        import torch

        torch.set_num_threads(value)
    return value


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, envvar="DDCODEC_THREADS",
    expose_value=False, callback=_set_threads,
    help="CPU threads torch may use [env DDCODEC_THREADS; default: torch's choice].")


def _set_compiling(ctx, param, value):
    from ddcodec.devices import set_compiling

    set_compiling(bool(value))
    return value


compile_option = click.option(
    "--compile/--no-compile", default=False, envvar="DDCODEC_COMPILE", expose_value=False,
    callback=_set_compiling,
    help="Run the evaluation networks and distribution matching's networks through "
         "torch.compile: faster after tens of seconds of compiling, the same arithmetic "
         "rounded otherwise (the teacher and the codec stay eager) [env DDCODEC_COMPILE].")


def common_options(func):
    """-q/-v/--seed/--device, shared by every command that computes."""
    options = [
        click.option("-q", "--quiet", is_flag=True, help="No progress or summaries on stderr."),
        click.option("-v", "--verbose", count=True, callback=set_verbose, expose_value=True,
                     is_eager=True, help="More detail; tracebacks on errors."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for every random choice."),
        click.option("--device", default="auto", show_default=True,
                     type=click.Choice(["auto", "cpu", "cuda"], case_sensitive=False),
                     help="Where to compute (auto: cuda if available)."),
        threads_option,
        click.option("--log-every", type=click.FloatRange(min=1), default=30, show_default=True,
                     envvar="DDCODEC_LOG_EVERY",
                     help="When stderr is not a terminal (nohup, SLURM): seconds between plain "
                          "progress lines [env DDCODEC_LOG_EVERY]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_options(func):
    options = [
        click.option("--data", "data_spec", default=BUNDLED_DATA, show_default=True,
                     help="cifar10-subset (bundled), cifar10, cifar100, mnist, fashion-mnist, "
                          "svhn, imagefolder:DIR or npz:FILE."),
        click.option("--data-root", envvar="DDCODEC_DATA_ROOT", default=None,
                     help="Folder with torchvision dataset files [env DDCODEC_DATA_ROOT; "
                          "default ./data]."),
        click.option("--download", is_flag=True,
                     help="Let torchvision download missing files (needs a network)."),
        click.option("--resize", default=None, metavar="HxW",
                     help="Resize all images, e.g. 32 or 64x48."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def checkpoint_options(func):
    """How a run keeps and resumes its state (not part of what is distilled)."""
    options = [
        click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                     help="Checkpoint file [default: OUTPUT.ckpt]."),
        click.option("--checkpoint-every", type=click.IntRange(min=0), default=0,
                     show_default=True, help="Save a checkpoint every N steps (0: latent runs "
                                             "only on Ctrl-C or SIGTERM, pixel runs never; "
                                             "with --blocks, each block's beside its part)."),
        click.option("--resume", is_flag=True, help="Continue from the checkpoint (pixel "
                                                    "runs: also to more --iterations)."),
        click.option("--keep-checkpoint", is_flag=True,
                     help="Keep the checkpoint once the set is written (a pixel run can then "
                          "go on to more --iterations with --resume)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
