"""Turning a training checkpoint into a bundled pretrained model (`src/asbunet/weights/<name>.safetensors`).

Only the weights and a little metadata are kept (architecture, input size, training recipe, validation metrics);
safetensors files load without executing code.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from asbunet.train.checkpoint import load_checkpoint


def bundle_checkpoint(checkpoint: str | Path, output: str | Path) -> dict:
    """Writes the weights of `checkpoint` to a safetensors file with the metadata `Segmenter` needs."""
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("model_options"):
        raise ValueError(f"{checkpoint}: bundling models built with options {ckpt['model_options']} is not supported")
    meta = {
        "architecture": ckpt["model"],
        "input_size": str(ckpt.get("input_size", 256)),
        "epoch": str(ckpt["epoch"]),
        "metrics": json.dumps(ckpt.get("metrics", {})),
        "config": json.dumps(ckpt.get("config", {})),
    }
    state = {k: v.contiguous() for k, v in ckpt["state_dict"].items()}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(output), metadata=meta)
    return meta
