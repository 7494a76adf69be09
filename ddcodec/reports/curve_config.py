"""What a rate-utility curve measures (torch-free, so the command line takes its defaults from
here): budgets and losses, a template of the latent distillation, the evaluation protocol, and
the baselines. Each point's cache key is built from these (`CurveConfig.latent_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ddcodec.distillation.config import DistillConfig
from ddcodec.errors import DDCodecError
from ddcodec.options import flatten
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
    # distributional sets (D3): these losses again as `--param distribution` at every budget,
    # with hard labels and (with a teacher) the last rung's, each also measured with frozen
    # samples
    distribution_losses: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.budgets or any(b <= 0 for b in self.budgets):
            raise DDCodecError("--budgets must be positive bits per class")
        if self.runs < 1:
            raise DDCodecError("--epochs and --runs must be at least 1")
        if self.ceiling_epochs < 0:
            raise DDCodecError("--ceiling-epochs must be >= 0 (0: no ceiling)")
        if self.shared_decoder not in ("auto", "yes", "no"):
            raise DDCodecError("--shared-decoder must be auto, yes or no")
        rungs = {"float16", "topk", "vq", "vqae"}
        if self.teacher is not None and not set(self.label_rungs) <= rungs:
            raise DDCodecError("label rungs must be float16, topk, vq or vqae")
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
        return options
