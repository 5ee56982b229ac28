"""Starting weights for `asbunet_035_s4` (the fast model's decoder stopped at stride 4) from a trained `asbunet_035`.

    PYTHONPATH=src python experiments/fast_model/s4_init.py SOURCE.safetensors OUTPUT.safetensors

The encoder, the two deeper decoder blocks and their skip convolutions are copied (the skips shift by one: the
stride-2 skip is gone); the stride-2 block is dropped; the head's 1x1 convolution, which now reads the stride-4
block's wider output, keeps its fresh initialization, and its last 3x3 convolution is copied.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from asbunet.models import create_model

sys.path.insert(0, str(Path(__file__).parent))
from starting_weights import convert  # noqa: E402


def s4_state(source: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The `asbunet_035_s4` state dict built from `source` (an `asbunet_035` one), and the keys left fresh."""
    torch.manual_seed(0)
    state = create_model("asbunet_035_s4").state_dict()
    fresh = []
    for key, value in state.items():
        old = key
        if key.startswith("decoder.skip_convs."):
            index, rest = key.split(".", 3)[2], key.split(".", 3)[3]
            old = f"decoder.skip_convs.{int(index) + 1}.{rest}"
        if old in source and source[old].shape == value.shape:
            state[key] = source[old].clone()
        else:
            fresh.append(key)
    return state, fresh


def build(source: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    state, fresh = s4_state(source)
    print(f"copied {len(state) - len(fresh)} tensors, fresh: {', '.join(fresh)}")
    return state, {"fresh": json.dumps(fresh)}


if __name__ == "__main__":
    convert("asbunet_035", "asbunet_035_s4", build)
