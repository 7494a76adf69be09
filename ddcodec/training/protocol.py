"""The evaluation protocol's settings (torch-free, so configs and the command line can hold
them): how one fresh network is trained on a distilled set and tested. The field's protocol:
ConvNet-D3, SGD lr 0.01 (MTT sets: the learnt lr), momentum 0.9, weight decay 5e-4, batch 256,
1000 epochs with the lr divided by 10 at half, DSA augmentation, final-epoch test accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ddcodec.names import ARCHITECTURES, DEFAULT_STRATEGY, LABEL_LOSSES, canonical_arch
from ddcodec.options import option

SPREAD_SCALE_MAX = 16.0  # --spread-scale (measure, distill): beyond it a sample is noise


@dataclass(frozen=True)
class EvalConfig:
    arch: str = "convnet"
    epochs: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    dsa: bool = True
    dsa_strategy: str = DEFAULT_STRATEGY
    # soft labels (rows of probabilities): "ce", soft cross-entropy at T = 1 (D3 style), or
    # "kl", KL(labels || softmax(logits / T)) without the T^2 factor (SRe2L/RDED style)
    label_loss: str = "ce"
    label_temperature: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        if self.label_loss not in LABEL_LOSSES:
            raise ValueError(f"label loss must be one of {', '.join(LABEL_LOSSES)}")
        if not self.label_temperature > 0:
            raise ValueError("the label temperature must be > 0")
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeasureConfig:
    """What `measure` trains: `runs` fresh networks under EvalConfig's protocol (its defaults
    are EvalConfig's; lr None: the set's learnt student lr, else EvalConfig's)."""

    epochs: int = option(EvalConfig.epochs, "Training epochs per network (the field's "
                                            "standard: 1000).", min=1)
    runs: int = option(5, "Fresh networks to train; accuracy is their mean and std.", min=1)
    arch: str = option(EvalConfig.arch, "Network to train (convnet: ConvNet-D3).",
                       choices=ARCHITECTURES, alias=canonical_arch)
    lr: float | None = option(None, "Learning rate.", default_text="the set's learned lr, "
                                                                    f"else {EvalConfig.lr:g}")
    batch_size: int = option(EvalConfig.batch_size, "Images per SGD step.", min=1)
    dsa: bool = option(EvalConfig.dsa, "Train with DSA augmentation (--no-dsa: without).",
                       flag="--dsa/--no-dsa")
    label_loss: str | None = option(None, "Soft-label sets: ce (soft cross-entropy) or kl (KL "
                                          "at the label temperature).", choices=LABEL_LOSSES,
                                    default_text="what the set records")
    label_temperature: float | None = option(None, "Soft-label sets: the temperature of the kl "
                                                   "loss.", default_text="the set's")
    label_hard_weight: float | None = option(None, "Soft-label sets: the share w of each "
                                                   "image's own class in what training sees, "
                                                   "w one-hot + (1 - w) row (0 to 1).", min=0,
                                             default_text="the set's")
    hard_labels: bool = option(False, "Train a soft-label set on its hard labels (a control).")
    teacher: str | None = option(None, "Soft-label sets: the teacher that labelled them; with "
                                       "it, measure also trains the controls (the same images "
                                       "with hard labels, and random real images with this "
                                       "teacher's labels at equal bits per class).",
                                 path="file")
    frozen_samples: bool = option(False, "Distributional sets: train every epoch on the "
                                         "samples of epoch 0 instead of fresh ones (the control "
                                         "that isolates the value of regeneration).")
    samples: int | None = option(None, "Distributional sets: fresh samples per prior each "
                                       "epoch; 0 trains on the means alone (a control: what "
                                       "the samples add).", min=0,
                                 default_text="the file's")
    spread_scale: float | None = option(None, "Distributional sets: multiply every prior's "
                                              "spread by this when sampling (a control: what "
                                              "the size of the learnt spread is worth; 0 makes "
                                              "every sample its mean).", min=0,
                                        default_text="1, the file's spreads")
    baselines: bool = option(False, "Also train, with the same protocol and seeds, a random "
                                    "real subset with the set's images per class and the whole "
                                    "training split; report DD-Ranking's HLR, IOR and LRS.")
    lrs_lambda: float = option(0.5, "DD-Ranking's lambda in alpha = lambda IOR - (1 - lambda) "
                                    "HLR.", min=0)

    def __post_init__(self):
        from ddcodec.errors import DDCodecError

        if not 0 <= self.lrs_lambda <= 1:
            raise DDCodecError("--lrs-lambda must be within [0, 1]")
        if self.spread_scale is not None and not 0 <= self.spread_scale <= SPREAD_SCALE_MAX:
            raise DDCodecError(f"--spread-scale must be within [0, {SPREAD_SCALE_MAX:g}]")

    def eval_config(self, stored_lr: float | None = None, soft_labels=None) -> EvalConfig:
        """The protocol for this set: its learnt lr, and its soft labels' loss and temperature,
        unless options say otherwise."""
        lr = self.lr if self.lr is not None else (stored_lr or EvalConfig.lr)
        loss = self.label_loss or (soft_labels.loss if soft_labels is not None else "ce")
        temperature = self.label_temperature if self.label_temperature is not None else (
            soft_labels.temperature if soft_labels is not None else 1.0)
        try:
            return EvalConfig(arch=self.arch, epochs=self.epochs, lr=float(lr),
                              batch_size=self.batch_size, dsa=self.dsa, label_loss=loss,
                              label_temperature=float(temperature))
        except ValueError as exc:
            from ddcodec.errors import DDCodecError

            raise DDCodecError(str(exc)) from exc
