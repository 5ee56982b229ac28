"""Training data for scenes unlike the photo sets: person-free frames, background canvases, several and small
people, rotations, tilts, blur, low light and JPEG, validation scenes, and teacher labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asbunet.data.augment import (
    AugmentConfig,
    composite_scene,
    paste_person,
    photometric,
    random_angle,
    rotate_cutout,
    tilt_pair,
)
from asbunet.data.dataset import SamplePool, TrainDataset, validation_scenes
from asbunet.data.io import DataError
from asbunet.data.sources import FolderSource, open_source
from asbunet.data.teachers import TEACHER_FILES, TeacherConfig, Teachers, detector_anchors, teacher_label
from asbunet.inference.postprocess import binarize
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.models import create_model
from asbunet.train.calibrate import selection_iou, validation_kind
from asbunet.train.config import TrainConfig
from asbunet.train.engine import evaluate_iou, load_backgrounds, load_data
from asbunet.train.preview import denormalize

SCENES = AugmentConfig(
    composite=1.0,
    background=1.0,
    people=(2, 3),
    person_height=(0.1, 0.9),
    log_height=True,
    rotate=1.0,
    tilt=1.0,
    motion_blur=1.0,
    low_light=1.0,
    jpeg=1.0,
)


def _frames(root: Path, n: int = 4, size=(60, 80), seed: int = 1) -> Path:
    """`n` textured frames with no person, as `root/images/fNN.jpg`."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"f{i:02d}.jpg"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return root


# ------------------------------------------------------------------------------------------------------ sources


def test_person_free_source_with_a_list(tmp_path):
    root = _frames(tmp_path / "scenes")
    (root / "free.txt").write_text("f02.jpg\n# a comment\nf00\n")
    source = open_source({"images": root / "images", "person_free": True, "list": root / "free.txt"})
    assert isinstance(source, FolderSource) and [s.image.name for s in source.samples] == ["f02.jpg", "f00.jpg"]
    image, mask = source.load(0)
    assert image.shape[:2] == mask.shape and not mask.any()
    (root / "bad.txt").write_text("f01.jpg\nmissing.jpg\n")
    with pytest.raises(DataError, match=r"bad\.txt: 1 listed images not found, e\.g\. missing\.jpg"):
        open_source({"images": root / "images", "person_free": True, "list": root / "bad.txt"})
    with pytest.raises(DataError, match="person_free: true"):
        open_source({"images": root / "images"})


# ------------------------------------------------------------------------------------------------- augmentation


def test_rotate_cutout_keeps_the_whole_person():
    mask = np.zeros((40, 10), np.uint8)
    mask[:, 2:8] = 1
    image = np.dstack([mask * 200] * 3).astype(np.uint8)
    rotated, rotated_mask = rotate_cutout(image, mask, 90)
    assert rotated_mask.shape[0] < rotated_mask.shape[1]  # lying down now
    assert rotated.shape[:2] == rotated_mask.shape
    assert abs(int(rotated_mask.sum()) - int(mask.sum())) <= 0.1 * mask.sum()


def test_tilt_keeps_size_and_binary_mask():
    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 15:25] = 1
    image, tilted = tilt_pair(np.zeros((30, 40, 3), np.uint8), mask, 20)
    assert image.shape == (30, 40, 3) and tilted.shape == (30, 40) and set(np.unique(tilted)) <= {0, 1}
    assert not np.array_equal(tilted, mask)


def test_random_angle_reaches_upside_down():
    rng = np.random.default_rng(0)
    angles = np.array([random_angle(rng, 30) for _ in range(400)])
    assert (np.abs(angles) <= 30).mean() > 0.6 and (np.abs(angles) > 90).any() and (np.abs(angles) <= 180).all()


def test_log_height_draws_small_people_as_often_as_large():
    person = np.zeros((100, 40), np.uint8)
    person[5:95, 10:30] = 1  # cut by no edge of its photo
    image = np.full((100, 40, 3), 200, np.uint8)
    canvas, canvas_mask = np.zeros((200, 200, 3), np.uint8), np.zeros((200, 200), np.uint8)
    heights = {}
    for log in (False, True):
        rng = np.random.default_rng(0)
        rows = [
            np.nonzero(paste_person(canvas, canvas_mask, image, person, rng, (0.05, 0.8), log)[1].any(1))[0]
            for _ in range(200)
        ]
        heights[log] = np.array([(r.max() - r.min() + 1) / 200 for r in rows if len(r)])
    assert np.median(heights[True]) < 0.65 * np.median(heights[False])  # expected 0.2 against 0.425
    assert (heights[True] < 0.1).mean() > 0.2


def test_composite_scene_pastes_several_people():
    rng = np.random.default_rng(3)
    canvas, canvas_mask = np.zeros((60, 80, 3), np.uint8), np.zeros((60, 80), np.uint8)
    person = np.zeros((30, 12), np.uint8)
    person[2:28, 3:9] = 1
    image = np.full((30, 12, 3), 250, np.uint8)
    cfg = AugmentConfig(person_height=(0.3, 0.4), rotate=0.0)
    out, mask = composite_scene(canvas, canvas_mask, [(image, person)] * 3, (48, 64), rng, cfg)
    assert out.shape == (48, 64, 3) and mask.shape == (48, 64)
    count, _ = cv2.connectedComponents(mask)
    assert mask.any() and count - 1 >= 1  # up to three people, overlapping ones merge
    assert (out[mask.astype(bool)] > 200).mean() > 0.9  # the label sits on the pasted pixels


@pytest.mark.parametrize("option", ["motion_blur", "low_light", "jpeg"])
def test_photometric_options_change_the_image_and_keep_it_visible(option):
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    plain = AugmentConfig(flip=0, noise=0, gamma=0, shadow=0, color=0)
    on = AugmentConfig(**{**plain.__dict__, option: 1.0})
    transform = photometric(on)
    transform.set_random_seed(0)  # a motion-blur kernel can, rarely, leave the image as it is
    base = denormalize(torch.from_numpy(photometric(plain)(image=image, mask=mask)["image"].transpose(2, 0, 1)))
    out = denormalize(torch.from_numpy(transform(image=image, mask=mask)["image"].transpose(2, 0, 1)))
    assert not np.array_equal(base, out)
    assert out.mean() > 0.2 * base.mean()  # never a black frame: low light keeps at least a quarter of the light


# ----------------------------------------------------------------------------------------------------- datasets


@pytest.fixture
def scene_data(make_dataset, tmp_path):
    people = SamplePool([open_source(make_dataset(n=6, size=(64, 48)))], max_side=None)
    frames = SamplePool([open_source({"images": _frames(tmp_path / "bg") / "images", "person_free": True})], None)
    return people, frames


def test_train_dataset_with_negatives_and_backgrounds(scene_data):
    people, frames = scene_data
    pool = SamplePool.from_arrays(people.images, people.masks, people.names)
    negatives = list(pool.extend(frames))
    data = TrainDataset(pool, list(range(6)) + negatives, SCENES, seed=2, backgrounds=frames)
    x, y = data[(6, 32, 48, 1)]  # a negative: its own canvas, people pasted in
    assert x.shape == (3, 32, 48) and torch.isfinite(x).all()
    x2, y2 = data[(6, 32, 48, 1)]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    plain = TrainDataset(pool, negatives, AugmentConfig(composite=0.0), seed=2)
    assert all(plain[(i, 24, 24, 1)][1].sum() == 0 for i in range(len(negatives)))  # pure negatives stay empty
    with_people = [data[(i, 32, 48, e)][1].mean().item() for i in range(6) for e in range(3)]
    assert min(with_people) > 0  # the sample's own person is always pasted


def test_validation_scenes_are_fixed(scene_data):
    people, frames = scene_data
    a = validation_scenes(people, [0, 1, 2], frames, 5, SCENES, seed=0)
    b = validation_scenes(people, [0, 1, 2], frames, 5, SCENES, seed=0)
    assert len(a) == 5 and all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert all(m.shape == frames.masks[0].shape and m.any() for m in a.masks)
    with pytest.raises(DataError, match="validation scenes need"):
        validation_scenes(people, [], frames, 5, SCENES)


def test_load_data_keeps_the_split_and_adds_scenes(make_dataset, tmp_path):
    people = make_dataset(n=10, size=(64, 48))
    frames = _frames(tmp_path / "bg", n=3)
    base = TrainConfig(data={"train": [str(people)], "max_side": None, "val_fraction": 0.2}, output=str(tmp_path))
    _, train_idx, _, val_idx = load_data(base)
    free = {"images": str(frames / "images"), "person_free": True}
    cfg = TrainConfig(
        data={
            "train": [str(people)],
            "max_side": None,
            "val_fraction": 0.2,
            "negatives": [free],
            "negatives_repeat": 2,
            "backgrounds": [free],
            "val_backgrounds": [free],
            "val_scenes": 4,
        },
        output=str(tmp_path),
    )
    pool, scene_train, val_pool, scene_val = load_data(cfg)
    assert scene_train[: len(train_idx)] == train_idx  # the photo split is unchanged
    assert len(scene_train) == len(train_idx) + 2 * 3 and len(pool) == 10 + 3
    assert len(scene_val) == len(val_idx) + 4 + 3  # own images, scenes, person-free frames
    assert sum(not m.any() for m in val_pool.masks) == 3
    assert len(load_backgrounds(cfg)) == 3 and load_backgrounds(base) is None
    kinds = [validation_kind(str(val_pool.names[i]), val_pool.masks[i]) for i in scene_val]
    assert [kinds.count(k) for k in ("photos", "scenes", "frames")] == [len(val_idx), 4, 3]

    model = create_model("asbunet_025").eval()  # the split scored kind by kind, as `selection: kinds` keeps checkpoints
    by_images, _ = evaluate_iou(model, val_pool, scene_val, 64)
    by_kinds, _ = evaluate_iou(model, val_pool, scene_val, 64, "kinds")
    segmenter = Segmenter(TorchRunner(model), 64)
    per_image = np.array(
        [selection_iou(binarize(segmenter.predict(val_pool.images[i]), 0.5), val_pool.masks[i]) for i in scene_val]
    )
    assert by_images == pytest.approx(per_image.mean())
    assert by_kinds == pytest.approx(np.mean([per_image[np.array(kinds) == k].mean() for k in set(kinds)]))


def test_train_repeat_oversamples_one_entry_and_keeps_the_split(make_dataset, tmp_path):
    photos, streets = make_dataset("photos", n=10, size=(64, 48)), make_dataset("streets", n=5, size=(64, 48), seed=1)
    data = {"train": [str(photos), str(streets)], "max_side": None, "val_fraction": 0.2}
    pool, train_idx, _, val_idx = load_data(TrainConfig(data=data, output=str(tmp_path)))
    _, repeated, _, repeated_val = load_data(TrainConfig(data={**data, "train_repeat": [1, 3]}, output=str(tmp_path)))
    assert repeated_val == val_idx
    for i in train_idx:
        assert repeated.count(i) == (3 if "streets" in pool.names[i] else 1)
    assert not set(repeated) & set(val_idx)
    for bad in ([1], [1, 0], [1, 1.5]):
        with pytest.raises(ValueError, match="train_repeat"):
            TrainConfig(data={**data, "train_repeat": bad}, output=str(tmp_path))


# ----------------------------------------------------------------------------------------------------- teachers


def test_detector_anchors_match_the_model_output():
    anchors = detector_anchors()
    assert anchors.shape == (2254, 2) and anchors.min() > 0 and anchors.max() < 1
    assert np.allclose(anchors[0], (0.5 / 28, 0.5 / 28)) and np.allclose(anchors[-1], (6.5 / 7, 6.5 / 7))


TEACHERS = Path(__file__).resolve().parents[1] / ".cache" / "teachers"


@pytest.mark.slow
def test_teacher_label_on_a_real_photo(ccp_samples):
    if not all((TEACHERS / Path(f).name).is_file() for f in TEACHER_FILES.values()):
        pytest.skip(f"teacher models not in {TEACHERS}: `asbunet teacher-labels ... --fetch` extracts them")
    from asbunet.data.io import read_image, read_mask

    teachers = Teachers(TEACHERS, threads=1)
    image = read_image(ccp_samples / "images" / "0001.jpg")
    label = read_mask(ccp_samples / "masks" / "0001.png").astype(bool)
    result = teacher_label(teachers, image)
    assert result.reason == "kept" and result.detection > 0.7
    iou = (result.mask.astype(bool) & label).sum() / (result.mask.astype(bool) | label).sum()
    assert iou > 0.8
    rotated = teacher_label(teachers, cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE))
    assert rotated.mask is not None and rotated.mask.shape == image.shape[1::-1]
    strict = teacher_label(teachers, image, TeacherConfig(min_detection=1.01))
    assert strict.mask is None and strict.reason == "no confident pose detection"


@pytest.mark.slow
def test_teacher_labels_cli(ccp_samples, tmp_path, capsys):
    if not all((TEACHERS / Path(f).name).is_file() for f in TEACHER_FILES.values()):
        pytest.skip(f"teacher models not in {TEACHERS}: `asbunet teacher-labels ... --fetch` extracts them")
    from asbunet.cli import main

    (tmp_path / "exclude.txt").write_text("# leave these out\n00[0-4]*\n")
    main(
        [
            "teacher-labels",
            str(ccp_samples / "images"),
            "--output",
            str(tmp_path / "labels"),
            "--teachers",
            str(TEACHERS),
            "--exclude",
            str(tmp_path / "exclude.txt"),
        ]
    )
    out = capsys.readouterr().out
    rows = (tmp_path / "labels" / "labels.csv").read_text().splitlines()
    kept = (tmp_path / "labels" / "kept.txt").read_text().split()
    assert len(rows) == 1 + 5 and "3 names excluded" not in out and "(1 names excluded)" in out
    assert kept and all((tmp_path / "labels" / "masks" / f"{Path(k).stem}.png").is_file() for k in kept)
    assert all(not k.startswith(("0001", "0007", "0042")) for k in kept)
