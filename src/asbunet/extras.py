"""The optional parts of the package and the extras (`pyproject.toml`'s optional-dependencies) that install them.

`pip install .` is inference only (onnxruntime, OpenCV, PyAV); training, export and the paper's tools need the `train`
extra, the virtual camera `camera`, the MediaPipe peers `bench`.
"""

from __future__ import annotations

from importlib import metadata

# top-level module -> the extra that installs it
EXTRA_OF_MODULE = {
    "torch": "train",
    "torchvision": "train",
    "yaml": "train",
    "albumentations": "train",
    "pycocotools": "train",
    "matplotlib": "train",
    "tensorboard": "train",
    "safetensors": "train",
    "onnx": "train",
    "onnxscript": "train",
    "pyvirtualcam": "camera",
    "ai_edge_litert": "bench",
}


def version() -> str:
    """The installed distribution's version (the source tree's when it is not installed)."""
    try:
        return metadata.version("asbunet")
    except metadata.PackageNotFoundError:
        from asbunet import __version__

        return __version__


def install_hint(extra: str) -> str:
    """The command that installs `extra`, from a checkout and from the wheel."""
    return (
        f'pip install -e ".[{extra}]" in a checkout of asbunet, '
        f'or pip install "asbunet-{version()}-py3-none-any.whl[{extra}]" with the wheel'
    )


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """A one-line message for a module of an extra that is not installed, or None for any other missing module."""
    module = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return f"this needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}"
