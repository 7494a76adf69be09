"""The `ddcodec` command line: compressor conventions (zstd/xz-like) over the Python API.

Exit status: 0 success, 1 runtime or input error (one line on stderr; traceback with -v),
2 usage error. `--json` prints exactly one JSON object on stdout; everything meant for people
goes to stderr, progress bars only on a terminal.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import click

from ddcodec import __version__
from ddcodec.errors import DDCodecError

_state = {"verbose": 0}


def _set_verbose(ctx, param, value):
    _state["verbose"] = value
    return value


def common_options(func):
    """-q/-v/--seed/--device, shared by every command that computes."""
    options = [
        click.option("-q", "--quiet", is_flag=True, help="No progress or summaries on stderr."),
        click.option("-v", "--verbose", count=True, callback=_set_verbose, expose_value=True,
                     is_eager=True, help="More detail; tracebacks on errors."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for every random choice."),
        click.option("--device", default="auto", show_default=True,
                     type=click.Choice(["auto", "cpu", "cuda"], case_sensitive=False),
                     help="Where to compute (auto: cuda if available)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_options(func):
    options = [
        click.option("--data", "data_spec", default="cifar10-subset", show_default=True,
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
@click.option("--param", type=click.Choice(["pixels"]), default="pixels", show_default=True,
              help="How synthetic images are parameterised.")
@click.option("--loss", type=click.Choice(["dm", "none"]), default="dm", show_default=True,
              help="dm: distribution matching; none: a random real subset.")
@click.option("--ipc", type=click.IntRange(min=1), default=10, show_default=True,
              help="Images per class.")
@click.option("--iterations", type=click.IntRange(min=0), default=20000, show_default=True,
              help="Distillation iterations (reference DM: 20000).")
@click.option("--lr-img", type=float, default=1.0, show_default=True,
              help="Learning rate of the synthetic pixels (SGD, momentum 0.5).")
@click.option("--batch-real", type=click.IntRange(min=1), default=256, show_default=True,
              help="Real images per class per iteration.")
@click.option("--arch", default="convnet", show_default=True,
              help="Network whose features are matched.")
@click.option("--init", type=click.Choice(["real", "noise"]), default="real", show_default=True,
              help="Start from random real images or from noise.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Distilled-set file to write (set.pt).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@common_options
def distill(data_spec, data_root, download, resize, param, loss, ipc, iterations, lr_img,
            batch_real, arch, init, output, force, as_json, quiet, verbose, seed, device):
    """Distil a training set into a small synthetic set (set.pt)."""
    from ddcodec import api
    from ddcodec.data import parse_size
    from ddcodec.progress import progress_bar, progress_enabled

    started = time.perf_counter()
    steps = iterations if loss == "dm" else 0
    with progress_bar(progress_enabled(quiet or as_json) and steps > 0) as bar:
        task = bar.add_task(f"distill {loss}", total=steps, info="")

        def on_iteration(i: int, value: float) -> None:
            bar.update(task, completed=i + 1, info=f"loss {value:.4g}")

        distilled = api.distill(
            data_spec, output, data_root=data_root, download=download,
            resize=parse_size(resize), force=force, device=device, on_iteration=on_iteration,
            param=param, loss=loss, ipc=ipc, iterations=iterations, lr_img=lr_img,
            batch_real=batch_real, arch=arch, init=init, seed=seed)
    seconds = time.perf_counter() - started
    size = _file_size(output)
    summary = {
        "output": output, "file_bytes": size, "bpc": 8 * size / distilled.num_classes,
        "num_images": distilled.num_images, "num_classes": distilled.num_classes,
        "method": distilled.provenance.get("method"), "seconds": seconds,
        "provenance": distilled.provenance,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _info(quiet, f"wrote {output}: {distilled.num_images} images ({distilled.num_classes} "
                     f"classes), {size:,} bytes = {summary['bpc']:,.0f} bits/class, "
                     f"{seconds:.1f} s")


@cli.command()
@click.argument("set_file", type=click.Path(dir_okay=False))
@click.option("--epochs", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Training epochs per network (the field's standard: 1000).")
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Fresh networks to train; accuracy is their mean and std.")
@click.option("--arch", default="convnet", show_default=True,
              help="convnet (ConvNet-D3), convnet-d4, convnet-d5, resnet18, resnet18-bn, vgg11.")
@click.option("--lr", type=float, default=None,
              help="Learning rate [default: the set's learned lr, else 0.01].")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--no-dsa", is_flag=True, help="Train without DSA augmentation.")
@click.option("--data", "data_spec", default=None,
              help="Test data [default: the data the set was made from].")
@click.option("--data-root", envvar="DDCODEC_DATA_ROOT", default=None,
              help="Folder with torchvision dataset files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@common_options
def measure(set_file, epochs, runs, arch, lr, batch_size, no_dsa, data_spec, data_root, as_json,
            quiet, verbose, seed, device):
    """Train fresh networks on a distilled set and report accuracy and bits per class."""
    from ddcodec import api
    from ddcodec.progress import progress_bar, progress_enabled

    with progress_bar(progress_enabled(quiet or as_json)) as bar:
        task = bar.add_task("measure", total=runs * epochs, info="")

        def on_epoch(run: int, epoch: int) -> None:
            bar.update(task, completed=run * epochs + epoch + 1, info=f"run {run + 1}/{runs}")

        report = api.measure(set_file, epochs=epochs, runs=runs, arch=arch, seed=seed,
                             device=device, lr=lr, batch_size=batch_size, dsa=not no_dsa,
                             data=data_spec, data_root=data_root, on_epoch=on_epoch)
    if as_json:
        click.echo(json.dumps(report))
        return
    _print_measure(report)


def _print_measure(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ddcodec measure {report['file']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    acc = f"{100 * report['accuracy_mean']:.2f} ± {100 * report['accuracy_std']:.2f} %"
    rows = [
        ("accuracy", acc),
        ("runs", ", ".join(f"{100 * a:.2f}" for a in report["accuracies"])),
        ("images", f"{report['num_images']} ({report['num_classes']} classes, "
                   f"{report['images_per_class']:g} per class)"),
        ("file", f"{report['file_bytes']:,} bytes"),
        ("bits per class", f"{report['bpc']:,.0f}"),
        ("protocol", f"{report['arch']}, {report['epochs']} epochs, lr {report['protocol']['lr']:g}"
                     f", {'DSA' if report['protocol']['dsa'] else 'no augmentation'}, "
                     f"final-epoch accuracy on {report['num_test']} test images"),
        ("time", f"{report['seconds']:.1f} s on {report['device']}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _file_size(path) -> int:
    import os

    return os.path.getsize(path)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"ddcodec: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
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
    except BrokenPipeError:
        sys.stderr.close()  # a closed pipe (e.g. `| head`) is not an error of ours
        sys.exit(0)
    except DDCodecError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        _fail(str(exc))
    except Exception as exc:  # anything unforeseen: still one line, traceback only with -v
        if _state["verbose"]:
            traceback.print_exc()
        _fail(f"{type(exc).__name__}: {exc}".splitlines()[0])
