"""The command line the starting-weights scripts share (`s4_init.py`, `subpixel_init.py`): read a bundled
.safetensors file of one architecture, build another architecture's state dict from it, write it with its metadata.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from safetensors.torch import save_file

from asbunet.inference.weights import read_safetensors

Build = Callable[[dict[str, torch.Tensor]], tuple[dict[str, torch.Tensor], dict[str, str]]]


def convert(source_architecture: str, architecture: str, build: Build) -> None:
    """Parses `SOURCE OUTPUT`, checks that SOURCE is `source_architecture`, and writes `build(SOURCE's tensors)`: the
    new state dict and extra metadata, stored as `architecture` at SOURCE's input size, threshold 0.5."""
    parser = argparse.ArgumentParser()
    parser.add_argument("source", help=f"a bundled {source_architecture} .safetensors file")
    parser.add_argument("output")
    args = parser.parse_args()
    source, meta = read_safetensors(args.source)
    if meta["architecture"] != source_architecture:
        raise SystemExit(f"{args.source}: architecture {meta['architecture']}, expected {source_architecture}")
    state, extra = build(source)
    meta = {
        "architecture": architecture,
        "input_size": meta["input_size"],
        "threshold": "0.5",
        "source": args.source,
        **extra,
    }
    save_file({k: v.contiguous() for k, v in state.items()}, args.output, metadata=meta)
