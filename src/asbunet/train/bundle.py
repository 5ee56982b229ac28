"""Turning a training checkpoint into a bundled pretrained model (`src/asbunet/weights/<name>.safetensors`).

Only the weights and a little metadata are kept (architecture, input size, mask threshold, training recipe,
validation metrics); safetensors files load without executing code. The mask threshold, and the input size when
several are offered, are chosen on the run's own validation split (`asbunet.train.calibrate`) unless given.
The ONNX files of a bundled model are written by `asbunet.export.bundled`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import save_file

from asbunet.atomic import replacing
from asbunet.inference.postprocess import check_threshold
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import TorchRunner
from asbunet.inference.weights import (
    load_checkpoint,
    model_from_checkpoint,
)
from asbunet.train.calibrate import THRESHOLDS, best_setting, size_threshold_sweep, split_kinds
from asbunet.train.config import TrainConfig


def calibrate_checkpoint(
    ckpt: dict,
    input_sizes: Sequence[int],
    thresholds: Sequence[float] = THRESHOLDS,
    progress=None,
    refine: GuidedRefine | None = None,
) -> dict:
    """Sweeps input size and mask threshold on the validation split of the run that wrote `ckpt` (its own config and
    seed, scored as its `selection` says), the probability resized back with `refine` where given; returns the sweeps
    and the best `input_size` and `threshold`."""
    from asbunet.train.engine import load_data

    cfg = TrainConfig(**ckpt["config"])
    try:
        if cfg.data.mixture:  # the mixture's held-out samples, scored kind by kind as in training
            from asbunet.train.mixture import mixture_validation

            pool, mixture_kinds = mixture_validation(cfg)
            indices = list(range(len(pool)))
        else:
            _, _, pool, indices = load_data(cfg)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(
            f"cannot choose the threshold or input size on the run's validation split ({err}); run from the folder "
            "the training ran in, or give one threshold and one input size by hand (`asbunet bundle ... "
            "--threshold 0.5 --size 256`)"
        ) from None
    images, masks = [pool.images[i] for i in indices], [pool.masks[i] for i in indices]
    kinds = mixture_kinds if cfg.data.mixture else split_kinds(pool, indices, cfg.selection)
    sweeps = size_threshold_sweep(
        TorchRunner(model_from_checkpoint(ckpt)), input_sizes, images, masks, thresholds, progress, refine, kinds
    )
    input_size, threshold = best_setting(sweeps)
    return {
        "images": len(indices),
        "selection": cfg.selection,
        "input_size": input_size,
        "threshold": threshold,
        "sweep": sweeps[input_size],
        "sweeps": {str(size): sweep for size, sweep in sweeps.items()},
    }


def bundle_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    threshold: float | None = None,
    input_sizes: Sequence[int] | None = None,
    progress=None,
    refine: GuidedRefine | None = None,
) -> dict:
    """Writes the weights of `checkpoint` to a safetensors file with the metadata `Segmenter` needs.

    Args:
        checkpoint: `best.pt` or `last.pt` written by `asbunet train`.
        output: the `.safetensors` file to write.
        threshold: the mask threshold to store; None chooses it on the run's validation split.
        input_sizes: candidate long sides of the network input; several are compared on the validation split.
            None keeps the training run's validation size.
        progress: optional wrapper for the calibration loop (e.g. `tqdm`).
        refine: the edge-aware resizing to store with the model (`asbunet.inference.refine`); the threshold and input
            size are then chosen with it.
    """
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("model_options"):
        raise ValueError(f"{checkpoint}: bundling models built with options {ckpt['model_options']} is not supported")
    threshold = None if threshold is None else check_threshold(threshold)
    sizes = list(input_sizes or [int(ckpt.get("input_size", 256))])
    if threshold is not None and len(sizes) == 1:
        calibration = {"threshold": threshold, "input_size": sizes[0], "by": "hand"}
    else:
        thresholds = THRESHOLDS if threshold is None else (threshold,)
        calibration = calibrate_checkpoint(ckpt, sizes, thresholds, progress, refine)
    meta = {
        "architecture": ckpt["model"],
        "input_size": str(calibration["input_size"]),
        "threshold": f"{calibration['threshold']:g}",
        "threshold_calibration": json.dumps(calibration),
        "epoch": str(ckpt["epoch"]),
        "metrics": json.dumps(ckpt.get("metrics", {})),
        "config": json.dumps(ckpt.get("config", {})),
    }
    if refine is not None:
        meta["refine"] = refine.to_text()
    state = {k: v.contiguous() for k, v in ckpt["state_dict"].items()}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with replacing(output, sync=True) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return meta
