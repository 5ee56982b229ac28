"""How latency is timed (`LatencySettings`, shared by `asbunet bench` and `asbunet compare`) and what a benchmark run
measures (`BenchConfig`): models, runtimes, the latency settings, peers, calibration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asbunet.inference.peers import DEFAULT_PEERS_DIR
from asbunet.models import list_models

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")


RUNTIME_LABELS = {
    "torch": "PyTorch fp32",
    "onnxruntime": "onnxruntime fp32",
    "onnxruntime-int8": "onnxruntime int8",
    "tflite": "LiteRT (XNNPACK)",
}


DEFAULT_SIZES = ((256, 256), (144, 256), (360, 640))


WIDTH_VARIANTS = {"asbunet": 1.0, "asbunet_050": 0.5, "asbunet_035": 0.35, "asbunet_025": 0.25}


GENERAL_PEER = "mediapipe_general"


PROFILE_MODEL = "asbunet"


DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class LatencySettings:
    """How latency is timed: `(1, 3, H, W)` float32 images, eval and inference mode, pinned threads, `warmup` untimed
    passes per candidate, then `runs` timed passes round-robin over the candidates (median and 95th percentile).

    Args:
        sizes: input sizes (H, W), at least 16 (the output stride); one measurement per size.
        threads: thread counts; each measurement pins one.
        warmup: untimed passes per candidate first.
        runs: timed passes per candidate.
        device: "cpu", or "cuda" (`asbunet compare` only: synchronized around every pass).
    """

    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES
    threads: Sequence[int] = (1, 2)
    warmup: int = 10
    runs: int = 50
    device: str = "cpu"

    def __post_init__(self):
        if isinstance(self.sizes, str) or not self.sizes or any(len(s) != 2 for s in self.sizes):
            raise ValueError(f"sizes must be a non-empty list of [H, W] pairs, e.g. [[224, 224]], got {self.sizes!r}")
        object.__setattr__(self, "sizes", tuple((int(h), int(w)) for h, w in self.sizes))
        for h, w in self.sizes:
            if h < 16 or w < 16:
                raise ValueError(f"sizes must be at least 16x16 (the output stride), got {h}x{w}")
        if isinstance(self.threads, int | str) or not self.threads or any(t < 1 for t in self.threads):
            raise ValueError(f"threads must be a non-empty list of positive counts, e.g. [2], got {self.threads!r}")
        object.__setattr__(self, "threads", tuple(int(t) for t in self.threads))
        if self.runs < 1 or self.warmup < 0:
            raise ValueError(f"runs must be >= 1 and warmup >= 0, got {self.runs} and {self.warmup}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")


@dataclass
class BenchConfig:
    """What `run_bench` measures.

    Args:
        models: registry names (`asbunet.list_models()`).
        latency: sizes, thread counts, warm-up and timed passes of every row (other sizes than multiples of 16 work:
            the decoder resizes to each skip); `run_bench` times the CPU only.
        runtimes: subset of `RUNTIMES`.
        calibration: folders of real images for the int8 calibration, shared equally (None: random images, noted
            in the report).
        calibration_count: images used for calibration (`asbunet.export.calibration.MIN_CALIBRATION_IMAGES` or more).
        peers: folder with the MediaPipe .tflite files (see `fetch_peers`); None skips the peers.
        accuracy: `load_accuracies` specs.
        accuracy_metric: metric read from `asbunet evaluate` summaries.
        profile: write the per-operator profile and int8 ablation of `profile_model`.
        workdir: where the exported models go (None: a temporary folder).
    """

    models: Sequence[str] = field(default_factory=list_models)
    latency: LatencySettings = field(default_factory=LatencySettings)
    runtimes: Sequence[str] = RUNTIMES
    calibration: str | Path | Sequence[str | Path] | None = None
    calibration_count: int = 32
    peers: str | Path | None = DEFAULT_PEERS_DIR
    accuracy: Sequence[str] = ()
    accuracy_metric: str = "iou"
    profile: bool = True
    profile_model: str = PROFILE_MODEL
    workdir: str | Path | None = None

    def __post_init__(self):
        unknown = [m for m in self.models if m not in list_models()]
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid names: {', '.join(list_models())}")
        bad = [r for r in self.runtimes if r not in RUNTIMES]
        if bad or not self.runtimes:
            raise ValueError(f"runtimes must be among {list(RUNTIMES)}, got {list(self.runtimes)}")
        if self.latency.device != "cpu":
            raise ValueError(
                f"asbunet bench times the CPU only, got device {self.latency.device!r}; "
                "GPU latency is measured by asbunet compare (latency device: cuda)"
            )
        if self.profile and self.profile_model not in list_models():
            raise ValueError(f"unknown profile model {self.profile_model!r}; valid names: {', '.join(list_models())}")


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
