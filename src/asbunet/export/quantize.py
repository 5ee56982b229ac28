"""Post-training static int8 quantization with onnxruntime (Section II-C): QDQ format, per-channel int8 weights reduced
to 7 bits, uint8 activations, calibrated on real photos preprocessed exactly like
`asbunet.inference.preprocess.prepare`. The 7-bit weights keep onnxruntime's u8 x s8 kernels exact on x86 CPUs
without VNNI, whose AVX2 instruction adds pairs of products in 16 bits and saturates with full 8-bit weights."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from asbunet.atomic import replacing
from asbunet.export.calibration import MIN_CALIBRATION_IMAGES, load_images
from asbunet.export.checks import network_batch
from asbunet.export.onnx import add_metadata
from asbunet.export.rewrites import PAD_INPUT_NODE, optimize_for_int8
from asbunet.inference.runners import OnnxRunner

# Weights of the int8 convolutions stay within +-64 (7 bits, `reduce_range`): AVX2 without VNNI multiplies u8
# activations by s8 weights and adds pairs of products in 16 bits (`vpmaddubsw`), and 2 x 255 x 64 = 32640 fits
# in an int16 where 2 x 255 x 127 does not. With this bound the integer results are the same on every x86 CPU.
INT8_WEIGHT_LIMIT = 64


QUANTIZATION_KEY = "asbunet.quantization"  # metadata of an int8 file: the recipe and its calibration


class CalibrationWarning(UserWarning):
    """int8 calibration on fewer than `MIN_CALIBRATION_IMAGES` photos."""


@dataclass
class QuantizeResult:
    """What `quantize_int8` did."""

    path: Path
    calibration_images: int
    calibration_size: str
    quant_format: str
    rewrites: dict = field(default_factory=dict)
    shared_concat_ranges: int = 0
    reduce_range: bool = True

    @property
    def recipe(self) -> str:
        weights = "7-bit (reduce_range)" if self.reduce_range else "8-bit"
        return f"int8 {self.quant_format.upper()}, per-channel s8 weights {weights}, u8 activations"

    def summary(self) -> str:
        rewrites = ", ".join(f"{k}: {v}" for k, v in self.rewrites.items()) or "none"
        return (
            f"{self.path}: {self.recipe}, calibrated on {self.calibration_images} image(s) at "
            f"{self.calibration_size}; rewrites: {rewrites}; Concats with shared input/output ranges: "
            f"{self.shared_concat_ranges}"
        )


class _Feeds:
    """An onnxruntime `CalibrationDataReader` over prepared batches (re-created for each pass)."""

    def __init__(self, name: str, batches: list[np.ndarray]):
        self.items = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self.items, None)


# The quantizer gives these operators' outputs their input's scale and zero point.
SAME_RANGE_OPS = ("Resize", "MaxPool", "Slice", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten")


def _concat_groups(model: onnx.ModelProto, activations: set[str]) -> list[list[str]]:
    """Tensors that must share one range so that every float Concat copies: its inputs, its output, and the inputs
    of the range-preserving operators (e.g. the Resize of the upscale connector) that produce them; groups that
    share a tensor are joined."""
    producer = {o: n for n in model.graph.node for o in n.output}
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t

    for cat in (n for n in model.graph.node if n.op_type == "Concat"):
        tensors = [*cat.input, cat.output[0]]
        if not all(t in activations for t in tensors):
            continue  # shape arithmetic, not activations
        for t in cat.input:
            node = producer.get(t)
            while node is not None and node.op_type in SAME_RANGE_OPS and node.input[0] in activations:
                tensors.append(node.input[0])
                node = producer.get(node.input[0])
        for t in tensors[1:]:
            parent[find(t)] = find(tensors[0])
    groups: dict[str, list[str]] = {}
    for t in parent:
        groups.setdefault(find(t), []).append(t)
    return list(groups.values())


def _shared_ranges(model_path: Path, name: str, batches: list[np.ndarray], workdir: Path) -> tuple[dict, int]:
    """Calibrates once (min/max), then gives every float Concat's inputs and output their common range.

    With equal scales and zero points, onnxruntime's QLinearConcat copies bytes instead of requantizing each input
    through a lookup table (half the Concat time in the profile); the convolutions that produce the inputs
    requantize to the shared scale for free. Returns the TensorQuantOverrides and the number of Concats covered.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(
        model_path, [], augmented_model_path=workdir / "augmented.onnx", calibrate_method=CalibrationMethod.MinMax
    )
    calibrator.collect_data(_Feeds(name, batches))
    ranges = calibrator.compute_data()
    model = onnx.load(str(model_path))
    overrides: dict[str, list] = {}
    for tensors in _concat_groups(model, set(ranges.keys())):
        lo = min(float(np.min(ranges[t].range_value[0])) for t in tensors)
        hi = max(float(np.max(ranges[t].range_value[1])) for t in tensors)
        for t in tensors:
            overrides[t] = [{"rmin": np.float32(min(lo, 0.0)), "rmax": np.float32(max(hi, 0.0))}]
    covered = sum(n.op_type == "Concat" and n.output[0] in overrides for n in model.graph.node)
    return overrides, covered


@contextlib.contextmanager
def _working_directory(path: Path):
    """Runs the block with `path` as the current directory (onnxruntime writes some temporary files there)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration_images: str | Path | Sequence,
    count: int | None = 32,
    input_size: int = 256,
    quant_format: str = "qdq",
    optimize: bool = True,
    share_concat_ranges: bool = True,
    preprocess: bool = True,
    per_channel: bool = True,
    reduce_range: bool = True,
) -> QuantizeResult:
    """Post-training static int8 quantization of an fp32 ONNX model with onnxruntime.

    The recipe keeps the int8 model's masks those of the fp32 model on every x86 CPU: QDQ, per-channel s8 weights
    within +-64 (`reduce_range`, see `INT8_WEIGHT_LIMIT`), u8 activations with min/max ranges from real photos.
    Fewer than `MIN_CALIBRATION_IMAGES` photos give a `CalibrationWarning` naming the count.

    Args:
        fp32_onnx: model written by `export_onnx`.
        out_path: the int8 `.onnx` file to write.
        calibration_images: a folder of images, image files or RGB uint8 arrays (real photos: activation ranges
            of random inputs do not match those of images).
        count: use at most this many calibration images (`MIN_CALIBRATION_IMAGES` or more are recommended).
        input_size: long side of the calibration inputs for a dynamic-size model (`prepare`); a fixed-size model
            is calibrated at its own size.
        quant_format: "qdq" (QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into QLinear kernels) or
            "qoperator" (QLinear operators written directly; slower here because its Resize runs in uint8).
        optimize: apply `optimize_for_int8` first.
        share_concat_ranges: give every Concat's inputs and output one range (see `_shared_ranges`).
        preprocess: run onnxruntime's `quant_pre_process` (symbolic shape inference and graph optimization).
        per_channel: per-output-channel weight scales (else per tensor).
        reduce_range: 7-bit weights. Only for measuring the saturation it prevents: full 8-bit weights lose accuracy
            on x86 CPUs without VNNI (mean mask IoU against fp32 0.969, worst image 0.706, measured on an AVX2 CPU).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    if quant_format not in formats:
        raise ValueError(f"quant_format must be one of {sorted(formats)}, got {quant_format!r}")
    runner = OnnxRunner(fp32_onnx)  # validates the file and gives its input name and size
    images = load_images(calibration_images, count)
    if not images:
        raise ValueError("no calibration images; give a folder of real photos like the ones the model will see")
    if len(images) < MIN_CALIBRATION_IMAGES:
        warnings.warn(
            f"int8 calibration on {len(images)} image(s), fewer than the {MIN_CALIBRATION_IMAGES} recommended: "
            "activation ranges from few photos may not hold on others; give more photos like the ones the model "
            "will see",
            CalibrationWarning,
            stacklevel=2,
        )
    batches = [network_batch(im, runner.size, input_size) for im in images]
    size_text = f"{runner.size[0]}x{runner.size[1]}" if runner.size else f"long side {input_size}"
    model = onnx.load(str(fp32_onnx))
    rewrites = optimize_for_int8(model) if optimize else {}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="asbunet-quant-") as tmp:
        work = Path(tmp)
        src = work / "fp32.onnx"
        onnx.save(model, str(src))
        if preprocess:
            pre = work / "fp32_pre.onnx"
            try:
                with _working_directory(work):  # a failed symbolic shape inference saves its model to the cwd
                    quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
            except Exception:  # noqa: BLE001 - symbolic shape inference gives up on some dynamic graphs
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            src = pre
        overrides, shared = _shared_ranges(src, runner.input_name, batches, work) if share_concat_ranges else ({}, 0)
        extra = {"TensorQuantOverrides": overrides} if overrides else {}
        # Stay in float: the input channel padding (quantizing before it would add a QuantizeLinear/DequantizeLinear
        # pair) and the final resize of the logits (its output would be quantized and dequantized again).
        graph = onnx.load(str(src)).graph
        outputs = {o.name for o in graph.output}
        exclude = [
            n.name for n in graph.node if n.name == PAD_INPUT_NODE or (n.op_type == "Resize" and n.output[0] in outputs)
        ]
        quantized = work / "int8.onnx"
        quantize_static(
            str(src),
            str(quantized),
            _Feeds(runner.input_name, batches),
            quant_format=formats[quant_format],
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            extra_options=extra,
        )
        proto = onnx.load(str(quantized))
    source_meta = {p.key: p.value for p in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
    result = QuantizeResult(out_path, len(images), size_text, quant_format, rewrites, shared, reduce_range)
    add_metadata(proto, {**source_meta, QUANTIZATION_KEY: f"{result.recipe}; {len(images)} calibration images"})
    with replacing(out_path, sync=True) as tmp:
        onnx.save(proto, str(tmp))
    return result
