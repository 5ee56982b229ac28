"""Accuracies to set beside the latencies, read from `asbunet evaluate` summaries or a JSON mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def load_accuracies(specs: Sequence[str], metric: str = "iou") -> dict[str, dict[str, float]]:
    """Accuracies per model and data set from JSON files.

    Each spec is `NAME=summary.json` (a file written by `asbunet evaluate`: the mean-over-images `metric` of each of
    its data sets is NAME's accuracy there) or a path to a JSON mapping `{name: value}` or
    `{name: {data set: value}}`.
    """
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"accuracy file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON ({err})") from None
        if name:
            if not isinstance(data, dict) or "datasets" not in data:
                raise ValueError(f"{path}: expected a summary.json written by `asbunet evaluate` (with 'datasets')")
            try:
                out[name] = {slug: float(e["mean"][metric]) for slug, e in data["datasets"].items()}
            except KeyError:
                raise ValueError(f"{path}: no mean '{metric}' per data set; choose another --accuracy-metric") from None
            continue
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object {{model: accuracy}} or {{model: {{data set: value}}}}")
        for model, value in data.items():
            if isinstance(value, (int, float)):
                out[model] = {"accuracy": float(value)}
            elif isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
                out[model] = {k: float(v) for k, v in value.items()}
            else:
                raise ValueError(f"{path}: accuracy of {model!r} must be a number or {{data set: number}}")
    return out
