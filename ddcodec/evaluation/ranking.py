"""DD-Ranking's label-robust score, computed as its documentation defines it.

HLR (hard-label recovery) = Acc(whole training split) - Acc(synthetic set): the gap to full
data, lower is better. IOR (improvement over random) = Acc(synthetic) - Acc(random real subset
with the same images per class and label kind): higher is better. With accuracies as fractions,
alpha = lambda IOR - (1 - lambda) HLR lies in [-1, 1], and LRS = (e^alpha - e^-1) / (e - e^-1)
maps it onto [0, 1] (x100 in percent). DD-Ranking 0.2.0's code feeds percentages into the same
formula, where e^alpha overflows the scale (and the run crashes before it returns); see
docs/measure.md.
"""

from __future__ import annotations

import math


def label_robust_score(synthetic: float, random: float, full: float,
                       lrs_lambda: float = 0.5) -> dict:
    """HLR, IOR, alpha and LRS from three accuracies given as fractions (0-1)."""
    for name, value in (("synthetic", synthetic), ("random", random), ("full", full)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} accuracy {value} is not a fraction in [0, 1]")
    if not 0.0 <= lrs_lambda <= 1.0:
        raise ValueError("lambda must be within [0, 1]")
    hlr = full - synthetic
    ior = synthetic - random
    alpha = lrs_lambda * ior - (1 - lrs_lambda) * hlr
    lrs = (math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1))
    return {"hlr": hlr, "ior": ior, "alpha": alpha, "lrs": lrs, "lrs_lambda": lrs_lambda,
            "hlr_percent": 100 * hlr, "ior_percent": 100 * ior, "lrs_percent": 100 * lrs}
