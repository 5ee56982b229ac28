"""A grid of augmented training samples with their masks overlaid: what the model is fed (Section IV-A).

The samples come from the training pipeline itself (`SamplePool`, `TrainDataset`, `ShapeBatchSampler`, the config's
`augment:` and `shapes:`), so the grid shows the crops, composites, flips, noise, gamma, shadows and colour changes
at the canvas shapes training uses. With `pool_size=None` the whole training set is loaded and the grid holds
exactly the first samples of the chosen epoch of a single-process run; a smaller pool (a seeded subset of the
samples) is much faster on large datasets and goes through the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from asbunet.atomic import save_figure
from asbunet.data.augment import AugmentConfig
from asbunet.data.dataset import EpochRandomSampler, SamplePool, ShapeBatchSampler, TrainDataset
from asbunet.data.io import DataError
from asbunet.data.sources import Sample, Source, open_source, split_indices
from asbunet.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
from asbunet.train.config import TrainConfig

OVERLAY_RGB = (40, 220, 90)  # person tint
CONTOUR_RGB = (255, 230, 0)  # mask outline


@dataclass(frozen=True)
class PreviewSample:
    """One augmented training sample: the network input (denormalized) and its label."""

    image: np.ndarray  # (h, w, 3) uint8 RGB
    mask: np.ndarray  # (h, w) uint8 in {0, 1}
    name: str  # the file the sample was drawn from (a composite's pasted person)


class _SubsetSource:
    """The samples `indices` of `source`, with the source's `load` (a pool of a few samples for a quick preview)."""

    def __init__(self, source: Source, indices: list[int]):
        self.source, self.indices = source, indices
        self.samples: list[Sample] = [source.samples[i] for i in indices]
        self.name = source.name

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.source.load(self.indices[i])


def denormalize(x: torch.Tensor) -> np.ndarray:
    """Normalized `(3, h, w)` network input -> RGB uint8 `(h, w, 3)`."""
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    image = x.numpy().transpose(1, 2, 0) * std + mean  # (h, w, 3) in [0, 1]
    return np.ascontiguousarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))


def preview_samples(
    cfg: TrainConfig, count: int = 16, epoch: int = 1, pool_size: int | None = 64, progress=None
) -> list[PreviewSample]:
    """The first `count` augmented samples of `epoch`, made by the training pipeline from `cfg`.

    Args:
        cfg: a training config (`data.train`, `data.max_side`, `data.skip_bad`, `shapes`, `batch_size`, `augment`,
            `seed` are used).
        count: number of samples.
        epoch: the epoch whose augmentation to show (each epoch draws new crops and colours).
        pool_size: load a seeded subset of this many samples per dataset (composites pick their backgrounds from
            it); None loads everything and reproduces the training run's own first samples exactly.
        progress: optional wrapper of the loading iteration (e.g. `tqdm`).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    sources = [open_source(spec) for spec in cfg.data.train]
    if pool_size is not None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1 (or None for the whole data), got {pool_size}")
        rng = np.random.default_rng(cfg.seed)
        sources = [
            _SubsetSource(s, sorted(rng.permutation(len(s))[:pool_size].tolist())) if len(s) > pool_size else s
            for s in sources
        ]
    pool = SamplePool(sources, cfg.data.max_side, cfg.data.skip_bad, progress)
    if cfg.data.val:
        train_idx = list(range(len(pool)))
    else:
        train_idx, _ = split_indices(len(pool), cfg.data.val_fraction, cfg.seed)
    if not train_idx:
        raise DataError(f"no training samples left after the validation split of {len(pool)} samples")
    d = cfg.data
    for specs, repeat in ((d.extra, d.extra_repeat), (d.negatives, d.negatives_repeat)):
        if specs:
            train_idx += list(pool.extend(SamplePool([open_source(s) for s in specs], d.max_side, d.skip_bad))) * repeat
    backgrounds = SamplePool([open_source(s) for s in d.backgrounds], d.max_side, d.skip_bad) if d.backgrounds else None
    dataset = TrainDataset(pool, train_idx, AugmentConfig.from_dict(cfg.augment), cfg.seed, backgrounds)
    batches = ShapeBatchSampler(
        EpochRandomSampler(len(dataset), cfg.seed), cfg.batch_size, cfg.shapes, cfg.seed, drop_last=False
    )
    out: list[PreviewSample] = []
    while len(out) < count:  # later epochs when one epoch holds fewer than `count` samples
        batches.set_epoch(epoch)
        for keys in batches:
            for key in keys:
                x, y = dataset[key]  # (3, h, w), (1, h, w)
                name = pool.names[train_idx[key[0]]]
                out.append(PreviewSample(denormalize(x), y[0].numpy().astype(np.uint8), name))
                if len(out) == count:
                    return out
        epoch += 1
    return out


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Tints the person pixels of an RGB uint8 image and outlines the mask."""
    out = image.astype(np.float32)
    person = mask.astype(bool)
    out[person] = (1 - alpha) * out[person] + alpha * np.asarray(OVERLAY_RGB, np.float32)
    out = np.ascontiguousarray(out.round().astype(np.uint8))  # OpenCV draws on C-ordered arrays only
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, CONTOUR_RGB, 1)
    return out


def save_grid(samples: list[PreviewSample], output: str | Path, title: str = "") -> Path:
    """Draws `samples` with their masks overlaid in a grid and saves it (PNG, JPEG or PDF by the file's suffix)."""
    from matplotlib.figure import Figure

    if not samples:
        raise ValueError("no samples to draw")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    cols = math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.9 * rows + (0.4 if title else 0)))
    for k, s in enumerate(samples):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(overlay(s.image, s.mask))
        h, w = s.mask.shape
        ax.set_title(f"{Path(s.name).name}  {h}x{w}  {s.mask.mean():.0%}", fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        save_figure(fig, output, dpi=100)
    except ValueError as err:  # unsupported suffix
        raise ValueError(f"{output}: cannot save the grid ({err}); use .png, .jpg or .pdf") from None
    return output
