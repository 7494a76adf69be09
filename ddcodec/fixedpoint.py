"""Every fixed-point constant of the bitstream, in one place, with the invariants that make the
integer ARM and the range coder agree bit for bit on every machine.

The ARM's weights are integers q with power-of-two steps 2^s, so fixed point is an exact shift:
weights in Q.W_SHIFT, biases in Q.(2 W_SHIFT), latents in Q.W_SHIFT; the outputs (mu, log b)
leave in Q.FRACTION_BITS. The invariants are checked at import: a change that breaks one stops
ddcodec from loading instead of writing files another version cannot read.
"""

from __future__ import annotations

LOG_SCALE_MIN = -4.5  # b >= 0.011
LOG_SCALE_MAX = 5.0  # b <= 148
LOG_SCALE_SHIFT = 4.0  # log b = clamp(ARM output - shift): the ARM starts near b = e^-4

FRACTION_BITS = 8  # mu and log b in units of 1/256
ONE = 1 << FRACTION_BITS
LOG_SCALE_MIN_Q = int(LOG_SCALE_MIN * ONE)  # -1152
LOG_SCALE_MAX_Q = int(LOG_SCALE_MAX * ONE)  # 1280

W_SHIFT = 16  # ARM weights and latents in Q.16
LOG_SCALE_SHIFT_Q32 = int(LOG_SCALE_SHIFT * (1 << 2 * W_SHIFT))  # folded into the output bias
ARM_WEIGHT_STEP_MIN = -8  # finest ARM weight step 2^-8: shifts by W_SHIFT + step >= 0
ARM_BIAS_STEP_MIN = -16  # finest ARM bias step 2^-16: shifts by 2 W_SHIFT + step >= 0
ACCUMULATOR_LIMIT = 1 << 62  # int64 accumulators are bounded below this before they are summed

STEP_RANGE = (-32, 0)  # any decoder weight step exponent a header may carry
WEIGHT_MAX_ABS = 65535  # weight integers lie in [-WEIGHT_MAX_ABS, WEIGHT_MAX_ABS]
WEIGHT_MIN_SCALE = 0.05  # floor of a weight group's Laplace scale
MAX_K = 1024  # latents lie in [-k, k - 1], k <= MAX_K

# The invariants the integer ARM relies on.
assert LOG_SCALE_MIN * ONE == LOG_SCALE_MIN_Q and LOG_SCALE_MAX * ONE == LOG_SCALE_MAX_Q, \
    "log-scale bounds must lie on the 2^-FRACTION_BITS grid"
assert LOG_SCALE_SHIFT * (1 << 2 * W_SHIFT) == LOG_SCALE_SHIFT_Q32, \
    "the log-scale shift must be exact in the output bias's fixed point"
assert W_SHIFT + ARM_WEIGHT_STEP_MIN >= 0 and 2 * W_SHIFT + ARM_BIAS_STEP_MIN >= 0, \
    "the finest ARM steps must still be non-negative shifts"
assert 2 * W_SHIFT >= FRACTION_BITS, "the output shift must be a right shift"
assert WEIGHT_MAX_ABS < 1 << 31 and MAX_K < 1 << 15, "weights fit int32, latents int16"
