"""Deployment: ONNX export checked against PyTorch, int8 post-training quantization, TFLite export.

The paper keeps ASBU-Net to plain convolutions, ReLU, max pooling, concatenation and bilinear resizing so that it "can
be easily implemented, quantized and deployed" (Abstract, Section III-D), and uses 8-bit integer quantization to
shrink it further (Section II-C). This module is that path:

* `export_onnx` writes a model to ONNX (torch.export based exporter; BatchNorm is folded into the convolutions in
  eval mode) and checks onnxruntime against PyTorch on random and real inputs.
* `quantize_int8` does post-training static quantization with onnxruntime: QDQ format, per-channel int8 weights
  reduced to 7 bits, uint8 activations, calibrated on real images preprocessed exactly like
  `asbunet.inference.prepare`. The 7-bit weights keep onnxruntime's u8 x s8 kernels exact on x86 CPUs without VNNI,
  whose AVX2 instruction adds pairs of products in 16 bits and saturates with full 8-bit weights. Before quantizing
  it rewrites the graph so that onnxruntime's int8 kernels run at full speed (`optimize_for_int8`;
  docs/deployment.md shows the per-operator profile behind each rewrite).
* `export_tflite`: the optional TFLite path (litert-torch to convert, ai-edge-litert to run).

The runners that execute the files (`OnnxRunner`, `TfliteRunner`) live in `asbunet.runtime`, which needs no PyTorch.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from asbunet.atomic import replacing
from asbunet.data.io import list_images, read_image
from asbunet.inference.postprocess import sigmoid
from asbunet.inference.preprocess import prepare, prepare_at
from asbunet.inference.runners import OnnxRunner, TfliteRunner

DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "image", "logits"
PAD_INPUT_NODE = "pad_input_channels"
# Fewer calibration photos give activation ranges fitted to those few photos (min/max calibration: one unusual photo
# more or less moves a range); below this count `quantize_int8` warns.
MIN_CALIBRATION_IMAGES = 32
# Photos for int8 calibration when none are given, relative to the repository root: the training photos of the
# bundled model, never its test photos.
DEFAULT_CALIBRATION = (Path("../shared/data/pfcn_portrait/train/images"), Path("../shared/data/ccp/train/images"))
SAMPLE_PHOTOS = Path("../shared/data/ccp_samples/images")  # eight test photos: the fallback, with a warning
# Symmetric int8 convolutions of onnxruntime (MLAS "ConvSym", an indirect convolution) need at least this many
# output channels and a multiple of 4 input channels; other convolutions fall back to im2col + GEMM.
CONVSYM_MIN_OUTPUT_CHANNELS = 16
CONVSYM_INPUT_CHANNEL_MULTIPLE = 4


# ----------------------------------------------------------------------------------------------- inputs and checks


def load_images(source: str | Path | Sequence, count: int | None = None) -> list[np.ndarray]:
    """RGB uint8 images from a folder, a list of files or a list of arrays (the first `count` of them)."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}; give a folder of .jpg/.png images")
        paths = list_images(folder)
        if not paths:
            raise ValueError(f"{folder}: no images found (expected .jpg, .png, ... files)")
        source = paths
    items = list(source)[:count] if count is not None else list(source)
    return [item if isinstance(item, np.ndarray) else read_image(item) for item in items]


def spread(items: Sequence, count: int | None) -> list:
    """`count` items evenly spaced over `items` (all of them when `count` is None or not smaller)."""
    items = list(items)
    if count is None or count >= len(items):
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, max(count, 0)).round()]


def calibration_files(folders: str | Path | Sequence[str | Path], count: int | None = MIN_CALIBRATION_IMAGES) -> list:
    """`count` image files for int8 calibration, shared equally by one or several folders and evenly spaced in each
    (a folder's first files are often one session or one photographer)."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    files = []
    for k, folder in enumerate(folders):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}; give a folder of .jpg/.png images")
        share = None if count is None else count // len(folders) + (k < count % len(folders))
        files += spread(list_images(folder), share)
    if not files:
        raise ValueError(f"no images found in {', '.join(map(str, folders))} (expected .jpg, .png, ... files)")
    return files


def default_calibration() -> list[Path]:
    """Photos for int8 calibration when none are given: the project's training photos beside the repository
    (`DEFAULT_CALIBRATION`), else its eight sample photos, else none."""
    if all(folder.is_dir() for folder in DEFAULT_CALIBRATION):
        return list(DEFAULT_CALIBRATION)
    return [SAMPLE_PHOTOS] if SAMPLE_PHOTOS.is_dir() else []


def set_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Adds or replaces `key: value` strings in the metadata of an ONNX file (rewritten atomically)."""
    proto = onnx.load(str(path))
    _set_metadata(proto, meta)
    with replacing(path, sync=True) as tmp:
        onnx.save(proto, str(tmp))


def network_batch(image: np.ndarray, size: tuple[int, int] | None, input_size: int = 256) -> np.ndarray:
    """The batch `(1, 3, h, w)` of one image for a model of fixed `size`, or at `input_size` for a dynamic one."""
    return (prepare(image, input_size) if size is None else prepare_at(image, size))[None]


def random_batch(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A seeded standard-normal batch `(1, 3, h, w)`, the scale of normalized images."""
    return np.random.default_rng(seed).standard_normal((1, 3, *size)).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass
class Agreement:
    """How closely a runner reproduces PyTorch on some inputs (logits, probabilities, masks at 0.5)."""

    inputs: int
    max_abs_diff: float  # logits
    max_abs_logit: float  # the scale of the logits, for context
    max_prob_diff: float
    mask_iou: float  # IoU of the two masks over all inputs together

    def __str__(self) -> str:
        return (
            f"max |logit diff| {self.max_abs_diff:.3g} (logits up to {self.max_abs_logit:.3g}), "
            f"max |prob diff| {self.max_prob_diff:.3g}, mask IoU {self.mask_iou:.4f} over {self.inputs} input(s)"
        )


@torch.inference_mode()
def agreement(model: nn.Module, runner, batches: Iterable[np.ndarray]) -> Agreement:
    """Compares `runner` (batch -> logits) with the PyTorch `model` in eval mode on each batch."""
    model = model.eval()
    diffs, scales, prob_diffs, masks_ref, masks = [], [], [], [], []
    n = 0
    for batch in batches:
        ref = model(torch.from_numpy(batch)).float().numpy()
        out = runner(batch)
        if out.shape != ref.shape:
            raise ValueError(f"runner output {out.shape} differs from PyTorch's {ref.shape} for input {batch.shape}")
        diffs.append(float(np.abs(out - ref).max()))
        scales.append(float(np.abs(ref).max()))
        prob_diffs.append(float(np.abs(sigmoid(out) - sigmoid(ref)).max()))
        masks_ref.append((ref > 0).ravel())
        masks.append((out > 0).ravel())
        n += batch.shape[0]
    if not n:
        raise ValueError("no inputs to compare")
    iou = _iou(np.concatenate(masks_ref), np.concatenate(masks))
    return Agreement(n, max(diffs), max(scales), max(prob_diffs), iou)


# ---------------------------------------------------------------------------------------------------------- export


@dataclass
class ExportResult:
    """An exported file and how closely it reproduces PyTorch."""

    path: Path
    size: tuple[int, int] | None  # None: dynamic height and width
    random: Agreement
    real: Agreement | None = None
    notes: dict = field(default_factory=dict)

    def summary(self) -> str:
        shape = "dynamic H, W" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        lines = [f"{self.path} ({shape})", f"  random input: {self.random}"]
        lines.append(f"  real images:  {self.real}" if self.real else "  real images:  none given")
        lines += [f"  {k}: {v}" for k, v in self.notes.items()]
        return "\n".join(lines)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) < 16 for s in size):
        raise ValueError(f"size must be (H, W) with both sides at least 16, got {tuple(size)}")
    return int(size[0]), int(size[1])


def _real_batches(images: Sequence[np.ndarray] | None, size: tuple[int, int] | None, input_size: int):
    return [network_batch(im, size, input_size) for im in images or ()]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    size: Sequence[int] = (256, 256),
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    images: Sequence[np.ndarray] | None = None,
    input_size: int = 256,
    merge_branches: bool = True,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Exports `model` to ONNX and checks onnxruntime against PyTorch.

    Args:
        model: any model of the package (returns logits `(B, 1, H, W)`); it is put in eval mode, which folds every
            BatchNorm into its convolution.
        path: the `.onnx` file to write.
        size: `(H, W)` of a fixed-size model (also the size of the random check input).
        dynamic: export with dynamic batch, height and width instead (onnxruntime plans fixed sizes better:
            about 5% faster in fp32 on this package's models).
        opset: ONNX opset.
        images: RGB uint8 images for the real-input check, preprocessed like `asbunet.inference.prepare`
            (resized to `size` for a fixed-size model, else at `input_size`).
        input_size: long side used for `images` when `dynamic`.
        merge_branches: merge parallel convolutions that read the same tensor with the same kernel, stride and
            dilation into one convolution (exact; `merge_parallel_convs`).
        metadata: extra `key: value` strings stored in the file.
    """
    path = Path(path)
    size = _check_size(size)
    model = model.eval()
    x = torch.from_numpy(random_batch(size))
    kwargs: dict = {}
    if dynamic:
        from torch.export import Dim

        kwargs["dynamic_shapes"] = {
            "x": {0: Dim("batch", max=1024), 2: Dim("height", min=16, max=8192), 3: Dim("width", min=16, max=8192)}
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import onnxscript  # noqa: F401 - the torch.export based exporter needs it
    except ImportError:
        raise ImportError("ONNX export needs onnxscript: pip install onnxscript") from None
    with replacing(path, sync=True) as tmp:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                model,
                (x,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
                **kwargs,
            )
        proto = onnx.load(str(tmp))
        notes = {}
        if merge_branches:
            notes["merged parallel convolutions"] = merge_parallel_convs(proto)
        meta = {
            "asbunet.input": "float32 (B, 3, H, W), RGB normalized like asbunet.inference.preprocess.normalize",
            "asbunet.output": "float32 (B, 1, H, W) person logits (sigmoid gives the probability)",
            **(metadata or {}),
        }
        _set_metadata(proto, meta)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    random, real = check_onnx(model, path, size, images, input_size)
    return ExportResult(path, None if dynamic else size, random, real, notes)


def check_onnx(
    model: nn.Module,
    path: str | Path,
    size: Sequence[int] = (256, 256),
    images: Sequence[np.ndarray] | None = None,
    input_size: int = 256,
) -> tuple[Agreement, Agreement | None]:
    """How closely an ONNX file (fp32 or int8) reproduces `model`: on a seeded random batch of `size` (a fixed-size
    file uses its own size) and, when given, on real images preprocessed like `network_batch`."""
    runner = OnnxRunner(path)
    size = runner.size or _check_size(size)
    random = agreement(model, runner, [random_batch(size)])
    real = agreement(model, runner, _real_batches(images, runner.size, input_size)) if images else None
    return random, real


def _set_metadata(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in meta.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            proto.metadata_props.add(key=key, value=str(value))


# ------------------------------------------------------------------------------------ graph rewrites for int8 speed


class _Graph:
    """Producer/consumer maps and initializers of an ONNX graph, for the rewrites below."""

    def __init__(self, model: onnx.ModelProto):
        self.g = model.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.uses: dict[str, int] = {}
        for n in self.g.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in self.g.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def set_array(self, name: str, value: np.ndarray) -> None:
        self.inits[name].CopyFrom(numpy_helper.from_array(value, name))

    def add_array(self, name: str, value: np.ndarray) -> str:
        tensor = numpy_helper.from_array(value, name)
        self.g.initializer.append(tensor)
        self.inits[name] = tensor
        return name


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _finish(model: onnx.ModelProto) -> None:
    """Drops stale shape annotations and unused initializers after a rewrite."""
    del model.graph.value_info[:]
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


@dataclass
class _Branch:
    conv: onnx.NodeProto
    act: onnx.NodeProto | None  # a Relu, or None

    @property
    def output(self) -> str:
        return (self.act or self.conv).output[0]


def _branch(graph: _Graph, tensor: str) -> _Branch | None:
    """The `Conv [-> Relu]` producing `tensor` when nothing else reads its intermediate results."""
    node = graph.producer.get(tensor)
    if node is None or graph.uses.get(tensor, 0) != 1:
        return None
    act = None
    if node.op_type == "Relu":
        act, node = node, graph.producer.get(node.input[0])
        if node is None or graph.uses.get(act.input[0], 0) != 1:
            return None
    if node.op_type != "Conv" or node.input[1] not in graph.inits:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in graph.inits:
        return None
    a = _attrs(node)
    if a.get("group", 1) != 1 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    return _Branch(node, act)


def _kernel(graph: _Graph, b: _Branch) -> tuple:
    a = _attrs(b.conv)
    k = tuple(graph.inits[b.conv.input[1]].dims[2:])
    return (
        k,
        tuple(a.get("dilations", [1] * len(k))),
        tuple(a.get("pads", [0] * 2 * len(k))),
        tuple(a.get("strides", [1] * len(k))),
        b.conv.input[0],
        b.act is not None,
    )


def _groups(graph: _Graph, branches: list[_Branch | None]) -> list[list]:
    """Contiguous runs of concat inputs with the same input, kernel, dilation, padding, stride and activation."""
    groups: list[list] = []
    for b in branches:
        last = groups[-1][0] if groups else None
        if b is not None and last is not None and _kernel(graph, last) == _kernel(graph, b):
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups


def merge_parallel_convs(model: onnx.ModelProto) -> int:
    """Merges parallel `Conv [-> Relu]` branches of a Concat that one convolution can compute (in place).

    The ASB layer (Section III-B) computes a 1x1, a 3x3 and a dilated 3x3 convolution of one tensor and concatenates
    them; where the two 3x3 branches have the same dilation (ASBL2, ASBL8 and the decoder's ASB layers, dilation 1)
    they are one convolution with the filters stacked, and the concatenation of their outputs is that
    convolution's output. Exact; one kernel launch and one input pass instead of two, and a GEMM twice as wide
    (onnxruntime's int8 convolution is about 60% efficient at 24 filters, 80-90% at 48-64).

    Returns:
        the number of convolutions written.
    """
    graph = _Graph(model)
    replaced: dict[int, list] = {}
    removed: set[int] = set()
    written = 0
    for cat in list(graph.g.node):
        if cat.op_type != "Concat" or _attrs(cat).get("axis") not in (1, -3):
            continue
        groups = _groups(graph, [_branch(graph, t) for t in cat.input])
        if all(len(grp) == 1 for grp in groups):
            continue
        new_inputs, new_nodes, position = [], [], 0
        for grp in groups:
            position += len(grp)
            if len(grp) == 1:
                new_inputs.append(cat.input[position - 1])
                continue
            first = grp[0].conv
            a = _attrs(first)
            weights = [graph.array(b.conv.input[1]) for b in grp]
            biases = [
                graph.array(b.conv.input[2])
                if len(b.conv.input) > 2 and b.conv.input[2]
                else np.zeros(w.shape[0], w.dtype)
                for b, w in zip(grp, weights, strict=True)
            ]
            removed.update(id(n) for b in grp for n in (b.conv, b.act) if n is not None)
            name = f"{first.name}_merged"
            w_name = graph.add_array(f"{name}.weight", np.concatenate(weights))
            b_name = graph.add_array(f"{name}.bias", np.concatenate(biases))
            out = f"{name}_out"
            new_nodes.append(
                helper.make_node(
                    "Conv",
                    [first.input[0], w_name, b_name],
                    [out],
                    name=name,
                    kernel_shape=list(weights[0].shape[2:]),
                    group=1,
                    **{k: a[k] for k in ("dilations", "pads", "strides") if k in a},
                )
            )
            if grp[0].act is not None:
                new_nodes.append(helper.make_node("Relu", [out], [f"{name}_relu"], name=f"{name}_relu"))
            new_inputs.append(new_nodes[-1].output[0])
            written += 1
        if len(new_inputs) == 1:  # the Concat disappears: the merged convolution writes its output
            new_nodes[-1].output[0] = cat.output[0]
            removed.add(id(cat))
        else:
            del cat.input[:]
            cat.input.extend(new_inputs)
        replaced[id(cat)] = new_nodes
    if not written:
        return 0
    nodes = []
    for n in graph.g.node:
        nodes.extend(replaced.get(id(n), []))
        if id(n) not in removed:
            nodes.append(n)
    del graph.g.node[:]
    graph.g.node.extend(nodes)
    _finish(model)
    return written


def pad_input_channels(model: onnx.ModelProto, multiple: int = CONVSYM_INPUT_CHANNEL_MULTIPLE) -> int:
    """Pads the image input of the first convolutions with zero channels up to a multiple of `multiple` (in place).

    conv1 sees 3 channels; onnxruntime's fast symmetric int8 convolution needs a multiple of 4, so without this
    conv1 falls back to im2col + GEMM (about 2x slower). The extra channel has zero weights: exact.
    """
    graph = _Graph(model)
    image = graph.g.input[0].name
    convs = [n for n in graph.g.node if n.op_type == "Conv" and n.input[0] == image and n.input[1] in graph.inits]
    if not convs:
        return 0
    channels = graph.inits[convs[0].input[1]].dims[1]
    extra = (-channels) % multiple
    if not extra or any(graph.inits[n.input[1]].dims[1] != channels or _attrs(n).get("group", 1) != 1 for n in convs):
        return 0
    pads = graph.add_array(f"{image}_channel_pads", np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64))
    padded = f"{image}_padded"
    for n in convs:
        w = graph.array(n.input[1])
        graph.set_array(n.input[1], np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], 1))
        n.input[0] = padded
    graph.g.node.insert(0, helper.make_node("Pad", [image, pads], [padded], name=PAD_INPUT_NODE, mode="constant"))
    _finish(model)
    return len(convs)


def pad_output_channels(model: onnx.ModelProto, minimum: int = CONVSYM_MIN_OUTPUT_CHANNELS) -> int:
    """Gives convolutions with fewer than `minimum` filters zero filters up to `minimum`, then slices (in place).

    The head's last convolution has one filter; as int8 it would run as a GEMM with N = 1, far below the
    speed of the symmetric int8 convolution, which needs 16 filters. Exact: the extra outputs are sliced away.
    """
    graph = _Graph(model)
    done = 0
    for n in list(graph.g.node):
        if n.op_type != "Conv" or n.input[1] not in graph.inits or _attrs(n).get("group", 1) != 1:
            continue
        has_bias = len(n.input) > 2 and bool(n.input[2])
        w = graph.array(n.input[1])
        filters = w.shape[0]
        if filters >= minimum or (has_bias and n.input[2] not in graph.inits):
            continue
        graph.set_array(n.input[1], np.concatenate([w, np.zeros((minimum - filters, *w.shape[1:]), w.dtype)]))
        if has_bias:
            b = graph.array(n.input[2])
            graph.set_array(n.input[2], np.concatenate([b, np.zeros(minimum - filters, b.dtype)]))
        # slice after a Relu that alone reads the convolution, so that the Relu still fuses into it
        last = n
        readers = [c for c in graph.g.node if n.output[0] in c.input]
        if len(readers) == 1 and readers[0].op_type == "Relu" and graph.uses.get(n.output[0]) == 1:
            last = readers[0]
        out = last.output[0]
        last.output[0] = f"{out}_padded"
        starts = graph.add_array(f"{n.name}_slice_starts", np.array([0], np.int64))
        ends = graph.add_array(f"{n.name}_slice_ends", np.array([filters], np.int64))
        axes = graph.add_array(f"{n.name}_slice_axes", np.array([1], np.int64))
        position = list(graph.g.node).index(last)
        graph.g.node.insert(
            position + 1, helper.make_node("Slice", [last.output[0], starts, ends, axes], [out], name=f"{n.name}_slice")
        )
        done += 1
    if done:
        _finish(model)
    return done


def optimize_for_int8(model: onnx.ModelProto) -> dict[str, int]:
    """The exact rewrites that make the quantized graph fast on onnxruntime's CPU kernels (in place)."""
    return {
        "merged convolutions": merge_parallel_convs(model),
        "input channels padded to 4": pad_input_channels(model),
        "convolutions padded to 16 filters": pad_output_channels(model),
    }


# ---------------------------------------------------------------------------------------------------- quantization


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
        raise ValueError("no calibration images; give a folder of real photos (e.g. ../shared/data/ccp_samples)")
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
    _set_metadata(proto, {**source_meta, QUANTIZATION_KEY: f"{result.recipe}; {len(images)} calibration images"})
    with replacing(out_path, sync=True) as tmp:
        onnx.save(proto, str(tmp))
    return result


# ---------------------------------------------------------------------------------------------------------- TFLite


def export_tflite(
    model: nn.Module, path: str | Path, size: Sequence[int] = (256, 256), images: Sequence[np.ndarray] | None = None
) -> ExportResult:
    """Converts `model` to a fixed-size `.tflite` file with litert-torch and checks ai-edge-litert against PyTorch.

    Raises:
        ImportError: litert-torch or ai-edge-litert is not installed (`pip install 'asbunet[tflite]'`).
    """
    try:
        import litert_torch
    except ImportError:
        raise ImportError("TFLite export needs litert-torch: pip install 'asbunet[tflite]'") from None
    path = Path(path)
    size = _check_size(size)
    model = copy.deepcopy(model).eval()
    x = torch.from_numpy(random_batch(size))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, sync=True) as tmp:
        litert_torch.convert(model, (x,)).export(str(tmp))
    runner = TfliteRunner(path)
    random = agreement(model, runner, [x.numpy()])
    real = agreement(model, runner, _real_batches(images, size, max(size))) if images else None
    return ExportResult(path, size, random, real)
