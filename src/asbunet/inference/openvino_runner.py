"""`OpenVinoRunner`: an ONNX person-segmentation model on OpenVINO's CPU plugin, with `OnnxRunner`'s interface.

OpenVINO reads the same ONNX files as onnxruntime (the bundled ones, or any written by `asbunet export`), metadata
included. It compiles a model for one input shape at a time: a dynamic-size file is compiled for each batch shape it
meets (0.1 to 0.4 s each, on first use) and the last `CACHE_SHAPES` compiled shapes are kept. Its precision hint
decides the arithmetic of the layers that are not int8: "f32" (the default) matches onnxruntime fp32 to about 1e-5;
"bf16" rounds activations to bfloat16, natively on CPUs with AVX-512 BF16 or AMX, and is used only where its masks
were checked against fp32 (`asbunet.inference.auto`). `run_images` takes the RGB uint8 images themselves and
normalizes them inside the compiled model, where OpenVINO folds the normalization into the first layer (for an int8
model, into the quantization of its input). It is an optional dependency: the `openvino` extra.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from asbunet.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize
from asbunet.inference.runners import SIGNATURE_FIX, FileRunner, check_signature

PRECISIONS = ("f32", "bf16")
CACHE_SHAPES = 8  # compiled input shapes kept per runner (a video has one, a photo set a few)


def import_openvino():
    """The `openvino` module, or a `ModuleNotFoundError` that says how to install it (the command line adds the
    extra's command, `asbunet.extras.missing_extra`)."""
    try:
        import openvino
    except ModuleNotFoundError as err:
        if err.name != "openvino":
            raise
        raise ModuleNotFoundError(
            "the OpenVINO runtimes need openvino, the package's 'openvino' extra (not installed): pip install openvino",
            name="openvino",
        ) from None
    return openvino


class OpenVinoRunner(FileRunner):
    """Runs an ONNX model (normalized batch `(B, 3, H, W)` -> logits `(B, 1, H, W)`) with OpenVINO on the CPU; see
    `FileRunner` for its attributes.

    Args:
        path: the `.onnx` file.
        threads: inference threads (None: OpenVINO's default, one per physical core).
        precision: the inference precision hint of the layers that are not int8, "f32" or "bf16".
    """

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "f32"):
        ov = import_openvino()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"ONNX model not found: {self.path}; write one with `asbunet export MODEL --output {self.path}`"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(self.path))
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1][:300] if str(err).strip() else ""
            raise ValueError(
                f"{self.path}: not a usable ONNX model for OpenVINO ({first}); the file may be truncated or corrupt: "
                "export it again with `asbunet export`"
            ) from None
        self.threads, self.precision = threads, precision
        self.config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": precision}
        if threads is not None:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.ov = ov
        self._check_signature(ov)
        self._compiled: OrderedDict[tuple, object] = OrderedDict()  # (input shape, takes images) -> infer request

    def _check_signature(self, ov) -> None:
        def described(port) -> tuple:
            shape = [None if d.is_dynamic else d.get_length() for d in port.get_partial_shape()]
            kind = f"{port.get_element_type().get_type_name()} {port.get_partial_shape()}"
            return port.get_any_name(), kind, port.get_element_type() == ov.Type.f32, shape

        inputs, outputs = self.model.inputs, self.model.outputs
        check_signature(self.path, [described(i) for i in inputs], [described(o) for o in outputs])
        info = self.model.get_rt_info()
        framework = info["framework"] if "framework" in info else {}
        try:
            metadata = {key: value.astype(str) for key, value in dict(framework).items()}
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"{self.path}: its metadata is not text ({err}); {SIGNATURE_FIX}") from None
        self._settle({k: v for k, v in metadata.items() if not k.startswith("onnx.")}, described(inputs[0])[3])

    def request(self, shape: tuple[int, ...], images: bool = False):
        """The infer request compiled for one input shape `(B, 3, H, W)`, compiled on first use; with `images`, one
        that takes RGB uint8 images `(B, H, W, 3)` and normalizes them (`asbunet.inference.preprocess.normalize`)."""
        key = (shape, images)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self.model.clone()
        model.reshape({model.inputs[0]: list(shape)})
        if images:
            model = self._normalizing(model)
        try:
            compiled = self.core.compile_model(model, "CPU", self.config)
        except RuntimeError as err:
            raise ValueError(f"{self.path}: OpenVINO cannot compile it for input {list(shape)} ({err})") from None
        self._compiled[key] = request = compiled.create_infer_request()
        if len(self._compiled) > CACHE_SHAPES:
            self._compiled.popitem(last=False)
        return request

    def _normalizing(self, model):
        """`model` behind RGB uint8 NHWC input, normalized with ImageNet's mean and std in the graph."""
        ov = self.ov
        from openvino.preprocess import PrePostProcessor

        steps = PrePostProcessor(model)
        steps.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        steps.input().model().set_layout(ov.Layout("NCHW"))
        mean, std = [255 * m for m in IMAGENET_MEAN], [255 * s for s in IMAGENET_STD]
        steps.input().preprocess().convert_element_type(ov.Type.f32).mean(mean).scale(std)
        return steps.build()

    def _run_request(self, request, batch: np.ndarray) -> np.ndarray:
        """Runs `request` on a contiguous batch, read in place, and returns a copy of its output."""
        request.set_input_tensor(self.ov.Tensor(batch, shared_memory=True))
        request.infer()
        return request.get_output_tensor().data.copy()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self._run_request(self.request(batch.shape), batch)

    def run_images(self, images: np.ndarray) -> np.ndarray:
        """Logits `(B, 1, h, w)` of RGB uint8 images `(B, h, w, 3)`, normalized inside the compiled model: the same as
        `self(normalize(image) for each image)` to float rounding, without the normalized copy."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"{self.path}: expected RGB uint8 images shaped (B, H, W, 3), got {images.shape}")
        b, h, w = images.shape[:3]
        if (self.size is not None and self.size != (h, w)) or (self.batch is not None and self.batch != b):
            return self(np.stack([normalize(image) for image in images]))
        return self._run_request(self.request((b, 3, h, w), images=True), np.ascontiguousarray(images))
