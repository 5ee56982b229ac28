"""Starting weights for `asbunet_035_s4` (the fast model's decoder stopped at stride 4) from a trained `asbunet_035`.

    PYTHONPATH=src python experiments/fast_model/s4_init.py SOURCE.safetensors OUTPUT.safetensors

The encoder, the two deeper decoder blocks and their skip convolutions are copied (the skips shift by one: the
stride-2 skip is gone); the stride-2 block is dropped; the head's 1x1 convolution, which now reads the stride-4
block's wider output, keeps its fresh initialization, and its last 3x3 convolution is copied.
"""

from __future__ import annotations

import argparse
import json

import torch
from safetensors.torch import save_file

from asbunet.inference.weights import read_safetensors
from asbunet.models import create_model


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", help="a bundled asbunet_035 .safetensors file")
    parser.add_argument("output")
    args = parser.parse_args()
    source, meta = read_safetensors(args.source)
    if meta["architecture"] != "asbunet_035":
        raise SystemExit(f"{args.source}: architecture {meta['architecture']}, expected asbunet_035")
    state, fresh = s4_state(source)
    print(f"copied {len(state) - len(fresh)} tensors, fresh: {', '.join(fresh)}")
    meta = {
        "architecture": "asbunet_035_s4",
        "input_size": meta["input_size"],
        "threshold": "0.5",
        "source": args.source,
        "fresh": json.dumps(fresh),
    }
    save_file({k: v.contiguous() for k, v in state.items()}, args.output, metadata=meta)


if __name__ == "__main__":
    main()
