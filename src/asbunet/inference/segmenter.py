"""`Segmenter`: person probability maps and masks from RGB images of any size.

Resizing, normalization and the sigmoid live here, once (`asbunet.inference.preprocess` for how any aspect ratio
maps to the network, `asbunet.inference.postprocess` for the way back and the threshold rule). The network itself
runs through a runner (`asbunet.inference.runners`), picked by `asbunet.inference.weights.load_model`: the bundled
model runs on the runtime measured fastest for this kind of CPU (`runtime="auto"`, `asbunet.inference.auto`:
onnxruntime or OpenVINO, int8 where its export measured it within 0.3 IoU points of fp32) and never imports PyTorch;
`runtime="torch"` runs its safetensors weights in PyTorch instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asbunet.inference.postprocess import binarize, check_threshold, logits_to_probability, sigmoid
from asbunet.inference.preprocess import input_warning, network_size, normalize, resize_to, to_rgb
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import Runner
from asbunet.inference.weights import DEFAULT_MODEL, LoadedModel, load_model, model_settings


class ImageWarning(UserWarning):
    """An image the model cannot segment meaningfully (too small, or a single colour); it is segmented anyway."""


class Segmenter:
    """Person segmentation of RGB images of any size.

    Args:
        runner: the network (`asbunet.inference.runners`: `TorchRunner`, `OnnxRunner`, `TfliteRunner`;
            `asbunet.inference.openvino_runner.OpenVinoRunner`).
        input_size: long side of the network input; the short side follows the image's aspect ratio.
        name: what the segmenter runs, for messages.
        threshold: probability at or above which a pixel is person in `mask`, in (0, 1); a bundled model carries the
            one calibrated on its validation split (`asbunet bundle`), other models use 0.5.
        fixed_size: `(h, w)` of a model that takes the whole image resized to one size, as MediaPipe feeds its
            models (keeping the aspect ratio first and resizing a second time to the model's size costs MediaPipe
            general 0.006 IoU on davis_person/tennis); None keeps the aspect ratio at `input_size`.
        refine: how the probability is resized back to the image's size: None bilinearly, a `GuidedRefine` along
            the image's edges (`asbunet.inference.refine`); a bundled model carries its own, or none.

    The threshold and the refinement are the model's own unless given (`from_pretrained`, `with_settings`): they are
    resolved here, once, and every consumer (`mask`, `asbunet segment`, `VideoSegmenter`, `asbunet evaluate`) reads
    them from the segmenter.

    The API: `from_pretrained` (a bundled model or a file), `from_loaded` (a model already loaded by `load_model`),
    `with_settings` (the same network at another threshold or without the refinement), `predict`, `predict_batch`
    and `mask`. The methods with a leading underscore are the steps of `predict`, shared with the benchmarks.
    """

    def __init__(
        self,
        runner: Runner,
        input_size: int = 256,
        name: str = "",
        threshold: float = 0.5,
        fixed_size: tuple[int, int] | None = None,
        refine: GuidedRefine | None = None,
    ):
        self.runner, self.input_size, self.name = runner, input_size, name
        self.threshold, self.fixed_size, self.refine = check_threshold(threshold), fixed_size, refine

    @classmethod
    def from_pretrained(
        cls,
        name: str | Path | None = None,
        input_size: int | None = None,
        threads: int | None = None,
        runtime: str | None = "auto",
        threshold: float | None = None,
        refine: bool = True,
    ) -> Segmenter:
        """Loads the bundled model (`name=None`), another bundled name, a checkpoint (`.pt`), a `.safetensors` file
        written by `asbunet bundle`, an ONNX or TFLite file, or a model name (`load_model`).

        Args:
            input_size: the long side to run at; None: the one stored with the model.
            runtime: how a bundled model runs: "auto" (the runtime and precision measured fastest on this kind of
                CPU, `asbunet.inference.auto`; onnxruntime where the kind was not measured), "onnx" / "onnx-int8"
                (onnxruntime fp32 / int8), "openvino" / "openvino-int8" / "openvino-bf16" (OpenVINO, the `openvino`
                extra) or "torch" (PyTorch fp32). A file runs on its own runtime (an `.onnx` file on OpenVINO when
                an OpenVINO runtime is asked for); a runtime that contradicts it is an error.
            threshold: the mask threshold, in (0, 1); None: the one stored with the model.
            refine: False resizes the probability back bilinearly even where the model carries a refinement.
        """
        name = DEFAULT_MODEL if name is None else name
        return cls.from_loaded(load_model(name, runtime, threads), input_size, threshold, refine)

    @classmethod
    def from_loaded(
        cls, loaded: LoadedModel, input_size: int | None = None, threshold: float | None = None, refine: bool = True
    ) -> Segmenter:
        """A segmenter running a model of `load_model` at its own settings: `input_size` overrides its long side (a
        model of fixed size always runs at that size), `threshold` its threshold, `refine=False` drops its
        refinement."""
        size = loaded.input_size if input_size is None or loaded.fixed_size else input_size
        size, stored = model_settings(loaded.name, size, loaded.threshold)
        segmenter = cls(loaded.runner, size, loaded.name, stored, loaded.fixed_size, loaded.refine)
        return segmenter.with_settings(threshold, refine)

    def with_settings(self, threshold: float | None = None, refine: bool = True) -> Segmenter:
        """This segmenter, or a copy running the same network with another threshold (None: this one's) or, with
        `refine=False`, resizing the probability back bilinearly."""
        if threshold is None and (refine or self.refine is None):
            return self
        threshold = self.threshold if threshold is None else threshold
        refinement = self.refine if refine else None
        return type(self)(self.runner, self.input_size, self.name, threshold, self.fixed_size, refinement)

    def _network_image(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 `(H, W, 3)` -> the RGB uint8 image `(h, w, 3)` the network sees: long side `input_size`, aspect
        ratio kept (`network_size`), or the model's fixed size."""
        size = self.fixed_size or network_size(rgb.shape[0], rgb.shape[1], self.input_size)
        return resize_to(rgb, size)

    def _network_input(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 `(H, W, 3)` -> the normalized network input `(3, h, w)` of this model."""
        return normalize(self._network_image(rgb))

    def _logits(self, image: np.ndarray) -> np.ndarray:
        """Network logits `(h, w)` at the network size (or at its output stride, `asbunet export --head-stride`) for
        one image."""
        return self._run_network([self._network_image(to_rgb(image))])[0, 0]

    def _run_network(self, smalls: Sequence[np.ndarray]) -> np.ndarray:
        """Logits `(B, 1, h, w)` of images `(h, w, 3)` of one size as the network sees them (`_network_image`): the
        runner normalizes them itself where it can (`OpenVinoRunner.run_images`), else they are normalized here."""
        run_images = getattr(self.runner, "run_images", None)
        if run_images is not None:
            return run_images(np.stack(smalls) if len(smalls) > 1 else smalls[0][None])
        return self.runner(np.stack([normalize(small) for small in smalls]))  # (B, 3, h, w) in

    def _probability(self, rgb: np.ndarray, small: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Person probability `(H, W)` of `rgb` from the network's logits `(h, w)` on `small`, the image as the
        network saw it (or at the network's output stride): resized back bilinearly, or along the image's edges with
        `refine`."""
        if self.refine is None:
            return logits_to_probability(logits, rgb.shape[0], rgb.shape[1])
        return self.refine(rgb, small, sigmoid(logits))

    def predict(self, image: np.ndarray, warn: bool = True) -> np.ndarray:
        """Person probability `(H, W)` float32 in [0, 1] of an RGB uint8 image `(H, W, 3)`.

        Grayscale `(H, W)` images are replicated to three channels; RGBA images lose their alpha channel. An image too
        small or of a single colour (`input_warning`) is segmented anyway, with an `ImageWarning` unless `warn` is
        False: the result says little about it.
        """
        rgb = to_rgb(image)
        if warn and (problem := input_warning(rgb)):
            warnings.warn(problem, ImageWarning, stacklevel=2)
        small = self._network_image(rgb)
        logits = self._run_network([small])[0, 0]  # (h, w)
        return self._probability(rgb, small, logits)

    def mask(self, image: np.ndarray) -> np.ndarray:
        """Person mask `(H, W)` bool: `predict(image) >= threshold` (`binarize`)."""
        rgb = to_rgb(image)
        if problem := input_warning(rgb):
            warnings.warn(problem, ImageWarning, stacklevel=2)
        return binarize(self.predict(rgb, warn=False), self.threshold)

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """`predict` for a list; images of the same network size run as one batch."""
        rgbs = [to_rgb(im) for im in images]
        smalls = [self._network_image(im) for im in rgbs]
        out: list[np.ndarray | None] = [None] * len(rgbs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, small in enumerate(smalls):
            groups.setdefault(small.shape[:2], []).append(i)
        for idx in groups.values():
            logits = self._run_network([smalls[i] for i in idx])  # (b, 1, h, w)
            for k, i in enumerate(idx):
                out[i] = self._probability(rgbs[i], smalls[i], logits[k, 0])
        return out
