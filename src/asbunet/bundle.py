"""Turning a training checkpoint into a bundled pretrained model (`src/asbunet/weights/<name>.safetensors`).

Only the weights and a little metadata are kept (architecture, input size, mask threshold, training recipe,
validation metrics); safetensors files load without executing code. The mask threshold is chosen on the run's own
validation split (`asbunet.calibrate`) unless one is given.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from asbunet.calibrate import best_threshold, threshold_sweep
from asbunet.predict import Segmenter, TorchRunner
from asbunet.train.checkpoint import load_checkpoint, model_from_checkpoint
from asbunet.train.config import TrainConfig


def calibrate_checkpoint(ckpt: dict, progress=None) -> dict:
    """Sweeps the mask threshold on the validation split of the run that wrote `ckpt` (its own config and seed)."""
    from asbunet.train.engine import load_data

    cfg = TrainConfig(**ckpt["config"])
    try:
        _, _, pool, indices = load_data(cfg)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(
            f"cannot choose the threshold on the run's validation split ({err}); run from the folder the training "
            "ran in, or give the threshold by hand (`asbunet bundle ... --threshold 0.5`)"
        ) from None
    segmenter = Segmenter(TorchRunner(model_from_checkpoint(ckpt)), int(ckpt.get("input_size", 256)))
    sweep = threshold_sweep(
        segmenter, [pool.images[i] for i in indices], [pool.masks[i] for i in indices], progress=progress
    )
    return {"images": len(indices), "sweep": sweep, "threshold": best_threshold(sweep)}


def bundle_checkpoint(
    checkpoint: str | Path, output: str | Path, threshold: float | None = None, progress=None
) -> dict:
    """Writes the weights of `checkpoint` to a safetensors file with the metadata `Segmenter` needs.

    Args:
        checkpoint: `best.pt` or `last.pt` written by `asbunet train`.
        output: the `.safetensors` file to write.
        threshold: the mask threshold to store; None chooses it on the run's validation split.
        progress: optional wrapper for the calibration loop (e.g. `tqdm`).
    """
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("model_options"):
        raise ValueError(f"{checkpoint}: bundling models built with options {ckpt['model_options']} is not supported")
    if threshold is not None and not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    calibration = (
        {"threshold": threshold, "by": "hand"} if threshold is not None else calibrate_checkpoint(ckpt, progress)
    )
    meta = {
        "architecture": ckpt["model"],
        "input_size": str(ckpt.get("input_size", 256)),
        "threshold": f"{calibration['threshold']:g}",
        "threshold_calibration": json.dumps(calibration),
        "epoch": str(ckpt["epoch"]),
        "metrics": json.dumps(ckpt.get("metrics", {})),
        "config": json.dumps(ckpt.get("config", {})),
    }
    state = {k: v.contiguous() for k, v in ckpt["state_dict"].items()}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(output), metadata=meta)
    return meta
