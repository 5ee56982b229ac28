"""A comparison config (`CompareConfig`): the shared training recipe, the models and seeds, the test set and the latency
settings (`asbunet.bench.config.LatencySettings`, the ones `asbunet bench` uses)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from asbunet.bench.config import LatencySettings
from asbunet.models import list_models
from asbunet.train.config import TrainConfig

REFERENCE = "asbunet"  # latencies are also given relative to ASBU-Net ReLU, as the paper's claims are


MOBILENETS = ("mobilenetv2_unet_100", "mobilenetv2_unet_130", "mobilenetv2_unet_140")


BASELINES = (*MOBILENETS, "efficientnet_unet_b0", "efficientnet_unet_b1", "efficientnet_unet_b2")


PER_RUN = ("model", "seed", "output", "model_options")  # train keys the comparison sets for each run


CHECKPOINTS = ("best", "last")


RESULT_FILE = "result.json"


CSV_FIELDS = (
    "model",
    "label",
    "status",
    "seeds",
    "accuracy",
    "accuracy_std",
    "paper_accuracy",
    "iou",
    "iou_std",
    "iou_pooled",
    "band_iou",
    "false_detections",
    "latency_ms",
    "latency_p95_ms",
    "latency_ratio",
    "paper_latency_ms",
    "paper_latency_ratio",
    "params",
    "keras_params",
    "paper_params",
    "size_mb",
    "paper_size_mb",
    "gmacs",
)


RENAMED_LATENCY_KEYS = {"size": "sizes: [[H, W]]", "repeats": "runs"}  # the keys of the former `bench:` section


def default_latency() -> LatencySettings:
    return LatencySettings(sizes=[(224, 224)], threads=[2])


@dataclass(frozen=True)
class CompareConfig:
    """A comparison: the shared training recipe, the models and seeds, the test set and the latency settings.

    Args:
        train: a `TrainConfig` mapping (e.g. the body of `configs/paper.yaml`) without `model`, `seed` and
            `output`, which the comparison sets for each run.
        models: names from `asbunet.list_models()`, in table order.
        seeds: one run of every model per seed; the tables give the mean and spread over seeds.
        test: the test data set (a folder with images/ and masks/, or a COCO .json file).
        eval_size: long side of the network input at evaluation (aspect ratio kept).
        checkpoint: which checkpoint of each run is evaluated: "best" (best validation IoU) or "last".
        gallery: worst test images drawn per run (0 for none).
        latency: how latency is measured (`measure_latency`): one size (multiples of 16) and one thread count; the
            median and the 95th percentile of `runs` passes are reported.
        output: folder of the runs and the results.
    """

    train: dict
    models: tuple[str, ...]
    test: str
    seeds: tuple[int, ...] = (0,)
    eval_size: int = 224
    checkpoint: str = "best"
    gallery: int = 4
    latency: LatencySettings = field(default_factory=default_latency)
    output: str = "runs/compare"

    def __post_init__(self):
        if not isinstance(self.train, dict):
            raise ValueError("train must be a mapping of training settings (the keys of `asbunet train` configs)")
        per_run = sorted(set(self.train) & set(PER_RUN))
        if per_run:
            raise ValueError(
                f"train sets {per_run}, which the comparison sets for every run: list the models under `models:` "
                "and the seeds under `seeds:`, and give the results folder as `output:`"
            )
        self.train_config("asbunet", 0)  # validates the recipe now, not after hours of training
        if not isinstance(self.test, str | Path):
            raise ValueError(f"test must be one data set path, got {self.test!r}")
        if isinstance(self.models, str) or not self.models:
            raise ValueError("models must be a non-empty list of model names, e.g. [asbunet, mobilenetv2_unet_100]")
        unknown = [m for m in self.models if m not in list_models()]
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid names: {', '.join(list_models())}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists a name twice: {list(self.models)}")
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "seeds", check_seeds(self.seeds))
        if self.eval_size < 16 or self.eval_size % 16:
            raise ValueError(f"eval_size must be a positive multiple of 16 (the output stride), got {self.eval_size}")
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {self.checkpoint!r}")
        if self.gallery < 0:
            raise ValueError(f"gallery must be >= 0 images, got {self.gallery}")
        if isinstance(self.latency, dict):
            object.__setattr__(self, "latency", LatencySettings(**self.latency))
        lat = self.latency
        if len(lat.sizes) != 1 or len(lat.threads) != 1:
            raise ValueError(
                f"latency takes one size and one thread count, e.g. sizes: [[224, 224]] and threads: [2], got sizes "
                f"{[list(s) for s in lat.sizes]} and threads {list(lat.threads)} (asbunet bench measures several)"
            )
        if any(s % 16 for s in lat.sizes[0]):
            raise ValueError(f"latency sizes must be multiples of 16 (the output stride), got {list(lat.sizes[0])}")

    def train_config(self, model: str, seed: int) -> TrainConfig:
        """The training config of one run: the shared recipe with this model, seed and run folder."""
        return TrainConfig(**{**self.train, "model": model, "seed": seed, "output": str(self.run_dir(model, seed))})

    def run_dir(self, model: str, seed: int) -> Path:
        return Path(self.output) / model / f"seed{seed}"

    def evaluation(self) -> dict:
        """The evaluation settings, part of every run's recipe."""
        return {"test": str(self.test), "eval_size": self.eval_size, "checkpoint": self.checkpoint}


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, int | str) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of integers, e.g. [0, 1, 2], got {seeds!r}")
    if any(not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    return tuple(seeds)


def load_compare_config(path: str | Path, output: str | Path | None = None) -> CompareConfig:
    """Reads a comparison config (YAML); `output` replaces its results folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    known = {f.name for f in fields(CompareConfig)}
    unknown = set(values) - known
    if unknown:
        hint = " (training settings go under `train:`)" if unknown & set(TrainConfig.__dataclass_fields__) else ""
        if "bench" in unknown:
            hint = " (the latency settings are now `latency:`, with sizes, threads, warmup, runs and device)"
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}{hint}; valid keys: {sorted(known)}")
    missing = {"train", "models", "test"} - set(values)
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    if output is not None:
        values["output"] = str(output)
    latency = values.get("latency") or {}
    if not isinstance(latency, dict):
        raise ValueError(f"{path}: latency must be a mapping, e.g. {{sizes: [[224, 224]], threads: [2]}}")
    latency_known = {f.name for f in fields(LatencySettings)}
    unknown = set(latency) - latency_known
    if unknown:
        renamed = "".join(
            f"; {k} is now {RENAMED_LATENCY_KEYS[k]}" for k in sorted(unknown & set(RENAMED_LATENCY_KEYS))
        )
        raise ValueError(f"{path}: unknown latency keys {sorted(unknown)}{renamed}; valid: {sorted(latency_known)}")
    values["latency"] = LatencySettings(**{**asdict(default_latency()), **latency})
    return CompareConfig(**values)
