"""The paper's comparison (Section IV-D, Fig. 6 and 7): ASBU-Net and its six baselines trained and scored alike.

`run_comparison` trains every model of a comparison config with one shared recipe (the `train:` mapping, a
`TrainConfig` without model, seed and output), evaluates each checkpoint on the test set with the paper's metric
(ignore-band IoU, Eq. 3) and plain IoU (`asbunet.evaluate.evaluate_model`), measures the latency of every model in
one run on this machine (`asbunet.bench`), and writes the results in the layout of Fig. 6 (accuracy, computation
time) and Fig. 7 (parameters, model size) with the paper's figures beside ours:

    <output>/<model>/seed<k>/             the training run (`asbunet train` files: last.pt, best.pt, metrics.csv...)
    <output>/<model>/seed<k>/eval/        `asbunet evaluate` files of its checkpoint on the test set
    <output>/<model>/seed<k>/result.json  completion marker: the recipe and the test scores of that run
    <output>/latency.json                 latency of every model, with the settings and the machine
    <output>/results.md                   the tables of Fig. 6 and 7, ours beside the paper's, and the paper's claims
    <output>/results.csv, results.json    the same figures, one row per model
    <output>/accuracy_latency.png         accuracy against latency, ours and the paper's

Resuming: a finished (model, seed) run, one with a `result.json` of the same recipe, is skipped; an interrupted one
continues after its last completed epoch (`train(..., resume=True)`) when `resume` is set. Several seeds give the
spread of each model's accuracy (mean and sample standard deviation over seeds).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import yaml

from asbunet import atomic
from asbunet.analysis import PAPER_FIG7, count_keras_parameters, count_macs, count_parameters, fp32_size_bytes
from asbunet.metrics import IgnoreBand
from asbunet.models import create_model, list_models
from asbunet.train.config import TrainConfig

# Fig. 6, "Accuracy and Computation Time Comparison": (accuracy, computation time in ms on an RTX 2080 SUPER).
PAPER_FIG6: dict[str, tuple[float, float]] = {
    "mobilenetv2_unet_100": (0.8976, 12.98),
    "mobilenetv2_unet_130": (0.9089, 15.28),
    "mobilenetv2_unet_140": (0.9100, 15.80),
    "efficientnet_unet_b0": (0.9042, 16.40),
    "efficientnet_unet_b1": (0.9108, 19.68),
    "efficientnet_unet_b2": (0.9148, 21.54),
    "asbunet": (0.9244, 7.46),
    "asbunet_swish": (0.9293, 9.68),
}
PAPER_MACHINE = "NVIDIA GeForce RTX 2080 SUPER, Intel Core i9-9900K; input resolution not stated"
LABELS = {  # model name -> row name of Fig. 6 and 7
    "mobilenetv2_unet_100": "MobileNetV2-UNet x1.0",
    "mobilenetv2_unet_130": "MobileNetV2-UNet x1.3",
    "mobilenetv2_unet_140": "MobileNetV2-UNet x1.4",
    "efficientnet_unet_b0": "EfficientNet-UNet B0",
    "efficientnet_unet_b1": "EfficientNet-UNet B1",
    "efficientnet_unet_b2": "EfficientNet-UNet B2",
    "asbunet": "ASBU-Net ReLU",
    "asbunet_swish": "ASBU-Net Swish",
}
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


# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class BenchSettings:
    """How latency is measured (`measure_latency`): one `(1, 3, H, W)` float32 image, eval and inference mode,
    pinned threads.

    Args:
        size: network input (H, W); multiples of 16.
        threads: PyTorch CPU threads, pinned for the whole measurement.
        warmup: untimed forward passes per model first.
        repeats: timed forward passes per model; the median and the 95th percentile are reported.
        device: "cpu", or "cuda" to time on the GPU (synchronized around every pass).
    """

    size: tuple[int, int] = (224, 224)
    threads: int = 2
    warmup: int = 10
    repeats: int = 50
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if len(self.size) != 2 or any(s < 16 or s % 16 for s in self.size):
            raise ValueError(f"bench.size must be [H, W], multiples of 16 (the output stride), got {list(self.size)}")
        if self.threads < 1 or self.warmup < 0 or self.repeats < 1:
            raise ValueError(
                f"bench needs threads >= 1, warmup >= 0 and repeats >= 1, got {self.threads}, {self.warmup}, "
                f"{self.repeats}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"bench.device must be 'cpu' or 'cuda', got {self.device!r}")


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
        bench: latency settings.
        output: folder of the runs and the results.
    """

    train: dict
    models: tuple[str, ...]
    test: str
    seeds: tuple[int, ...] = (0,)
    eval_size: int = 224
    checkpoint: str = "best"
    gallery: int = 4
    bench: BenchSettings = field(default_factory=BenchSettings)
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
        if isinstance(self.bench, dict):
            object.__setattr__(self, "bench", BenchSettings(**self.bench))

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
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}{hint}; valid keys: {sorted(known)}")
    missing = {"train", "models", "test"} - set(values)
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    if output is not None:
        values["output"] = str(output)
    bench = values.get("bench") or {}
    if not isinstance(bench, dict):
        raise ValueError(f"{path}: bench must be a mapping, e.g. {{size: [224, 224], threads: 2}}")
    bench_known = {f.name for f in fields(BenchSettings)}
    if set(bench) - bench_known:
        raise ValueError(f"{path}: unknown bench keys {sorted(set(bench) - bench_known)}; valid: {sorted(bench_known)}")
    values["bench"] = BenchSettings(**bench)
    return CompareConfig(**values)


# ------------------------------------------------------------------------------------------------ runs


def shared_settings(train: dict) -> dict:
    """A training config's settings without the per-run ones (model, seed, folder), as plain JSON values."""
    return json.loads(json.dumps({k: v for k, v in train.items() if k not in PER_RUN}))


def recipe(cfg: TrainConfig, evaluation: dict) -> dict:
    """What must agree for two runs of a comparison to be comparable: every training and evaluation setting but the
    model, seed and folder."""
    return {"train": shared_settings(cfg.to_dict()), "evaluation": evaluation}


def recipe_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipes."""
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += recipe_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


def read_result(cfg: CompareConfig, model: str, seed: int) -> dict | None:
    """The finished run's `result.json`, None when the run is not finished; a ValueError when it was made with
    another recipe (its scores must not enter this comparison's tables)."""
    path = cfg.run_dir(model, seed) / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    expected = recipe(cfg.train_config(model, seed), cfg.evaluation())
    differ = recipe_differences(result.get("recipe", {}), expected)
    if differ:
        raise ValueError(
            f"{path.parent} holds a finished run of another recipe (differs in {', '.join(differ)}): give the "
            "comparison another output folder (--output), or delete that run to train it again"
        )
    return result


def run_state(cfg: CompareConfig, model: str, seed: int) -> str:
    """ "finished", "trained" (evaluation left), "interrupted" (a checkpoint to resume from) or "new"."""
    if read_result(cfg, model, seed) is not None:
        return "finished"
    folder = cfg.run_dir(model, seed)
    config_path = folder / "config.yaml"
    if config_path.is_file():
        written = shared_settings(yaml.safe_load(config_path.read_text()) or {})
        differ = recipe_differences(written, shared_settings(cfg.train_config(model, seed).to_dict()))
        if differ:
            raise ValueError(
                f"{folder} holds a training run of another recipe (differs in {', '.join(differ)}): give the "
                "comparison another output folder (--output), or delete that run to train it again"
            )
    if (folder / "summary.json").is_file() and (folder / f"{cfg.checkpoint}.pt").is_file():
        return "trained"
    if (folder / "last.pt").is_file():
        return "interrupted"
    return "new"


def run_one(cfg: CompareConfig, model: str, seed: int, state: str) -> dict:
    """Trains (or resumes) one run, evaluates its checkpoint on the test set and writes its `result.json`."""
    from asbunet.evaluate import Settings, dataset_slug, evaluate_model
    from asbunet.train.engine import train

    folder = cfg.run_dir(model, seed)
    train_cfg = cfg.train_config(model, seed)
    if state != "trained":
        print(
            f"compare: training {model} seed {seed}{' (resumed)' if state == 'interrupted' else ''} -> {folder}",
            flush=True,
        )
        # a "new" folder holds no checkpoint, at most the files of a run killed in its first epoch
        train(train_cfg, resume=state == "interrupted", overwrite=state == "new")
    checkpoint = folder / f"{cfg.checkpoint}.pt"
    if not checkpoint.is_file():
        raise ValueError(f"{folder}: training wrote no {checkpoint.name}; see {folder / 'metrics.csv'}")
    print(f"compare: evaluating {checkpoint} on {cfg.test}", flush=True)
    t0 = time.perf_counter()
    summary = evaluate_model(
        checkpoint,
        [cfg.test],
        folder / "eval",
        size=cfg.eval_size,
        settings=Settings(),
        gallery=cfg.gallery,
        threads=train_cfg.threads,
        progress=True,
    )
    entry = summary["datasets"][dataset_slug(cfg.test, set())]
    train_summary = json.loads((folder / "summary.json").read_text())
    result = {
        "model": model,
        "seed": seed,
        "recipe": recipe(train_cfg, cfg.evaluation()),
        "checkpoint": str(checkpoint),
        "best_val_iou": train_summary.get("best_val_iou"),
        "last_epoch": train_summary.get("last", {}).get("epoch"),
        "test": {
            "path": str(cfg.test),
            "images": entry["images"],
            "ignore_band_iou": entry["mean"]["ignore_band_iou"],
            "iou": entry["mean"]["iou"],
            "iou_pooled": entry["pooled"]["iou"],
            "dice": entry["mean"]["dice"],
            "false_detections": entry["mean"]["false_detections"],
            "band_iou": entry["mean"]["band_iou"],
        },
        "seconds": {"train": training_seconds(folder / "metrics.csv"), "evaluate": time.perf_counter() - t0},
    }
    atomic.write_text(folder / RESULT_FILE, json.dumps(result, indent=2) + "\n")  # the marker appears whole or not
    return result


def training_seconds(metrics_csv: Path) -> float:
    """Training time of a run, summed over its epochs (validation included), across interruptions."""
    with metrics_csv.open() as f:
        return sum(float(r["epoch_s"]) for r in csv.DictReader(f) if r.get("epoch_s"))


# ------------------------------------------------------------------------------------------------ latency


def measure_latency(models: Sequence[str], settings: BenchSettings) -> dict:
    """Latency of one forward pass of every model, all measured together in one run.

    On the CPU this is `asbunet.bench.run_bench` restricted to the PyTorch runtime, one size and one thread count:
    models from the registry with fixed random weights (latency does not depend on them), eval mode, channels-last,
    inference mode, `warmup` untimed passes, then the timed passes round-robin over the models (pass i of every
    model, then pass i + 1), so a change of load on the machine affects every model alike; the machine and its
    matmul peaks are measured in the same run. On a GPU (`device: cuda`, which `asbunet.bench` does not time) the
    same conventions apply through `asbunet.bench.time_round_robin`, each pass followed by a synchronization.

    Returns:
        The settings, the machine, the source of the figures and, per model, the median, 95th percentile and mean
        in milliseconds.
    """
    from asbunet import bench

    previous_threads = torch.get_num_threads()
    try:
        if settings.device == "cpu":
            report = bench.run_bench(
                bench.BenchConfig(
                    models=list(models),
                    sizes=[settings.size],
                    threads=[settings.threads],
                    runtimes=["torch"],
                    runs=settings.repeats,
                    warmup=settings.warmup,
                    profile=False,
                )
            )
            timings = {r["model"]: r for r in report["rows"] if r["runtime"] == "torch"}
            machine = bench.describe_machine(report["machine"])
            source = "asbunet.bench.run_bench (PyTorch runtime)"
            peaks = report["peaks"]
        else:
            if not torch.cuda.is_available():
                raise ValueError("bench.device is 'cuda' but PyTorch sees no GPU; use device: cpu")
            torch.set_num_threads(settings.threads)
            x = torch.randn(1, 3, *settings.size, device="cuda").contiguous(memory_format=torch.channels_last)
            calls = {}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                for name in models:
                    net = create_model(name).eval().to("cuda", memory_format=torch.channels_last)
                    calls[name] = _cuda_call(net, x)
            timings = {
                name: asdict(t) for name, t in bench.time_round_robin(calls, settings.repeats, settings.warmup).items()
            }
            machine = (
                f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}; host "
                f"{bench.describe_machine(bench.machine_info())}"
            )
            source = "asbunet.bench.time_round_robin, synchronized CUDA passes"
            peaks = None
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "settings": bench_record(settings),
        "machine": machine,
        "source": source,
        "peaks": peaks,
        "models": {name: {k: timings[name][k] for k in ("median_ms", "p95_ms", "mean_ms")} for name in models},
    }


def _cuda_call(net: torch.nn.Module, x: torch.Tensor):
    def call():
        with torch.inference_mode():
            net(x)  # (1, 1, H, W)
        torch.cuda.synchronize()

    return call


def bench_record(settings: BenchSettings) -> dict:
    """The settings as `latency.json` records them."""
    return {**asdict(settings), "size": list(settings.size), "dtype": "float32", "runtime": "pytorch eager"}


def cached_latency(cfg: CompareConfig) -> dict | None:
    """`<output>/latency.json` when it was measured with the config's settings for all its models, else None."""
    path = Path(cfg.output) / "latency.json"
    if not path.is_file():
        return None
    cached = json.loads(path.read_text())
    if cached.get("settings") != bench_record(cfg.bench) or not set(cfg.models) <= set(cached.get("models", {})):
        return None
    return cached


def latency(cfg: CompareConfig) -> dict:
    """The latency of the config's models: `<output>/latency.json` when it holds these models and settings,
    otherwise measured now (all models in one run) and written there."""
    cached = cached_latency(cfg)
    if cached is not None:
        return cached
    path = Path(cfg.output) / "latency.json"
    print(
        f"compare: measuring latency of {len(cfg.models)} models at {cfg.bench.size[0]}x{cfg.bench.size[1]}, "
        f"{cfg.bench.threads} thread(s), {cfg.bench.repeats} passes each",
        flush=True,
    )
    measured = measure_latency(cfg.models, cfg.bench)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(measured, indent=2) + "\n")
    return measured


# ------------------------------------------------------------------------------------------------ results


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def finished_results(cfg: CompareConfig, model: str) -> list[dict]:
    """Every finished run of `model` in the output folder, any seed, in seed order."""
    folder = Path(cfg.output) / model
    results = []
    for run in sorted(folder.glob("seed*"), key=lambda p: (len(p.name), p.name)):
        seed = run.name.removeprefix("seed")
        if seed.isdigit():
            result = read_result(cfg, model, int(seed))
            if result is not None:
                results.append(result)
    return results


def band_iou(test: dict) -> float:
    """IoU outside the ignore band (Eq. 3 before the false-detection penalty) of a run's test scores; runs scored
    before it was recorded get it back from Eq. 3's decomposition (no floor): score + penalty x detections."""
    if "band_iou" in test:
        return test["band_iou"]
    return test["ignore_band_iou"] + IgnoreBand().penalty * test["false_detections"]


def model_row(cfg: CompareConfig, model: str, latencies: dict | None) -> dict:
    """One row of the tables: our scores over seeds, latency, size, and the paper's figures."""
    results = finished_results(cfg, model)
    acc, acc_std = mean_std([r["test"]["ignore_band_iou"] for r in results])
    iou, iou_std = mean_std([r["test"]["iou"] for r in results])
    pooled, _ = mean_std([r["test"]["iou_pooled"] for r in results])
    false, _ = mean_std([r["test"]["false_detections"] for r in results])
    band, _ = mean_std([band_iou(r["test"]) for r in results])
    net = create_model(model)
    paper_acc, paper_ms = PAPER_FIG6.get(model, (None, None))
    paper_params, paper_mb = PAPER_FIG7.get(model, (None, None))
    lat = (latencies or {}).get("models", {}).get(model, {})
    return {
        "model": model,
        "label": LABELS.get(model, model),
        "status": "done" if results else "pending",
        "seeds": len(results),
        "seed_list": [r["seed"] for r in results],
        "accuracy": acc,
        "accuracy_std": acc_std,
        "paper_accuracy": paper_acc,
        "iou": iou,
        "iou_std": iou_std,
        "iou_pooled": pooled,
        "band_iou": band,
        "false_detections": false,
        "latency_ms": lat.get("median_ms"),
        "latency_p95_ms": lat.get("p95_ms"),
        "latency_ratio": None,
        "paper_latency_ms": paper_ms,
        "paper_latency_ratio": None,
        "params": count_parameters(net),
        "keras_params": count_keras_parameters(net),
        "paper_params": paper_params,
        "size_mb": fp32_size_bytes(net) / 1e6,
        "paper_size_mb": paper_mb,
        "gmacs": count_macs(net, cfg.bench.size) / 1e9,
    }


def add_ratios(rows: list[dict]) -> None:
    """Latency relative to ASBU-Net ReLU, ours and the paper's, where both figures exist."""
    ref = next((r for r in rows if r["model"] == REFERENCE), None)
    paper_ref = PAPER_FIG6[REFERENCE][1]
    for r in rows:
        if ref is not None and r["latency_ms"] is not None and ref["latency_ms"]:
            r["latency_ratio"] = r["latency_ms"] / ref["latency_ms"]
        if r["paper_latency_ms"] is not None:
            r["paper_latency_ratio"] = r["paper_latency_ms"] / paper_ref


def _gap(a: dict, b: dict, key: str = "accuracy") -> tuple[float, float | None]:
    """Score `key` of `a` minus `b` in points (x100), and two standard errors of that difference when both have
    several seeds."""
    gap = 100 * (a[key] - b[key])
    if a.get(f"{key}_std") is None or b.get(f"{key}_std") is None:
        return gap, None
    se = math.sqrt(a[f"{key}_std"] ** 2 / a["seeds"] + b[f"{key}_std"] ** 2 / b["seeds"])
    return gap, 200 * se


def _range(values: list[float], unit: str) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:+.2f}{unit}" if math.isclose(lo, hi) else f"{lo:+.2f} to {hi:+.2f}{unit}"


def _times(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if math.isclose(lo, hi) else f"{lo:.2f}-{hi:.2f}x"


METRIC_NAMES = {"accuracy": "Eq. 3 accuracy", "iou": "plain IoU"}


def _claim_suffix(key: str) -> str:
    """How a claim's name marks the score it is judged on: nothing for Eq. 3, the score's name otherwise."""
    return "" if key == "accuracy" else f" ({METRIC_NAMES[key]})"


def _accuracy_claim(by: dict, key: str) -> dict:
    """Claim 1: ASBU-Net ReLU against each baseline, on score `key` ("accuracy" = Eq. 3, or "iou")."""
    paper_acc = {m: a for m, (a, _) in PAPER_FIG6.items()}
    suffix = _claim_suffix(key)
    claim = {
        "claim": f"ASBU-Net is 1.5 to 3 IoU points more accurate than the baselines{suffix}",
        "test": f"ASBU-Net ReLU minus each baseline, {METRIC_NAMES[key]} in points; holds if every gap is at least "
        "1.5 points and larger than two standard errors over seeds (when there are several)",
        "paper": _range([100 * (paper_acc[REFERENCE] - paper_acc[b]) for b in BASELINES], " points"),
    }
    present = [b for b in BASELINES if b in by]
    if present and all(n in by and by[n].get(key) is not None for n in (REFERENCE, *present)):
        gaps = [_gap(by[REFERENCE], by[b], key) for b in present]
        noisy = [b for b, (g, two_se) in zip(present, gaps, strict=True) if two_se is not None and g <= two_se]
        claim["ours"] = _range([g for g, _ in gaps], " points") + f" ({len(present)} of 6 baselines)"
        if min(g for g, _ in gaps) <= 0:
            claim["verdict"] = "does not hold: a baseline is at least as accurate"
        elif noisy:
            claim["verdict"] = f"not shown: within the seed spread for {', '.join(noisy)}"
        elif min(g for g, _ in gaps) >= 1.5:
            claim["verdict"] = "holds"
        else:
            claim["verdict"] = "ahead of every baseline, by less than 1.5 points for some"
    return claim


def _swish_claim(by: dict, key: str) -> dict:
    """Claim 4: ASBU-Net Swish against ASBU-Net ReLU, on score `key`."""
    paper_acc = {m: a for m, (a, _) in PAPER_FIG6.items()}
    suffix = _claim_suffix(key)
    claim = {
        "claim": f"Swish adds about 0.5 IoU points over ReLU{suffix}",
        "test": f"ASBU-Net Swish minus ASBU-Net ReLU, {METRIC_NAMES[key]} in points; holds if positive and larger "
        "than two standard errors over seeds (when there are several)",
        "paper": _range([100 * (paper_acc["asbunet_swish"] - paper_acc[REFERENCE])], " points"),
    }
    if all(n in by and by[n].get(key) is not None for n in (REFERENCE, "asbunet_swish")):
        gap, two_se = _gap(by["asbunet_swish"], by[REFERENCE], key)
        claim["ours"] = _range([gap], " points") + ("" if two_se is None else f" (2 s.e. {two_se:.2f})")
        claim["verdict"] = (
            "does not hold"
            if gap <= 0
            else "not shown: within the seed spread"
            if two_se is not None and gap <= two_se
            else "holds"
        )
    return claim


def claims(rows: list[dict]) -> list[dict]:
    """The paper's claims (Section IV-D) with the paper's own figures (Fig. 6), ours, and a verdict by the stated
    test; "pending" while a figure is missing. The two accuracy claims are tested on the paper's metric (Eq. 3)
    and again on plain IoU (the last two rows): Eq. 3 subtracts 1.0 per false detection, so a few stray blobs
    move it by many points."""
    by = {r["model"]: r for r in rows}
    paper_ms = {m: t for m, (_, t) in PAPER_FIG6.items()}

    def timed(*names: str) -> bool:
        return all(n in by and by[n]["latency_ms"] is not None for n in names)

    out = [_accuracy_claim(by, "accuracy")]

    # 2. speed against the MobileNetV2 baselines
    claim = {
        "claim": "ASBU-Net is 1.5-2x faster than the MobileNetV2-UNets",
        "test": "latency of each MobileNetV2-UNet / latency of ASBU-Net ReLU, same machine and run; holds if every "
        "ratio is at least 1.5",
        "paper": _times([paper_ms[m] / paper_ms[REFERENCE] for m in MOBILENETS]),
    }
    present = [m for m in MOBILENETS if m in by]
    if present and timed(REFERENCE, *present):
        ratios = [by[m]["latency_ms"] / by[REFERENCE]["latency_ms"] for m in present]
        claim["ours"] = _times(ratios) + ("" if len(present) == len(MOBILENETS) else f" ({len(present)} of 3)")
        claim["verdict"] = (
            "holds" if min(ratios) >= 1.5 else "faster, by less than claimed" if min(ratios) > 1 else "does not hold"
        )
    out.append(claim)

    # 3. speed against EfficientNet-B2
    claim = {
        "claim": "ASBU-Net is about 3x faster than EfficientNet-UNet B2",
        "test": "latency of EfficientNet-UNet B2 / latency of ASBU-Net ReLU; holds if the ratio is at least 2.5",
        "paper": _times([paper_ms["efficientnet_unet_b2"] / paper_ms[REFERENCE]]),
    }
    if timed(REFERENCE, "efficientnet_unet_b2"):
        ratio = by["efficientnet_unet_b2"]["latency_ms"] / by[REFERENCE]["latency_ms"]
        claim["ours"] = _times([ratio])
        claim["verdict"] = "holds" if ratio >= 2.5 else "faster, by less than claimed" if ratio > 1 else "does not hold"
    out.append(claim)

    out += [_swish_claim(by, "accuracy"), _accuracy_claim(by, "iou"), _swish_claim(by, "iou")]
    for c in out:
        c.setdefault("ours", "pending")
        c.setdefault("verdict", "pending")
    return out


def _fmt(value: float | None, digits: int = 4, std: float | None = None) -> str:
    if value is None:
        return "pending"
    text = f"{value:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def _paper(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_markdown(
    cfg: CompareConfig, rows: list[dict], claim_rows: list[dict], latencies: dict | None, test_images: int | None
) -> str:
    """`results.md`: settings, the Fig. 6 and Fig. 7 tables with the paper's figures beside ours, and the claims."""
    t = cfg.train_config(cfg.models[0], cfg.seeds[0])
    shapes = ", ".join(f"{h}x{w}" for h, w in t.shapes)
    b = cfg.bench
    lat_line = (
        f"one `(1, 3, {b.size[0]}, {b.size[1]})` float32 image, PyTorch eager, {b.device}, {b.threads} "
        f"thread(s), median of {b.repeats} passes after {b.warmup} warm-up passes, all models in one run; "
        f"{latencies['machine']}"
        if latencies
        else "pending"
    )
    split = (
        f"validation on {', '.join(map(str, t.data.val))}"
        if t.data.val
        else f"{1 - t.data.val_fraction:.0%} train / {t.data.val_fraction:.0%} validation"
    )
    epochs = f"{t.epochs} epoch{'s' if t.epochs != 1 else ''}" + (
        f" (at most {t.max_steps} steps)" if t.max_steps else ""
    )
    lines = [
        "# ASBU-Net against the paper's baselines (Fig. 6 and 7)",
        "",
        f"Every model trained with one recipe: {', '.join(map(str, t.data.train))} ({split}), canvases {shapes}, batch "
        f"{t.batch_size}, {epochs}, "
        f"{t.optimizer} lr {t.lr:g} ({t.schedule}), the same augmentation and seed for every model. Scored on "
        f"{cfg.test}{f' ({test_images} images)' if test_images else ''} with the {cfg.checkpoint} checkpoint, long "
        f"side {cfg.eval_size}, labels at full resolution. Seeds: the number of finished runs per model; "
        "figures are means over seeds ± the sample standard deviation.",
        "",
        "- accuracy: ignore-band IoU (Eq. 3, `asbunet.metrics`), mean over test images; IoU: plain person IoU.",
        f"- latency, ours: {lat_line}.",
        f"- paper: Fig. 6 and 7 ({PAPER_MACHINE}). Absolute times are not comparable across machines; the "
        "ratios to ASBU-Net ReLU are.",
        "- params: PyTorch count (Keras-style count, with the BatchNorm moving statistics, in results.csv); size: "
        "fp32 state dict in MB.",
        "",
        "## Accuracy and computation time (Fig. 6)",
        "",
        "| model | seeds | accuracy (Eq. 3) ours | paper | IoU ours | latency ms ours | paper | x ASBU-Net ReLU "
        "ours | paper |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['seeds']} | {_fmt(r['accuracy'], 4, r['accuracy_std'])} | "
            f"{_paper(r['paper_accuracy'], '.4f')} | {_fmt(r['iou'], 4, r['iou_std'])} | "
            f"{_fmt(r['latency_ms'], 2)} | {_paper(r['paper_latency_ms'], '.2f')} | {_fmt(r['latency_ratio'], 2)} | "
            f"{_paper(r['paper_latency_ratio'], '.2f')} |"
        )
    lines += [
        "",
        "Eq. 3 in parts: the IoU outside the ignore bands, minus 1.0 for each false detection (a predicted blob "
        "touching no person).",
        "",
        "| model | accuracy (Eq. 3) | IoU outside the band | false detections per image | IoU |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_fmt(r['accuracy'])} | {_fmt(r['band_iou'])} | {_fmt(r['false_detections'], 3)} | "
            f"{_fmt(r['iou'])} |"
        )
    lines += [
        "",
        "## Parameters and model size (Fig. 7)",
        "",
        f"| model | params ours | paper | size MB ours | paper | GMACs at {b.size[0]}x{b.size[1]} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['params']:,} | {_paper(r['paper_params'], ',')} | {r['size_mb']:.1f} | "
            f"{_paper(r['paper_size_mb'], '.1f')} | {r['gmacs']:.3f} |"
        )
    lines += [
        "",
        "## The paper's claims",
        "",
        "| claim | paper (Fig. 6) | ours | verdict | test |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {c['claim']} | {c['paper']} | {c['ours']} | {c['verdict']} | {c['test']} |" for c in claim_rows]
    lines += ["", "![accuracy against latency](accuracy_latency.png)", ""]
    return "\n".join(lines)


def write_plot(rows: list[dict], path: Path, latencies: dict | None) -> None:
    """Accuracy against latency, ours (mean ± std over seeds) beside the paper's Fig. 6, as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=100)
    ours_ax, paper_ax = fig.subplots(1, 2, sharey=True)
    markers = {"asbunet": "*", "mobilenetv2": "o", "efficientnet": "s"}

    def marker(name: str) -> str:
        return next((m for prefix, m in markers.items() if name.startswith(prefix)), "D")

    for i, r in enumerate(rows):
        style = {"color": f"C{i % 10}", "markersize": 9}
        if r["accuracy"] is not None and r["latency_ms"] is not None:
            ours_ax.errorbar(
                r["latency_ms"], r["accuracy"], yerr=r["accuracy_std"] or 0, fmt=marker(r["model"]), capsize=3, **style
            )
            ours_ax.annotate(
                r["label"], (r["latency_ms"], r["accuracy"]), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
        if r["paper_accuracy"] is not None:
            paper_ax.plot(r["paper_latency_ms"], r["paper_accuracy"], marker(r["model"]), **style)
            paper_ax.annotate(
                r["label"],
                (r["paper_latency_ms"], r["paper_accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    b = latencies["settings"] if latencies else None
    ours_title = (
        f"ours: {b['device']}, {b['threads']} thread(s), {b['size'][0]}x{b['size'][1]}"
        if b
        else "ours: latency pending"
    )
    ours_ax.set(xlabel="latency (ms, median)", ylabel="accuracy: ignore-band IoU (Eq. 3)", title=ours_title)
    paper_ax.set(xlabel="computation time (ms)", title="paper, Fig. 6: RTX 2080 SUPER")
    for ax in (ours_ax, paper_ax):
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)  # latency ratios read off the axis
    if not any(r["accuracy"] is not None and r["latency_ms"] is not None for r in rows):
        ours_ax.text(0.5, 0.5, "results pending", transform=ours_ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    atomic.save_figure(fig, path, metadata={"Software": None})


def write_report(cfg: CompareConfig, latencies: dict | None) -> dict:
    """Writes `results.md`, `results.csv`, `results.json` and `accuracy_latency.png`; returns the JSON content."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = [model_row(cfg, m, latencies) for m in cfg.models]
    add_ratios(rows)
    claim_rows = claims(rows)
    images = next((r["test"]["images"] for m in cfg.models for r in finished_results(cfg, m)), None)
    atomic.write_text(out / "results.md", format_markdown(cfg, rows, claim_rows, latencies, images))
    with atomic.open_atomic(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS} for r in rows)
    write_plot(rows, out / "accuracy_latency.png", latencies)
    report = {
        "models": rows,
        "claims": claim_rows,
        "latency": latencies,
        "evaluation": cfg.evaluation(),
        "recipe": recipe(cfg.train_config(cfg.models[0], cfg.seeds[0]), cfg.evaluation())["train"],
        "paper": {"fig6": PAPER_FIG6, "fig7": PAPER_FIG7, "machine": PAPER_MACHINE},
    }
    atomic.write_text(out / "results.json", json.dumps(report, indent=2) + "\n")
    return report


# ------------------------------------------------------------------------------------------------ entry point


def run_comparison(
    cfg: CompareConfig, resume: bool = False, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> dict:
    """Trains, evaluates and times the comparison's models, then writes the tables (see the module docstring).

    Args:
        cfg: the comparison.
        resume: continue interrupted runs after their last completed epoch; without it an interrupted run is an
            error (nothing is trained), so that no run is restarted from scratch by accident.
        only: train and evaluate these models only (names from `cfg.models`); the tables still list every model,
            with the finished runs found in the output folder.
        seeds: replace the config's seeds for this invocation.

    Returns:
        The content of `results.json`.
    """
    only = list(cfg.models) if not only else list(only)
    unknown = [m for m in only if m not in cfg.models]
    if unknown:
        raise ValueError(
            f"--only names {unknown}, which the config does not compare; its models: {', '.join(cfg.models)}"
        )
    seeds = cfg.seeds if seeds is None else check_seeds(seeds)
    if cfg.bench.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("bench.device is 'cuda' but PyTorch sees no GPU: set bench.device to cpu, or run on a GPU")
    from asbunet.data.io import DataError
    from asbunet.data.sources import open_source

    for spec in [*cfg.train_config(cfg.models[0], seeds[0]).data.train, cfg.test]:
        try:
            open_source(spec)  # a missing data set fails now, not after the first training run
        except DataError as err:
            raise DataError(
                f"{err} (relative paths in the config are relative to the directory the command runs "
                f"in, here {Path.cwd()}: run it from the repository root)"
            ) from None
    plan = [(m, s) for m in cfg.models if m in only for s in seeds]
    states = {run: run_state(cfg, *run) for run in plan}  # every recipe check before any training
    interrupted = [f"{m} seed {s}" for (m, s), st in states.items() if st == "interrupted"]
    if interrupted and not resume:
        raise ValueError(
            f"interrupted runs in {cfg.output}: {', '.join(interrupted)}; pass --resume to continue them after their "
            "last completed epoch, or delete their folders to start them over"
        )
    todo = [run for run in plan if states[run] != "finished"]
    print(f"compare: {len(plan) - len(todo)} of {len(plan)} runs finished already; {len(todo)} to do", flush=True)
    for i, (model, seed) in enumerate(todo, 1):
        print(f"compare: run {i}/{len(todo)}: {model} seed {seed}", flush=True)
        run_one(cfg, model, seed, states[(model, seed)])
        write_report(cfg, cached_latency(cfg))  # the tables grow as runs finish
    report = write_report(cfg, latency(cfg))
    print(
        f"compare: wrote {Path(cfg.output) / 'results.md'}, results.csv, results.json, accuracy_latency.png", flush=True
    )
    return report
