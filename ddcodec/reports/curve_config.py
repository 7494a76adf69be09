"""What a rate-utility curve measures (torch-free, so the command line takes its defaults from
here): budgets and losses, a template of the latent distillation, the evaluation protocol, and
the baselines. Each point's cache key is built from these (`CurveConfig.latent_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ddcodec.distillation.config import DistillConfig
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs import rung_names
from ddcodec.options import flatten, option
from ddcodec.training.protocol import EvalConfig

SHARED_DECODER_BELOW = 32_000  # per-class decoders cost ~8 kbit per class: share below this


def _latent_template() -> DistillConfig:
    """The curve's latent settings (per point: the loss, the budget, the decoder sharing and the
    seed are set); shortened from the reference for a CPU curve."""
    return DistillConfig.of(param="latent", iterations=200, fit_iterations=1000, batch_real=64)


def _curve_eval() -> EvalConfig:
    return EvalConfig(epochs=300)  # our CPU protocol; the field's is 1000


# The template's options every point records in its key; any other option that differs from
# DistillConfig's defaults is recorded too (so a key names everything that determines a point).
KEYED_OPTIONS = ("iterations", "fit_iterations", "batch_real", "decoder")
SET_PER_POINT = ("param", "loss", "target_bpc", "shared_decoder", "seed", "experts")


@dataclass(frozen=True)
class CurveConfig:
    budgets: tuple[float, ...] = (6_000, 12_000, 24_576)
    losses: tuple[str, ...] = ("dm",)
    data: str = "cifar10-subset"
    distill: DistillConfig = field(default_factory=_latent_template)
    eval: EvalConfig = field(default_factory=_curve_eval)
    runs: int = 3
    seed: int = 0
    shared_decoder: str = "auto"  # auto | yes | no
    # phase-2 iterations in all per point, retrain rounds included (--phase2-budget): the same
    # effort for every series; None: rate control's own rounds
    phase2_budget: int | None = None
    # baselines
    baselines: bool = True
    pixel_ipcs: tuple[int, ...] = (1, 10, 50)
    pixel_iterations: int = 500
    qualities: tuple[int, ...] = (25, 50, 75)
    codecs: tuple[str, ...] = ("jpeg", "webp")
    # the ceiling: the whole training split, trained for this many epochs (it converges in far
    # fewer than a small set needs); 0: none
    ceiling_epochs: int = 20
    # soft labels (with a teacher): each latent loss again with each rung's labels inside the
    # budget, and random real images packed by (codec, quality) with the last rung's labels at
    # the same budgets, the control that credits the teacher fairly
    teacher: str | None = None
    label_rungs: tuple[str, ...] = ("float16", "vq")
    labelled_random: tuple[str, int] = ("webp", 25)
    label_hard_weight: float = 0.0  # the labelled series' (SoftLabels.hard_weight)
    # distributional sets (D3): these losses again as `--param distribution` at every budget,
    # with hard labels and (with a teacher) the last rung's, each also measured with frozen
    # samples
    distribution_losses: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.budgets or any(b <= 0 for b in self.budgets):
            raise DDCodecError("--budgets must be positive bits per class")
        if self.runs < 1:
            raise DDCodecError("--epochs and --runs must be at least 1")
        if self.phase2_budget is not None and self.phase2_budget < self.distill.matching.iterations:
            raise DDCodecError("the phase-2 budget counts the phase-2 iterations too: at least "
                               f"{self.distill.matching.iterations}")
        if self.ceiling_epochs < 0:
            raise DDCodecError("--ceiling-epochs must be >= 0 (0: no ceiling)")
        if self.shared_decoder not in ("auto", "yes", "no"):
            raise DDCodecError("--shared-decoder must be auto, yes or no")
        if not 0 <= self.label_hard_weight <= 1:
            raise DDCodecError("--label-hard-weight must be within [0, 1]")
        if self.teacher is not None and not set(self.label_rungs) <= set(rung_names()):
            raise DDCodecError(f"label rungs must be among {', '.join(rung_names())}")
        if "tm" in self.losses and not self.distill.tm.experts:
            raise DDCodecError("--loss tm needs --experts DIR (make one with `ddcodec experts`)")

    def protocol(self) -> dict:
        return {"data": self.data, "epochs": self.eval.epochs, "runs": self.runs,
                "seed": self.seed, "arch": self.eval.arch}

    def latent_options(self, loss: str, budget: float) -> dict:
        """The flat distill options of one latent point, as its key records them."""
        shared = {"auto": budget < SHARED_DECODER_BELOW, "yes": True, "no": False}[
            self.shared_decoder]
        mine, defaults = flatten(self.distill), flatten(DistillConfig())
        options = {"param": "latent", "loss": loss, "target_bpc": budget,
                   **{k: mine[k] for k in KEYED_OPTIONS}, "shared_decoder": shared,
                   "seed": self.seed}
        options.update({k: v for k, v in mine.items() if k not in SET_PER_POINT
                        and k not in KEYED_OPTIONS and v != defaults[k]})
        if loss == "tm":
            options["experts"] = self.distill.tm.experts
        if self.phase2_budget is not None:  # absent otherwise: earlier points keep their keys
            options["phase2_budget"] = self.phase2_budget
        return options


LOSSES = ("dm", "gm", "tm")
CURVE = CurveConfig()  # the defaults `ddcodec curve` shows and uses


@dataclass(frozen=True)
class CurveOptions:
    """What `ddcodec curve` sets of a CurveConfig, flat, each default read from CURVE: the
    command line's options are generated from these fields."""

    budgets: tuple[float, ...] = option(CURVE.budgets, "Bits per class to distil to, "
                                        "comma-separated.", listed=float)
    losses: tuple[str, ...] = option(CURVE.losses, "Utility loss of the latent curve.",
                                     choices=LOSSES, repeat=True, flag="--loss")
    data: str = option(CURVE.data, "Training data (as distill --data).")
    epochs: int = option(CURVE.eval.epochs, "Evaluation epochs per network (the field: 1000; "
                         "ours on CPU: the default).", min=1)
    runs: int = option(CURVE.runs, "Networks per point.", min=1)
    iterations: int = option(CURVE.distill.matching.iterations,
                             "Latent phase-2 iterations per point.", min=0)
    fit_iterations: int = option(CURVE.distill.latent.fit_iterations,
                                 "Latent phase-1 iterations per point.", min=0)
    batch_real: int = option(CURVE.distill.matching.batch_real,
                             "Real images per class per matching iteration.", min=1)
    decoder: str = option(CURVE.distill.latent.decoder, "Latent synthesis preset.")
    shared_decoder: str = option(CURVE.shared_decoder, "One decoder for all classes (auto: "
                                 f"below {SHARED_DECODER_BELOW:,} bpc, where per-class decoders "
                                 "would cost a third or more).", choices=("auto", "yes", "no"))
    experts: str | None = option(None, "Expert trajectories for --loss tm.", path="dir")
    baselines: bool = option(CURVE.baselines, "Measure the baselines beside the latent points "
                             "(--no-baselines: only the latent points).",
                             flag="--baselines/--no-baselines")
    pixel_ipcs: tuple[int, ...] = option(CURVE.pixel_ipcs, "Vanilla pixel (DM) sets to "
                                         "measure, images per class.", listed=int,
                                         flag="--pixel-ipc")
    pixel_iterations: int = option(CURVE.pixel_iterations,
                                   "DM iterations of the vanilla pixel sets.", min=0)
    qualities: tuple[int, ...] = option(CURVE.qualities, "JPEG/WebP qualities tried at each "
                                        "budget (the best is the baseline).", listed=int)
    ceiling_epochs: int = option(CURVE.ceiling_epochs, "Epochs of the ceiling: networks "
                                 "trained on the whole training split (it needs far fewer than "
                                 "a small set); 0: no ceiling.", min=0)
    teacher: str | None = option(None, "Add soft-label series: each latent loss with each "
                                 "--label-rungs rung's labels from this teacher inside the "
                                 "budget, and random real images (packed "
                                 f"{CURVE.labelled_random[0].upper()} "
                                 f"q{CURVE.labelled_random[1]}) with the last rung's labels at "
                                 "equal bits.", path="file")
    label_rungs: tuple[str, ...] = option(CURVE.label_rungs, "Soft-label rungs of the "
                                          f"labelled series ({', '.join(rung_names())}).",
                                          listed=str)
    label_hard_weight: float = option(CURVE.label_hard_weight, "The labelled series' hard "
                                      "weight: they train on w one-hot(class) + (1 - w) the "
                                      "teacher's row.", min=0)
    distribution_losses: tuple[str, ...] = option(
        CURVE.distribution_losses, "Add distributional (D3) series for this loss: --param "
        "distribution at each budget, measured with fresh samples each epoch and with frozen "
        "ones (with --teacher: also with the last rung's labels).", choices=LOSSES, repeat=True,
        flag="--distribution")

    def config(self, seed: int) -> CurveConfig:
        latent = DistillConfig.of(**{**flatten(CURVE.distill), "iterations": self.iterations,
                                     "fit_iterations": self.fit_iterations,
                                     "batch_real": self.batch_real, "decoder": self.decoder,
                                     "experts": self.experts})
        return CurveConfig(
            budgets=self.budgets, losses=self.losses or CURVE.losses, data=self.data,
            distill=latent, eval=replace(CURVE.eval, epochs=self.epochs), runs=self.runs,
            seed=seed, shared_decoder=self.shared_decoder, baselines=self.baselines,
            pixel_ipcs=self.pixel_ipcs, pixel_iterations=self.pixel_iterations,
            qualities=self.qualities, ceiling_epochs=self.ceiling_epochs, teacher=self.teacher,
            label_rungs=self.label_rungs, label_hard_weight=self.label_hard_weight,
            distribution_losses=self.distribution_losses)
