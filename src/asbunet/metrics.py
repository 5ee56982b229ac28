"""Person-mask metrics: the paper's ignore-band IoU (Section IV-C, Eq. 3) and the usual segmentation scores.

Eq. 3 ignores a band around every labelled object, because hand-drawn labels are unreliable exactly there:

    ll = Y (+) J_osf          dilated label
    sl = Y (-) J_osf          eroded label
    b_ignore = not (ll xor sl)
    Y_new = Y & b_ignore,  Y_pred_new = Y_pred & b_ignore

then takes the Jaccard index of `Y_new` and `Y_pred_new` and subtracts 1.0 for each false detection. The paper
leaves the "objectwise scale factor" (osf), the structuring element and the normalization of the penalty open; the
choices made here are the fields of `IgnoreBand`, with these defaults:

- Objects are the 8-connected components of the label. Each object gets its own band of half-width
  `r = clip(round(scale * sqrt(area)), min_width, max_width)` pixels, the band being `dilate(obj) xor erode(obj)`
  with a disk of radius `r`. `sqrt(area)` is the object's linear size, so the band is the same fraction of every
  object and the score does not change when the image is resized; small objects keep thin bands, which is what the
  paper asks of the scale factor. `scale=0.02` gives 9-12 px on the 600x800 portraits of pfcn_portrait (person
  ~290k px), 6-7 px on the 550x830 full-body photos of ccp (~100k px) and the 1 px floor below ~1,600 px: 2% of
  an object's size, the order of the tracing error of a hand-drawn outline around hair, fingers and loose
  clothing. `max_width=None` (no cap) because a cap would break that resolution invariance.
- The image frame is not an edge of the label: objects touching the frame are not eroded from it.
- A false detection is an 8-connected component of the prediction that touches neither a label object nor any
  band, and covers at least `min_false_fraction` of the image (default 1e-4: 48 px of a 600x800 image, larger than
  one upsampled pixel of a 256-pixel network output, so isolated speckles are not counted as detections).
- score = IoU - penalty * n_false with `penalty=1.0` (the paper's figure) and no floor (`floor=None`), so the mean
  over images decomposes exactly as: mean band IoU - penalty * false detections per image. Set `floor=0.0` to keep
  every image's score in [0, 1]. The pixels of a false detection also stay in the IoU's union: the penalty is
  extra, as the paper says.

Every ratio whose denominator is zero (nothing labelled and nothing predicted, for IoU, Dice, Boundary IoU and the
ignore-band IoU; no predicted pixel for precision; no labelled pixel for recall) is 1.0: there was nothing to get
wrong. Predictions are binary masks, a probability map becomes one with `asbunet.inference.postprocess.binarize`
(`probability >= threshold`, the one rule of the package).

Three figures describe how much is called person, the failure of a model that marks textured background, animals
or objects as person:

- `background_fp_rate`: false-positive pixels / background pixels of the label (0.0 when the label has no
  background); pooled: all false positives over all background pixels.
- `person_share`: predicted person pixels / all pixels; on frames that show no person this is the error itself.
- `over_2x`: 1.0 when the predicted person area is more than twice (`OVER_FACTOR`) the labelled one, else 0.0;
  NaN for an image without a labelled person, and the mean (pooled: the same figure) is the share of the images
  with a person label.

`count_wins` compares two models image by image (higher IoU by more than `WIN_MARGIN` wins, ties counted apart).

Boundary IoU follows Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation Evaluation", CVPR
2021: the pixels of each mask within `d = max(1, round(0.02 * image diagonal))` of its contour (the image frame
counts as contour there), then the IoU of the two boundary regions.

Inputs are numpy arrays or torch tensors, one image `(H, W)` or a batch `(B, H, W)`. `reduction="mean"` averages the
per-image scores, `"pooled"` sums numerators and denominators over all pixels of all images first, `"none"` returns
the per-image scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

REDUCTIONS = ("mean", "pooled", "none")
METRICS = (  # the keys of `ImageStats.scores` and `summarize`, in report order
    "ignore_band_iou",
    "band_iou",
    "false_detections",
    "iou",
    "dice",
    "precision",
    "recall",
    "boundary_iou",
    "mae",
    "background_fp_rate",
    "person_share",
    "over_2x",
)
BOUNDARY_DILATION_RATIO = 0.02  # Cheng et al. 2021
OVER_FACTOR = 2.0  # `over_2x`: predicted person area more than this many times the labelled one
WIN_MARGIN = 0.01  # `count_wins`: a score higher by more than this is a win, lower by more a loss


@dataclass(frozen=True)
class IgnoreBand:
    """Parameters of the ignore-band IoU (Eq. 3); the module docstring explains each default.

    Args:
        scale: band half-width per unit of an object's linear size `sqrt(area)` (the objectwise scale factor).
        min_width: smallest band half-width in pixels (0 allows no band on small objects).
        max_width: largest band half-width in pixels; None for no cap.
        penalty: subtracted from an image's score for each false detection (the paper's 1.0).
        min_false_fraction: smallest predicted component, as a fraction of the image area, counted as a detection.
        floor: lowest score of one image (and of the pooled score); None for no floor.
    """

    scale: float = 0.02
    min_width: int = 1
    max_width: int | None = None
    penalty: float = 1.0
    min_false_fraction: float = 1e-4
    floor: float | None = None

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"IgnoreBand.scale must be a finite number >= 0, got {self.scale}")
        if int(self.min_width) != self.min_width or self.min_width < 0:
            raise ValueError(f"IgnoreBand.min_width must be a whole number of pixels >= 0, got {self.min_width}")
        if self.max_width is not None and (int(self.max_width) != self.max_width or self.max_width < self.min_width):
            raise ValueError(
                f"IgnoreBand.max_width must be None or a whole number >= min_width ({self.min_width}), "
                f"got {self.max_width}"
            )
        if not (np.isfinite(self.penalty) and self.penalty >= 0):
            raise ValueError(f"IgnoreBand.penalty must be a finite number >= 0, got {self.penalty}")
        if not 0 <= self.min_false_fraction < 1:
            raise ValueError(f"IgnoreBand.min_false_fraction must be in [0, 1), got {self.min_false_fraction}")

    def width(self, area: int) -> int:
        """Band half-width in pixels for an object of `area` pixels."""
        r = max(int(self.min_width), int(np.floor(self.scale * np.sqrt(area) + 0.5)))
        return r if self.max_width is None else min(r, int(self.max_width))

    def score(self, iou: float, n_false: float) -> float:
        """IoU minus the false-detection penalty, floored when `floor` is set."""
        s = iou - self.penalty * n_false
        return s if self.floor is None else max(self.floor, s)


# ----------------------------------------------------------------------------------------------- input checks


def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    return x


def _as_batch(x, name: str) -> np.ndarray:
    x = _to_numpy(x, name)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(
            f"{name} must be one image (H, W) or a batch (B, H, W), got shape {x.shape}; squeeze any "
            "channel axis first, e.g. mask[:, 0] for (B, 1, H, W)"
        )
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    return x


def as_masks(x, name: str = "mask") -> np.ndarray:
    """Checks that `x` holds only 0 and 1 (or booleans) and returns it as a bool batch `(B, H, W)`.

    Raises:
        ValueError: for another shape or for values other than 0 and 1; the message says how to convert.
    """
    x = _as_batch(x, name)
    if x.dtype == bool:
        return x
    if not ((x == 0) | (x == 1)).all():
        lo, hi = x.min(), x.max()
        if hi > 1 and lo >= 0 and float(hi) <= 255 and np.isin(x, (0, hi)).all():
            fix = f"it looks like a 0/{hi} mask: use (mask > 0)"
        else:
            fix = "threshold probabilities first, e.g. asbunet.inference.postprocess.binarize(probability, 0.5)"
        raise ValueError(f"{name} must be binary (0/1 or bool), found values in [{lo}, {hi}]; {fix}")
    return x.astype(bool)


def _check_pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    p, y = as_masks(pred, "pred"), as_masks(target, "target")
    if p.shape != y.shape:
        raise ValueError(
            f"pred and target shapes differ: {p.shape} vs {y.shape}; compare masks at the label's "
            "resolution (resize the prediction to the label size first)"
        )
    return p, y


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")


# ---------------------------------------------------------------------------------------- per-image building blocks


def ignore_band(target, params: IgnoreBand | None = None) -> np.ndarray:
    """The band of Eq. 3 around every object of a label `(H, W)`: bool `(H, W)`, True where pixels are ignored.

    Each 8-connected object gets `dilate(obj) xor erode(obj)` with a disk whose radius scales with the object
    (`IgnoreBand.width`); the bands of all objects are united.
    """
    params = params or IgnoreBand()
    y = as_masks(target, "target")
    if y.shape[0] != 1:
        raise ValueError(f"ignore_band takes one label (H, W), got a batch of {y.shape[0]}; call it per image")
    y = y[0].astype(np.uint8)
    height, width = y.shape
    band = np.zeros((height, width), bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(y, connectivity=8)
    for k in range(1, n):
        x0, y0, w, h, area = stats[k]
        r = params.width(int(area))
        if r == 0:
            continue
        # The object's box grown by r holds all of its band; at the image frame the default OpenCV border keeps
        # erosion from eating the object (the frame is no edge of the label).
        ya, yb, xa, xb = max(0, y0 - r), min(height, y0 + h + r), max(0, x0 - r), min(width, x0 + w + r)
        obj = (labels[ya:yb, xa:xb] == k).astype(np.uint8)
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        band[ya:yb, xa:xb] |= cv2.dilate(obj, disk) != cv2.erode(obj, disk)
    return band


def false_detection_mask(pred, target, band: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, int]:
    """Predicted objects that touch neither a label object nor the band, of at least `min_area` pixels.

    Args:
        pred: binary prediction `(H, W)`.
        target: binary label `(H, W)`.
        band: the ignore band of `target` (see `ignore_band`).
        min_area: smallest component, in pixels, counted as a detection.

    Returns:
        The union of the false detections as a bool `(H, W)` mask, and their number.
    """
    p, y = _check_pair(pred, target)
    p, y = p[0], y[0]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(p.astype(np.uint8), connectivity=8)
    if n == 1:
        return np.zeros_like(p), 0
    touched = np.unique(labels[y | band])  # component ids with a pixel on an object or its band
    keep = stats[:, cv2.CC_STAT_AREA] >= max(1, min_area)
    keep[0] = False  # background
    keep[touched] = False
    return keep[labels], int(keep.sum())


def _boundary(mask: np.ndarray, dilation: int) -> np.ndarray:
    """Cheng et al.'s `mask_to_boundary`: mask pixels within `dilation` of its contour or of the image frame."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1:-1, 1:-1]
    return mask & (eroded == 0)


def boundary_dilation(height: int, width: int, ratio: float = BOUNDARY_DILATION_RATIO) -> int:
    """Boundary IoU's band width in pixels: `max(1, round(ratio * image diagonal))`."""
    return max(1, int(round(ratio * np.hypot(height, width))))


def _ratio(num: float, den: float) -> float:
    return 1.0 if den == 0 else float(num) / float(den)


def _fp_rate(fp: float, background: float) -> float:
    """False positives per background pixel; 0.0 without background (there was none to mark)."""
    return 0.0 if background == 0 else float(fp) / float(background)


def _over(predicted: float, labelled: float) -> float:
    """1.0 when the predicted area exceeds `OVER_FACTOR` times the labelled one, 0.0 if not, NaN without a label."""
    return float("nan") if labelled == 0 else float(predicted > OVER_FACTOR * labelled)


@dataclass(frozen=True)
class ImageStats:
    """Pixel counts of one image from which every metric follows, per image or pooled over a data set."""

    pixels: int
    tp: int
    fp: int
    fn: int
    band_intersection: int  # |Y_new & Y_pred_new| of Eq. 3
    band_union: int  # |Y_new | Y_pred_new|
    false_detections: int
    boundary_intersection: int
    boundary_union: int
    abs_error: float | None = None  # sum of |probability - label|; None without a probability map

    def scores(self, params: IgnoreBand | None = None) -> dict[str, float]:
        """The image's metrics (`METRICS` order); `mae` is NaN when no probability map was given."""
        params = params or IgnoreBand()
        band_iou = _ratio(self.band_intersection, self.band_union)
        return {
            "ignore_band_iou": params.score(band_iou, self.false_detections),
            "band_iou": band_iou,
            "false_detections": float(self.false_detections),
            "iou": _ratio(self.tp, self.tp + self.fp + self.fn),
            "dice": _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
            "boundary_iou": _ratio(self.boundary_intersection, self.boundary_union),
            "mae": float("nan") if self.abs_error is None else self.abs_error / self.pixels,
            "background_fp_rate": _fp_rate(self.fp, self.pixels - self.tp - self.fn),
            "person_share": (self.tp + self.fp) / self.pixels,
            "over_2x": _over(self.tp + self.fp, self.tp + self.fn),
        }

    def as_dict(self) -> dict:
        return asdict(self)


def image_stats(
    pred,
    target,
    probability=None,
    params: IgnoreBand | None = None,
    boundary_ratio: float = BOUNDARY_DILATION_RATIO,
) -> ImageStats:
    """All counts of one image: binary prediction and label `(H, W)`, optionally the probability map for MAE."""
    params = params or IgnoreBand()
    p, y = _check_pair(pred, target)
    if p.shape[0] != 1:
        raise ValueError(f"image_stats takes one image (H, W), got a batch of {p.shape[0]}; call it per image")
    p, y = p[0], y[0]
    band = ignore_band(y, params)
    kept = ~band
    min_area = int(np.ceil(params.min_false_fraction * y.size))
    _, n_false = false_detection_mask(p, y, band, min_area)
    d = boundary_dilation(*y.shape, boundary_ratio)
    bp, by = _boundary(p, d), _boundary(y, d)
    abs_error = None
    if probability is not None:
        prob = _as_probability(probability, y.shape)[0]
        abs_error = float(np.abs(prob - y).sum(dtype=np.float64))
    return ImageStats(
        pixels=int(y.size),
        tp=int((p & y).sum()),
        fp=int((p & ~y).sum()),
        fn=int((~p & y).sum()),
        band_intersection=int((p & y & kept).sum()),
        band_union=int(((p | y) & kept).sum()),
        false_detections=n_false,
        boundary_intersection=int((bp & by).sum()),
        boundary_union=int((bp | by).sum()),
        abs_error=abs_error,
    )


def summarize(stats: Sequence[ImageStats], params: IgnoreBand | None = None) -> dict[str, dict[str, float]]:
    """Every metric of a data set, `{"mean": {...}, "pooled": {...}}` (see the module docstring).

    `false_detections` is the number per image in both. The pooled ignore-band IoU is the pooled band IoU minus the
    penalty times the false detections per image. `over_2x` is the share of the images with a labelled person in
    both (NaN when no image has one).
    """
    params = params or IgnoreBand()
    if not stats:
        raise ValueError("no images to summarize")
    per_image = [s.scores(params) for s in stats]
    mean = {k: float(np.mean([s[k] for s in per_image])) for k in METRICS if k != "over_2x"}
    over = [s["over_2x"] for s in per_image if not np.isnan(s["over_2x"])]
    mean["over_2x"] = float(np.mean(over)) if over else float("nan")

    def total(field: str) -> float:
        return sum(getattr(s, field) for s in stats)

    tp, fp, fn = total("tp"), total("fp"), total("fn")
    false_per_image = total("false_detections") / len(stats)
    band_iou = _ratio(total("band_intersection"), total("band_union"))
    have_prob = all(s.abs_error is not None for s in stats)
    pooled = {
        "ignore_band_iou": params.score(band_iou, false_per_image),
        "band_iou": band_iou,
        "false_detections": false_per_image,
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "boundary_iou": _ratio(total("boundary_intersection"), total("boundary_union")),
        "mae": total("abs_error") / total("pixels") if have_prob else float("nan"),
        "background_fp_rate": _fp_rate(fp, total("pixels") - tp - fn),
        "person_share": (tp + fp) / total("pixels"),
        "over_2x": mean["over_2x"],
    }
    return {"mean": {k: mean[k] for k in METRICS}, "pooled": pooled}


def count_wins(reference: Sequence[float], other: Sequence[float], margin: float = WIN_MARGIN) -> dict[str, int]:
    """Image-by-image comparison of two models' scores (e.g. IoU) on the same images.

    Returns:
        `{"wins": n, "ties": n, "losses": n}`: images where `reference` is higher by more than `margin`, within
        `margin` either way, lower by more than `margin`.
    """
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"reference and other must list the same images, got shapes {a.shape} and {b.shape}")
    d = a - b
    tol = 1e-9  # a difference of exactly `margin` is a tie despite float rounding (0.92 - 0.91 > 0.01)
    wins, losses = int((d > margin + tol).sum()), int((d < -margin - tol).sum())
    return {"wins": wins, "ties": len(d) - wins - losses, "losses": losses}


# ------------------------------------------------------------------------------------------ metric functions


def _reduce(num: np.ndarray, den: np.ndarray, reduction: str) -> float | np.ndarray:
    per_image = np.array([_ratio(n, d) for n, d in zip(num.tolist(), den.tolist(), strict=True)])
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return float(per_image.mean())
    return _ratio(num.sum(), den.sum())


def _confusion(pred, target, reduction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_reduction(reduction)
    p, y = _check_pair(pred, target)
    tp = (p & y).sum(axis=(1, 2), dtype=np.int64)
    return tp, (p & ~y).sum(axis=(1, 2), dtype=np.int64), (~p & y).sum(axis=(1, 2), dtype=np.int64)


def iou(pred, target, reduction: str = "mean") -> float | np.ndarray:
    """Person IoU (Jaccard index) `|P & Y| / |P | Y|` of binary masks `(H, W)` or `(B, H, W)`."""
    tp, fp, fn = _confusion(pred, target, reduction)
    return _reduce(tp, tp + fp + fn, reduction)


def dice(pred, target, reduction: str = "mean") -> float | np.ndarray:
    """Dice coefficient (pixel F1) `2 |P & Y| / (|P| + |Y|)`."""
    tp, fp, fn = _confusion(pred, target, reduction)
    return _reduce(2 * tp, 2 * tp + fp + fn, reduction)


def precision(pred, target, reduction: str = "mean") -> float | np.ndarray:
    """Fraction of predicted person pixels that are person in the label (1.0 when nothing is predicted)."""
    tp, fp, _ = _confusion(pred, target, reduction)
    return _reduce(tp, tp + fp, reduction)


def recall(pred, target, reduction: str = "mean") -> float | np.ndarray:
    """Fraction of labelled person pixels that are predicted (1.0 when the label is empty)."""
    tp, _, fn = _confusion(pred, target, reduction)
    return _reduce(tp, tp + fn, reduction)


def boundary_iou(
    pred, target, dilation_ratio: float = BOUNDARY_DILATION_RATIO, reduction: str = "mean"
) -> float | np.ndarray:
    """Boundary IoU (Cheng et al., CVPR 2021) with a band of `dilation_ratio` of the image diagonal."""
    _check_reduction(reduction)
    p, y = _check_pair(pred, target)
    d = boundary_dilation(p.shape[1], p.shape[2], dilation_ratio)
    bp, by = [np.stack([_boundary(m, d) for m in masks]) for masks in (p, y)]
    return _reduce((bp & by).sum(axis=(1, 2)), (bp | by).sum(axis=(1, 2)), reduction)


def _as_probability(probability, shape: tuple[int, ...]) -> np.ndarray:
    prob = _as_batch(probability, "probability").astype(np.float64)
    if prob.shape[1:] != tuple(shape[-2:]) or (len(shape) == 3 and prob.shape[0] != shape[0]):
        raise ValueError(
            f"probability shape {prob.shape} differs from target shape {tuple(shape)}; resize the "
            "probability map to the label size first"
        )
    if not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1:
        raise ValueError("probability must be finite and within [0, 1]; apply a sigmoid to logits first")
    return prob


def mean_absolute_error(probability, target, reduction: str = "mean") -> float | np.ndarray:
    """Mean absolute difference between a probability map in [0, 1] and the binary label."""
    _check_reduction(reduction)
    y = as_masks(target, "target")
    err = np.abs(_as_probability(probability, y.shape) - y).sum(axis=(1, 2))
    return _reduce(err, np.full(len(y), y[0].size, np.int64), reduction)


def ignore_band_iou(pred, target, params: IgnoreBand | None = None, reduction: str = "mean") -> float | np.ndarray:
    """The paper's metric (Eq. 3): IoU outside each object's ignore band minus a penalty per false detection.

    Args:
        pred: binary prediction `(H, W)` or `(B, H, W)`.
        target: binary label of the same shape.
        params: band, penalty and floor (see `IgnoreBand`; defaults when None).
        reduction: "mean" of the per-image scores, "pooled" band IoU over all pixels minus the penalty times the
            false detections per image, or "none" for the per-image scores.
    """
    _check_reduction(reduction)
    params = params or IgnoreBand()
    p, y = _check_pair(pred, target)
    stats = [image_stats(pi, yi, params=params) for pi, yi in zip(p, y, strict=True)]
    if reduction == "none":
        return np.array([s.scores(params)["ignore_band_iou"] for s in stats])
    return summarize(stats, params)[reduction]["ignore_band_iou"]
