"""Training on a data mixture (`data.mixture`, `asbunet.data.mixture`): its dataset, and validation kind by kind."""

from __future__ import annotations

import numpy as np
from torch import nn

from asbunet.data.augment import AugmentConfig
from asbunet.data.dataset import SamplePool
from asbunet.data.mixture import IGNORE, KINDS, Mixture, MixtureConfig, MixtureDataset
from asbunet.inference.postprocess import binarize
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.metrics import iou
from asbunet.train.calibrate import selection_iou
from asbunet.train.config import TrainConfig


def mixture_data(cfg: TrainConfig, progress=None) -> tuple[MixtureDataset, SamplePool, list[str], float]:
    """`(training dataset, validation pool, the kind of each validation sample, share of person pixels)`."""
    mixture = Mixture(MixtureConfig(**cfg.data.mixture), cfg.data.max_side, cfg.seed, progress)
    val_pool, kinds = mixture.validation()
    dataset = MixtureDataset(mixture, AugmentConfig.from_dict(cfg.augment), cfg.seed)
    return dataset, val_pool, kinds, mixture.positive_fraction()


def mixture_validation(cfg: TrainConfig) -> tuple[SamplePool, list[str]]:
    """The held-out samples of a mixture run and their kinds (what `asbunet bundle` calibrates on)."""
    return Mixture(MixtureConfig(**cfg.data.mixture), cfg.data.max_side, cfg.seed).validation()


def score_kinds(preds: list[np.ndarray], masks: list[np.ndarray], kinds: list[str]) -> tuple[dict[str, float], float]:
    """Each kind's mean `selection_iou` of the masks `preds` (H, W) against the labels `masks` (H, W) in
    {0, 1, `IGNORE`}, and the IoU pooled over every pixel; `IGNORE`d pixels count as neither person nor background.

    Returns `({kind: mean}, pooled)`, kinds in `KINDS` order."""
    per_image, flat_p, flat_t = [], [], []
    for pred, mask in zip(preds, masks, strict=True):
        valid = mask != IGNORE  # (H, W)
        p, t = pred.astype(bool) & valid, mask == 1  # ignored pixels: background in both, so they never count
        per_image.append(selection_iou(p[None], t[None]))
        flat_p.append(p.ravel())
        flat_t.append(t.ravel())
    values, names = np.asarray(per_image), np.asarray(kinds)
    scores = {k: float(values[names == k].mean()) for k in KINDS if (names == k).any()}
    return scores, float(iou(np.concatenate(flat_p)[None], np.concatenate(flat_t)[None]))


def evaluate_kinds(model: nn.Module, pool: SamplePool, kinds: list[str], input_size: int):
    """`score_kinds` of `model` at threshold 0.5 on every sample of `pool`, with the prediction's preprocessing."""
    segmenter = Segmenter(TorchRunner(model), input_size)
    preds = [binarize(segmenter.predict(image), 0.5) for image in pool.images]  # (H, W) each
    return score_kinds(preds, pool.masks, kinds)
