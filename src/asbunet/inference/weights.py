"""The one door to a model: `load_model(spec)` turns any model spec into a runner and the settings it runs with.

A spec is a bundled model name (`weights/<name>.safetensors`, run from its ONNX files `weights/<name>.onnx` and
`weights/<name>.int8.onnx` by default), a checkpoint written by `asbunet train` (`.pt`), a `.safetensors` file written
by `asbunet bundle`, an `.onnx` or `.tflite` file, a model name of `asbunet.list_models()` (random weights from a fixed
seed, with a warning) or a MediaPipe peer (`asbunet.inference.peers`). Every consumer (`Segmenter.from_pretrained`,
`asbunet evaluate`, `asbunet export`, the training run's `init_from`) loads through it.

Files are read without executing code: safetensors, and `torch.load(weights_only=True)` for checkpoints. The bundled
ONNX path never imports PyTorch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from asbunet.inference.auto import RUNTIMES, auto_runtime, this_cpu_kind
from asbunet.inference.peers import DEFAULT_PEERS_DIR, PEERS, peer_path
from asbunet.inference.peers import THRESHOLD as PEER_THRESHOLD
from asbunet.inference.postprocess import check_threshold
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import (
    INT8_DEFAULT_KEY,
    REFINE_KEY,
    WEIGHTS_DIGEST_KEY,
    FileRunner,
    OnnxRunner,
    Runner,
    TfliteRunner,
    TorchRunner,
)

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
DEFAULT_MODEL = "asbunet_person"
# runtime of an ONNX file -> (runtime's name, which bundled file: fp32 or int8, OpenVINO's precision hint)
ONNX_RUNTIMES = {
    "onnx": ("onnxruntime", "fp32", None),
    "onnx-int8": ("onnxruntime", "int8", None),
    "openvino": ("OpenVINO", "fp32", "f32"),
    "openvino-int8": ("OpenVINO", "int8", "f32"),
    "openvino-bf16": ("OpenVINO", "fp32", "bf16"),
}
CHECKPOINT_FORMAT = "asbunet-checkpoint/1"
TORCH_SUFFIXES = (".pt", ".pth", ".safetensors")
MODEL_SUFFIXES = (*TORCH_SUFFIXES, ".onnx", ".tflite")
DEFAULT_INPUT_SIZE, DEFAULT_THRESHOLD = 256, 0.5


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run, with what `Segmenter` needs to run it as it was meant to.

    Attributes:
        runner: normalized batch `(B, 3, h, w)` -> logits `(B, 1, h, w)` (`asbunet.inference.runners`).
        name: what runs, for messages (e.g. `asbunet_person (onnxruntime int8)`, a file's path).
        input_size: the long side it runs at (stored with the model, else 256).
        threshold: the mask threshold stored with it (calibrated on validation for bundled models), else 0.5.
        module: the PyTorch model (eval mode) where the spec has one: checkpoints, safetensors files, bundled models
            with `runtime="torch"`, registry names; None for ONNX and TFLite runners.
        architecture: the model name of `asbunet.list_models()` behind `module`.
        options: the keyword options of `create_model` that built `module`.
        fixed_size: `(h, w)` of a model that takes the whole image at one size (the MediaPipe peers), else None.
        refine: the edge-aware resizing stored with it (`asbunet bundle --refine`), else None (bilinear).
    """

    runner: Runner
    name: str
    input_size: int = DEFAULT_INPUT_SIZE
    threshold: float = DEFAULT_THRESHOLD
    module: nn.Module | None = None
    architecture: str | None = None
    options: dict = field(default_factory=dict)
    fixed_size: tuple[int, int] | None = None
    refine: GuidedRefine | None = None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_models() -> list[str]:
    """Names of the pretrained models shipped inside the package."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def bundled_path(name: str) -> Path:
    """`weights/<name>.safetensors` of a bundled model, or a ValueError listing the bundled names."""
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        available = ", ".join(bundled_models()) or "none"
        raise ValueError(f"no bundled model {name!r}; bundled: {available}")
    return path


def bundled_onnx_paths(name: str) -> tuple[Path, Path]:
    """`(fp32, int8)` ONNX files of bundled model `name`: `weights/<name>.onnx` and `weights/<name>.int8.onnx`."""
    return WEIGHTS_DIR / f"{name}.onnx", WEIGHTS_DIR / f"{name}.int8.onnx"


def model_settings(source: str | Path, input_size, threshold) -> tuple[int, float]:
    """`(input size, threshold)` as stored with a model, checked; `ValueError` naming `source` when unusable."""
    try:
        size, value = int(input_size), float(threshold)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{source}: unreadable input size {input_size!r} or threshold {threshold!r}") from None
    if not 16 <= size <= 8192:
        raise ValueError(f"{source}: stored input size {size} is out of range (expected 16 to 8192)")
    try:
        return size, check_threshold(value)
    except ValueError as err:
        raise ValueError(f"{source}: stored {err}") from None


def stored_refine(source: str | Path, text: str | None) -> GuidedRefine | None:
    """The `GuidedRefine` stored with a model as text, None when none is; `ValueError` naming `source` when unusable."""
    if text is None:
        return None
    try:
        return GuidedRefine.from_text(text)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


# ---------------------------------------------------------------------------------------------- files of weights


def read_safetensors(path: str | Path) -> tuple[dict, dict]:
    """Weights `{name: tensor}` and metadata of a safetensors model file (no code is executed)."""
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - any parsing failure means the same thing to the user
        raise ValueError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    if "architecture" not in meta:
        raise ValueError(f"{path}: no 'architecture' in its metadata; write it with `asbunet bundle`")
    return state, meta


def load_checkpoint(path: str | Path) -> dict:
    """Reads a checkpoint written by `asbunet train` (weights only, no code execution)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"{path}: {load_error(err)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an asbunet checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return ckpt


def load_error(err: Exception) -> str:
    """Why `torch.load(weights_only=True)` failed, in a few words. PyTorch's own message suggests loading the file
    with `weights_only=False`, which runs whatever code the file holds: that advice is left out."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"refused: the file holds a Python object ({found[1]}) that only running code could rebuild; an "
            "asbunet checkpoint holds tensors and plain data only"
        )
    if "weights_only" in text or "Weights only" in text:
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        return f"not a readable checkpoint (corrupt or not written by torch.save{f': {detail[1]}' if detail else ''})"
    first = text.strip().splitlines()[0][:300] if text.strip() else ""
    return f"not a readable checkpoint ({type(err).__name__}{f': {first}' if first else ''})"


def build_model(architecture: str, options: dict, state, source: str | Path) -> nn.Module:
    """`create_model(architecture, **options)` with the weights `state` loaded, in eval mode.

    Raises:
        ValueError: naming `source`, when the architecture is unknown or the weights do not fit it.
    """
    from asbunet.models import create_model

    try:
        model = create_model(architecture, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, AttributeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{source}: its weights do not fit the {architecture} model ({first[:300]})") from None
    return model.eval()


def model_from_checkpoint(ckpt: dict, source: str | Path = "checkpoint") -> nn.Module:
    """Rebuilds the model a checkpoint describes and loads its weights (eval mode).

    Raises:
        ValueError: the checkpoint names no known model, or its weights do not fit the model.
    """
    if "model" not in ckpt:
        raise ValueError(f"{source}: the checkpoint has no 'model' entry")
    return build_model(ckpt["model"], ckpt.get("model_options", {}), ckpt.get("state_dict"), source)


def onnx_runner(path: str | Path, runtime: str, threads: int | None = None) -> FileRunner:
    """The runner of an ONNX file on one of `ONNX_RUNTIMES` (onnxruntime, or OpenVINO with its precision hint)."""
    family, _, hint = ONNX_RUNTIMES[runtime]
    if family == "OpenVINO":
        from asbunet.inference.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(path, threads=threads, precision=hint)
    return OnnxRunner(path, threads=threads)


def bundled_runtime(name: str, runtime: str | None = None) -> tuple[str, str]:
    """`(runtime, why)`: the runtime of `ONNX_RUNTIMES` that bundled model `name` runs on when asked for `runtime`, and
    a few words on the choice. "auto" (or None) takes `asbunet.inference.auto.auto_runtime`'s choice for this CPU,
    where the optional package it needs is installed, else onnxruntime int8 (`load_bundled_onnx` then runs fp32
    where the int8 file fails its accuracy check)."""
    if runtime not in (None, "auto"):
        return runtime, ""
    kind = this_cpu_kind()
    chosen = auto_runtime(name, kind)
    if chosen is None:
        return "onnx-int8", f"auto: {kind} not measured, onnxruntime"
    if ONNX_RUNTIMES[chosen][0] == "OpenVINO" and importlib.util.find_spec("openvino") is None:
        return "onnx-int8", f"auto: openvino not installed, onnxruntime ({chosen} is the choice for {kind})"
    return chosen, f"auto for {kind}"


def _bundled_runner(name: str, runtime: str, threads: int | None) -> FileRunner:
    weights = bundled_path(name)
    fix = f"write them with `asbunet export --bundled {name}`, or run the weights in PyTorch (runtime='torch')"
    path = bundled_onnx_paths(name)[ONNX_RUNTIMES[runtime][1] == "int8"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundled ONNX file of {name} is missing; {fix}")
    runner = onnx_runner(path, runtime, threads)
    if runner.metadata.get(WEIGHTS_DIGEST_KEY) != file_sha256(weights):
        raise ValueError(f"{runner.path} was not exported from the shipped weights {weights.name}; {fix}")
    return runner


def load_bundled_onnx(name: str, runtime: str | None = None, threads: int | None = None) -> tuple[FileRunner, str]:
    """The runner of bundled model `name` on `runtime` (`bundled_runtime`), checked against its safetensors weights,
    and its label for messages (e.g. "OpenVINO int8, auto for AVX-512 VNNI"). An int8 runtime chosen by "auto" runs
    in fp32 instead where the bundled int8 file says that its export measured it more than 0.3 IoU points below fp32
    (`INT8_DEFAULT_KEY`).

    Raises:
        FileNotFoundError: the ONNX file is absent.
        ValueError: the ONNX file was exported from other weights than the shipped safetensors file (its stored
            SHA-256 differs); the message gives the command that writes them again.
        ModuleNotFoundError: an OpenVINO runtime asked for by name without the `openvino` extra (the message says how
            to install it).
    """
    chosen, why = bundled_runtime(name, runtime)
    runner = _bundled_runner(name, chosen, threads)
    if why and ONNX_RUNTIMES[chosen][1] == "int8" and runner.metadata.get(INT8_DEFAULT_KEY) != "true":
        chosen, why = chosen.removesuffix("-int8"), why + "; int8 fails its accuracy check"
        runner = _bundled_runner(name, chosen, threads)
    family, precision, hint = ONNX_RUNTIMES[chosen]
    label = f"{family} {precision}" + (" with bf16 activations" if hint == "bf16" else "")
    return runner, label + (f", {why}" if why else "")


# ---------------------------------------------------------------------------------------------------- the door


def _check_runtime(path: Path, runtime: str | None) -> None:
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)} (or None for the default), got {runtime!r}")
    if path.suffix in (".onnx", ".tflite") and runtime == "torch":
        own = "onnxruntime" if path.suffix == ".onnx" else "LiteRT"
        raise ValueError(
            f"{path}: an {path.suffix[1:].upper()} file runs on {own}, not runtime 'torch'; give the .pt or "
            ".safetensors file to run it in PyTorch"
        )
    if path.suffix in TORCH_SUFFIXES and runtime not in (None, "auto", "torch"):
        raise ValueError(
            f"{path}: a {path.suffix} file runs in PyTorch, not runtime {runtime!r}; export it with `asbunet "
            "export` to run it on onnxruntime"
        )


def _torch_runner(module: nn.Module, threads: int | None) -> TorchRunner:
    """A runner on a copy of `module`: the runner converts its model to channels-last, and `LoadedModel.module` stays
    the model as built (what `export_onnx` traces and `init_from` copies)."""
    import copy

    return TorchRunner(copy.deepcopy(module), threads)


def _torch_model(module: nn.Module, name: str, source, size, threshold, architecture, options, threads) -> LoadedModel:
    size, threshold = model_settings(source, size, threshold)
    return LoadedModel(_torch_runner(module, threads), name, size, threshold, module, architecture, options)


def _load_file(path: Path, threads: int | None, runtime: str | None = None) -> LoadedModel:
    if path.suffix == ".onnx":
        openvino = runtime in ONNX_RUNTIMES and ONNX_RUNTIMES[runtime][0] == "OpenVINO"
        runner = onnx_runner(path, runtime, threads) if openvino else OnnxRunner(path, threads=threads)
        size, threshold = model_settings(path, runner.input_size or DEFAULT_INPUT_SIZE, runner.threshold)
        return LoadedModel(
            runner, str(path), size, threshold, refine=stored_refine(path, runner.metadata.get(REFINE_KEY))
        )
    if path.suffix == ".tflite":
        runner = TfliteRunner(path, threads=threads)
        return LoadedModel(runner, str(path), runner.input_size)
    if path.suffix == ".safetensors":
        state, meta = read_safetensors(path)
        model = build_model(meta["architecture"], {}, state, path)
        size, threshold = meta.get("input_size", DEFAULT_INPUT_SIZE), meta.get("threshold", DEFAULT_THRESHOLD)
        loaded = _torch_model(model, str(path), path, size, threshold, meta["architecture"], {}, threads)
        return replace(loaded, refine=stored_refine(path, meta.get("refine")))
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    size, threshold = ckpt.get("input_size", DEFAULT_INPUT_SIZE), ckpt.get("threshold", DEFAULT_THRESHOLD)
    options = ckpt.get("model_options", {})
    return _torch_model(model, str(path), path, size, threshold, ckpt["model"], options, threads)


def _load_peer(name: str, folder: str | Path, threads: int | None) -> LoadedModel:
    path = peer_path(name, folder)
    try:
        runner = TfliteRunner(path, threads=threads, input_range="unit", output="probability")
    except ImportError:
        raise ValueError(
            f"{name}: running the MediaPipe models needs ai-edge-litert: pip install ai-edge-litert "
            "(or the package's dev or bench extra)"
        ) from None
    return LoadedModel(runner, f"{name} ({path})", runner.input_size, PEER_THRESHOLD, fixed_size=runner.size)


def _load_random(name: str, threads: int | None) -> LoadedModel:
    import torch

    from asbunet.models import create_model

    warnings.warn(
        f"{name!r} has no bundled weights: running it with random weights (seed 0), fine for timing and testing the "
        "pipeline, meaningless as predictions; give a .pt checkpoint to run a trained model",
        RuntimeWarning,
        stacklevel=3,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model(name).eval()
    return LoadedModel(
        _torch_runner(model, threads), f"{name} (random weights, seed 0)", module=model, architecture=name
    )


def load_model(
    spec: str | Path, runtime: str | None = None, threads: int | None = None, peers: str | Path = DEFAULT_PEERS_DIR
) -> LoadedModel:
    """The model of any spec, with the runner it runs on (see the module docstring for the kinds of spec).

    Args:
        runtime: how a bundled model runs: "auto" (or None, the default: the runtime measured fastest on this kind of
            CPU, `asbunet.inference.auto`), "onnx" / "onnx-int8" (onnxruntime fp32 / int8), "openvino" /
            "openvino-int8" (OpenVINO fp32 / int8, the `openvino` extra), "openvino-bf16" (OpenVINO, bf16
            activations) or "torch" (PyTorch fp32); see `load_bundled_onnx`. A file runs on its own runtime (PyTorch
            for `.pt` and `.safetensors`, LiteRT for `.tflite`, onnxruntime for `.onnx`, or OpenVINO when an OpenVINO
            runtime is asked for); a runtime that contradicts it is an error.
        threads: intra-op threads of the runtime (None: its default).
        peers: the folder holding the MediaPipe peers' `.tflite` files.

    Raises:
        FileNotFoundError: a model file that does not exist.
        ValueError: an unknown name (the message lists every valid one), an unusable file (named), a runtime that
            does not fit the spec.
    """
    path, name = Path(spec), str(spec)
    _check_runtime(path, runtime)
    if path.suffix in MODEL_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(
                f"model file not found: {path}; give a .pt checkpoint written by `asbunet train`, a .safetensors file "
                "written by `asbunet bundle`, an .onnx or .tflite file, or a model name"
            )
        return _load_file(path, threads, runtime)
    if path.suffix or "/" in name or "\\" in name:
        if not path.exists():
            raise FileNotFoundError(f"model file not found: {path}")
        raise ValueError(
            f"{path}: unsupported model file; give a .pt checkpoint written by `asbunet train`, a .safetensors file "
            "written by `asbunet bundle`, an .onnx or .tflite file, or a model name"
        )
    if name in bundled_models():
        if runtime == "torch":
            loaded = _load_file(bundled_path(name), threads)
            return replace(loaded, name=name)
        runner, label = load_bundled_onnx(name, runtime, threads)
        size, threshold = model_settings(name, runner.input_size or DEFAULT_INPUT_SIZE, runner.threshold)
        refine = stored_refine(runner.path, runner.metadata.get(REFINE_KEY))
        return LoadedModel(runner, f"{name} ({label})", size, threshold, refine=refine)
    if name in PEERS:
        return _load_peer(name, peers, threads)
    from asbunet.models import list_models  # PyTorch, imported only past the bundled models

    if name in list_models():
        return _load_random(name, threads)
    raise ValueError(
        f"unknown model {name!r}: no bundled model, registry model or MediaPipe peer of that name; bundled models: "
        f"{', '.join(bundled_models()) or 'none'}; registry models (random weights): {', '.join(list_models())}; "
        f"MediaPipe peers: {', '.join(PEERS)}"
    )
