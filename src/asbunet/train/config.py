"""Training configuration: a YAML file sets the values, `key=value` overrides on the command line change them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from asbunet.data.augment import AugmentConfig


@dataclass
class DataConfig:
    train: list = field(default_factory=list)  # paths or mappings, see `asbunet.data.sources.open_source`
    val: list | None = None  # None: a seeded split of `train` (Section IV-A: 80/20)
    val_fraction: float = 0.2
    train_repeat: list | None = None  # times each training sample of `train`'s entries is seen per epoch, one per entry
    max_side: int | None = 512  # images are downsized once at load time
    skip_bad: bool = False  # skip unusable samples (and list them) instead of stopping
    negatives: list = field(default_factory=list)  # person-free frames (hard negatives), training only
    negatives_repeat: int = 1  # each negative is seen this many times per epoch
    extra: list = field(default_factory=list)  # more labelled training data kept out of the validation split
    extra_repeat: int = 1  # each extra sample is seen this many times per epoch
    backgrounds: list = field(default_factory=list)  # canvases for composites (their labels kept), training only
    val_backgrounds: list = field(default_factory=list)  # person-free frames: validation scenes and negatives
    val_scenes: int = 0  # validation people composited onto `val_backgrounds`
    mixture: dict | None = None  # one mixture of weighted sources (`asbunet.data.mixture`); replaces the above


@dataclass
class TrainConfig:
    """Every setting of a training run (Section IV-B for the paper's values, `configs/paper.yaml`)."""

    model: str = "asbunet"
    model_options: dict = field(default_factory=dict)
    init_from: str | None = None  # weights to start from (fine-tuning): a .pt checkpoint, .safetensors or bundled name
    data: DataConfig = field(default_factory=DataConfig)
    shapes: list = field(default_factory=lambda: [[224, 224]])  # training canvases (H, W), one per batch
    val_size: int = 256  # long side of the network input at validation (and the checkpoint's input size)
    batch_size: int = 8
    epochs: int = 30
    optimizer: str = "sgd"  # "sgd" (paper) or "adamw"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 1e-12  # L2 (paper: 1e-12)
    schedule: str = "step"  # "step" (paper: x lr_gamma every lr_step_epochs) or "cosine"
    lr_step_epochs: float = 10.0
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    pos_weight: float | str = "auto"  # weighted BCE: float, or "auto" = background/person pixel ratio of the data
    dice_weight: float = 0.0  # optional soft-Dice term added to the weighted BCE
    boundary_weight: float = 0.0  # extra BCE weight on the pixels near the label's edges (`SegmentationLoss`)
    boundary_band: int = 3  # half-width in pixels of that band
    lovasz_weight: float = 0.0  # optional per-image Lovasz hinge term (`lovasz_hinge`)
    teacher: str | None = None  # knowledge distillation: a trained model whose probabilities are soft targets
    distill_weight: float = 1.0  # weight of the soft-target BCE beside the labelled loss (with `teacher`)
    distill_at_threshold: bool = False  # soft targets centred on the teacher's stored threshold (`Distiller`)
    augment: dict = field(default_factory=dict)
    workers: int = 2
    threads: int = 2
    channels_last: bool = True
    bf16: bool = False
    selection: str = "images"  # the validation score: mean over "images" or over "kinds" (`selection_score`)
    max_nonfinite: int = 10  # consecutive non-finite losses before the run stops
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps in total (smoke tests)
    checkpoint_every: int = 0  # also write last.pt every this many optimizer steps (resumable mid-epoch)
    output: str = "runs/train"

    def __post_init__(self):
        if isinstance(self.data, dict):
            self.data = DataConfig(**self.data)
        AugmentConfig.from_dict(self.augment)  # validate early
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.selection not in ("images", "kinds"):
            raise ValueError(f"selection must be 'images' or 'kinds', got {self.selection!r}")
        if not self.data.train and not self.data.mixture:
            raise ValueError("data.train is empty: give at least one dataset (or data.mixture)")
        repeat = self.data.train_repeat
        if repeat is not None and (
            len(repeat) != len(self.data.train) or not all(isinstance(r, int) and r >= 1 for r in repeat)
        ):
            raise ValueError(
                f"data.train_repeat must give one whole number >= 1 per entry of data.train "
                f"({len(self.data.train)}), got {repeat!r}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _set_dotted(values: dict, key: str, value) -> None:
    node = values
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {key}: {p} is not a section")
    node[leaf] = value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Reads a YAML config and applies `key=value` overrides (values parsed as YAML, dotted keys for sections)."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        values = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. epochs=5, data.max_side=384)")
        key, raw = item.split("=", 1)
        _set_dotted(values, key.strip(), yaml.safe_load(raw))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; valid keys: {sorted(known)}")
    return TrainConfig(**values)
