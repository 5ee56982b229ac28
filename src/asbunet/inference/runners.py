"""The runners: one small class per runtime (PyTorch, onnxruntime, LiteRT) behind one interface.

A runner is a callable taking a normalized float32 batch `(B, 3, h, w)` (`asbunet.inference.preprocess.normalize`)
and returning logits `(B, 1, h, w)` as numpy, so `Segmenter` runs a PyTorch model, an ONNX or a TFLite file alike;
`asbunet.inference.weights.load_model` picks the runner of a model spec. Nothing here imports PyTorch at import time:
the bundled ONNX files need only onnxruntime, OpenCV and numpy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from asbunet.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from torch import nn

Runner = Callable[[np.ndarray], np.ndarray]  # normalized batch (B, 3, h, w) -> logits (B, 1, h, w)
THRESHOLD_KEY = "asbunet.threshold"  # metadata: the model's mask threshold (`Segmenter.threshold`)
INPUT_SIZE_KEY = "asbunet.input_size"  # metadata: the long side a dynamic-size model runs at (`Segmenter.input_size`)
REFINE_KEY = "asbunet.refine"  # metadata: how the probability is resized back (`asbunet.inference.refine`), if stored
HEAD_STRIDE_KEY = (
    "asbunet.head_stride"  # "true": logits at the network's output stride (`asbunet export --head-stride`)
)
# metadata of the bundled ONNX files (`asbunet export --bundled`, `asbunet.export.bundled.export_bundled`):
WEIGHTS_DIGEST_KEY = "asbunet.weights_sha256"  # SHA-256 of the safetensors file they were exported from
INT8_DEFAULT_KEY = "asbunet.int8_default"  # "true": int8 within `INT8_TOLERANCE` of fp32, the default runtime
INT8_CHECK_KEY = "asbunet.int8_check"  # JSON: the measurement behind INT8_DEFAULT_KEY (images, IoUs, CPU)
# onnxruntime raises these (all plain `Exception` subclasses) for unreadable or invalid models.
ORT_ERRORS = tuple(
    getattr(_ort_state, name)
    for name in (
        "Fail",
        "InvalidArgument",
        "InvalidGraph",
        "InvalidProtobuf",
        "NoSuchFile",
        "NotImplemented",
        "RuntimeException",
        "EPFail",
    )
    if hasattr(_ort_state, name)
) + (UnicodeDecodeError,)  # a name or metadata text of the file that is not UTF-8


def onnx_load_problem(err: BaseException) -> str:
    """What an onnxruntime load error says about the file, in words, with the fix: an operator or opset this
    onnxruntime does not implement is not corruption."""
    text = str(err).strip()
    version = f"onnxruntime {ort.__version__}"
    fix = "export the model with `asbunet export`, or upgrade onnxruntime"
    again = "export it again with `asbunet export`"
    if found := re.search(r"No Op registered for (\S+) with domain_version of (\d+)", text):
        return f"it uses the operator {found[1]} (opset {found[2]}), which {version} does not implement; {fix}"
    if found := re.search(r"(?:([\w.]+):)?(\w+)\(-?\d+\) is not a registered function/op", text):
        domain = f" of the domain {found[1]}" if found[1] else ""
        return f"it uses the operator {found[2]}{domain}, which {version} does not implement; {fix}"
    if found := re.search(r"Could not find an implementation for (\w+)\((\d+)\)", text):
        return f"{version} cannot run its operator {found[1]} (opset {found[2]}) on these types; {fix}"
    if found := re.search(r"Opset (\d+) is under development.*?till opset (\d+)", text, re.S):
        return f"it is stamped with opset {found[1]}, newer than {version} supports (up to {found[2]}); {fix}"
    if isinstance(err, UnicodeDecodeError):
        return f"a name or text in the file is not UTF-8: the file is corrupt; {again}"
    if isinstance(err, getattr(_ort_state, "InvalidProtobuf", ())) or "Protobuf parsing failed" in text:
        return f"the file cannot be parsed as ONNX (truncated, corrupt or not an ONNX file); {again}"
    detail = re.sub(r"^(\[ONNXRuntimeError\] : \d+ : \w+ : )?(Load model from .*? failed:)?", "", text).strip()
    return f"{detail or type(err).__name__}; the file may be truncated or corrupt: {again}"


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


def model_settings_of(path: Path, metadata: dict[str, str], size: tuple[int, int] | None, fix: str):
    """`(input_size, threshold)` of an ONNX file from its fixed `(H, W)` (None: dynamic) and its `asbunet.*` metadata:
    the long side of a fixed size, else the stored input size (None when there is none); the stored threshold, else
    0.5. `ValueError` naming `path` for a threshold that is not a number."""
    stored = int(metadata[INPUT_SIZE_KEY]) if metadata.get(INPUT_SIZE_KEY, "").isdigit() else None
    try:
        threshold = float(metadata.get(THRESHOLD_KEY, 0.5))
    except ValueError:
        raise ValueError(f"{path}: stored threshold {metadata[THRESHOLD_KEY]!r} is not a number; {fix}") from None
    return (max(size) if size else stored), threshold


SIGNATURE_FIX = "export a segmentation model with `asbunet export` (input (B, 3, H, W) float32, output (B, 1, H, W))"


def check_signature(path: Path, inputs: list, outputs: list) -> None:
    """Raises a `ValueError` naming `path` unless the model has one float32 input `(B, 3, H, W)` and one float32
    output `(B, 1, H, W)`. `inputs` and `outputs` hold `(name, type text, float32?, shape)` with None for dynamic
    dimensions, as each runtime reports them."""
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"{path}: expected 1 input and 1 output, found {len(inputs)} and {len(outputs)}; {SIGNATURE_FIX}"
        )
    (name, kind, is_float, shape), (out_name, out_kind, out_float, out_shape) = inputs[0], outputs[0]
    if not is_float or len(shape) != 4 or shape[1] not in (3, None):
        raise ValueError(f"{path}: input {name!r} is {kind}, not a float32 (B, 3, H, W) image batch; {SIGNATURE_FIX}")
    if not out_float or len(out_shape) != 4 or out_shape[1] not in (1, None):
        raise ValueError(f"{path}: output {out_name!r} is {out_kind}, not float32 (B, 1, H, W) logits; {SIGNATURE_FIX}")


class FileRunner:
    """What the runners of ONNX files share: the batch check, and a model exported at a fixed size running every batch
    at that size (other sizes are resized to it, bilinear on the normalized input, and the logits resized back).

    Attributes:
        path: the `.onnx` file.
        size: `(H, W)` of a fixed-size model, None for a model with dynamic height and width.
        batch: the fixed batch size of the model, None for a dynamic one.
        input_size: long side of `size` (what `Segmenter` uses as its input size); for a dynamic-size model the one
            stored in its metadata by `asbunet export`, else None.
        threshold: the stored threshold, else 0.5.
        metadata: the file's metadata, `{key: value}` strings (`asbunet.*` keys written by `asbunet export`).
    """

    path: Path
    size: tuple[int, int] | None
    batch: int | None
    input_size: int | None
    threshold: float
    metadata: dict[str, str]

    def _settle(self, metadata: dict[str, str], shape: list[int | None]) -> None:
        """Sets `metadata`, `batch`, `size`, `input_size` and `threshold` from the metadata and the input's shape."""
        self.metadata = metadata
        self.batch = shape[0]
        self.size = (shape[2], shape[3]) if shape[2] is not None and shape[3] is not None else None
        self.input_size, self.threshold = model_settings_of(self.path, metadata, self.size, SIGNATURE_FIX)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits `(B, 1, h, w)` of a contiguous float32 batch at a size the model takes."""
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.batch is not None and batch.shape[0] != self.batch:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
        return self._infer(batch)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 3:
            shape = getattr(batch, "shape", type(batch).__name__)
            raise ValueError(f"{self.path}: expected a normalized batch shaped (B, 3, H, W), got {shape}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        h, w = batch.shape[2:]
        if self.size is None or self.size == (h, w):
            return self._run(batch)
        sh, sw = self.size
        resized = np.stack(
            [
                cv2.resize(x.transpose(1, 2, 0), (sw, sh), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
                for x in batch
            ]
        )  # (B, 3, sh, sw)
        logits = self._run(np.ascontiguousarray(resized))  # (B, 1, sh, sw)
        return np.stack([cv2.resize(y[0], (w, h), interpolation=cv2.INTER_LINEAR)[None] for y in logits])


class OnnxRunner(FileRunner):
    """Runs an ONNX person-segmentation model with onnxruntime on the CPU.

    The model must take one float32 input `(B, 3, H, W)` (normalized RGB, `asbunet.inference.preprocess.normalize`) and
    return logits `(B, 1, H, W)`, as `export_onnx` writes it; see `FileRunner` for its attributes.

    Args:
        path: the `.onnx` file.
        threads: intra-op threads (None: onnxruntime's default, one per core).
        profile: write an onnxruntime profile (JSON, see `end_profiling`) with this file name prefix.
        optimization: onnxruntime graph optimization level ("all", "extended", "basic" or "disabled").
    """

    LEVELS = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }

    def __init__(
        self, path: str | Path, threads: int | None = None, profile: str | None = None, optimization: str = "all"
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"ONNX model not found: {self.path}; write one with `asbunet export MODEL --output {self.path}`"
            )
        if optimization not in self.LEVELS:
            raise ValueError(f"optimization must be one of {sorted(self.LEVELS)}, got {optimization!r}")
        options = ort.SessionOptions()
        options.graph_optimization_level = self.LEVELS[optimization]
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be at least 1, got {threads}")
            options.intra_op_num_threads = threads
        if profile is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except ORT_ERRORS as err:
            raise ValueError(f"{self.path}: not a usable ONNX model: {onnx_load_problem(err)}") from None
        self.threads = threads
        self._check_signature()

    def _check_signature(self) -> None:
        def described(arg) -> tuple:
            shape = [d if isinstance(d, int) else None for d in arg.shape]
            return arg.name, f"{arg.type} {list(arg.shape)}", arg.type == "tensor(float)", shape

        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_signature(self.path, [described(i) for i in inputs], [described(o) for o in outputs])
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        try:
            meta = self.session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError as err:
            raise ValueError(f"{self.path}: its metadata is not UTF-8 text ({err}); {SIGNATURE_FIX}") from None
        self._settle(dict(meta), described(inputs[0])[3])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def end_profiling(self) -> Path:
        """Stops profiling (see `profile`) and returns the JSON trace file."""
        return Path(self.session.end_profiling())


class TfliteRunner:
    """Runs a `.tflite` model with ai-edge-litert (XNNPACK on the CPU) with the same runner API as `OnnxRunner`.

    Models written by `export_tflite` keep PyTorch's NCHW signature. Models with an NHWC input such as MediaPipe's
    (`(1, H, W, 3)`) are fed NHWC; `input_range` then says what the model expects ("normalized" for `normalize`
    output, "unit" for RGB in [0, 1], the MediaPipe convention) and `output` whether it returns logits or
    probabilities (converted to logits here).
    """

    def __init__(
        self, path: str | Path, threads: int | None = None, input_range: str = "normalized", output: str = "logits"
    ):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("running .tflite models needs ai-edge-litert: pip install ai-edge-litert") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"TFLite model not found: {self.path}")
        if input_range not in ("normalized", "unit") or output not in ("logits", "probability"):
            raise ValueError("input_range must be 'normalized' or 'unit' and output 'logits' or 'probability'")
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{self.path}: not a usable TFLite model ({err})") from None
        self.input, self.output = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        shape = [int(d) for d in self.input["shape"]]
        self.nhwc = shape[-1] == 3 and shape[1] != 3
        self.size = (shape[1], shape[2]) if self.nhwc else (shape[2], shape[3])
        self.input_size = max(self.size)
        self.input_range, self.output_kind = input_range, output

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Runs the interpreter on an array in the model's own layout and value range (for benchmarks)."""
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for x in np.asarray(batch, dtype=np.float32):  # (3, h, w)
            h, w = x.shape[1:]
            img = cv2.resize(x.transpose(1, 2, 0), self.size[::-1], interpolation=cv2.INTER_LINEAR)  # (H, W, 3)
            if self.input_range == "unit":
                img = img * np.asarray(IMAGENET_STD, np.float32) + np.asarray(IMAGENET_MEAN, np.float32)
            feed = img[None] if self.nhwc else img.transpose(2, 0, 1)[None]
            y = np.asarray(self.invoke(np.ascontiguousarray(feed, dtype=np.float32)), np.float32)
            y = y[0, ..., 0] if self.nhwc else y[0, 0]  # (H, W)
            if self.output_kind == "probability":
                p = np.clip(y, 1e-6, 1 - 1e-6)
                y = np.log(p / (1 - p))
            outs.append(cv2.resize(y, (w, h), interpolation=cv2.INTER_LINEAR)[None])
        return np.stack(outs).astype(np.float32)
