"""Self-describing checkpoints: model name and options, weights, optimizer, epoch, recipe and metrics.

Files are written atomically (to a temporary file, flushed to the disk, then renamed; `asbunet.atomic`) with the
usual file mode, and read with `torch.load(weights_only=True)`, which never executes code from the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from asbunet.atomic import open_atomic
from asbunet.models import create_model

FORMAT = "asbunet-checkpoint/1"


def atomic_save(obj, path: str | Path) -> None:
    """`torch.save` to a temporary file in the same folder, then `os.replace`: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(path, "wb", sync=True) as f:
        torch.save(obj, f)


def load_checkpoint(path: str | Path) -> dict:
    """Reads a checkpoint written by `asbunet train` (weights only, no code execution)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"{path}: {load_error(err)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an asbunet checkpoint (expected format {FORMAT!r})")
    return ckpt


def load_error(err: Exception) -> str:
    """Why `torch.load(weights_only=True)` failed, in a few words. PyTorch's own message suggests loading the file
    with `weights_only=False`, which runs whatever code the file holds: that advice is left out."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"refused: the file holds a Python object ({found[1]}) that only running code could rebuild; an "
            "asbunet checkpoint holds tensors and plain data only"
        )
    if "weights_only" in text or "Weights only" in text:
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        return f"not a readable checkpoint (corrupt or not written by torch.save{f': {detail[1]}' if detail else ''})"
    first = text.strip().splitlines()[0][:300] if text.strip() else ""
    return f"not a readable checkpoint ({type(err).__name__}{f': {first}' if first else ''})"


def model_from_checkpoint(ckpt: dict, source: str | Path = "checkpoint") -> nn.Module:
    """Rebuilds the model a checkpoint describes and loads its weights (eval mode).

    Args:
        source: the checkpoint's file, named in errors.

    Raises:
        ValueError: the checkpoint names no known model, or its weights do not fit the model.
    """
    try:
        model = create_model(ckpt["model"], **ckpt.get("model_options", {}))
    except KeyError as err:
        raise ValueError(f"{source}: the checkpoint has no {err} entry") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None
    load_state(model, ckpt.get("state_dict"), source, ckpt["model"])
    return model.eval()


def load_state(model: nn.Module, state, source: str | Path, architecture: str) -> None:
    """`model.load_state_dict(state)`; `ValueError` naming `source` when the weights do not fit."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, AttributeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{source}: its weights do not fit the {architecture} model ({first[:300]})") from None


def load_weights(source: str | Path) -> tuple[str, dict, dict]:
    """`(architecture, model options, state dict)` to start a training run from (`init_from`).

    `source` is a checkpoint written by `asbunet train` (`.pt`), a `.safetensors` file written by `asbunet bundle`,
    or the name of a bundled model (e.g. `asbunet_person`).
    """
    from asbunet.predict import bundled_path, read_safetensors

    path = Path(source)
    if path.suffix in (".pt", ".pth"):
        ckpt = load_checkpoint(path)
        return ckpt["model"], ckpt.get("model_options", {}), ckpt["state_dict"]
    if path.suffix != ".safetensors":
        path = bundled_path(str(source))
    state, meta = read_safetensors(path)
    return meta["architecture"], {}, state
