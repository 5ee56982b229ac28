"""asbunet: person segmentation with ASBU-Net (Bansal et al., "Atrous Space Bender U-Net").

`Segmenter` runs the bundled model on onnxruntime without importing PyTorch; `VideoSegmenter` (frames one at a time,
with temporal state), `create_model` and `list_models` (PyTorch) are imported on first use.
"""

from asbunet.inference.segmenter import Segmenter

__version__ = "0.1.0"
__all__ = ["Segmenter", "VideoSegmenter", "create_model", "list_models", "__version__"]


def __getattr__(name: str):
    if name == "VideoSegmenter":
        from asbunet.segment.stream import VideoSegmenter

        return VideoSegmenter
    if name in ("create_model", "list_models"):
        from asbunet import models

        return getattr(models, name)
    raise AttributeError(f"module 'asbunet' has no attribute {name!r}")
