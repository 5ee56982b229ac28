"""ONNX export checked against PyTorch (torch.export based exporter; BatchNorm folded into the convolutions in eval
mode), and the metadata the package stores in its ONNX files."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from asbunet.atomic import replacing
from asbunet.export.checks import ExportResult, check_onnx, check_size, random_batch
from asbunet.export.rewrites import merge_parallel_convs
from asbunet.inference.runners import HEAD_STRIDE_KEY

DEFAULT_OPSET = 18


INPUT_NAME, OUTPUT_NAME = "image", "logits"


class HeadLogits(nn.Module):
    """A model of the package without its last layer, the bilinear resize of the logits to the input size: logits
    `(B, 1, h, w)` at the head's stride (`EncoderDecoder.head_logits`). `Segmenter` resizes them back to the image
    itself, so the network's own full-size resize (and the sigmoid over four times the pixels) is saved."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, "head_logits"):
            raise ValueError(
                f"{type(model).__name__} has no head_logits: only encoder-decoder models export at the head's stride"
            )
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head_logits(x)  # (B, 1, H/s, W/s)


def set_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Adds or replaces `key: value` strings in the metadata of an ONNX file (rewritten atomically)."""
    proto = onnx.load(str(path))
    add_metadata(proto, meta)
    with replacing(path, sync=True) as tmp:
        onnx.save(proto, str(tmp))


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
    head_stride: bool = False,
) -> ExportResult:
    """Exports `model` to ONNX and checks onnxruntime against PyTorch.

    Args:
        model: any model of the package (returns logits `(B, 1, H, W)`); a copy of it is exported in eval mode,
            which folds every BatchNorm into its convolution, and the model itself is left as it is.
        path: the `.onnx` file to write.
        size: `(H, W)` of a fixed-size model (also the size of the random check input).
        dynamic: export with dynamic batch, height and width instead (onnxruntime plans fixed sizes better:
            about 5% faster in fp32 on this package's models).
        opset: ONNX opset.
        images: RGB uint8 images for the real-input check, preprocessed like `asbunet.inference.preprocess.prepare`
            (resized to `size` for a fixed-size model, else at `input_size`).
        input_size: long side used for `images` when `dynamic`.
        merge_branches: merge parallel convolutions that read the same tensor with the same kernel, stride and
            dilation into one convolution (exact; `merge_parallel_convs`).
        metadata: extra `key: value` strings stored in the file.
        head_stride: write the logits at the head's stride, without the model's last resize (`HeadLogits`).
    """
    path = Path(path)
    size = check_size(size)
    # A copy in the default memory format: a channels-last model (as `TorchRunner` and training leave it) exports
    # with strides that pin the batch and the sizes, and dynamic shapes then fail.
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    model = (HeadLogits(model) if head_stride else model).eval()
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
            "asbunet.output": "float32 (B, 1, H, W) person logits (sigmoid gives the probability)"
            if not head_stride
            else "float32 (B, 1, h, w) person logits at the network's output stride (resized to (H, W), the sigmoid "
            "gives the probability)",
            **({HEAD_STRIDE_KEY: "true"} if head_stride else {}),
            **(metadata or {}),
        }
        add_metadata(proto, meta)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    random, real = check_onnx(model, path, size, images, input_size)
    return ExportResult(path, None if dynamic else size, random, real, notes)


def add_metadata(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in meta.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            proto.metadata_props.add(key=key, value=str(value))
