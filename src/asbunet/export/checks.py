"""How closely an exported file (ONNX fp32 or int8, TFLite) reproduces the PyTorch model: logits, probabilities and
masks on a seeded random batch and on real photos."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from asbunet.inference.postprocess import sigmoid
from asbunet.inference.preprocess import prepare, prepare_at
from asbunet.inference.runners import OnnxRunner
from asbunet.metrics import iou


def network_batch(image: np.ndarray, size: tuple[int, int] | None, input_size: int = 256) -> np.ndarray:
    """The batch `(1, 3, h, w)` of one image for a model of fixed `size`, or at `input_size` for a dynamic one."""
    return (prepare(image, input_size) if size is None else prepare_at(image, size))[None]


def random_batch(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A seeded standard-normal batch `(1, 3, h, w)`, the scale of normalized images."""
    return np.random.default_rng(seed).standard_normal((1, 3, *size)).astype(np.float32)


@dataclass
class Agreement:
    """How closely a runner reproduces PyTorch on some inputs (logits, probabilities, masks at 0.5)."""

    inputs: int
    max_abs_diff: float  # logits
    max_abs_logit: float  # the scale of the logits, for context
    max_prob_diff: float
    mask_iou: float  # IoU of the two masks over all inputs together

    def __str__(self) -> str:
        return (
            f"max |logit diff| {self.max_abs_diff:.3g} (logits up to {self.max_abs_logit:.3g}), "
            f"max |prob diff| {self.max_prob_diff:.3g}, mask IoU {self.mask_iou:.4f} over {self.inputs} input(s)"
        )


@torch.inference_mode()
def agreement(model: nn.Module, runner, batches: Iterable[np.ndarray]) -> Agreement:
    """Compares `runner` (batch -> logits) with the PyTorch `model` in eval mode on each batch."""
    model = model.eval()
    diffs, scales, prob_diffs, masks_ref, masks = [], [], [], [], []
    n = 0
    for batch in batches:
        ref = model(torch.from_numpy(batch)).float().numpy()
        out = runner(batch)
        if out.shape != ref.shape:
            raise ValueError(f"runner output {out.shape} differs from PyTorch's {ref.shape} for input {batch.shape}")
        diffs.append(float(np.abs(out - ref).max()))
        scales.append(float(np.abs(ref).max()))
        prob_diffs.append(float(np.abs(sigmoid(out) - sigmoid(ref)).max()))
        masks_ref.append((ref > 0).ravel())
        masks.append((out > 0).ravel())
        n += batch.shape[0]
    if not n:
        raise ValueError("no inputs to compare")
    pooled = iou(np.concatenate(masks_ref)[None], np.concatenate(masks)[None])  # one (1, N) image: pooled over all
    return Agreement(n, max(diffs), max(scales), max(prob_diffs), pooled)


@dataclass
class ExportResult:
    """An exported file and how closely it reproduces PyTorch."""

    path: Path
    size: tuple[int, int] | None  # None: dynamic height and width
    random: Agreement
    real: Agreement | None = None
    notes: dict = field(default_factory=dict)

    def summary(self) -> str:
        shape = "dynamic H, W" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        lines = [f"{self.path} ({shape})", f"  random input: {self.random}"]
        lines.append(f"  real images:  {self.real}" if self.real else "  real images:  none given")
        lines += [f"  {k}: {v}" for k, v in self.notes.items()]
        return "\n".join(lines)


def check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) < 16 for s in size):
        raise ValueError(f"size must be (H, W) with both sides at least 16, got {tuple(size)}")
    return int(size[0]), int(size[1])


def real_batches(images: Sequence[np.ndarray] | None, size: tuple[int, int] | None, input_size: int):
    return [network_batch(im, size, input_size) for im in images or ()]


def check_onnx(
    model: nn.Module,
    path: str | Path,
    size: Sequence[int] = (256, 256),
    images: Sequence[np.ndarray] | None = None,
    input_size: int = 256,
) -> tuple[Agreement, Agreement | None]:
    """How closely an ONNX file (fp32 or int8) reproduces `model`: on a seeded random batch of `size` (a fixed-size
    file uses its own size) and, when given, on real images preprocessed like `network_batch`."""
    runner = OnnxRunner(path)
    size = runner.size or check_size(size)
    random = agreement(model, runner, [random_batch(size)])
    real = agreement(model, runner, real_batches(images, runner.size, input_size)) if images else None
    return random, real
