"""`asbunet evaluate` on real labelled photos: files written, figures consistent, errors clear (Section IV-C)."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet.cli import main
from asbunet.data.io import DataError
from asbunet.data.sources import open_source
from asbunet.evaluate.run import default_output, evaluate_model, split_models
from asbunet.evaluate.scoring import Settings, predict_probability
from asbunet.inference.peers import DEFAULT_PEERS_DIR
from asbunet.inference.preprocess import check_input_size
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import load_model
from asbunet.metrics import METRICS, IgnoreBand, ImageStats, count_wins, iou, summarize

PEERS = DEFAULT_PEERS_DIR


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ccp_samples) -> Path:
    """Three of the CCP sample photos with their hand-drawn masks."""
    root = tmp_path_factory.mktemp("ccp3")
    for sub, suffix in (("images", ".jpg"), ("masks", ".png")):
        (root / sub).mkdir()
        for stem in ("0001", "0042", "0512"):
            shutil.copy(ccp_samples / sub / f"{stem}{suffix}", root / sub / f"{stem}{suffix}")
    return root


@pytest.fixture(scope="module")
def person_free(tmp_path_factory) -> Path:
    """`scenes/frames.txt` naming three of the four generated frames in `scenes/images/`."""
    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(root / "images" / f"f{i}.jpg"), rng.integers(0, 256, (48, 64, 3), np.uint8))
    (root / "frames.txt").write_text("f0.jpg\nf2\n# a comment line\nf3.jpg\n")
    return root / "frames.txt"


def needs_peer() -> None:
    """Skips unless the MediaPipe general model and its interpreter are available."""
    pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert not installed (the dev extra has it)")
    if not (PEERS / "selfie_segmentation.tflite").is_file():
        pytest.skip(f"MediaPipe models not found in {PEERS}")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


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
    segmenter = Segmenter.from_pretrained(checkpoint, 64, threads=1)
    image = np.zeros((90, 50, 3), np.uint8)
    assert predict_probability(segmenter, image, "square").shape == (90, 50)


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
        load_model(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown model 'no_such_model'.*registry models.*asbunet_025"):
        load_model("no_such_model")
    with pytest.raises(ValueError, match="multiple of 16.*try 96 or 112"):
        check_input_size(100)
    with pytest.raises(ValueError, match="valid: keep, square"):
        Settings(resize="stretch")


def test_person_free_list_is_a_data_set_scored_by_the_share_called_person(person_free, checkpoint, tmp_path):
    source = open_source(person_free)
    assert [x.image.name for x in source.samples] == ["f0.jpg", "f2.jpg", "f3.jpg"]
    image, label = source.load(1)
    assert label.shape == image.shape[:2] and not label.any()
    with pytest.raises(DataError, match="list file not found"):
        open_source(person_free.parent / "missing.txt")
    (tmp_path / "alone.txt").write_text("f0.jpg\n")
    with pytest.raises(DataError, match="images/ folder beside it"):
        open_source(tmp_path / "alone.txt")

    summary = evaluate_model(
        checkpoint, [person_free], tmp_path / "eval", size=64, gallery=0, threads=1, progress=False
    )
    slug = f"{person_free.parent.name}_frames"
    entry = summary["datasets"][slug]
    rows = read_csv(tmp_path / "eval" / entry["per_image_csv"])
    shares = [float(r["person_share"]) for r in rows]
    assert entry["person_free"] and entry["images"] == 3
    assert entry["mean"]["person_share"] == pytest.approx(np.mean(shares))
    assert entry["frames_over_1pct"] == sum(v > 0.01 for v in shares)
    assert summary["comparison"][slug]["rows"] == {
        str(checkpoint): {"person_share": entry["mean"]["person_share"], "frames_over_1pct": entry["frames_over_1pct"]}
    }
    written = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert written["datasets"][slug]["mean"]["over_2x"] is None  # no labelled person: NaN written as null


def test_several_models_with_a_mediapipe_peer_on_the_same_images(dataset, person_free, checkpoint, tmp_path, capsys):
    needs_peer()
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(checkpoint), "mediapipe_general", str(dataset), str(person_free)]
    argv += ["--size", "64", "--output", str(out), "--gallery", "1", "--threads", "1", "--peers", str(PEERS)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wins / ties / losses" in printed and "reference" in printed and "share called person" in printed

    summary = json.loads((out / "summary.json").read_text())
    ref, peer = str(checkpoint), "mediapipe_general"
    assert summary["models"] == [ref, peer] and list(summary["others"]) == [peer]
    assert summary["settings"]["input_size"] == 64  # --size applies to the package's model...
    peer_settings = summary["others"][peer]["settings"]
    assert peer_settings["fixed_size"] == [256, 256] and peer_settings["threshold"] == 0.5  # ...not to MediaPipe

    slug = dataset.name
    ref_rows = read_csv(out / summary["datasets"][slug]["per_image_csv"])
    peer_entry = summary["others"][peer]["datasets"][slug]
    assert peer_entry["per_image_csv"] == f"{slug}/{peer}/per_image.csv"
    assert (out / slug / peer / "gallery.png").is_file() and (out / slug / "gallery.png").is_file()
    peer_rows = read_csv(out / peer_entry["per_image_csv"])
    assert [r["image"] for r in peer_rows] == [r["image"] for r in ref_rows]
    rows = summary["comparison"][slug]["rows"]
    assert rows[ref]["wins"] is None
    expected = count_wins([float(r["iou"]) for r in ref_rows], [float(r["iou"]) for r in peer_rows])
    assert {k: rows[peer][k] for k in ("wins", "ties", "losses")} == expected and sum(expected.values()) == 3
    assert rows[peer]["iou"] == pytest.approx(peer_entry["mean"]["iou"]) and rows[peer]["iou"] > 0.8
    assert rows[peer]["background_fp_rate"] == pytest.approx(
        np.mean([float(r["background_fp_rate"]) for r in peer_rows])
    )

    # MediaPipe sees the whole image resized to 256x256 in one step, as MediaPipe feeds it
    runner = load_model(peer, peers=PEERS).runner
    image, label = open_source(dataset).load(0)
    x = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    prob = cv2.resize(runner.invoke(x[None])[0, ..., 0], image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    assert float(peer_rows[0]["iou"]) == pytest.approx(iou(prob > 0.5, label), abs=2e-3)

    free = summary["comparison"][f"{person_free.parent.name}_frames"]
    assert free["person_free"] and set(free["rows"]) == {ref, peer}
    markdown = (out / "results.md").read_text()
    assert (
        "## Overall" in markdown and f"| {slug} | IoU | {rows[ref]['iou']:.4f} | {rows[peer]['iou']:.4f} |" in markdown
    )


def test_models_and_data_sets_are_told_apart_and_a_missing_peer_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    values = ["asbunet_person", "mediapipe_general", "runs/x/best.pt", str(tmp_path / "data"), "a/b.txt", "asbunet"]
    assert split_models(values) == (values[:3], values[3:])
    assert split_models(["../shared/data/ccp/test"]) == ([], ["../shared/data/ccp/test"])
    assert default_output(["runs/x/best.pt", "mediapipe_general"]) == Path("evaluation/x_best_vs_mediapipe_general")
    with pytest.raises(FileNotFoundError, match=r"none.*asbunet/peers.*--fetch-peers"):
        load_model("mediapipe_landscape", peers=tmp_path / "none")
    with pytest.raises(ValueError, match="given twice"):
        evaluate_model(["asbunet_025", "asbunet_025"], [tmp_path], tmp_path / "out")
    assert main(["evaluate", "--model", str(tmp_path / "data")]) == 2
    assert "is a data set, not a model" in capsys.readouterr().err
