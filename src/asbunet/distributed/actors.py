"""Segmentation as a stage of a Ray Data pipeline: callable classes for `Dataset.map_batches` that load a `Segmenter`
once per actor and run it on every batch the actor is given.

`SegmentImages` turns a batch of images into the arrays that `asbunet segment` writes (masks, probabilities,
overlays, cut-outs, effects), one column per output kind. `SegmentFiles` writes them instead, with the names and
formats of `asbunet segment` (`asbunet.segment.files.segment_image`), and returns one row per input: the files it
wrote, or why it failed. An input that fails (unreadable, too large) gives its message in the `error` column; the
batch goes on. Both take the `bytes` column of `ray.data.read_binary_files`, decoded here as `asbunet segment`
decodes a file (`asbunet.data.io.decode_image`), so that the results are the same; `SegmentImages` also takes the
`image` column of `ray.data.read_images`.

Neither imports Ray; a pipeline of your own uses them as any callable class:

    ds = ray.data.read_binary_files("s3://bucket/photos", include_paths=True)
    ds = ds.map_batches(SegmentImages, fn_constructor_kwargs={"threads": 1}, batch_size=8, num_cpus=1,
                        compute=ray.data.ActorPoolStrategy(size=4))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from asbunet.data.io import MAX_PIXELS, decode_image, pixel_limit
from asbunet.frames.render import postprocess, render
from asbunet.inference.preprocess import to_rgb
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.files import failure_message, planned_outputs, segment_image
from asbunet.segment.options import SegmentOptions
from asbunet.segment.outputs import prepare_output_dir

CHANNELS = {"mask": (), "prob": (), "overlay": (3,), "cutout": (4,), "effect": (3,)}  # trailing shape of each kind


class _Loaded:
    """The segmenter and options of one actor, loaded once when the actor starts.

    Args:
        model: bundled model name, `.pt` checkpoint, `.safetensors` bundle or `.onnx` file (None: the bundled model);
            a file must be at the same path on every node (shared storage).
        runtime: how a bundled model runs (`asbunet.inference.auto.RUNTIMES`; None: "auto", as `asbunet segment`).
        threads: threads of the actor (the runtime's intra-op threads and OpenCV's); give the actor as many CPUs.
        size: long side of the network input (None: the model's).
        threshold: the mask threshold, in (0, 1) (None: the model's own).
        refine: False resizes the probability back bilinearly even where the model carries a refinement.
        options: what to produce and how (`SegmentOptions`; None: the mask).
        max_pixels: largest width x height decoded, checked from the header (None: no limit).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        runtime: str | None = None,
        threads: int = 1,
        size: int | None = None,
        threshold: float | None = None,
        refine: bool = True,
        options: SegmentOptions | None = None,
        max_pixels: int | None = MAX_PIXELS,
    ):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        cv2.setNumThreads(threads)
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # unreadable inputs are reported by name
        self.segmenter = Segmenter.from_pretrained(model, size, threads, runtime, threshold=threshold, refine=refine)
        self.options = options or SegmentOptions()
        self.kinds = self.options.outputs_for(False)
        self.max_pixels = max_pixels

    def decode(self, batch: dict[str, np.ndarray], i: int, source: str) -> np.ndarray:
        """Row `i`'s image as RGB uint8: its `bytes` decoded by the package's reader, or its `image` array."""
        if "bytes" in batch:
            with pixel_limit(self.max_pixels):
                return decode_image(bytes(batch["bytes"][i]), source)
        return to_rgb(np.asarray(batch["image"][i]))


def _sources(batch: dict[str, np.ndarray]) -> list[str]:
    """The `path` of each row (`include_paths=True`), else `row <i>`; raises when the batch has no images."""
    if "bytes" not in batch and "image" not in batch:
        raise ValueError(
            f"a batch needs a 'bytes' column (ray.data.read_binary_files) or an 'image' column "
            f"(ray.data.read_images); got {', '.join(batch) or 'none'}"
        )
    rows = len(batch["bytes" if "bytes" in batch else "image"])
    return [str(p) for p in batch["path"]] if "path" in batch else [f"row {i}" for i in range(rows)]


def _column(values: Sequence) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


class SegmentImages(_Loaded):
    """`map_batches` callable: a batch of images -> the batch with one column per output kind of `options.save`
    (`mask` uint8 0/255 `(H, W)`, `prob` 0..255 `(H, W)`, `overlay` and `effect` RGB, `cutout` RGBA) and an `error`
    column ("" or the row's failure, whose arrays are then empty). The `bytes` column is dropped. Arguments as
    `_Loaded`."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sources = _sources(batch)
        outputs: dict[str, list[np.ndarray]] = {kind: [] for kind in self.kinds}
        errors = []
        for i, source in enumerate(sources):
            try:
                image = self.decode(batch, i, source)
                prob = postprocess(self.segmenter, image, self.options.frame)
                arrays = [
                    render(kind, image, prob, self.options.frame, self.segmenter.threshold) for kind in self.kinds
                ]
                errors.append("")
            except Exception as err:  # noqa: BLE001 - one row's failure must not stop the batch
                arrays = [np.zeros((0, 0, *CHANNELS[kind]), np.uint8) for kind in self.kinds]
                errors.append(failure_message(Path(source), err))
            for kind, array in zip(self.kinds, arrays, strict=True):
                outputs[kind].append(array)
        result = {name: column for name, column in batch.items() if name != "bytes"}
        result.update({kind: _column(arrays) for kind, arrays in outputs.items()})
        result["error"] = np.array(errors, dtype=object)
        return result


class SegmentFiles(_Loaded):
    """`map_batches` callable: a batch of `read_binary_files(..., include_paths=True)` -> one row per input with its
    `path`, the `files` it wrote (one per line), its `error` ("" when written) and `warning` (an image too small or of
    a single colour, segmented anyway).

    Args:
        output: the output folder, the same path on every node (shared storage), created if needed; the other
            arguments as `_Loaded`.
    """

    def __init__(self, output: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.output = prepare_output_dir(output)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "bytes" not in batch or "path" not in batch:
            raise ValueError(
                "SegmentFiles needs the 'bytes' and 'path' columns of read_binary_files(include_paths=True)"
            )
        sources = _sources(batch)
        files, errors, warnings = [], [], []
        for i, source in enumerate(sources):
            path = Path(source)
            found: list[str] = []
            try:
                targets = planned_outputs([path], self.output, self.options)[path]
                image = self.decode(batch, i, source)
                written = segment_image(self.segmenter, path, targets, self.options, found.append, image=image)
                files.append("\n".join(str(p) for p in written))
                errors.append("")
            except Exception as err:  # noqa: BLE001 - one input's failure must not stop the others
                files.append("")
                errors.append(failure_message(path, err))
            warnings.append("; ".join(found))
        return {
            "path": np.array(sources, dtype=object),
            "files": np.array(files, dtype=object),
            "error": np.array(errors, dtype=object),
            "warning": np.array(warnings, dtype=object),
        }
