"""Starting weights for `asbunet_035_s4_subpixel` from a trained `asbunet_035_s4`, the same function at the start.

    PYTHONPATH=src python experiments/fast_model/subpixel_init.py SOURCE.safetensors OUTPUT.safetensors

Everything is copied (the head's layers renamed). The head's new 2x2 convolution on conv1's features starts at zero;
its 3x3 convolution predicts four sub-pixels instead of one, each starting as the source's single output: the model
starts as the source with its stride-4 logits repeated over each 2x2 cell (nearest upsampling).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from asbunet.models import create_model

sys.path.insert(0, str(Path(__file__).parent))
from starting_weights import convert  # noqa: E402

RENAMED = {"head.proj.": "head.0.", "head.out.": "head.1."}  # SubPixelHead's layers -> SegmentationHead's


def subpixel_state(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `asbunet_035_s4_subpixel` state dict that computes what `source` (an `asbunet_035_s4` one) computes."""
    state = create_model("asbunet_035_s4_subpixel").state_dict()
    for key, value in state.items():
        if key == "head.fold.weight":
            value.zero_()
            continue
        old_key = next((key.replace(new, old) for new, old in RENAMED.items() if key.startswith(new)), key)
        old = source[old_key]
        if key.startswith("head.out."):
            value.copy_(old.repeat(4, *([1] * (old.ndim - 1))))  # one copy per sub-pixel: (4, ...) from (1, ...)
        else:
            value.copy_(old)
    return state


if __name__ == "__main__":
    convert("asbunet_035_s4", "asbunet_035_s4_subpixel", lambda source: (subpixel_state(source), {}))
