"""Soft labels: one distribution per synthetic sample, from a teacher, stored in a rung of the
compression ladder and counted in every bit.

Rungs (`codec`):
- `float16`: the probabilities as float16, the papers' convention (and `info`'s "float
  equivalent" cost);
- `vq`: vector quantisation. The teacher's distributions are clustered by k-means under the
  KL divergence (the loss they train with: a sample goes to the centroid q of least
  cross-entropy -sum p log q, a centroid is the mean of its samples, which minimises their
  summed KL); each centroid is stored as its log-probabilities, integers q with one power-of-two
  step (log-probability = q x 2^step, floored at LOG_FLOOR), each sample as the index of its
  centroid. The decoded distribution is softmax(q x 2^step): the integers are exact, the
  softmax is float arithmetic (float64, then float32).

- `vqae`: a VQ autoencoder (ddcodec.labels.vqae), for many classes: k codebook entries in a small
  code space (integers, step 2^code_step) and one decoder MLP (code -> hidden -> K logits, its
  weights integers with step 2^weight_step), each sample the index of an entry. The decoded
  distributions are softmax(decoder(entry)), float arithmetic (float64, then float32) on exact
  integers.

- `topk`: the label-pruning papers' rung: per sample, the k most probable classes and their
  probabilities as `bits`-bit integers m (p = m / (2^bits - 1)); the mass left is spread evenly
  over the other classes (if the kept integers exceed the scale, they are renormalised and the
  others get 0). Integers exact, the division float64 then float32.

`temperature` is the T the teacher's softmax used, and `loss` what `measure` trains with: "ce"
(soft cross-entropy) or "kl" (KL against softmax(student / T)).

Per-epoch labels (FKD/SRe2L style, `epochs` E > 0) hold E x N rows, row e x N + i the teacher's
distribution on view e of image i. The view is regenerated from (view seed, e, i) by
`ddcodec.data.augment.LabelViews`, so it costs no bits and `measure` replays exactly the views that
were labelled. Every rung codes the rows as it codes N static ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ddcodec.limits import LABELS
from ddcodec.errors import DDCodecError
from ddcodec.names import LABEL_LOSSES

LABEL_CODECS = ("float16", "vq", "topk", "vqae")
LOG_FLOOR = -16.0  # log-probabilities below this (e^-16 ~ 1e-7) are stored as this
ROW_SUM_TOLERANCE = 1e-3  # float16 rows sum to 1 within this
KMEANS_ITERATIONS = 30


@dataclass(frozen=True)
class VQLabels:
    step_log2: int
    codebook: torch.Tensor  # int32 k x K: quantised log-probabilities
    indices: torch.Tensor  # int64 N

    def probabilities(self) -> torch.Tensor:
        return decode_vq(self.codebook, self.step_log2)[self.indices]

    def to_dict(self) -> dict:
        return {"step_log2": self.step_log2, "codebook": self.codebook.contiguous(),
                "indices": self.indices.contiguous()}


@dataclass(frozen=True)
class VQAELabels:
    code_step_log2: int
    weight_step_log2: int
    codebook: torch.Tensor  # int32 k x d_c
    weights: tuple  # int32: first layer weight (d_h x d_c) and bias, last (K x d_h) and bias
    indices: torch.Tensor  # int64 N

    def table(self) -> torch.Tensor:
        """The k decoded distributions: softmax(decoder(entry)), float64 -> float32."""
        w1, b1, w2, b2 = (t.to(torch.float64) * 2.0 ** self.weight_step_log2
                          for t in self.weights)
        z = self.codebook.to(torch.float64) * 2.0 ** self.code_step_log2
        hidden = torch.relu(z @ w1.T + b1)
        return torch.softmax(hidden @ w2.T + b2, dim=1).float()

    def probabilities(self) -> torch.Tensor:
        return self.table()[self.indices]

    @property
    def shapes(self) -> tuple[int, int, int]:
        """(k, d_c, d_h)."""
        return (int(self.codebook.shape[0]), int(self.codebook.shape[1]),
                int(self.weights[0].shape[0]))

    def to_dict(self) -> dict:
        return {"code_step_log2": self.code_step_log2,
                "weight_step_log2": self.weight_step_log2,
                "codebook": self.codebook.contiguous(),
                "weights": [t.contiguous() for t in self.weights],
                "indices": self.indices.contiguous()}


@dataclass(frozen=True)
class TopKLabels:
    bits: int
    classes: torch.Tensor  # int64 N x k: the kept classes, most probable first
    values: torch.Tensor  # int32 N x k: their probabilities x (2^bits - 1), rounded

    def probabilities(self, num_classes: int) -> torch.Tensor:
        return decode_topk(self.classes, self.values, self.bits, num_classes)

    def to_dict(self) -> dict:
        return {"bits": self.bits, "classes": self.classes.contiguous(),
                "values": self.values.contiguous()}


@dataclass(frozen=True)
class SoftLabels:
    probabilities: torch.Tensor  # float32 N x K, what training sees (decoded)
    temperature: float
    loss: str = "ce"
    codec: str = "float16"
    vq: VQLabels | None = None
    teacher: dict = field(default_factory=dict)
    topk: TopKLabels | None = None
    vqae: VQAELabels | None = None
    epochs: int = 0  # 0: static, one row per image; E: one per image and epoch
    view_seed: int = 0  # per-epoch: the key of the labelled views
    view_strategy: str = ""  # per-epoch: the DSA groups the views draw from

    @property
    def per_epoch(self) -> bool:
        return self.epochs > 0

    def views(self):
        """The views per-epoch labels were made on (None for static labels)."""
        from ddcodec.data.augment import LabelViews

        return LabelViews(self.view_seed, self.view_strategy) if self.per_epoch else None

    def training_rows(self) -> torch.Tensor:
        """N x K (static) or E x N x K (per epoch): what a network trains on."""
        p = self.probabilities
        return p.view(self.epochs, -1, p.shape[1]) if self.per_epoch else p

    def take(self, rows: torch.Tensor) -> "SoftLabels":
        """The labels of images `rows` (static labels), in the same rung: its indices or rows
        are taken, its codebook and tables kept, so the values are exactly the same."""
        if self.per_epoch:
            raise DDCodecError("per-epoch soft labels belong to their images' views and cannot "
                               "be given to other images (a distributional set takes one "
                               "label per prior)")
        from dataclasses import replace

        rows = torch.as_tensor(rows, dtype=torch.int64)
        parts = {}
        if self.vq is not None:
            parts["vq"] = replace(self.vq, indices=self.vq.indices[rows])
        if self.vqae is not None:
            parts["vqae"] = replace(self.vqae, indices=self.vqae.indices[rows])
        if self.topk is not None:
            parts["topk"] = replace(self.topk, classes=self.topk.classes[rows],
                                    values=self.topk.values[rows])
        return replace(self, probabilities=self.probabilities[rows], **parts)

    @property
    def float16_bits(self) -> int:
        """The papers' count: 16 bits per probability."""
        return 16 * self.probabilities.numel()

    def to_dict(self) -> dict:
        views = ({"epochs": self.epochs, "view_seed": self.view_seed,
                  "view_strategy": self.view_strategy} if self.per_epoch else {})
        return {"probabilities": self.probabilities.contiguous(), "temperature": self.temperature,
                "loss": self.loss, "codec": self.codec, "teacher": dict(self.teacher), **views,
                **({"vq": self.vq.to_dict()} if self.vq is not None else {}),
                **({"vqae": self.vqae.to_dict()} if self.vqae is not None else {}),
                **({"topk": self.topk.to_dict()} if self.topk is not None else {})}

    @classmethod
    def from_dict(cls, raw: dict, num_images: int, num_classes: int) -> "SoftLabels":
        """Validate a set file's soft labels; one line names what is wrong."""
        try:
            probs = raw["probabilities"]
            temperature, loss, codec = float(raw["temperature"]), raw["loss"], raw["codec"]
            views = {"epochs": int(raw.get("epochs", 0)),
                     "view_seed": int(raw.get("view_seed", 0)),
                     "view_strategy": str(raw.get("view_strategy", ""))}
        except (KeyError, TypeError, ValueError) as exc:
            raise DDCodecError(f"damaged soft labels ({exc})") from None
        payload = {}
        if codec in PAYLOADS:  # the rung's integers: what the file stores
            build = PAYLOADS[codec]
            try:
                payload[codec] = build(raw[codec])
            except (KeyError, TypeError, ValueError) as exc:
                raise DDCodecError(f"damaged {codec} soft labels ({exc})") from None
        labels = cls(probs, temperature, loss, codec, teacher=dict(raw.get("teacher", {})),
                     **payload, **views)
        check_soft_labels(labels, num_images, num_classes)
        return labels


PAYLOADS = {
    "vq": lambda v: VQLabels(int(v["step_log2"]), v["codebook"], v["indices"]),
    "topk": lambda t: TopKLabels(int(t["bits"]), t["classes"], t["values"]),
    "vqae": lambda a: VQAELabels(int(a["code_step_log2"]), int(a["weight_step_log2"]),
                                 a["codebook"], tuple(a["weights"]), a["indices"]),
}


def check_soft_labels(labels: SoftLabels, num_images: int, num_classes: int) -> None:
    p = labels.probabilities
    if not isinstance(p, torch.Tensor) or not p.is_floating_point() or p.ndim != 2:
        raise DDCodecError("soft labels must be a float N x classes tensor")
    _check_views(labels)
    rows = num_images * max(1, labels.epochs)
    if p.shape != (rows, num_classes):
        per = f" x {labels.epochs} epochs" if labels.per_epoch else ""
        raise DDCodecError(f"soft labels are {tuple(p.shape)}; the set needs "
                           f"{(rows, num_classes)} (one row per image{per}, one column per "
                           "class)")
    num_images = rows  # every rung below codes the rows
    if not torch.isfinite(p).all():
        raise DDCodecError("soft labels hold NaN or infinite values")
    if (p < 0).any():
        raise DDCodecError("soft labels hold negative probabilities")
    sums = p.double().sum(1)
    if len(sums) and float((sums - 1).abs().max()) > ROW_SUM_TOLERANCE:
        worst = int((sums - 1).abs().argmax())
        raise DDCodecError(f"soft-label row {worst} sums to {float(sums[worst]):.4f}, not 1 "
                           "(logits? turn them into probabilities with a softmax first)")
    if labels.loss not in LABEL_LOSSES:
        raise DDCodecError(f"soft-label loss {labels.loss!r}: use ce or kl")
    if not (math.isfinite(labels.temperature) and labels.temperature > 0):
        raise DDCodecError("the soft-label temperature must be > 0")
    if labels.codec not in LABEL_CODECS:
        raise DDCodecError(f"soft-label codec {labels.codec!r}: use {', '.join(LABEL_CODECS)}")
    if labels.codec == "topk":
        _check_topk(labels, num_images, num_classes)
    if labels.codec == "vqae":
        _check_vqae(labels, num_images, num_classes)
    if labels.codec == "vq":
        vq = labels.vq
        if (vq is None or vq.codebook.ndim != 2 or vq.codebook.shape[1] != num_classes
                or vq.indices.shape != (num_images,) or vq.codebook.is_floating_point()
                or vq.indices.is_floating_point()):
            raise DDCodecError("VQ soft labels need an integer k x classes codebook and one "
                               "integer index per image")
        if len(vq.indices) and (int(vq.indices.min()) < 0
                                or int(vq.indices.max()) >= vq.codebook.shape[0]):
            raise DDCodecError("VQ soft-label indices fall outside the codebook")
        # the softmax is float arithmetic: equal on one machine, within rounding on another
        if not torch.allclose(vq.probabilities(), labels.probabilities, rtol=0, atol=1e-6):
            raise DDCodecError("VQ soft labels disagree with their codebook and indices")


def _check_vqae(labels: SoftLabels, num_images: int, num_classes: int) -> None:
    a = labels.vqae
    ok = a is not None and a.codebook.ndim == 2 and len(a.weights) == 4 and all(
        isinstance(t, torch.Tensor) and not t.is_floating_point()
        for t in (a.codebook, *a.weights, a.indices))
    if ok:
        k, code, hidden = a.shapes
        ok = (tuple(a.weights[0].shape) == (hidden, code) and tuple(a.weights[1].shape) == (
            hidden,) and tuple(a.weights[2].shape) == (num_classes, hidden)
              and tuple(a.weights[3].shape) == (num_classes,)
              and a.indices.shape == (num_images,))
    if not ok:
        raise DDCodecError("VQ-autoencoder soft labels need an integer k x d_c codebook, a d_c "
                           "-> d_h -> classes decoder and one integer index per image")
    if len(a.indices) and (int(a.indices.min()) < 0
                           or int(a.indices.max()) >= a.codebook.shape[0]):
        raise DDCodecError("VQ-autoencoder soft-label indices fall outside the codebook")
    if not torch.allclose(a.probabilities(), labels.probabilities, rtol=0, atol=1e-6):
        raise DDCodecError("VQ-autoencoder soft labels disagree with their codebook, decoder "
                           "and indices")


MAX_LABEL_EPOCHS = LABELS.epochs
MAX_LABEL_VALUES = LABELS.values  # rows x classes a file may decode to (256 MB of float32)


def _check_views(labels: SoftLabels) -> None:
    from ddcodec.data.augment import DSAParams

    if not 0 <= labels.epochs <= MAX_LABEL_EPOCHS:
        raise DDCodecError(f"per-epoch soft labels take 1 to {MAX_LABEL_EPOCHS:,} epochs")
    if labels.per_epoch:
        if not 0 <= labels.view_seed < 1 << 63:
            raise DDCodecError("the views' seed must be in [0, 2^63)")
        try:
            DSAParams(strategy=labels.view_strategy).groups()
        except ValueError as exc:
            raise DDCodecError(f"per-epoch soft labels: {exc}") from None


def _check_topk(labels: SoftLabels, num_images: int, num_classes: int) -> None:
    t = labels.topk
    if (t is None or t.classes.ndim != 2 or t.classes.shape[0] != num_images
            or t.values.shape != t.classes.shape or t.classes.is_floating_point()
            or t.values.is_floating_point() or not 1 <= t.bits <= 16
            or not 1 <= t.classes.shape[1] <= num_classes):
        raise DDCodecError("top-k soft labels need N x k integer classes and values, "
                           "1 <= k <= classes, 1 to 16 bits")
    if len(t.classes) and (int(t.classes.min()) < 0 or int(t.classes.max()) >= num_classes
                           or int(t.values.min()) < 0
                           or int(t.values.max()) > (1 << t.bits) - 1):
        raise DDCodecError("top-k soft labels hold a class or a value out of range")
    if not torch.allclose(t.probabilities(num_classes), labels.probabilities, rtol=0,
                          atol=1e-6):
        raise DDCodecError("top-k soft labels disagree with their classes and values")


def decode_topk(classes: torch.Tensor, values: torch.Tensor, bits: int,
                num_classes: int) -> torch.Tensor:
    """Distributions from the top-k integers: kept p = m / (2^bits - 1), the rest spread evenly
    (renormalised when the kept integers exceed the scale), float64 -> float32."""
    scale = float((1 << bits) - 1)
    n, k = classes.shape
    kept = values.to(torch.float64)
    total = kept.sum(1, keepdim=True)
    over = total > scale
    kept = torch.where(over, kept / total.clamp_min(1), kept / scale)
    rest = num_classes - k
    left = (1 - kept.sum(1, keepdim=True)).clamp_min(0)
    fill = left / rest if rest else torch.zeros_like(left)
    out = fill.expand(n, num_classes).clone()
    out.scatter_(1, classes, kept)
    if not rest:  # nothing to spread the rest over: renormalise what is kept
        out = out / out.sum(1, keepdim=True).clamp_min(1e-300)
    return out.float()


def as_topk(probabilities: torch.Tensor, k: int, bits: int = 8, **meta) -> SoftLabels:
    """The top-k rung: the k most probable classes per sample at `bits` bits each."""
    num_classes = probabilities.shape[1]
    if not 1 <= k <= num_classes:
        raise DDCodecError(f"--k must be between 1 and the {num_classes} classes for top-k")
    if not 1 <= bits <= 16:
        raise DDCodecError("top-k probabilities take 1 to 16 bits")
    top = probabilities.double().topk(k, dim=1)
    values = torch.round(top.values * ((1 << bits) - 1)).to(torch.int32)
    topk = TopKLabels(bits, top.indices.to(torch.int64), values)
    return SoftLabels(topk.probabilities(num_classes), codec="topk", topk=topk, **meta)


def decode_vq(codebook: torch.Tensor, step_log2: int) -> torch.Tensor:
    """Distributions of quantised log-probabilities: softmax(q x 2^step), float64 -> float32."""
    return torch.softmax(codebook.to(torch.float64) * 2.0 ** step_log2, dim=1).float()


def as_float16(probabilities: torch.Tensor, **meta) -> SoftLabels:
    """The float16 rung: probabilities rounded to float16 (what the file stores)."""
    return SoftLabels(probabilities.half().float(), codec="float16", **meta)


def as_vq(probabilities: torch.Tensor, k: int, step_log2: int = -4, seed: int = 0,
          **meta) -> SoftLabels:
    """The VQ rung: KL k-means (k-means++ start from `seed`), the centroids' log-probabilities
    quantised to step 2^step_log2, each sample replaced by the decoded centroid nearest it."""
    if k < 1:
        raise DDCodecError("the VQ codebook needs at least one entry (--k >= 1)")
    p = probabilities.double()
    centroids = _kl_kmeans(p, min(k, len(p)), seed)
    step = 2.0 ** step_log2
    logq = centroids.clamp_min(math.exp(LOG_FLOOR)).log()
    codebook = torch.round(logq / step).clamp(LOG_FLOOR / step, 0).to(torch.int32)
    codebook = torch.unique(codebook, dim=0)  # equal rows after rounding: keep one
    indices = kl_nearest(p, torch.log_softmax(codebook.double() * step, dim=1))
    vq = VQLabels(step_log2, codebook, indices)
    return SoftLabels(vq.probabilities(), codec="vq", vq=vq, **meta)


def kl_nearest(p: torch.Tensor, log_centres: torch.Tensor) -> torch.Tensor:
    """Each row's centre of least cross-entropy -sum p log q (least KL(p || q))."""
    return (-(p @ log_centres.T)).argmin(1)


def _kl_kmeans(p: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k-means under KL(p || q) on distributions (Bregman k-means: the centre of a cluster is
    its mean), k-means++ start, deterministic for a seed."""
    generator = torch.Generator().manual_seed(seed)
    floor = math.exp(LOG_FLOOR)
    entropy = (p * p.clamp_min(floor).log()).sum(1)

    def divergence(centres: torch.Tensor) -> torch.Tensor:  # rows x centres: KL(p || q)
        return entropy[:, None] - p @ centres.clamp_min(floor).log().T

    picks = [int(torch.randint(len(p), (1,), generator=generator))]
    nearest = divergence(p[picks]).min(1).values  # to the closest centre so far (exact: a min)
    while len(picks) < k:
        d = nearest.clamp_min(0)
        if float(d.sum()) <= 0:
            break
        picks.append(int(torch.multinomial(d / d.sum(), 1, generator=generator)))
        nearest = torch.minimum(nearest, divergence(p[picks[-1:]])[:, 0])
    centres = p[picks]
    for _ in range(KMEANS_ITERATIONS):
        assign = divergence(centres).argmin(1)
        moved = torch.stack([p[assign == j].mean(0) if (assign == j).any() else centres[j]
                             for j in range(len(centres))])
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres
