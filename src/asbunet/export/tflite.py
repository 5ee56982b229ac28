"""The optional TFLite path: litert-torch converts, ai-edge-litert runs the check."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from asbunet.atomic import replacing
from asbunet.export.checks import ExportResult, agreement, check_size, random_batch, real_batches
from asbunet.extras import install_hint
from asbunet.inference.runners import TfliteRunner


def export_tflite(
    model: nn.Module, path: str | Path, size: Sequence[int] = (256, 256), images: Sequence[np.ndarray] | None = None
) -> ExportResult:
    """Converts `model` to a fixed-size `.tflite` file with litert-torch and checks ai-edge-litert against PyTorch.

    Raises:
        ImportError: litert-torch or ai-edge-litert is not installed (`asbunet.extras.install_hint("tflite")`).
    """
    try:
        import litert_torch
    except ImportError:
        raise ImportError(f"TFLite export needs litert-torch: {install_hint('tflite')}") from None
    path = Path(path)
    size = check_size(size)
    model = copy.deepcopy(model).eval()
    x = torch.from_numpy(random_batch(size))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, sync=True) as tmp:
        litert_torch.convert(model, (x,)).export(str(tmp))
    runner = TfliteRunner(path)
    random = agreement(model, runner, [x.numpy()])
    real = agreement(model, runner, real_batches(images, size, max(size))) if images else None
    return ExportResult(path, size, random, real)
