"""Distillation methods: each turns a Dataset into a DistilledSet under a DistillConfig.

The configs import without torch (the command line builds its options from them); running
(`distill`, `latent_set`) loads it on first use.
"""

from __future__ import annotations

from ddcodec.distillation.config import (FIT_BUDGET_SHARE, LMBDA, LOSSES, LR_IMG, PARAMS,
                                         DistillConfig, resolve)

__all__ = ["DistillConfig", "FIT_BUDGET_SHARE", "LMBDA", "LOSSES", "LR_IMG", "PARAMS", "distill",
           "latent_set", "resolve", "ProgressHook"]


def __getattr__(name: str):
    if name in ("distill", "latent_set", "ProgressHook", "FileSizer"):
        from ddcodec.distillation import run

        return getattr(run, name)
    raise AttributeError(f"module 'ddcodec.distillation' has no attribute {name!r}")
