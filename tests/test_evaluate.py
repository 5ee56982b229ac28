"""`asbunet evaluate` on real labelled photos: files written, figures consistent, errors clear (Section IV-C)."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet.cli import main
from asbunet.evaluate import Settings, evaluate_model, load_segmenter, predict_probability
from asbunet.metrics import METRICS, IgnoreBand, ImageStats, summarize

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ccp_samples"
needs_data = pytest.mark.skipif(
    not (SAMPLES / "images").is_dir(), reason=f"labelled samples not found at {SAMPLES} (data not shipped)"
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three of the CCP sample photos with their hand-drawn masks."""
    if not (SAMPLES / "images").is_dir():
        pytest.skip(f"labelled samples not found at {SAMPLES} (data not shipped)")
    root = tmp_path_factory.mktemp("ccp3")
    for sub, suffix in (("images", ".jpg"), ("masks", ".png")):
        (root / sub).mkdir()
        for stem in ("0001", "0042", "0512"):
            shutil.copy(SAMPLES / sub / f"{stem}{suffix}", root / sub / f"{stem}{suffix}")
    return root


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@needs_data
def test_cli_writes_every_file_and_the_summary_matches_the_csv(dataset, checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--model",
            str(checkpoint),
            str(dataset),
            "--size",
            "64",
            "--output",
            str(out),
            "--gallery",
            "2",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    slug = dataset.name
    printed = capsys.readouterr().out
    assert f"{slug}: 3 images" in printed and "ignore-band IoU (Eq. 3)" in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["input_size"] == 64 and summary["settings"]["resize"] == "keep"
    entry = summary["datasets"][slug]
    assert entry["images"] == 3

    rows = read_csv(out / entry["per_image_csv"])
    assert [r["image"] for r in rows] == ["0001.jpg", "0042.jpg", "0512.jpg"]
    for metric in METRICS:
        assert entry["mean"][metric] == pytest.approx(np.mean([float(r[metric]) for r in rows]), rel=1e-12)
    # pooled figures from the raw counts of the CSV
    counts = [
        ImageStats(**{f: (float if f == "abs_error" else int)(r[f]) for f in ImageStats.__dataclass_fields__})
        for r in rows
    ]
    assert entry["pooled"] == pytest.approx(
        summarize(counts, IgnoreBand(**summary["settings"]["ignore_band"]))["pooled"]
    )
    tp, fp, fn = (sum(int(r[k]) for r in rows) for k in ("tp", "fp", "fn"))
    assert entry["pooled"]["iou"] == pytest.approx(tp / (tp + fp + fn))
    for r in rows:  # counts are at the label's full resolution
        mask = cv2.imread(str(dataset / "masks" / f"{Path(r['image']).stem}.png"), cv2.IMREAD_GRAYSCALE)
        assert (int(r["height"]), int(r["width"])) == mask.shape
        assert int(r["pixels"]) == mask.size
        assert int(r["tp"]) + int(r["fn"]) == int((mask > 127).sum())

    gallery = cv2.imread(str(out / entry["gallery"]))
    assert gallery is not None and gallery.shape[0] > 200 and gallery.shape[1] > 400
    markdown = (out / "results.md").read_text()
    assert f"| {slug} | 3 | {entry['mean']['ignore_band_iou']:.4f} |" in markdown
    assert f"![worst images of {slug}]({entry['gallery']})" in markdown


@needs_data
def test_results_are_deterministic_and_square_mode_works(dataset, checkpoint, tmp_path):
    a = evaluate_model(checkpoint, [dataset], tmp_path / "a", size=64, gallery=0, threads=1, progress=False)
    b = evaluate_model(checkpoint, [dataset], tmp_path / "b", size=64, gallery=0, threads=1, progress=False)
    slug = dataset.name
    assert a["datasets"][slug]["gallery"] is None and not (tmp_path / "a" / slug / "gallery.png").exists()
    assert (tmp_path / "a" / slug / "per_image.csv").read_bytes() == (
        tmp_path / "b" / slug / "per_image.csv"
    ).read_bytes()
    assert a["datasets"][slug]["mean"] == b["datasets"][slug]["mean"]

    square = evaluate_model(
        checkpoint,
        [dataset],
        tmp_path / "c",
        size=64,
        settings=Settings(resize="square"),
        gallery=0,
        threads=1,
        progress=False,
    )
    assert square["settings"]["resize"] == "square"
    assert square["datasets"][slug]["mean"] != a["datasets"][slug]["mean"]
    segmenter = load_segmenter(checkpoint, 64, threads=1)
    image = np.zeros((90, 50, 3), np.uint8)
    assert predict_probability(segmenter, image, "square").shape == (90, 50)


@needs_data
def test_registry_model_runs_with_a_warning_and_same_names_get_distinct_folders(dataset, tmp_path):
    with pytest.warns(RuntimeWarning, match="random weights"):
        summary = evaluate_model(
            "asbunet_025", [dataset, dataset], tmp_path, size=64, gallery=1, threads=1, progress=False
        )
    assert list(summary["datasets"]) == [dataset.name, f"{dataset.name}_2"]
    assert summary["datasets"][dataset.name]["mean"] == summary["datasets"][f"{dataset.name}_2"]["mean"]


def test_missing_dataset_and_model_are_clear_errors(tmp_path, capsys):
    assert main(["evaluate", "--model", "asbunet_025", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: dataset not found" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="model file not found.*asbunet train"):
        load_segmenter(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown model 'no_such_model'.*registry models.*asbunet_025"):
        load_segmenter("no_such_model")
    with pytest.raises(ValueError, match="multiple of 16.*try 96 or 112"):
        load_segmenter("asbunet_025", size=100)
    with pytest.raises(ValueError, match="valid: keep, square"):
        Settings(resize="stretch")
