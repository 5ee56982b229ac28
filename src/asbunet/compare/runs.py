"""One (model, seed) run of a comparison: its recipe, its state (new, interrupted, finished, changed), training and
scoring it."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import yaml

from asbunet import atomic
from asbunet.compare.config import PER_RUN, RESULT_FILE, CompareConfig
from asbunet.train.config import TrainConfig


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
    from asbunet.evaluate.run import dataset_slug, evaluate_model
    from asbunet.evaluate.scoring import Settings
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
