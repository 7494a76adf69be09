"""How to distil: nested configs whose fields declare each option once (name, default, help,
command-line shape; see `ddcodec.options`), and `resolve`, the one step that fills the per-loss
and per-budget defaults.

Pixel-DM defaults are the reference code's (main_DM.py); latent defaults follow the rate-utility
paper's code (Adam 1e-2 for fitting, 1e-3 joint, clip 0.1). A config as given may leave
loss-dependent fields at None; `resolve(config, dataset)` returns the config a run actually uses,
which is what the set's provenance records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from ddcodec.limits import MAX_SAMPLES, SIGMA_MAX
from ddcodec.labels.rungs import rung_names
from ddcodec.errors import DDCodecError
from ddcodec.names import ARCHITECTURES, DEFAULT_STRATEGY, LABEL_LOSSES, canonical_arch
from ddcodec.options import build, flatten, option

if TYPE_CHECKING:
    from ddcodec.data.datasets import Dataset

PARAMS = ("pixels", "latent", "distribution")  # ddcodec.distillation.run.REPRESENTATIONS
LOSSES = ("dm", "gm", "tm", "none")  # objectives.OBJECTIVES, and none: a random subset
# Reference defaults per loss: pixel learning rate (DM 1, DC/DSA 0.1, MTT 100 without ZCA, where
# MTT issue #31 finds 100-1000 stable), outer iterations, and the latent trainer's starting
# lambda (utility losses differ in scale: DM hundreds, GM thousands, TM about 1).
LR_IMG = {"dm": 1.0, "gm": 0.1, "tm": 100.0, "none": 1.0}
LMBDA = {"dm": 0.1, "gm": 0.01, "tm": 1.0}
ITERATIONS = {"dm": 20000, "tm": 5000, "none": 0}  # gm: 1000 x its outer loop
# Share of the latent budget that phase 1 (fitting real images) may spend under --target-bpc. DM
# and GM then add bits where matching wants them (latent DM at 6,000 bpc on the CIFAR-10 subset,
# one run each of 300 epochs x 2: 33.8 % fitting the whole budget, 34.7 % fitting 70 %, both with a
# rate-heavy start of lambda). TM's noisy pull adds no bits, so it fits to the whole budget.
FIT_BUDGET_SHARE = {"dm": 0.7, "gm": 0.7, "tm": 1.0, "none": 1.0}
DEFAULT_SPC = 10


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DDCodecError(message)


@dataclass(frozen=True)
class PixelConfig:
    """--param pixels: free pixels learnt by SGD with momentum."""

    ipc: int = option(10, "Pixels: images per class.", min=1)
    lr_img: float | None = option(None, "Pixels: SGD learning rate of the pixels, momentum 0.5.",
                                  default_text="dm 1, gm 0.1, tm 100")
    momentum: float = option(0.5, cli=False)
    init: str = option("real", "Pixels: start from random real images or from noise.",
                       choices=("real", "noise"))

    def __post_init__(self):
        _check(self.ipc >= 1, "--ipc must be at least 1")
        _check(self.lr_img is None or self.lr_img > 0, "--lr-img must be > 0")
        _check(self.init in ("real", "noise"), "--init must be real or noise")


@dataclass(frozen=True)
class MatchingConfig:
    """What every matching objective shares."""

    iterations: int | None = option(
        None, "Image updates; latent: phase-2 iterations.", min=0,
        default_text="as the references: dm 20000, gm 1000 x outer loop, tm 5000")
    batch_real: int = option(256, "DM/GM: real images per class per iteration.", min=1)
    arch: str = option("convnet", "Network the objective matches through (for tm: the "
                                  "experts').", choices=ARCHITECTURES, alias=canonical_arch)
    dsa_strategy: str = option(DEFAULT_STRATEGY, cli=False)

    def __post_init__(self):
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        _check(self.iterations is None or self.iterations >= 0, "--iterations must be >= 0")
        _check(self.batch_real >= 1, "--batch-real must be >= 1")


@dataclass(frozen=True)
class GradientMatchingConfig:
    outer_loop: int | None = option(None, "GM: image updates per random network.", min=1,
                                    default_text="the reference's per IPC")
    inner_loop: int | None = option(None, "GM: network epochs on the synthetic set between "
                                          "updates.", min=0, default_text="reference")
    lr_net: float = option(0.01, "GM: SGD learning rate of the inner network training.")

    def __post_init__(self):
        _check((self.outer_loop is None or self.outer_loop >= 1)
               and (self.inner_loop is None or self.inner_loop >= 0) and self.lr_net > 0,
               "--outer-loop must be >= 1, --inner-loop >= 0, --lr-net > 0")


@dataclass(frozen=True)
class TrajectoryMatchingConfig:
    experts: str | None = option(None, "TM: folder made by `ddcodec experts`.", path="dir")
    syn_steps: int = option(20, "TM: student steps on the synthetic set per iteration.", min=1)
    expert_epochs: int = option(3, "TM: expert epochs the student steps must cover.", min=1)
    max_start_epoch: int = option(25, "TM: latest expert epoch a segment may start from.",
                                  min=1)
    lr_teacher: float = option(0.01, "TM: initial student learning rate (learnt; stored in the "
                                     "set).")
    lr_lr: float = option(1e-5, "TM: SGD learning rate of the student learning rate.")
    batch_syn: int | None = option(None, "TM: synthetic images per student step.", min=1,
                                   default_text="all")

    def __post_init__(self):
        _check(self.syn_steps >= 1 and self.expert_epochs >= 1 and self.max_start_epoch >= 1,
               "--syn-steps, --expert-epochs and --max-start-epoch must be at least 1")
        _check(self.lr_teacher > 0 and self.lr_lr >= 0 and (self.batch_syn is None
                                                            or self.batch_syn >= 1),
               "--lr-teacher must be > 0, --lr-lr >= 0, --batch-syn >= 1")


@dataclass(frozen=True)
class LatentConfig:
    """--param latent: the rate-utility model, its three phases and rate control."""

    # the model
    spc: int | None = option(None, "Latent: synthetic samples per class.", min=1,
                             default_text="10; with --target-bpc, what the budget buys at about "
                                          "0.75 latent bits per pixel")
    decoder: str = option("v0", "Latent: synthesis preset (v0, v3-2, v4, v5, v6, ...).")
    arm_context: int = option(16, "Latent: causal neighbours the ARM sees.",
                              choices=(8, 16, 24, 32))
    arm_hidden: int = option(2, "Latent: residual hidden layers of the ARM.", min=0)
    levels: int | None = option(None, "Latent: grids per image.", min=1,
                                default_text="log2(min(H, W)) + 1")
    shared_decoder: bool = option(False, "Latent: one decoder for all classes instead of one "
                                         "per class.")
    # phase 1: fit to real images
    fit_iterations: int = option(1000, "Latent phase 1: iterations fitting real images.", min=0)
    fit_candidates: int = option(5, "Latent phase 1: warm-up candidates per decoder.", min=1)
    fit_lr: float = option(1e-2, "Latent phase 1: Adam learning rate.")
    fit_rate_weight: float = option(1e-3, "Latent phase 1: weight of bits per pixel next to "
                                          "the MSE.")
    # phase 2: rate + lambda x utility
    lmbda: float | None = option(None, "Latent phase 2: weight of the utility loss (rate + "
                                       "lmbda x utility).",
                                 default_text="dm 0.1, gm 0.01, tm 1; the start under "
                                              "--target-bpc")
    lmbda_stage2: float | None = option(None, "Latent phase 2: lambda from --stage2-at on "
                                              "(two-stage schedule).")
    stage2_at: float = option(0.5, "Latent phase 2: fraction of --iterations where stage 2 "
                                   "starts.")
    lr: float = option(1e-3, "Latent phase 2: Adam learning rate.")
    grad_clip: float = option(0.1, cli=False)
    temperature: float = option(0.3, cli=False)
    noise: float = option(1.0, cli=False)
    # phase 3: weight post-quantisation
    quant_mse: float = option(5e-6, "Latent phase 3: largest MSE ([0, 1] pixels) weight "
                                    "quantisation may add to the decoded images.")
    # rate control: land the encoded file within rate_tolerance of target_bpc bits per class
    target_bpc: float | None = option(None, "Latent: land the encoded .ddz on this many bits "
                                            "per class (everything in the file counted); lambda "
                                            "and the weight quantisation are then found "
                                            "automatically.")
    rate_tolerance: float = option(0.05, "Latent: accepted relative error of --target-bpc.")
    phase2_budget: int | None = option(None, "Latent, with --target-bpc: most phase-2 "
                                             "iterations in all, rate control's retrain rounds "
                                             "included (equal effort across runs); out of them, "
                                             "the probe closest to the budget is kept.",
                                       min=1, default_text="no cap but its 4 rounds")
    fit_budget_share: float | None = option(None, "Latent, with --target-bpc: share of the "
                                                  "latent bits that phase 1 may spend, the rest "
                                                  "left to the utility.",
                                            default_text="dm/gm 0.7, tm 1")

    def __post_init__(self):
        from ddcodec.codec.architecture import CodecConfig

        _check(self.spc is None or self.spc >= 1, "--spc must be at least 1")
        try:
            CodecConfig(decoder=self.decoder, arm_context=self.arm_context,
                        arm_hidden=self.arm_hidden, levels=self.levels)
        except ValueError as exc:
            raise DDCodecError(str(exc)) from exc
        _check(self.fit_iterations >= 0 and self.fit_candidates >= 1
               and (self.lmbda is None or self.lmbda >= 0),
               "--fit-iterations >= 0, --fit-candidates >= 1, --lmbda >= 0")
        _check(self.quant_mse > 0 and 0 <= self.stage2_at <= 1,
               "--quant-mse must be > 0 and --stage2-at in [0, 1]")
        _check(self.fit_budget_share is None or 0 < self.fit_budget_share <= 1,
               "--fit-budget-share must be in (0, 1]")
        _check(self.target_bpc is None or (self.target_bpc > 0
                                           and 0 < self.rate_tolerance < 1),
               "--target-bpc must be > 0 and --rate-tolerance in (0, 1)")


KERNELS = ("rbf", "linear")  # DistributionMatching's kernels


@dataclass(frozen=True)
class DistributionConfig:
    """--param distribution (D3 in the codec): each latent sample is the mean of a Gaussian
    prior with a spread per level, priced and stored with it; training and measure see the
    means and fresh samples. Every latent option applies to the means."""

    priors: int | None = option(None, "Distribution: Gaussian priors per class (the latent "
                                      "samples per class, --spc, under another name).", min=1,
                                default_text="as --spc")
    prior_samples: int = option(1, "Distribution: samples per prior drawn each epoch besides "
                                   "the means (D3: 1); stored in the file for measure.", min=1)
    sigma_init: float = option(0.5, "Distribution: every prior's initial spread, in latent "
                                    "steps.")
    sigma_lr: float = option(0.01, "Distribution: Adam learning rate of the log spreads (the "
                                   "latents' --lr moves them too slowly to matter in a few "
                                   "hundred iterations).")
    spread_levels: int = option(3, "Distribution: how many of the coarsest latent levels get "
                                   "a spread (3: 4x4, 2x2 and 1x1 on images of 32 px or more); "
                                   "the finer ones keep sigma 0, so samples vary in colour and "
                                   "layout, not pixel noise. A number at least the levels' "
                                   "count spreads every level.", min=0)
    spread_scale: float = option(1.0, "Distribution: store every learnt spread times this "
                                      "(sampling's truncation: below 1, samples stay closer to "
                                      "their means, less diverse and more like their class; "
                                      "`measure --spread-scale` tries a value on a file "
                                      "first).", min=0)
    kernel: str = option("rbf", "Distribution, DM: rbf matches the distributions (D3's "
                                "mixture-RBF MMD), linear only their mean embeddings (DM).",
                         choices=KERNELS)

    def __post_init__(self):
        from ddcodec.training.protocol import SPREAD_SCALE_MAX

        _check(self.priors is None or self.priors >= 1, "--priors must be at least 1")
        _check(1 <= self.prior_samples <= MAX_SAMPLES,
               f"--prior-samples must be in [1, {MAX_SAMPLES}]")
        _check(0 < self.sigma_init <= SIGMA_MAX,
               f"--sigma-init must be in (0, {SIGMA_MAX:.4g}] latent steps")
        _check(self.kernel in KERNELS, f"--kernel must be {' or '.join(KERNELS)}")
        _check(self.sigma_lr >= 0, "--sigma-lr must be >= 0")
        _check(self.spread_levels >= 0, "--spread-levels must be >= 0")
        _check(0 <= self.spread_scale <= SPREAD_SCALE_MAX,
               f"--spread-scale must be within [0, {SPREAD_SCALE_MAX:g}]")


LABEL_KINDS = ("hard", *rung_names())  # hard labels, or a registered rung


def _label_kind(name: str) -> str:
    """`soft` is the float16 rung (the papers' soft labels, uncompressed)."""
    return {"soft": "float16"}.get(name.lower(), name.lower())


@dataclass(frozen=True)
class LabelConfig:
    """What labels the set carries. Soft labels come from a teacher on the final decoded images
    and are stored in a rung of the compression ladder (ddcodec.labels.soft); under --target-bpc
    their bits come out of the same budget (rate control measures the whole file)."""

    labels: str = option("hard", "Labels: hard (free in the file), or a teacher's soft labels "
                                 "stored as float16 (alias soft), topk, vq or vqae (a VQ "
                                 "autoencoder, for many classes), every bit counted "
                                 "(under --target-bpc, out of the same budget).",
                         choices=LABEL_KINDS, alias=_label_kind)
    teacher: str | None = option(None, "Soft labels: a teacher from `ddcodec teacher`.",
                                 path="file")
    label_k: int | None = option(None, "Soft labels: vq codebook entries, or topk's kept "
                                       "classes.", min=1,
                                 default_text="topk 2; vq 16, or under --target-bpc the most "
                                              "entries whose labels fit --label-share of it")
    label_share: float = option(0.1, "Soft labels, vq under --target-bpc without --label-k: "
                                     "the largest share of the budget the labels may take.")
    label_temperature: float = option(1.0, "Soft labels: T of the teacher's softmax(logits / "
                                           "T), recorded.")
    label_loss: str = option("ce", "Soft labels: what measure trains with, soft cross-entropy "
                                   "or KL at the temperature (recorded).", choices=LABEL_LOSSES)
    label_epochs: int = option(0, "Soft labels per epoch (FKD style): one per image for each of "
                                  "E views, regenerated from the seed by measure; 0: one static "
                                  "label per image.", min=0)
    label_hard_weight: float = option(0.0, "Soft labels: the share w of each image's own class "
                                           "in what training sees, w one-hot + (1 - w) the "
                                           "teacher's row (0 to 1; recorded, costs no bits).",
                                      min=0)

    def __post_init__(self):
        object.__setattr__(self, "labels", _label_kind(self.labels))
        _check(self.labels in LABEL_KINDS, f"unknown --labels {self.labels!r}; choose "
                                           f"{', '.join(LABEL_KINDS)} (or soft)")
        _check(self.labels == "hard" or bool(self.teacher),
               f"--labels {self.labels} needs --teacher FILE (make one with `ddcodec teacher`)")
        _check(0 < self.label_share < 1, "--label-share must be in (0, 1)")
        _check(self.label_temperature > 0, "--label-temperature must be > 0")
        _check(self.label_loss in LABEL_LOSSES, "--label-loss must be ce or kl")
        _check(self.label_k is None or self.label_k >= 1, "--label-k must be at least 1")
        _check(self.label_epochs >= 0, "--label-epochs must be >= 0")
        _check(0 <= self.label_hard_weight <= 1, "--label-hard-weight must be within [0, 1]")
        _check(self.soft or not self.label_hard_weight,
               "--label-hard-weight weighs soft labels: give --labels vq (or another rung)")

    @property
    def soft(self) -> bool:
        return self.labels != "hard"


@dataclass(frozen=True)
class DistillConfig:
    """How to distil; `DistillConfig.of(spc=2, loss="gm", ...)` builds one from flat options."""

    param: str = option("pixels", "Synthetic images as free pixels, or as latent grids decoded "
                                  "by a tiny decoder and priced in bits.", choices=PARAMS)
    loss: str = option("dm", "dm: distribution matching; gm: gradient matching (DC/DSA); tm: "
                             "trajectory matching (MTT, needs --experts); none: a random real "
                             "subset.", choices=LOSSES)
    seed: int = option(0, cli=False)  # the command line's --seed is common to every command
    blocks: int = option(1, "Latent/distribution: distil the classes in this many contiguous "
                            "blocks (D3's subtasks), each its own part file, merged into one "
                            "set; under torchrun the blocks are shared among the processes.",
                         min=1)
    pixels: PixelConfig = field(default_factory=PixelConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    gm: GradientMatchingConfig = field(default_factory=GradientMatchingConfig)
    tm: TrajectoryMatchingConfig = field(default_factory=TrajectoryMatchingConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    labelling: LabelConfig = field(default_factory=LabelConfig)

    @classmethod
    def of(cls, **flat) -> "DistillConfig":
        return build(cls, **flat)

    def __post_init__(self):
        _check(self.param in PARAMS, f"unknown --param {self.param!r}; choose "
                                     f"{', '.join(PARAMS)}")
        _check(self.loss in LOSSES, f"unknown --loss {self.loss!r}; choose {', '.join(LOSSES)}")
        if self.loss == "tm":
            _check(bool(self.tm.experts), "--loss tm needs --experts DIR (make one with "
                                          "`ddcodec experts`)")
        if self.latent.target_bpc is not None:
            _check(self.is_latent, "--target-bpc needs --param latent or distribution (pixel "
                                   "sets have a fixed size: choose --ipc)")
        if self.latent.phase2_budget is not None:
            _check(self.latent.target_bpc is not None, "--phase2-budget caps rate control's "
                                                       "retrain rounds: it needs --target-bpc")
            # iterations None: the loss's default, checked once resolve() has filled it in
            _check(self.matching.iterations is None
                   or self.latent.phase2_budget >= self.matching.iterations,
                   f"--phase2-budget {self.latent.phase2_budget} is below --iterations "
                   f"{self.matching.iterations}: it counts them too")
        if self.is_latent:
            _check(self.loss != "none", f"--param {self.param} needs a utility loss: --loss dm, "
                                        "gm or tm")
        if self.blocks > 1:
            _check(self.is_latent, "--blocks needs --param latent or distribution")
            _check(not self.latent.shared_decoder, "--blocks gives every class its own decoder: "
                                                   "leave out --shared-decoder")
        if self.param == "distribution":
            _check(self.labelling.label_epochs == 0, "--param distribution takes one soft label "
                                                     "per prior: leave out --label-epochs")
            _check(self.distribution.priors is None or self.latent.spc is None
                   or self.distribution.priors == self.latent.spc,
                   "--priors and --spc name the same count: give one")

    @property
    def is_latent(self) -> bool:
        """Latent grids and decoders priced in bits (a distributional set's are its means)."""
        return self.param in ("latent", "distribution")

    def provenance(self) -> dict:
        """The (resolved) config as the set records it: the groups this run used."""
        used = {"param": self.param, "loss": self.loss, "seed": self.seed}
        if self.blocks > 1:
            used["blocks"] = self.blocks
        if self.param == "pixels":
            used["pixels"] = asdict(self.pixels)
        else:
            used["latent"] = asdict(self.latent)
        if self.param == "distribution":
            used["distribution"] = asdict(self.distribution)
        if self.loss != "none":
            used["matching"] = asdict(self.matching)
        if self.loss in ("gm", "tm"):
            used[self.loss] = asdict(getattr(self, self.loss))
        if self.labelling.soft:
            used["labels"] = asdict(self.labelling)
        return used


GM_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def gradient_matching_loops(images_per_class: int) -> tuple[int, int]:
    """(outer, inner) loops of the reference (`get_loops`), nearest tabulated size otherwise."""
    nearest = min(GM_LOOPS, key=lambda k: (abs(k - images_per_class), k))
    return GM_LOOPS[nearest]


# Options added after checkpoints and block parts began recording the flat settings: left out of
# those records while at these defaults, so the runs and parts made before them still resume
# and merge (and an old record, which lacks them, reads as the default).
LATER_OPTIONS = {"phase2_budget": None}


def recorded_settings(config: DistillConfig) -> dict:
    """The flat settings a checkpoint or a block part records and compares."""
    return {k: v for k, v in flatten(config).items()
            if not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}


def resolve(config: DistillConfig, dataset: "Dataset | None" = None) -> DistillConfig:
    """Fill every default that depends on the loss or the budget. The samples per class under
    --target-bpc depend on the data (`dataset`); without it they stay unresolved."""

    loss, latent = config.loss, config.latent
    if config.param == "distribution" and config.distribution.priors is not None:
        latent = replace(latent, spc=config.distribution.priors)
    pixels = replace(config.pixels, lr_img=config.pixels.lr_img or LR_IMG[loss])
    matching = config.matching
    if matching.iterations is None:
        per_class = (latent.spc or DEFAULT_SPC) if config.is_latent else config.pixels.ipc
        outer = config.gm.outer_loop or gradient_matching_loops(per_class)[0]
        matching = replace(matching, iterations=ITERATIONS.get(loss, 1000 * outer))
    if latent.lmbda is None:
        latent = replace(latent, lmbda=LMBDA.get(loss, 0.1))
    if latent.fit_budget_share is None:
        latent = replace(latent, fit_budget_share=FIT_BUDGET_SHARE[loss])
    if latent.spc is None and latent.target_bpc is None:
        latent = replace(latent, spc=DEFAULT_SPC)
    config = replace(config, pixels=pixels, matching=matching, latent=latent)
    if config.latent.spc is None and dataset is not None and config.is_latent:
        from ddcodec.distillation.budget import samples_for_budget

        config = replace(config, latent=replace(config.latent,
                                                spc=samples_for_budget(dataset, config)))
    return config


@dataclass(frozen=True)
class ExpertConfig:
    """Expert trajectories for trajectory matching. Defaults are MTT's buffer.py (100 experts of
    50 epochs); CPU users will want fewer."""

    num_experts: int = option(100, "Experts to train (MTT: 100; a few suffice on CPU).", min=1)
    epochs: int = option(50, "Epochs per expert; parameters are kept after each.", min=1)
    arch: str = option("convnet", "Expert network.", choices=ARCHITECTURES,
                       alias=canonical_arch)
    lr: float = option(0.01, "SGD learning rate (no momentum, no weight decay, as MTT).")
    batch_size: int = option(256, "Images per SGD step.", min=1)
    dsa_strategy: str = option(DEFAULT_STRATEGY, cli=False)
    seed: int = option(0, cli=False)
    blocks: int = option(1, "Block experts (D3's subtask experts): B folders, each of networks "
                            "trained on one contiguous block of classes only, for distill "
                            "--loss tm --blocks B.", min=1)

    def __post_init__(self):
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        _check(self.blocks >= 1, "--blocks must be at least 1")
        _check(self.num_experts >= 1 and self.epochs >= 1 and self.batch_size >= 1
               and self.lr > 0, "--num-experts, --epochs and --batch-size must be at least 1 "
                                "and --lr positive")
