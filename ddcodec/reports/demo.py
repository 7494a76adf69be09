"""The main job end to end, in a few minutes on a CPU: `ddcodec demo`.

Distils the data into a latent set at a modest budget (distribution matching, rate control),
encodes it to .ddz, decodes it to PNGs and checks it, then measures it next to the vanilla
baselines of the field at their smallest size (a random real IPC 1 subset and a pixel-DM IPC 1
set: real pixels coded losslessly, the learnt ones rounded to 8 bits and declared so), under a
shortened evaluation protocol, and prints one table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ddcodec.distillation.config import DistillConfig
from ddcodec.names import BUNDLED_DATA
from ddcodec.options import option
from ddcodec.training.protocol import EvalConfig


def _latent() -> DistillConfig:
    return DistillConfig.of(param="latent", loss="dm", target_bpc=12_000, shared_decoder=True,
                            fit_iterations=400, iterations=60, batch_real=64)


def _pixel_dm() -> DistillConfig:
    return DistillConfig.of(loss="dm", ipc=1, iterations=100, batch_real=64)


@dataclass(frozen=True)
class DemoConfig:
    """The demo's three sets (latent DM at a budget, pixel DM at IPC 1, a random real IPC 1
    subset) and its shortened protocol; `seed` seeds all of them."""

    data: str = BUNDLED_DATA
    latent: DistillConfig = field(default_factory=_latent)
    pixel_dm: DistillConfig = field(default_factory=_pixel_dm)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(epochs=300))
    runs: int = 2
    seed: int = 0

    @property
    def target_bpc(self) -> float:
        return self.latent.latent.target_bpc


DEMO = DemoConfig()


@dataclass(frozen=True)
class DemoOptions:
    """What `ddcodec demo` sets of a DemoConfig (the command line's options come from these)."""

    data: str = option(DEMO.data, "Training data (as distill --data).")
    target_bpc: float = option(DEMO.target_bpc, "Budget of the latent set, bits per class.")
    epochs: int = option(DEMO.eval.epochs, "Evaluation epochs per network (shortened; the "
                         "field: 1000).", min=1)
    runs: int = option(DEMO.runs, "Networks per set.", min=1)

    def config(self, seed: int) -> DemoConfig:
        latent = replace(DEMO.latent, latent=replace(DEMO.latent.latent,
                                                     target_bpc=self.target_bpc))
        return replace(DEMO, data=self.data, latent=latent,
                       eval=replace(DEMO.eval, epochs=self.epochs), runs=self.runs, seed=seed)


# An epoch of a fresh network on a few images per class costs about this many latent fit
# steps; only a first guess for the overall ETA until the first measurement's epochs are timed.
MEASURE_EPOCH_COST = 0.3
PIXEL_DM_STEP_COST = 1.0


def pixel_dm_label(config: DemoConfig) -> str:
    """The baseline's name in every table: shortened runs say how long they ran."""
    return f"pixel DM, IPC 1, {config.pixel_dm.matching.iterations:,} iterations (8-bit)"


def run_demo(config: DemoConfig, out: Path, device: str = "auto", shown=None) -> dict:
    """Run the demo; `shown` (a ddcodec.progress.Display) gets its stages: the latent run's
    phases, each measurement's epochs and the pixel-DM iterations, planned from the start so
    the overall ETA counts the measurements."""
    from ddcodec import api
    from ddcodec.progress import STAGE_LABELS, Display

    shown = shown or Display()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    labels = {"latent": "latent DM (ddcodec)", "random": "random real, IPC 1",
              "dm": pixel_dm_label(config)}
    epochs = config.runs * config.eval.epochs
    iterations = config.pixel_dm.matching.iterations
    pixel_stage = f"{labels['dm']}: distilling"
    latent_plan: list = []

    def plan(baseline_epoch_cost: float = MEASURE_EPOCH_COST) -> None:
        """The whole demo's stages: the latent run's (once it has told them), then the three
        measurements and the pixel-DM iterations, so the overall ETA counts them."""
        shown.plan(latent_plan + [
            (f"{labels['latent']}: measuring", epochs, MEASURE_EPOCH_COST),
            (f"{labels['random']}: measuring", epochs, baseline_epoch_cost),
            (pixel_stage, iterations, PIXEL_DM_STEP_COST),
            (f"{labels['dm']}: measuring", epochs, baseline_epoch_cost)])

    def latent_events(event) -> None:
        if event.kind == "plan":
            latent_plan[:] = [(STAGE_LABELS.get(n, n), steps, cost)
                              for n, steps, cost in event.plan]
            plan()
        else:
            shown.handle(event)

    plan()

    def finish(name: str, set_path: Path, distill_seconds: float, extra: dict,
               pixels: str = "lossless"):
        ddz = set_path.with_suffix(".ddz")
        api.encode(set_path, ddz, force=True, pixels=pixels)
        stage = f"{labels[name]}: measuring"
        shown.note(f"demo: {stage} ({config.eval.epochs} epochs x {config.runs} networks)")
        report = api.measure(ddz, epochs=config.eval.epochs, runs=config.runs, seed=config.seed,
                             device=device,
                             on_epoch=shown.measuring(stage, config.runs, config.eval.epochs))
        rows.append({"name": name, "label": labels[name], "file": str(ddz), "bpc": report["bpc"],
                     "images_per_class": report["images_per_class"],
                     "accuracy_mean": 100 * report["accuracy_mean"],
                     "accuracy_std": 100 * report["accuracy_std"],
                     "float32_bpc": 32 * report["images_per_class"] * _pixels(report),
                     "distill_seconds": distill_seconds, **extra})

    shown.say("demo", f"latent DM at {config.target_bpc:,.0f} bits per class: distilling")
    t = time.perf_counter()
    latent = api.distill(config.data, out / "latent.pt", force=True, device=device,
                         config=config.latent, seed=config.seed, on_progress=latent_events)
    # an epoch costs about what its images do: the IPC-1 baselines' epochs are that much cheaper
    plan(MEASURE_EPOCH_COST * latent.num_classes / max(latent.num_images, latent.num_classes))
    rate = latent.provenance["rate_control"]
    finish("latent", out / "latent.pt", time.perf_counter() - t,
           {"lmbda": rate["lmbda"], "target_bpc": rate["target_bpc"]})
    decoded = api.decode(out / "latent.ddz", out / "latent_png", format="imagefolder",
                         force=True)
    api.decode(out / "latent.ddz", out / "latent_grid.png", format="grid", force=True)
    api.test(out / "latent.ddz")
    shown.note(f"demo: decoded {decoded.header.num_images} PNGs into {out / 'latent_png'} (at a "
               f"glance: {out / 'latent_grid.png'}); file checked")

    shown.say("demo", "random real IPC 1: sampling")
    t = time.perf_counter()
    api.distill(config.data, out / "random_ipc1.pt", force=True, device=device, loss="none",
                ipc=1, seed=config.seed)
    finish("random", out / "random_ipc1.pt", time.perf_counter() - t, {})
    shown.note(f"demo: {pixel_stage}")
    t = time.perf_counter()
    api.distill(config.data, out / "dm_ipc1.pt", force=True, device=device,
                config=config.pixel_dm, seed=config.seed,
                on_iteration=lambda i, loss: shown.update(pixel_stage, i + 1, iterations,
                                                          f"DM loss {loss:.4g}"))
    finish("dm", out / "dm_ipc1.pt", time.perf_counter() - t, {},
           pixels="8bit")  # the usual storage of learnt pixels; exact floats cost ~3x more
    return {"rows": rows, "seconds": time.perf_counter() - started, "out": str(out),
            "protocol": {"epochs": config.eval.epochs, "runs": config.runs,
                         "arch": config.eval.arch},
            "pixel_dm_iterations": iterations}


def _pixels(report: dict) -> int:
    c, h, w = report["image_shape"]
    return c * h * w


def print_summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    p = result["protocol"]
    table = Table(title=f"ddcodec demo: bits per class and accuracy ({p['epochs']} epochs x "
                        f"{p['runs']} ConvNet-D3, shortened protocol)")
    for column in ("set", "bits/class (.ddz)", "papers' float32 bits/class", "images/class",
                   "test accuracy %"):
        table.add_column(column, justify="left" if column == "set" else "right",
                         no_wrap=column == "set")
    for r in result["rows"]:
        float32 = "–" if r["name"] == "latent" else f"{r['float32_bpc']:,.0f}"
        table.add_row(r["label"], f"{r['bpc']:,.0f}", float32, f"{r['images_per_class']:g}",
                      f"{r['accuracy_mean']:.1f} ± {r['accuracy_std']:.1f}")
    console = Console(stderr=True)
    console.print(table)
    latent = result["rows"][0]
    for r in result["rows"][1:]:
        console.print(f"latent vs {r['label']}: {r['bpc'] / latent['bpc']:.1f}x fewer bits than "
                      f"its .ddz ({r['float32_bpc'] / latent['bpc']:.0f}x fewer than float32), "
                      f"{latent['accuracy_mean'] - r['accuracy_mean']:+.1f} points")
    console.print(f"λ chosen by rate control: {latent['lmbda']:.3g} (target "
                  f"{latent['target_bpc']:,.0f} bits/class); files in {result['out']}; "
                  f"{result['seconds'] / 60:.1f} min")
