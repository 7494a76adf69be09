"""Rate control: land a latent set's encoded file on a bits-per-class budget.

The user gives the budget B (bits per class, everything in the file counted); the trainer finds
the trade-off itself, in three loops from coarse to exact:

1. Phase 1 (fitting real images): each candidate's rate weight follows a multiplicative
   controller towards the per-class latent target, so fitting ends near the right rate.
2. Phase 2 (rate + lambda x utility, as a constrained problem: best utility with the latents
   within the budget): lambda starts where the two terms pull equally hard on the parameters
   (the ratio of their gradient norms at the first step, so objectives whose losses differ by
   orders of magnitude, DM against TM, start from the same balance). Below the latent target
   the rate term is off (a slack constraint's multiplier is zero); above it the rate counts and
   lambda steps down, so the rate pulls harder. The lambda it settles on is the largest at which
   the rate holds the budget, which is the answer to "which lambda gives B?".
3. After weight quantisation the set is encoded and its real size measured. Outside the
   tolerance: a small overshoot is first closed with coarser decoder weights (a larger
   quantisation threshold, up to a PSNR-harmless MSE); otherwise the latent target moves by the
   measured error and phase 2 continues for a few more iterations. A bounded number of rounds.

The latent target is what the budget leaves after the measured side information (header,
labels, quantised ARM, synthesis and upsampler weights). The controllers see the bits of the
rounded latents (what the file pays), not the training proxy's noisy estimate, which runs about
40 % higher on CIFAR-10.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

FILE_OVERHEAD_BITS = 8 * 200  # header, section framing, end record (header 125-145 B measured)
WEIGHT_BITS_PER_PARAMETER = 9.0  # first guess before a quantisation dry run, v0 measured ~8.5
PHASE1_GAIN = 0.1  # per step, on the relative error clipped to +-1
PHASE2_GAIN = 0.05
MAX_THRESHOLD = 1e-4  # weight-quantisation MSE cap: 40 dB, far below 8-bit visibility
MAX_ROUNDS = 4
LMBDA_RANGE = 1e4  # lambda stays within its start x/÷ this


def estimate_side_bits(classes: int, decoder_parameters: int) -> float:
    """Bits besides the latents before any measurement: framing, labels, decoder weights."""
    return FILE_OVERHEAD_BITS + 16 * classes + WEIGHT_BITS_PER_PARAMETER * decoder_parameters


@dataclass
class RateControl:
    budget_bits: float  # target_bpc x classes: the whole file
    classes: int
    tolerance: float
    latent_target: float  # latent bits per class the controllers aim at
    lmbda: float
    threshold: float
    iterations: int  # phase-2 iterations asked for; extra rounds add a quarter each
    lmbda_start: float = 0.0
    calibrated_from: float | None = None  # lambda before calibration (None: not calibrated)
    extra_iterations: int = 0
    rounds: int = 0
    attempts: list[dict] = field(default_factory=list)

    @classmethod
    def start(cls, target_bpc: float, classes: int, tolerance: float, lmbda: float,
              threshold: float, iterations: int, decoder_parameters: int) -> "RateControl":
        side = estimate_side_bits(classes, decoder_parameters)
        budget = target_bpc * classes
        return cls(budget, classes, tolerance, max(1.0, (budget - side) / classes), lmbda,
                   threshold, iterations, lmbda_start=lmbda)

    def set_side_bits(self, side_bits: float) -> None:
        """Re-aim the latents at what the budget leaves after the measured side information."""
        self.latent_target = max(1.0, (self.budget_bits - side_bits) / self.classes)

    def calibrate(self, rate_grad_norm: float, utility_grad_norm: float) -> None:
        """Start lambda where lambda x |grad utility| = |grad rate| (equal pull); the controller's
        range is re-centred there. Degenerate norms keep the configured lambda."""
        self.calibrated_from = self.lmbda
        if (math.isfinite(rate_grad_norm) and math.isfinite(utility_grad_norm)
                and rate_grad_norm > 0 and utility_grad_norm > 0):
            self.lmbda = self.lmbda_start = rate_grad_norm / utility_grad_norm

    def rate_weight(self, weight: float, latent_bits_per_class: float) -> float:
        """Phase 1: more weight on rate while above the target, less while below."""
        error = max(-1.0, min(1.0, latent_bits_per_class / self.latent_target - 1))
        return weight * math.exp(PHASE1_GAIN * error)

    def phase2_rate_weight(self, latent_bits_per_class: float) -> float:
        """The rate term's weight this step: 0 below the latent target (the constraint is slack,
        its multiplier is 0: bits the budget allows cost nothing, so a noisy utility such as
        TM's cannot be outpulled by a steady rate gradient into spending far less than asked),
        1 above it, where lambda also steps down so that the rate pulls harder."""
        if latent_bits_per_class < self.latent_target:
            return 0.0
        self.update_lmbda(latent_bits_per_class)
        return 1.0

    def update_lmbda(self, latent_bits_per_class: float) -> None:
        """Phase 2: less weight on utility while above the target, more while below."""
        error = max(-1.0, min(1.0, 1 - latent_bits_per_class / self.latent_target))
        low, high = self.lmbda_start / LMBDA_RANGE, self.lmbda_start * LMBDA_RANGE
        self.lmbda = min(high, max(low, self.lmbda * math.exp(PHASE2_GAIN * error)))

    def judge(self, file_bits: float, weight_bits: float) -> str:
        """After encoding: 'done', 'coarser-weights', 'retrain' (state updated) or 'missed'."""
        error = file_bits / self.budget_bits - 1
        self.attempts.append({"bpc": file_bits / self.classes, "error": error,
                              "lmbda": self.lmbda, "quant_mse": self.threshold,
                              "extra_iterations": self.extra_iterations})
        if abs(error) <= self.tolerance:
            return "done"
        excess = file_bits - self.budget_bits
        if 0 < excess < 0.3 * weight_bits and self.threshold * 4 <= MAX_THRESHOLD:
            self.threshold *= 4
            return "coarser-weights"
        if self.rounds >= MAX_ROUNDS:
            return "missed"
        self.rounds += 1
        self.latent_target = max(1.0, self.latent_target - excess / self.classes)
        self.extra_iterations += max(10, self.iterations // 4)
        return "retrain"

    def summary(self) -> dict:
        last = self.attempts[-1] if self.attempts else {}
        within = bool(last) and abs(last["error"]) <= self.tolerance
        return {"rate_control": {
            "target_bpc": self.budget_bits / self.classes, "achieved_bpc": last.get("bpc"),
            "error": last.get("error"), "within_tolerance": within, "tolerance": self.tolerance,
            "lmbda": self.lmbda, "quant_mse": self.threshold,
            "latent_target_bpc": self.latent_target, "extra_iterations": self.extra_iterations,
            "attempts": list(self.attempts),
            "lmbda_start": self.lmbda_start,
            "why": (f"lambda started at {self.lmbda_start:.4g} (equal gradient pull of rate and "
                    f"utility) and settled at {self.lmbda:.4g}, where the rate holds the "
                    f"{self.latent_target:,.0f} latent bits per class the budget leaves after "
                    f"side information against the utility's pull; weight quantisation MSE "
                    f"{self.threshold:.2g}")}}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> "RateControl":
        return cls(**state)
