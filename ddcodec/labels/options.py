"""What `ddcodec label` asks of a rung (torch-free: the command line's options come from these
fields, the rung names from the registry)."""

from __future__ import annotations

from dataclasses import dataclass

from ddcodec.labels.rungs import rung_names, summaries
from ddcodec.names import LABEL_LOSSES
from ddcodec.options import option


@dataclass(frozen=True)
class LabelOptions:
    temperature: float = option(1.0, "T of the teacher's softmax(logits / T), recorded.", min=0,
                                min_open=True)
    loss: str = option("ce", "What measure trains with: soft cross-entropy, or KL at the "
                             "temperature.", choices=LABEL_LOSSES)
    codec: str = option("float16", f"How the file stores them: {summaries()}.",
                        choices=rung_names())
    k: int | None = option(None, "The rung's size: codebook entries (vq, vqae) or kept "
                                 "classes (topk); default: the rung's.", min=1)
    epochs: int = option(0, "Per-epoch labels (FKD style): one per image on each of E "
                            "augmented views, regenerated from --seed by measure, which "
                            "replays them; 0: static.", min=0)
    hard_weight: float = option(0.0, "The share w of each image's own class in what training "
                                     "sees, w one-hot + (1 - w) the teacher's row (0 to 1; "
                                     "recorded, costs no bits).", min=0)
