"""Segmentation on Ray Data (`asbunet.distributed`, `asbunet segment --engine ray`): the actors' classes on their own,
then on a local two-CPU Ray cluster: the same masks as `asbunet segment`, a killed run that resumes without redoing
what it wrote, a corrupt image reported while the others are written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet.cli import main
from asbunet.data.io import DataError
from asbunet.distributed.actors import SegmentFiles, SegmentImages
from asbunet.distributed.inputs import Inputs, list_inputs
from asbunet.segment.options import SegmentOptions

REPO = Path(__file__).resolve().parents[1]
CORRUPT = b"\xff\xd8\xff\xe0 a JPEG header and nothing after it"


@pytest.fixture(scope="module")
def photos(shared_data: Path, tmp_path_factory) -> Path:
    """20 COCO photos of people, of several sizes."""
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted((shared_data / "coco128_person" / "images").glob("*.jpg"))[:20]:
        shutil.copy(path, folder / path.name)
    assert len(list(folder.iterdir())) == 20
    return folder


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray cluster of two CPUs for this module; its address, for other drivers (`RAY_ADDRESS`)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) > 127 for p in sorted(folder.glob("*.png"))}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def batch_of(paths: list[Path], extra: dict[str, bytes] | None = None) -> dict[str, np.ndarray]:
    """A batch as `read_binary_files(include_paths=True)` gives it."""
    items = [(str(p), p.read_bytes()) for p in paths] + list((extra or {}).items())
    return {
        "bytes": np.array([b for _, b in items], dtype=object),
        "path": np.array([p for p, _ in items], dtype=object),
    }


# ---------------------------------------------------------------------------------------------------------------
# Without Ray: the map_batches classes and the input listing
# ---------------------------------------------------------------------------------------------------------------


def test_segment_images_gives_the_arrays_segment_writes_and_reports_a_corrupt_row(photos, tmp_path):
    paths = sorted(photos.iterdir())[:2]
    local = ["--save", "mask,effect", "--threshold", "0.3"]  # the model's own threshold is another
    assert main(["segment", *map(str, paths), "--output", str(tmp_path / "local"), *local]) == 0
    stage = SegmentImages(threshold=0.3, options=SegmentOptions(save=("mask", "effect")))
    result = stage(batch_of(paths, {"bad.jpg": CORRUPT}))
    assert "bytes" not in result and list(result["path"]) == [*map(str, paths), "bad.jpg"]
    for i, path in enumerate(paths):
        assert result["error"][i] == ""
        assert np.array_equal(result["mask"][i], cv2.imread(str(tmp_path / "local" / f"{path.stem}.png"), 0))
        assert result["effect"][i].shape == (*result["mask"][i].shape, 3)
    assert result["error"][2].startswith("bad.jpg: not a readable image")
    assert result["mask"][2].shape == (0, 0) and result["effect"][2].shape == (0, 0, 3)
    with pytest.raises(ValueError, match="a batch needs a 'bytes' column .* or an 'image' column"):
        stage({"path": np.array(["a.jpg"], dtype=object)})


def test_segment_files_writes_segments_names_and_formats_and_names_a_failed_input(photos, tmp_path):
    paths = sorted(photos.iterdir())[:2]
    stage = SegmentFiles(tmp_path / "out", options=SegmentOptions(save=("mask", "overlay")))
    rows = stage(batch_of(paths, {str(tmp_path / "bad.jpg"): CORRUPT}))
    names = [Path(f).name for f in "\n".join(rows["files"]).split()]
    assert names == [f"{p.stem}{suffix}" for p in paths for suffix in (".png", "_overlay.jpg")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # nothing for the corrupt one
    assert list(rows["error"][:2]) == ["", ""] and rows["error"][2].startswith(f"{tmp_path / 'bad.jpg'}: not a")


def test_uris_are_listed_like_folders_and_local_paths_as_segment_expands_them(photos, tmp_path, monkeypatch):
    pytest.importorskip("pyarrow", reason="the ray extra is not installed")
    (tmp_path / "notes.txt").write_text("not an image")
    shutil.copy(next(photos.iterdir()), tmp_path / "a.jpg")
    skipped = []
    found = list_inputs([tmp_path.as_uri()], skipped)
    assert found.paths == [str(tmp_path / "a.jpg")] and found.shown == [(tmp_path / "a.jpg").as_uri()]
    assert skipped == [((tmp_path / "notes.txt").as_uri(), "unsupported extension .txt")]
    assert list_inputs([tmp_path]).paths == [str(tmp_path / "a.jpg")]
    monkeypatch.chdir(tmp_path)  # read by workers elsewhere as absolute paths, named as given
    assert list_inputs(["a.jpg"]) == Inputs([str(tmp_path / "a.jpg")], ["a.jpg"])
    with pytest.raises(DataError, match="missing: file or folder not found"):
        list_inputs([(tmp_path / "missing").as_uri()])
    with pytest.raises(ValueError, match="give local paths or URIs, not both"):
        list_inputs([tmp_path, tmp_path.as_uri()])


def test_videos_fail_by_name_and_finished_images_are_left_out_before_ray_starts(photos, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from asbunet.distributed import segment_dataset

    folder, output = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    output.mkdir()
    shutil.copy(next(photos.iterdir()), folder / "a.jpg")
    (output / "a.png").write_bytes(b"written by an earlier run")
    (folder / "clip.mp4").write_bytes(b"never opened")
    lines: list[str] = []
    report = segment_dataset([folder], output, log=lines.append)  # nothing left to segment: Ray is not needed
    message = f"{folder / 'clip.mp4'}: a video; --engine ray segments images (segment videos without it)"
    assert report.failed == [(folder / "clip.mp4", message)] and report.already_done == 1 and report.processed == 0
    assert lines == [f"failed: {message}", f"1 of 1 images already have all their outputs in {output}: left out"]
    assert (output / "a.png").read_bytes() == b"written by an earlier run"
    assert report.summary().endswith("; 1 already done")


def test_ray_options_are_checked_and_a_missing_ray_names_its_extra(photos, tmp_path, monkeypatch, capsys):
    assert main(["segment", str(photos), "--output", str(tmp_path), "--actors", "2"]) == 2
    assert "--actors goes with --engine ray" in capsys.readouterr().err
    assert main(["segment", "--camera", "0", "--output", str(tmp_path), "--engine", "ray"]) == 2
    assert "--engine ray segments image files, not a camera" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # import fails
    assert main(["segment", str(photos), "--output", str(tmp_path), "--engine", "ray"]) == 2
    assert "this needs the 'ray' extra (ray is not installed)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# On a local Ray cluster
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_masks_equal_segments(ray_address, photos, tmp_path):
    from asbunet.distributed import segment_dataset

    assert main(["segment", str(photos), "--output", str(tmp_path / "local"), "--save", "mask,prob"]) == 0
    report = segment_dataset([photos], tmp_path / "ray", SegmentOptions(save=("mask", "prob")), progress=False)
    assert report.processed == 20 and not report.failed and len(report.written) == 40
    local, ray = masks(tmp_path / "local"), masks(tmp_path / "ray")
    assert sorted(local) == sorted(ray) and len(local) == 40  # masks and probabilities, the same names
    assert all(iou(local[name], ray[name]) == 1.0 for name in local if not name.endswith("_prob.png"))
    for name in local:  # the probabilities too, to the byte
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name


def ray_cli(photos: Path, output: Path, address: str) -> subprocess.Popen:
    """`asbunet segment --engine ray` in a process of its own, a driver of the test's cluster."""
    env = dict(os.environ, RAY_ADDRESS=address, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "asbunet.cli", "segment", str(photos), "--output", str(output), "--engine", "ray"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(output: Path) -> dict[str, tuple[int, int]]:
    """The masks under their final names: name -> (inode, modification time)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in output.glob("[!.]*.png")}


@pytest.mark.slow
def test_a_killed_ray_run_resumes_without_redoing_finished_outputs(ray_address, photos, tmp_path):
    output = tmp_path / "out"
    first = ray_cli(photos, output, ray_address)
    deadline = time.monotonic() + 90
    while len(finished(output)) < 4 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    done = finished(output)
    while True:  # the killed job's actors stop when Ray sees its driver gone
        time.sleep(1.5)
        if finished(output) == done:
            break
        done = finished(output)
    assert 4 <= len(done) < 20, f"{len(done)} masks when the first run was killed"
    second = ray_cli(photos, output, ray_address)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"{20 - len(done)} written") and summary.endswith(f"; {len(done)} already done"), summary
    after = finished(output)
    assert sorted(after) == sorted(f"{p.stem}.png" for p in photos.iterdir())
    assert {name: after[name] for name in done} == done  # the masks of the first run were not written again


@pytest.mark.slow
def test_a_corrupt_image_is_reported_by_name_and_the_others_written(ray_address, photos, tmp_path):
    from asbunet.distributed import segment_dataset

    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(photos.iterdir())[:5]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(CORRUPT)
    (folder / "notes.txt").write_text("not an image")
    lines: list[str] = []
    report = segment_dataset([folder.as_uri()], tmp_path / "out", progress=False, log=lines.append)
    bad = (folder / "broken.jpg").as_uri()
    assert report.processed == 5 and [path for path, _ in report.failed] == [bad]
    assert report.failed[0][1].startswith(f"{bad}: not a readable image")
    notes = (folder / "notes.txt").as_uri()
    assert report.skipped == [(notes, "unsupported extension .txt")]
    assert lines == [f"skipped: {notes}: unsupported extension .txt", f"failed: {report.failed[0][1]}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{p.stem}.png" for p in folder.glob("*.jpg") if p.name != "broken.jpg"
    )
