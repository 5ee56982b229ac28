"""`Segmenter`: person probability maps from RGB images, with the bundled model, a checkpoint or an ONNX file.

Resizing, normalization and the sigmoid live here, once (see `asbunet.inference` for how any aspect ratio maps to
the network). The network itself runs through a *runner*: a callable taking a normalized float32 batch
`(B, 3, h, w)` and returning logits `(B, 1, h, w)` as numpy, so PyTorch and onnxruntime share one API.

A bundled model runs on onnxruntime by default, from the ONNX files shipped beside its weights
(`weights/<name>.onnx`, `weights/<name>.int8.onnx`, written by `asbunet export-bundled`): int8 when its export
measured it within 0.3 IoU points of fp32, else fp32. That path never imports PyTorch; `runtime="torch"` runs the
safetensors weights in PyTorch instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asbunet.inference import SIZE_MULTIPLE, logits_to_probability, prepare, to_rgb

if TYPE_CHECKING:
    from torch import nn

    from asbunet.runtime import OnnxRunner

Runner = Callable[[np.ndarray], np.ndarray]
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "asbunet_person"
# How `Segmenter.from_pretrained` runs a bundled model; None picks int8 or fp32 ONNX from the bundled metadata.
RUNTIMES = ("onnx", "onnx-int8", "torch")


class ImageWarning(UserWarning):
    """An image the model cannot segment meaningfully (too small, or a single colour); it is segmented anyway."""


def input_warning(image: np.ndarray) -> str | None:
    """Why the probability map of `image` means little, or None.

    An image under `SIZE_MULTIPLE` (16) pixels on a side is smaller than one cell of the network's output stride, and
    an image of a single colour holds nothing to segment. The network still runs on both, but its output then
    reflects where people usually are in training images, not the image: the bundled model calls a 1x1 image about
    98% person, a uniform black one 82%.
    """
    h, w = image.shape[:2]
    if min(h, w) < SIZE_MULTIPLE:
        return (
            f"{w}x{h} image is under {SIZE_MULTIPLE} pixels on a side, too small to segment: the probability map "
            "says little about it"
        )
    flat = image.reshape(h * w, -1)
    if (flat.min(axis=0) == flat.max(axis=0)).all():
        return f"{w}x{h} image is a single colour, with nothing to segment: the probability map says little about it"
    return None


class TorchRunner:
    """Runs a PyTorch model in eval/inference mode on the CPU (channels-last)."""

    def __init__(self, model: nn.Module, threads: int | None = None):
        import torch

        self.torch = torch
        self.model = model.eval().to(memory_format=torch.channels_last)
        if threads is not None:
            torch.set_num_threads(threads)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)  # (B, 3, h, w)
            return self.model(x).float().numpy()  # (B, 1, h, w)


def bundled_models() -> list[str]:
    """Names of the pretrained models shipped inside the package."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def read_safetensors(path: str | Path) -> tuple[dict, dict]:
    """Weights `{name: tensor}` and metadata of a safetensors model file (no code is executed)."""
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - any parsing failure means the same thing to the user
        raise ValueError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    if "architecture" not in meta:
        raise ValueError(f"{path}: no 'architecture' in its metadata; write it with `asbunet bundle`")
    return state, meta


def bundled_path(name: str) -> Path:
    """`weights/<name>.safetensors` of a bundled model, or a ValueError listing the bundled names."""
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        available = ", ".join(bundled_models()) or "none"
        raise ValueError(f"no bundled model {name!r}; bundled: {available}")
    return path


def load_safetensors_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Builds the model of a safetensors file written by `asbunet bundle` (its metadata names the architecture).

    Raises:
        ValueError: naming the file, when it is unreadable, names an unknown architecture or holds weights that do
            not fit it.
    """
    from asbunet.models import create_model
    from asbunet.train.checkpoint import load_state

    state, meta = read_safetensors(path)
    try:
        model = create_model(meta["architecture"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    load_state(model, state, path, meta["architecture"])
    return model.eval(), meta


def model_settings(source: str | Path, input_size, threshold) -> tuple[int, float]:
    """`(input size, threshold)` as stored with a model, checked; `ValueError` naming `source` when unusable."""
    try:
        size, value = int(input_size), float(threshold)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{source}: unreadable input size {input_size!r} or threshold {threshold!r}") from None
    if not 16 <= size <= 8192 or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{source}: stored input size {size} (expected 16 to 8192) or threshold {value} (expected 0 to 1) is "
            "out of range"
        )
    return size, value


def load_bundled(name: str) -> tuple[nn.Module, dict]:
    """Builds a bundled model from `weights/<name>.safetensors`."""
    return load_safetensors_model(bundled_path(name))


def bundled_onnx_paths(name: str) -> tuple[Path, Path]:
    """`(fp32, int8)` ONNX files of bundled model `name`: `weights/<name>.onnx` and `weights/<name>.int8.onnx`."""
    return WEIGHTS_DIR / f"{name}.onnx", WEIGHTS_DIR / f"{name}.int8.onnx"


def load_bundled_onnx(name: str, runtime: str | None = None, threads: int | None = None) -> OnnxRunner:
    """An onnxruntime runner for bundled model `name`, checked against its safetensors weights.

    Args:
        runtime: "onnx" (fp32), "onnx-int8", or None: int8 where the bundled metadata says that its export measured
            it within 0.3 IoU points of fp32 (`asbunet.runtime.INT8_DEFAULT_KEY`), else fp32.

    Raises:
        FileNotFoundError: the ONNX file is absent.
        ValueError: the ONNX file was exported from other weights than the shipped safetensors file (its stored
            SHA-256 differs); the message gives the command that writes them again.
    """
    from asbunet.runtime import INT8_DEFAULT_KEY, WEIGHTS_DIGEST_KEY, OnnxRunner, file_sha256

    weights = bundled_path(name)
    fp32, int8 = bundled_onnx_paths(name)
    fix = f"write them with `asbunet export-bundled {name}`, or run the weights in PyTorch (runtime='torch')"
    path = int8 if runtime in (None, "onnx-int8") else fp32
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundled ONNX file of {name} is missing; {fix}")
    runner = OnnxRunner(path, threads=threads)
    if runtime is None and runner.metadata.get(INT8_DEFAULT_KEY) != "true":
        if not fp32.is_file():
            raise FileNotFoundError(f"{fp32}: the bundled ONNX file of {name} is missing; {fix}")
        runner = OnnxRunner(fp32, threads=threads)
    if runner.metadata.get(WEIGHTS_DIGEST_KEY) != file_sha256(weights):
        raise ValueError(f"{runner.path} was not exported from the shipped weights {weights.name}; {fix}")
    return runner


class Segmenter:
    """Person segmentation of RGB images of any size.

    Args:
        runner: the network (see `TorchRunner`, `asbunet.runtime.OnnxRunner`).
        input_size: long side of the network input; the short side follows the image's aspect ratio.
        name: what the segmenter runs, for messages.
        threshold: probability at or above which a pixel is person in `mask`; a bundled model carries the one
            calibrated on its validation split (`asbunet bundle`), other models use 0.5.
    """

    def __init__(self, runner: Runner, input_size: int = 256, name: str = "", threshold: float = 0.5):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.runner, self.input_size, self.name, self.threshold = runner, input_size, name, threshold

    @classmethod
    def from_pretrained(
        cls,
        name: str | Path | None = None,
        input_size: int | None = None,
        threads: int | None = None,
        runtime: str | None = None,
    ) -> Segmenter:
        """Loads the bundled model (`name=None`), another bundled name, a checkpoint (`.pt`), a `.safetensors` file
        written by `asbunet bundle` or an ONNX file.

        Args:
            runtime: how a bundled model runs: "onnx" (onnxruntime fp32), "onnx-int8" (onnxruntime int8) or
                "torch" (PyTorch fp32); None: onnxruntime, int8 where the bundled metadata says that it is within 0.3
                IoU points of fp32, else fp32 (`load_bundled_onnx`). A file runs on its own runtime (PyTorch for
                `.pt` and `.safetensors`, onnxruntime for `.onnx`); a runtime that contradicts it is an error.
        """
        name = DEFAULT_MODEL if name is None else name
        path = Path(name)
        if runtime is not None and runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)} (or None for the default), got {runtime!r}")
        if path.suffix == ".onnx" and runtime == "torch":
            raise ValueError(
                f"{path}: an ONNX file runs on onnxruntime, not runtime 'torch'; give the .pt or .safetensors file to "
                "run it in PyTorch"
            )
        if path.suffix in (".pt", ".pth", ".safetensors") and runtime not in (None, "torch"):
            raise ValueError(
                f"{path}: a {path.suffix} file runs in PyTorch, not runtime {runtime!r}; export it with `asbunet "
                "export` to run it on onnxruntime"
            )
        if not (path.suffix or "/" in str(name)) and runtime != "torch":
            runner = load_bundled_onnx(str(name), runtime, threads)
            label = "int8" if runner.path.name.endswith(".int8.onnx") else "fp32"
            size, threshold = model_settings(name, input_size or runner.input_size or 256, runner.threshold)
            return cls(runner, size, f"{name} (onnxruntime {label})", threshold)
        if path.suffix == ".onnx":
            from asbunet.runtime import OnnxRunner

            runner = OnnxRunner(path, threads=threads)
            size, threshold = model_settings(path, input_size or runner.input_size or 256, runner.threshold)
            return cls(runner, size, str(path), threshold)
        if path.suffix in (".pt", ".pth"):
            from asbunet.train.checkpoint import load_checkpoint, model_from_checkpoint

            ckpt = load_checkpoint(path)
            model = model_from_checkpoint(ckpt, path)
            size, threshold = model_settings(
                path, input_size or ckpt.get("input_size", 256), ckpt.get("threshold", 0.5)
            )
            return cls(TorchRunner(model, threads), size, str(path), threshold)
        if path.suffix == ".safetensors":
            model, meta = load_safetensors_model(path)
            name = path
        elif path.suffix or "/" in str(name):
            if not path.exists():
                raise FileNotFoundError(f"model file not found: {path}")
            raise ValueError(
                f"{path}: unsupported model file; use a .pt checkpoint, a .safetensors file written by `asbunet "
                "bundle`, a .onnx file or a bundled name"
            )
        else:
            model, meta = load_bundled(str(name))
        size, threshold = model_settings(name, input_size or meta.get("input_size", 256), meta.get("threshold", 0.5))
        return cls(TorchRunner(model, threads), size, str(name), threshold)

    def logits(self, image: np.ndarray) -> np.ndarray:
        """Network logits `(h, w)` at the network size for one image."""
        x = prepare(to_rgb(image), self.input_size)[None]  # (1, 3, h, w)
        return self.runner(x)[0, 0]

    def predict(self, image: np.ndarray, warn: bool = True) -> np.ndarray:
        """Person probability `(H, W)` float32 in [0, 1] of an RGB uint8 image `(H, W, 3)`.

        Grayscale `(H, W)` images are replicated to three channels; RGBA images lose their alpha channel. An image too
        small or of a single colour (`input_warning`) is segmented anyway, with an `ImageWarning` unless `warn` is
        False: the result says little about it.
        """
        rgb = to_rgb(image)
        if warn and (problem := input_warning(rgb)):
            warnings.warn(problem, ImageWarning, stacklevel=2)
        return logits_to_probability(self.logits(rgb), rgb.shape[0], rgb.shape[1])

    def mask(self, image: np.ndarray) -> np.ndarray:
        """Person mask `(H, W)` bool: `predict(image) >= threshold`."""
        rgb = to_rgb(image)
        if problem := input_warning(rgb):
            warnings.warn(problem, ImageWarning, stacklevel=2)
        return self.predict(rgb, warn=False) >= self.threshold

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """`predict` for a list; images of the same network size run as one batch."""
        rgbs = [to_rgb(im) for im in images]
        prepared = [prepare(im, self.input_size) for im in rgbs]
        out: list[np.ndarray | None] = [None] * len(rgbs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, x in enumerate(prepared):
            groups.setdefault(x.shape[1:], []).append(i)
        for idx in groups.values():
            logits = self.runner(np.stack([prepared[i] for i in idx]))  # (b, 1, h, w)
            for k, i in enumerate(idx):
                out[i] = logits_to_probability(logits[k, 0], rgbs[i].shape[0], rgbs[i].shape[1])
        return out
