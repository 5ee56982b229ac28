"""Starting weights for `asbunet_035_s4_subpixel` from a trained `asbunet_035_s4`, the same function at the start.

    PYTHONPATH=src python experiments/fast_model/subpixel_init.py SOURCE.safetensors OUTPUT.safetensors

Everything is copied (the head's layers renamed). The head's new 2x2 convolution on conv1's features starts at zero;
its 3x3 convolution predicts four sub-pixels instead of one, each starting as the source's single output: the model
starts as the source with its stride-4 logits repeated over each 2x2 cell (nearest upsampling).
"""

from __future__ import annotations

import argparse

import torch
from safetensors.torch import save_file

from asbunet.inference.weights import read_safetensors
from asbunet.models import create_model

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", help="a bundled asbunet_035_s4 .safetensors file")
    parser.add_argument("output")
    args = parser.parse_args()
    source, meta = read_safetensors(args.source)
    if meta["architecture"] != "asbunet_035_s4":
        raise SystemExit(f"{args.source}: architecture {meta['architecture']}, expected asbunet_035_s4")
    state = subpixel_state(source)
    meta = {"architecture": "asbunet_035_s4_subpixel", "input_size": meta["input_size"], "threshold": "0.5"}
    save_file({k: v.contiguous() for k, v in state.items()}, args.output, metadata={**meta, "source": args.source})


if __name__ == "__main__":
    main()
