"""The optional parts of the package, the extras of `pyproject.toml` that install them, and how to install one.

`pip install .` is inference only (onnxruntime, OpenCV, PyAV); training, export and the paper's tools need the `train`
extra, the virtual camera `camera`, the MediaPipe peers `bench`, segmentation on a Ray cluster `ray`, the
OpenVINO runtime `openvino`. asbunet is not on PyPI, so `asbunet[camera]` resolves nowhere: messages give the
checkout's command and the wheel's (`install_hint`).
`tests/test_cli.py` checks `EXTRAS` against `pyproject.toml`.
"""

from __future__ import annotations

from importlib import metadata

# extra -> its requirements, as in pyproject.toml's [project.optional-dependencies] (the `dev` extra is left out)
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": (
        "torch>=2.3,<=2.14.1",
        "torchvision>=0.18,<=0.29.1",
        "albumentations>=2.0",
        "pycocotools>=2.0.7",
        "pyyaml>=6",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
        "safetensors>=0.4",
        "onnx>=1.16",
        "onnxscript>=0.1",
    ),
    "camera": ("pyvirtualcam>=0.11",),
    "bench": ("ai-edge-litert", "matplotlib>=3.7", "onnx>=1.16"),
    "tflite": ("asbunet[train]", "litert-torch", "ai-edge-litert"),
    "ray": ("ray[data]>=2.40",),
    "openvino": ("openvino>=2025.0",),
}

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
    "ray": "ray",
    "openvino": "openvino",
}


def version() -> str:
    """The installed distribution's version (the source tree's when it is not installed)."""
    try:
        return metadata.version("asbunet")
    except metadata.PackageNotFoundError:
        from asbunet import __version__

        return __version__


def install_hint(extra: str) -> str:
    """`pip install -e ".[extra]"` from a checkout, or the wheel's `pip install "asbunet-<version>-...whl[extra]"`."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; choose from: {', '.join(EXTRAS)}")
    return (
        f'pip install -e ".[{extra}]" (from a checkout) or pip install "asbunet-{version()}-py3-none-any.whl[{extra}]" '
        "(with the wheel)"
    )


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """A one-line message for a module of an extra that is not installed, or None for any other missing module."""
    module = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return f"this needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}"
