"""Writing self-describing checkpoints: model name and options, weights, optimizer, epoch, recipe and metrics.

Files are written atomically (to a temporary file, flushed to the disk, then renamed; `asbunet.atomic`) with the
usual file mode. They are read back, with `torch.load(weights_only=True)` which never executes code from the file,
by `asbunet.inference.weights` (`load_checkpoint`, `load_model`), the one place that loads a model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asbunet.atomic import open_atomic
from asbunet.inference.weights import CHECKPOINT_FORMAT as FORMAT

__all__ = ["FORMAT", "atomic_save"]


def atomic_save(obj, path: str | Path) -> None:
    """`torch.save` to a temporary file in the same folder, then `os.replace`: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(path, "wb", sync=True) as f:
        torch.save(obj, f)
