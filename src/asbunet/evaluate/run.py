"""Evaluating models on labelled data sets (`asbunet evaluate`, `evaluate_model`): every image segmented by each model
and scored against its label at the label's full resolution (`asbunet.metrics`)."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path

from asbunet import atomic
from asbunet.data.sources import open_source
from asbunet.evaluate.gallery import write_gallery
from asbunet.evaluate.report import format_comparison, format_markdown, format_overall, format_table, write_csv
from asbunet.evaluate.scoring import (
    PERSON_FREE_LIMIT,
    ImageResult,
    Settings,
    evaluate_source,
    is_person_free,
    sequence_flicker,
    worst,
)
from asbunet.extras import install_hint
from asbunet.inference.peers import DEFAULT_PEERS_DIR
from asbunet.inference.preprocess import check_input_size
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import MODEL_SUFFIXES, load_model
from asbunet.metrics import (
    IgnoreBand,
    count_wins,
    summarize,
)

SPLIT_NAMES = ("train", "test", "val", "valid", "validation", "images")


DATASET_SUFFIXES = (".json", ".txt")


def is_model_spec(value: str | Path) -> bool:
    """Whether a command-line value names a model rather than a data set.

    Models are files ending in `.pt`, `.pth`, `.safetensors` or `.onnx`, or names (no folder part, not an existing
    path); data sets are folders, `.json` and `.txt` files and any other path.
    """
    text, path = str(value), Path(value)
    if path.suffix in MODEL_SUFFIXES:
        return True
    return not (path.exists() or path.suffix.lower() in DATASET_SUFFIXES or "/" in text or "\\" in text)


def split_models(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits `--model A B C DATA1 DATA2` into the models and the data sets that follow them.

    The models are the leading values that `is_model_spec` accepts; the first data set and everything after it are
    data sets.
    """
    n = 0
    while n < len(values) and is_model_spec(values[n]):
        n += 1
    return list(values[:n]), list(values[n:])


def dataset_slug(path: str | Path, taken: set[str]) -> str:
    """Folder name for a data set's files: `ccp_test` for `.../ccp/test`, `ccp_samples` for `.../ccp_samples`,
    `davis_scenes_person_free_eval` for `.../davis_scenes/person_free_eval.txt`."""
    p = Path(path).resolve()
    name = p.stem if p.suffix.lower() in DATASET_SUFFIXES else p.name
    if p.parent.name and (name.lower() in SPLIT_NAMES or p.suffix.lower() == ".txt"):
        name = f"{p.parent.name}_{name}"
    return unique(name, taken)


def model_slug(model: str | Path) -> str:
    """Short name of a model for folders: `person_best` for `runs/person/best.pt`, the name itself for a name."""
    p = Path(model)
    return f"{p.parent.name}_{p.stem}" if p.suffix and p.parent.name else p.stem or str(model)


def default_output(model: str | Path | Sequence[str | Path]) -> Path:
    """`evaluation/<model>`: `evaluation/person_best` for `runs/person/best.pt`, `evaluation/asbunet` for a name;
    `evaluation/<first>_vs_<second>_<third>` for several models."""
    models = [model] if isinstance(model, (str, Path)) else list(model)
    name = model_slug(models[0])
    if len(models) > 1:
        name += "_vs_" + "_".join(model_slug(m) for m in models[1:])
    return Path("evaluation") / name


def evaluate_model(
    model: str | Path | Sequence[str | Path],
    datasets: list[str | Path],
    output: str | Path,
    size: int | None = None,
    settings: Settings | None = None,
    gallery: int = 8,
    threads: int | None = None,
    progress: bool = True,
    peers: str | Path = DEFAULT_PEERS_DIR,
    runtime: str | None = None,
    threshold: float | None = None,
) -> dict:
    """Evaluates one model, or several on the same images, on each data set; prints a table per data set and writes
    the files of the module docstring.

    Args:
        model: a model or a list of them, the first being the reference: bundled model name, `.pt` checkpoint,
            `.onnx` file, registry model name or MediaPipe peer name (see `asbunet.inference.weights.load_model`).
        datasets: folders with `images/` and `masks/`, COCO `.json` files or `.txt` lists of person-free frames.
        output: folder for the results (created).
        size: network input size (long side, or side with `resize="square"`); None for the model's own. Peers
            always run at their own size.
        settings: resize mode, metric parameters, video and smoother.
        gallery: number of worst images drawn per data set and model; 0 for none.
        threads: CPU threads of PyTorch, onnxruntime and the peers' interpreter; None leaves the default.
        progress: show a progress bar.
        peers: folder with the MediaPipe `.tflite` files.
        runtime: how bundled models run (`asbunet.inference.auto.RUNTIMES`; None: "auto", as
            `Segmenter.from_pretrained`).
        threshold: the mask threshold of every model, in (0, 1); None: each model's own.

    Returns:
        The summary written to `summary.json`.
    """
    settings = settings or Settings()
    models = [str(model)] if isinstance(model, (str, Path)) else [str(m) for m in model]
    if not models:
        raise ValueError("give at least one model")
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise ValueError(f"model {repeated[0]!r} is given twice; give each model once")
    if gallery < 0:
        raise ValueError(f"gallery must be >= 0 images, got {gallery}")
    if gallery and importlib.util.find_spec("matplotlib") is None:
        print(f"no gallery: drawing it needs matplotlib, {install_hint('bench')}", flush=True)
        gallery = 0
    if not datasets:
        raise ValueError(
            "give at least one data set (a folder with images/ and masks/, a COCO .json file or a .txt list of "
            "person-free frames)"
        )
    sources = [open_source(d) for d in datasets]  # fail on a missing data set before loading the models
    if size is not None:
        check_input_size(size)
    segmenters = [Segmenter.from_loaded(load_model(m, runtime, threads, peers), size, threshold) for m in models]
    taken_models: set[str] = set()
    subfolders = [""] + [unique(model_slug(m), taken_models) for m in models[1:]]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    reports = [{"model": seg.name, "settings": settings.describe(seg), "datasets": {}} for seg in segmenters]
    comparison = {}
    taken: set[str] = set()
    for path, source in zip(datasets, sources, strict=True):
        slug = dataset_slug(path, taken)
        person_free = is_person_free(source)
        results = []
        for name, seg, sub, report in zip(models, segmenters, subfolders, reports, strict=True):
            folder = out / slug / sub
            folder.mkdir(parents=True, exist_ok=True)
            res = evaluate_source(seg, source, settings, f"{slug} {name}" if len(models) > 1 else slug, progress)
            prefix = f"{slug}/{sub}/" if sub else f"{slug}/"
            write_csv(res, folder / "per_image.csv", settings.band)
            entry = {
                "path": str(path),
                "images": len(res),
                "person_free": person_free,
                **summarize([r.stats for r in res], settings.band),
                "per_image_csv": f"{prefix}per_image.csv",
                "gallery": None,
            }
            if settings.video:
                entry["flicker"] = sequence_flicker(res)
            if person_free:
                entry["frames_over_1pct"] = sum(
                    r.stats.scores(settings.band)["person_share"] > PERSON_FREE_LIMIT for r in res
                )
            if gallery:
                write_gallery(seg, source, worst(res, gallery, settings.band), folder / "gallery.png", settings)
                entry["gallery"] = f"{prefix}gallery.png"
            report["datasets"][slug] = entry
            results.append(res)
            if len(models) == 1:
                print(format_table(slug, entry, markdown=False), flush=True)
        comparison[slug] = {
            "path": str(path),
            "images": len(source),
            "person_free": person_free,
            "rows": comparison_rows(models, [r["datasets"][slug] for r in reports], results, settings.band),
            "video": settings.video,
        }
        if len(models) > 1:
            print(format_comparison(slug, comparison[slug], markdown=False), flush=True)
    summary = {**reports[0], "models": models, "others": dict(zip(models[1:], reports[1:], strict=True))}
    summary["comparison"] = comparison
    if len(models) > 1:
        print(format_overall(summary, markdown=False), flush=True)
    atomic.write_text(out / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")
    atomic.write_text(out / "results.md", format_markdown(summary))
    print(f"wrote {out / 'results.md'}, {out / 'summary.json'} and per-data-set files under {out}", flush=True)
    return summary


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... if taken; the result is added to `taken`."""
    slug, n = name, 2
    while slug in taken:
        slug, n = f"{name}_{n}", n + 1
    taken.add(slug)
    return slug


def comparison_rows(
    models: list[str], entries: list[dict], results: list[list[ImageResult]], band: IgnoreBand
) -> dict[str, dict]:
    """One data set's row per model: IoU, background false-positive rate, over-2x share and the reference's
    wins, ties and losses against that model (None for the reference); for person-free frames the share of pixels
    called person and the number of frames above 1%."""
    if entries[0]["person_free"]:
        return {
            m: {"person_share": e["mean"]["person_share"], "frames_over_1pct": e["frames_over_1pct"]}
            for m, e in zip(models, entries, strict=True)
        }
    reference = [r.stats.scores(band)["iou"] for r in results[0]]
    rows = {}
    for k, (m, e, res) in enumerate(zip(models, entries, results, strict=True)):
        wins = None if k == 0 else count_wins(reference, [r.stats.scores(band)["iou"] for r in res])
        rows[m] = {
            "iou": e["mean"]["iou"],
            "background_fp_rate": e["mean"]["background_fp_rate"],
            "over_2x": e["mean"]["over_2x"],
            **({"flicker": e["flicker"]} if "flicker" in e else {}),
            **(wins or {"wins": None, "ties": None, "losses": None}),
        }
    return rows


def json_safe(value):
    """`value` with every NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
