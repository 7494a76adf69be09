"""Rate control: land a latent set's encoded file on a bits-per-class budget.

The user gives the budget B (bits per class, everything in the file counted); the trainer finds
the trade-off itself, in three loops from coarse to exact:

1. Phase 1 (fitting real images): each candidate's rate weight follows a multiplicative
   controller towards a share of the per-class latent target (`fit_budget_share`: 0.7 for DM
   and GM, whose matching then adds bits where it wants them; 1 for TM, whose does not).
2. Phase 2 (rate + lambda x utility, as a constrained problem: best utility with the latents
   within the budget): lambda starts at the loss's default (`--lmbda`). Below the latent target
   the rate term is off (a slack constraint's multiplier is zero) and lambda steps up; above it
   the rate counts and lambda steps down, so the rate pulls harder. The lambda it settles on
   balances the utility's pull against the rate at the budget, which is the answer to "which
   lambda gives B?".
3. After weight quantisation the set is encoded and its real size measured. Outside the
   tolerance: a small overshoot is first closed with coarser decoder weights (a larger
   quantisation threshold, up to a PSNR-harmless MSE); otherwise the latent target is set to
   where the latents actually were plus the measured error, and phase 2 continues for a few more
   iterations. A bounded number of rounds; out of rounds, the probe closest to the budget is
   kept.

Why "where the latents were" and not "the previous target": phase 2 lags its target (lambda
moves a few percent per step), so a file over budget is mostly lag, not a bias between the
training's bit count and the file's. Moving the target by the whole error on top of the lag
over-corrects, and it compounds: a 6,000 bits/class DM run went +22 %, +7 %, -9 %, -20 %, -16 %
before this anchor (see tests/distillation/test_rate_control.py).

The latent target is what the budget leaves after the measured side information (header,
labels, quantised ARM, synthesis and upsampler weights). The controllers see the bits of the
rounded latents (what the file pays), not the training proxy's noisy estimate, which ran 15-45 %
higher on the CIFAR-10 subset in development runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Callable, Protocol

from ddcodec.errors import DDCodecError
from ddcodec.events import Event

FILE_OVERHEAD_BITS = 8 * 200  # header, section framing, end record (headers of the committed files: 172-214 B)
WEIGHT_BITS_PER_PARAMETER = 9.0  # first guess before a quantisation dry run, v0 measured ~8.5
PHASE1_GAIN = 0.1  # per step, on the relative error clipped to +-1
PHASE2_GAIN = 0.05
# Per step in a retrain round: the file measured over budget, so lambda is known to be too high
# and the first round's slow step would mostly keep spending (DM at 64 x 64 went +34 %, +30 %,
# +20 % with the first round's gain). The first round keeps PHASE2_GAIN, so a run that lands on
# its first probe never meets this gain.
RETRAIN_GAIN = 0.2
# A round under budget may run as many iterations as the latents' measured growth (bits per
# class per phase-2 iteration, from the last two points) says the gap needs, times this margin,
# at most RETRAIN_CAP x the run's iterations (at least RETRAIN_FLOOR); it stops as soon as the
# latents reach their target (`round_done`). At short settings the quarter-length rounds climbed
# 7 points each and ran out of rounds at -13 %.
RETRAIN_MARGIN = 2.0
RETRAIN_CAP = 5
RETRAIN_FLOOR = 20
MAX_THRESHOLD = 1e-4  # weight-quantisation MSE cap: 40 dB, far below 8-bit visibility
MAX_ROUNDS = 4
LMBDA_RANGE = 1e4  # lambda stays within its start x/÷ this
# Unreachable budgets are refused early: at once below SIDE_MARGIN x the side information's
# first estimate (which runs up to 2x high on small images, hence the margin), at the first
# measured side information (a dry-run encode, once each class has one decoder) below it, or
# when phase 1's rate weight has fallen below FLOOR_RATIO of its start (the rate barely counts)
# while the latents still reach less than SHORT_SHARE of what phase 1 aims at.
SIDE_MARGIN = 0.4
FLOOR_RATIO = 0.05
SHORT_SHARE = 0.6


class Unreachable(DDCodecError):
    """A --target-bpc the run cannot meet, found from its first measurements."""


class Verdict(str, Enum):
    """What to do after measuring the encoded file."""

    DONE = "done"  # within tolerance
    COARSER_WEIGHTS = "coarser-weights"  # re-quantise the weights with a larger threshold
    RETRAIN = "retrain"  # more phase-2 iterations towards a moved latent target
    MISSED = "missed"  # out of rounds: keep this file and say so


class Trainable(Protocol):
    """The trainer steps rate control drives."""

    probes: list  # (images, payload) per probe so far: kept in the trainer's checkpoint
    def train(self) -> None: ...
    def quantize(self, threshold: float): ...  # -> (uint8 images, LatentPayload)
    def latent_bits_per_class(self) -> float: ...  # what the controllers steer, right now
    def snapshot(self) -> dict: ...
    def restore(self, snapshot: dict) -> None: ...
    def resume_phase2(self) -> None: ...


def run_to_budget(trainer: Trainable, rate: "RateControl", file_bits: Callable,
                  on_event: Callable[[Event], None] | None = None):
    """Train, quantise, measure the real file, and act on the verdict until done or out of
    rounds. `file_bits(images, payload)` is given by the API layer (it encodes the set); each
    probe is told to `on_event` as it starts and as a note with its result."""
    tell = on_event or (lambda event: None)
    lmbda_before = rate.lmbda
    # (images, payload) per probe: out of rounds, the closest is kept; the trainer holds them,
    # so a run resumed in a retrain round still has the probes made before it stopped
    results = trainer.probes
    while True:
        trainer.train()
        achieved = trainer.latent_bits_per_class()
        unquantised = trainer.snapshot()
        while True:
            images, payload = trainer.quantize(rate.threshold)
            results.append((images, payload))
            probe = len(rate.attempts) + 1
            tell(Event("step", "rate control", probe, probe,
                       "encoding the set to measure the file"))
            verdict = rate.judge(file_bits(images, payload), payload.estimated_bits.weights,
                                 achieved)
            tell(Event("note", "rate control", probe, probe,
                       rate.probe_text(probe, lmbda_before, verdict)))
            lmbda_before = rate.lmbda
            if verdict in (Verdict.DONE, Verdict.MISSED):
                return results[rate.kept]
            trainer.restore(unquantised)
            if verdict is Verdict.RETRAIN:
                trainer.resume_phase2()
                break


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
    fit_share: float = 1.0  # of the latent target, what phase 1 aims at (headroom for utility)
    lmbda_start: float = 0.0
    side_bits: float | None = None  # measured (a dry-run encode), once known
    # (phase-2 iterations done, latent bits per class): phase 2's start, then each probe
    growth_points: list = field(default_factory=list)
    steps_done: int | None = None  # phase-2 iterations run so far (told by the trainer)
    climbing: bool = False  # this retrain round started under budget
    extra_iterations: int = 0
    rounds: int = 0
    attempts: list[dict] = field(default_factory=list)
    max_iterations: int | None = None  # phase-2 iterations in all, retrain rounds included

    @classmethod
    def start(cls, target_bpc: float, classes: int, tolerance: float, lmbda: float,
              threshold: float, iterations: int, decoder_parameters: int,
              fit_share: float = 1.0, label_bits: float = 0.0,
              max_iterations: int | None = None) -> "RateControl":
        """Refuses (Unreachable) a budget the decoders, labels and header alone exceed.
        `label_bits`: the soft labels' estimated bits (all classes), if the set has them."""
        side = estimate_side_bits(classes, decoder_parameters) + label_bits
        budget = target_bpc * classes
        # the margin covers the decoders' estimate; the labels' is close (float16 exact)
        if budget < SIDE_MARGIN * (side - label_bits) + label_bits:
            of_them = f", soft labels {label_bits / classes:,.0f} of them" if label_bits else ""
            cheaper = ", a cheaper label rung or fewer --spc" if of_them else ""
            raise Unreachable(
                f"--target-bpc {target_bpc:,.0f} is below what the decoders, labels and header "
                f"alone cost (about {side / classes:,.0f} bits/class before any latent{of_them})"
                f": reachable from about {1.05 * side / classes:,.0f}; or use --shared-decoder "
                f"or a smaller --decoder{cheaper}")
        return cls(budget, classes, tolerance, max(1.0, (budget - side) / classes), lmbda,
                   threshold, iterations, fit_share=fit_share, lmbda_start=lmbda,
                   max_iterations=max_iterations)

    def set_side_bits(self, side_bits: float) -> None:
        """Re-aim the latents at what the budget leaves after the measured side information;
        refuse (Unreachable) a budget that the measured side information exceeds."""
        if side_bits >= self.budget_bits:
            raise Unreachable(
                f"--target-bpc {self.budget_bits / self.classes:,.0f} is below what the "
                f"decoders, labels and header cost ({side_bits / self.classes:,.0f} bits/class, "
                f"measured): reachable from about {1.05 * side_bits / self.classes:,.0f}; or "
                "use --shared-decoder or a smaller --decoder")
        self.side_bits = side_bits
        self.latent_target = max(1.0, (self.budget_bits - side_bits) / self.classes)

    def check_reachable(self, latent_bits_per_class: float, weight_ratio: float, steps: int,
                        spc: int) -> None:
        """After phase 1's warm-up: refuse (Unreachable) a target the latents cannot reach,
        seen when the rate weight has all but vanished and they still fall far short."""
        aim = self.fit_share * self.latent_target
        if weight_ratio > FLOOR_RATIO or latent_bits_per_class >= SHORT_SHARE * aim:
            return
        side = (self.side_bits if self.side_bits is not None
                else self.budget_bits - self.latent_target * self.classes) / self.classes
        most = side + latent_bits_per_class / self.fit_share
        raise Unreachable(
            f"--target-bpc {self.budget_bits / self.classes:,.0f} is out of reach with "
            f"--spc {spc}: after {steps} fit steps, with the rate weight at "
            f"{weight_ratio:.2g} of its start, its latents spend about "
            f"{latent_bits_per_class:,.0f} bits/class; reachable: about {1.05 * side:,.0f} "
            f"to {most:,.0f} bits/class. Raise --spc, or leave it out to size it from the "
            "budget")

    def start_phase2(self, latent_bits_per_class: float) -> None:
        """Where the latents stand as phase 2 begins: the first point of their growth."""
        self.growth_points = [(0, latent_bits_per_class)]

    def growth(self) -> float | None:
        """Bits per class the latents gained per phase-2 iteration between the last two
        measurements (phase 2's start, then each probe); None before two are known."""
        points = self.growth_points
        if len(points) < 2 or points[-1][0] <= points[-2][0]:
            return None
        (it0, bpc0), (it1, bpc1) = points[-2], points[-1]
        return (bpc1 - bpc0) / (it1 - it0)

    def rate_weight(self, weight: float, latent_bits_per_class: float) -> float:
        """Phase 1: more weight on rate while above its share of the target, less below."""
        target = self.fit_share * self.latent_target
        error = max(-1.0, min(1.0, latent_bits_per_class / target - 1))
        return weight * math.exp(PHASE1_GAIN * error)

    def phase2_rate_weight(self, latent_bits_per_class: float) -> float:
        """The rate term's weight this step: 0 below the latent target (the constraint is slack,
        its multiplier is 0: bits the budget allows cost nothing, so a noisy utility such as
        TM's cannot be outpulled by a steady rate gradient into spending far less than asked),
        1 above it."""
        return 0.0 if latent_bits_per_class < self.latent_target else 1.0

    def update_lmbda(self, latent_bits_per_class: float) -> None:
        """Phase 2: less weight on utility while above the target, more while below. In a
        retrain round lambda holds while below the target (anti-windup): the rate term is off
        there, so lambda only scales a gradient the optimiser normalises, and a lambda grown
        through a long climb kept the latents rising past the target (+16 %, +20 %, +23 %,
        +27 % at the short settings of tests/distillation/test_rate_control.py)."""
        if self.rounds and latent_bits_per_class < self.latent_target:
            return
        error = max(-1.0, min(1.0, 1 - latent_bits_per_class / self.latent_target))
        low, high = self.lmbda_start / LMBDA_RANGE, self.lmbda_start * LMBDA_RANGE
        gain = RETRAIN_GAIN if self.rounds else PHASE2_GAIN
        self.lmbda = min(high, max(low, self.lmbda * math.exp(gain * error)))

    @property
    def kept(self) -> int:
        """The attempt the run keeps: the closest to the budget (only the last can be within
        tolerance: the run stops there)."""
        return min(range(len(self.attempts)), key=lambda i: abs(self.attempts[i]["error"]))

    def judge(self, file_bits: float, weight_bits: float,
              latent_bits_per_class: float | None = None) -> Verdict:
        """After encoding: the verdict; COARSER_WEIGHTS and RETRAIN update the threshold or the
        latent target and iterations here, which is what judging means. `latent_bits_per_class`:
        where the controllers' count stood when the set was quantised (the anchor of the next
        target; the current target if not given)."""
        error = file_bits / self.budget_bits - 1
        done = (self.steps_done if self.steps_done is not None
                else self.iterations + self.extra_iterations)
        self.attempts.append({"bpc": file_bits / self.classes, "error": error,
                              "lmbda": self.lmbda, "quant_mse": self.threshold,
                              "extra_iterations": self.extra_iterations,
                              "phase2_iterations": done,
                              "latent_target_bpc": self.latent_target,
                              "latent_bpc": latent_bits_per_class})
        if abs(error) <= self.tolerance:
            return Verdict.DONE
        excess = file_bits - self.budget_bits
        if 0 < excess < 0.3 * weight_bits and self.threshold * 4 <= MAX_THRESHOLD:
            self.threshold *= 4
            return Verdict.COARSER_WEIGHTS
        if latent_bits_per_class is not None:
            if self.growth_points and self.growth_points[-1][0] == done:
                self.growth_points[-1] = (done, latent_bits_per_class)
            else:
                self.growth_points.append((done, latent_bits_per_class))
        if self.rounds >= MAX_ROUNDS or self.out_of_iterations(done):
            return Verdict.MISSED
        self.rounds += 1
        anchor = self.latent_target if latent_bits_per_class is None else latent_bits_per_class
        self.latent_target = max(1.0, anchor - excess / self.classes)
        self.climbing = excess < 0
        self.extra_iterations = max(done - self.iterations, 0) + self._round_length(anchor,
                                                                                    excess)
        if self.max_iterations is not None:
            self.extra_iterations = min(self.extra_iterations,
                                        self.max_iterations - self.iterations)
        return Verdict.RETRAIN

    def out_of_iterations(self, done: int) -> bool:
        """The phase-2 budget (`--phase2-budget`) is spent: no retrain round may follow."""
        return self.max_iterations is not None and done >= self.max_iterations

    def round_done(self, steps_done: int, latent_bits_per_class: float | None) -> bool:
        """Told before each phase-2 step: whether a retrain round that started under budget can
        stop now, its latents having climbed to the target (only the utility raises them, at a
        pace that speeds up as it goes: a round of fixed length either fell short, -40 %, -34 %,
        -28 %, or, made long enough, overshot, +16 %)."""
        self.steps_done = steps_done
        return (self.rounds > 0 and self.climbing and latent_bits_per_class is not None
                and latent_bits_per_class >= self.latent_target)

    def _round_length(self, anchor: float, excess: float) -> int:
        """Phase-2 iterations of the next retrain round. Over budget the rate term pulls the
        latents down within a few steps; under it only the utility raises them, at a pace that
        the last rounds measured, so the round lasts as long as that pace needs to close the
        gap."""
        base = max(10, self.iterations // 4)
        growth = self.growth() if excess < 0 else None
        if not growth or growth <= 0:
            return base
        needed = (self.latent_target - anchor) / growth
        cap = RETRAIN_CAP * max(self.iterations, RETRAIN_FLOOR)
        return int(min(cap, max(base, math.ceil(RETRAIN_MARGIN * needed))))

    def probe_text(self, probe: int, lmbda_before: float, verdict: Verdict) -> str:
        """One line for a probe: e.g. 'rate control probe 2: 9,312 of 12,000 bits/class
        (-22.4%), lambda 0.13 -> 0.2: retrain round 1/4, ...'."""
        last = self.attempts[-1]
        spent = "rounds" if self.rounds >= MAX_ROUNDS else "phase-2 iterations"
        action = {Verdict.DONE: "within tolerance",
                  Verdict.MISSED: f"out of {spent}, kept probe {self.kept + 1}",
                  Verdict.COARSER_WEIGHTS: f"coarser weights (MSE {self.threshold:.2g})",
                  Verdict.RETRAIN: f"retrain round {self.rounds}/{MAX_ROUNDS}, "
                                   f"{self.extra_iterations} more joint iterations in all, "
                                   f"latents aiming at {self.latent_target:,.0f} bits/class"}
        return (f"rate control probe {probe}: {last['bpc']:,.0f} of "
                f"{self.budget_bits / self.classes:,.0f} bits/class ({last['error']:+.1%}), "
                f"lambda {lmbda_before:.3g} -> {self.lmbda:.3g}: {action[verdict]}")

    def summary(self) -> dict:
        """The record of the kept probe (the set the run writes) and of every attempt."""
        kept = self.attempts[self.kept] if self.attempts else {}
        within = bool(kept) and abs(kept["error"]) <= self.tolerance
        lmbda, mse = kept.get("lmbda", self.lmbda), kept.get("quant_mse", self.threshold)
        target = kept.get("latent_target_bpc", self.latent_target)
        return {"rate_control": {
            "target_bpc": self.budget_bits / self.classes, "achieved_bpc": kept.get("bpc"),
            "error": kept.get("error"), "within_tolerance": within, "tolerance": self.tolerance,
            "lmbda": lmbda, "quant_mse": mse, "kept_probe": self.kept + 1 if kept else None,
            "latent_target_bpc": target, "extra_iterations": self.extra_iterations,
            # the effort spent: every probe's training ran, whichever probe was kept
            "phase2_iterations": max((a.get("phase2_iterations", 0) for a in self.attempts),
                                     default=0),
            "phase2_budget": self.max_iterations,
            "attempts": list(self.attempts),
            "lmbda_start": self.lmbda_start,
            "why": (f"lambda started at {self.lmbda_start:.4g} and settled at {lmbda:.4g}, "
                    f"where the utility's pull balances the rate at the "
                    f"{target:,.0f} latent bits per class "
                    f"the budget leaves after side information; weight quantisation MSE "
                    f"{mse:.2g}")}}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> "RateControl":
        return cls(**state)
