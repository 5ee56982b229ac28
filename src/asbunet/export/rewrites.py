"""Exact graph rewrites that make the int8 graph run at full speed on onnxruntime's CPU kernels (`optimize_for_int8`;
docs/deployment.md shows the per-operator profile behind each rewrite)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

PAD_INPUT_NODE = "pad_input_channels"


# Symmetric int8 convolutions of onnxruntime (MLAS "ConvSym", an indirect convolution) need at least this many
# output channels and a multiple of 4 input channels; other convolutions fall back to im2col + GEMM.
CONVSYM_MIN_OUTPUT_CHANNELS = 16


CONVSYM_INPUT_CHANNEL_MULTIPLE = 4


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
