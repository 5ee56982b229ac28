"""asbunet: person segmentation with ASBU-Net (Bansal et al., "Atrous Space Bender U-Net").

`Segmenter` runs the bundled model on onnxruntime without importing PyTorch; `bundled_models` lists the models it
can load by name, and `ImageWarning` is the warning it gives for an image it cannot segment meaningfully.
`VideoSegmenter` (frames one at a time, with temporal state) with its `FrameResult`, `create_model` and `list_models`
(PyTorch) are imported on first use.
"""

from asbunet.inference.segmenter import ImageWarning, Segmenter
from asbunet.inference.weights import bundled_models

__version__ = "0.1.0"
__all__ = [
    "Segmenter",
    "ImageWarning",
    "bundled_models",
    "VideoSegmenter",
    "FrameResult",
    "create_model",
    "list_models",
    "__version__",
]


def __getattr__(name: str):
    if name in ("VideoSegmenter", "FrameResult"):
        from asbunet.frames import stream

        return getattr(stream, name)
    if name in ("create_model", "list_models"):
        from asbunet import models

        return getattr(models, name)
    raise AttributeError(f"module 'asbunet' has no attribute {name!r}")
