"""Data side (Section IV-A): mask encodings, bad files, dataset layouts, the 80/20 split, batching, augmentation,
`check-data` and `preview-augment`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torch.utils.data import DistributedSampler

from asbunet.cli import main
from asbunet.data.augment import AugmentConfig
from asbunet.data.check import check_datasets, check_source, format_report
from asbunet.data.dataset import EpochRandomSampler, SamplePool, ShapeBatchSampler, TrainDataset
from asbunet.data.io import DataError, read_image, read_mask
from asbunet.data.sources import CocoSource, FolderSource, open_source, split_indices
from asbunet.train.config import TrainConfig
from asbunet.train.preview import denormalize, preview_samples, save_grid

# pycocotools' RLE decoding predates NumPy 2's copy keyword
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

# ---------------------------------------------------------------------------------------------------------- masks


@pytest.fixture
def person() -> np.ndarray:
    """A 0/1 reference mask with a filled rectangle and a single-pixel detail."""
    mask = np.zeros((24, 32), np.uint8)
    mask[4:18, 6:20] = 1
    mask[22, 30] = 1
    return mask


def _write_palette(path: Path, mask: np.ndarray) -> None:
    index = mask.astype(np.uint8) * 3  # person = palette entry 3, background = entry 0
    index[0, 0] = 0
    im = Image.fromarray(index, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 192, 64, 32] + [0] * (256 * 3 - 12))
    im.save(path)


def _write_rgba(path: Path, mask: np.ndarray) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (*mask.shape, 3), dtype=np.uint8)  # colour says nothing
    alpha = np.where(mask > 0, 230, 20).astype(np.uint8)  # soft matte: thresholded at half
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(path)


ENCODINGS = {
    "gray_0_255": lambda p, m: Image.fromarray(m * 255).save(p),
    "gray_0_1": lambda p, m: Image.fromarray(m).save(p),
    "palette": _write_palette,
    "rgba_alpha": _write_rgba,
    "bilevel": lambda p, m: Image.fromarray(m.astype(bool)).save(p),
    "gray16_0_65535": lambda p, m: Image.fromarray(m.astype(np.uint16) * 65535).save(p),
    "rgb_white": lambda p, m: Image.fromarray(np.repeat(m[..., None] * 255, 3, axis=2)).save(p),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_read_mask_encodings(tmp_path, person, encoding):
    path = tmp_path / f"{encoding}.png"
    ENCODINGS[encoding](path, person)
    mask = read_mask(path)
    assert mask.dtype == np.uint8 and mask.shape == person.shape
    np.testing.assert_array_equal(mask, person)


def test_palette_mask_is_really_palette(tmp_path, person):
    path = tmp_path / "p.png"
    _write_palette(path, person)
    with Image.open(path) as im:
        assert im.mode == "P"


def test_read_mask_all_background(tmp_path):
    path = tmp_path / "zeros.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    assert read_mask(path).sum() == 0


# ------------------------------------------------------------------------------------------------------ bad files


def test_unreadable_image_names_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match=r"broken\.jpg: not a readable image"):
        read_image(path)


def test_empty_and_missing_image(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: file is empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(DataError, match=r"nope\.png: file not found"):
        read_image(tmp_path / "nope.png")


def test_empty_missing_and_corrupt_mask(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"empty\.png: mask file is empty"):
        read_mask(tmp_path / "empty.png")
    with pytest.raises(DataError, match=r"nope\.png: mask file not found"):
        read_mask(tmp_path / "nope.png")
    with pytest.raises(DataError, match=r"corrupt\.png: not a readable mask image"):
        read_mask(tmp_path / "corrupt.png")


@pytest.mark.parametrize("problem", ["unreadable", "size", "empty", "missing"])
def test_folder_source_bad_sample_raises_naming_the_file(bad_dataset, problem):
    root, bad = bad_dataset
    source = open_source(root)
    index = [s.image.stem for s in source.samples].index(bad[problem].stem)
    with pytest.raises(DataError) as err:
        source.load(index)
    assert str(bad[problem]) in str(err.value)
    if problem == "size":
        assert "20x20 differs from its image" in str(err.value) and "(32x40)" in str(err.value)
    if problem == "missing":
        assert "no mask" in str(err.value)


def test_pool_raises_on_the_first_bad_sample(bad_dataset):
    root, bad = bad_dataset
    with pytest.raises(DataError, match=str(bad["unreadable"])):
        SamplePool([open_source(root)], max_side=None)


def test_pool_skip_bad_lists_every_skipped_sample(bad_dataset):
    root, bad = bad_dataset
    pool = SamplePool([open_source(root)], max_side=None, skip_bad=True)
    assert len(pool) == 4
    assert [Path(n).stem for n in pool.names] == ["0000", "0001", "0002", "0003"]
    assert len(pool.skipped) == 4
    for path in bad.values():
        assert sum(str(path) in line for line in pool.skipped) == 1, path


def test_pool_with_nothing_usable(tmp_path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match="no usable samples"):
        SamplePool([open_source(root)], skip_bad=True)


def test_pool_downsizes_and_counts_person_pixels(make_dataset):
    root = make_dataset(n=3, size=(60, 90))
    full = SamplePool([open_source(root)], max_side=None)
    small = SamplePool([open_source(root)], max_side=45)
    for image, mask in zip(small.images, small.masks, strict=True):
        assert image.shape == (30, 45, 3) and mask.shape == (30, 45)
        assert set(np.unique(mask)) <= {0, 1}
    expected = sum(int(m.sum()) for m in full.masks) / sum(m.size for m in full.masks)
    assert full.positive_fraction() == pytest.approx(expected)
    assert 0.05 < full.positive_fraction() < 0.6


# --------------------------------------------------------------------------------------------------------- layouts


def test_open_source_errors(tmp_path):
    with pytest.raises(DataError, match="dataset not found"):
        open_source(tmp_path / "absent")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="expected a folder with images/ and masks/"):
        open_source(tmp_path / "flat")
    with pytest.raises(DataError, match="needs 'images' and 'masks'"):
        open_source({"images": str(tmp_path)})


def test_folder_source_from_mapping(make_dataset):
    root = make_dataset(n=3)
    source = open_source({"images": str(root / "images"), "masks": str(root / "masks")})
    assert isinstance(source, FolderSource) and len(source) == 3
    image, mask = source.load(0)
    assert image.shape == (48, 40, 3) and mask.shape == (48, 40) and mask.max() == 1


def _write_coco(tmp_path: Path) -> tuple[Path, dict[int, np.ndarray]]:
    """Three images: a polygon person, an RLE person plus a dog, an uncompressed-RLE crowd; expected masks."""
    h, w = 30, 40
    images = tmp_path / "coco" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg", "c.png"):
        cv2.imwrite(str(images / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    rle_mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(rle_mask, (25, 15), (9, 12), 0, 0, 360, 1, -1)
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode("ascii")
    crowd_mask = np.zeros((h, w), np.uint8)
    crowd_mask[2:9, 3:37] = 1
    crowd_counts, value, run = [], 0, 0
    for v in crowd_mask.flatten(order="F"):  # uncompressed RLE: runs in column-major order, starting with zeros
        if v == value:
            run += 1
        else:
            crowd_counts.append(run)
            value, run = v, 1
    crowd_counts.append(run)
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": h, "width": w},
            {"id": 2, "file_name": "b.jpg", "height": h, "width": w},
            {"id": 3, "file_name": "c.png", "height": h, "width": w},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": 150.0,
                "bbox": [5, 5, 15, 10],
                "segmentation": [[5, 5, 20, 5, 20, 15, 5, 15]],
            },
            {
                "id": 11,
                "image_id": 2,
                "category_id": 1,
                "iscrowd": 0,
                "area": float(rle_mask.sum()),
                "bbox": [16, 3, 19, 25],
                "segmentation": rle,
            },
            {
                "id": 12,
                "image_id": 2,
                "category_id": 18,
                "iscrowd": 0,
                "area": 20.0,
                "bbox": [0, 0, 5, 4],
                "segmentation": [[0, 0, 5, 0, 5, 4, 0, 4]],
            },
            {
                "id": 13,
                "image_id": 3,
                "category_id": 1,
                "iscrowd": 1,
                "area": float(crowd_mask.sum()),
                "bbox": [3, 2, 34, 7],
                "segmentation": {"size": [h, w], "counts": crowd_counts},
            },
        ],
    }
    path = tmp_path / "coco" / "person.json"
    path.write_text(json.dumps(data))
    return path, {2: rle_mask, 3: crowd_mask}


def test_coco_source_polygon_rle_and_category(tmp_path):
    path, expected = _write_coco(tmp_path)
    source = open_source(path)
    assert isinstance(source, CocoSource) and len(source) == 3
    image, poly = source.load(0)
    assert image.shape == (30, 40, 3) and poly.dtype == np.uint8
    assert poly[6:15, 6:20].all()  # inside the polygon
    assert poly[:4].sum() == 0 and poly[17:].sum() == 0 and poly[:, 22:].sum() == 0  # outside it
    assert 140 <= poly.sum() <= 180
    _, rle = source.load(1)
    np.testing.assert_array_equal(rle, expected[2])  # the dog's polygon at the top left is not a person
    _, crowd = source.load(2)
    np.testing.assert_array_equal(crowd, expected[3])


def test_coco_source_errors(tmp_path):
    path, _ = _write_coco(tmp_path)
    with pytest.raises(DataError, match="no category 'cat'; categories: dog, person"):
        CocoSource(path, category="cat")
    data = json.loads(path.read_text())
    data["images"][0]["width"] = 41
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"a\.jpg: image is 40x30 but .*person\.json says 41x30"):
        open_source(path).load(0)
    (tmp_path / "coco" / "images" / "b.jpg").unlink()
    with pytest.raises(DataError, match=r"b\.jpg: file not found"):
        open_source(path).load(1)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: not a COCO annotation file"):
        open_source(broken)


# ------------------------------------------------------------------------------------------------ split, batching


def test_split_is_seeded_80_20():
    train, val = split_indices(100, 0.2, seed=0)
    assert (train, val) == split_indices(100, 0.2, seed=0)
    assert len(train) == 80 and len(val) == 20
    assert sorted(train + val) == list(range(100))
    assert train == sorted(train) and val == sorted(val)
    assert split_indices(100, 0.2, seed=1)[1] != val
    assert split_indices(10, 0.0)[1] == []


def test_epoch_random_sampler_is_a_seeded_permutation():
    sampler = EpochRandomSampler(12, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(first) == list(range(12)) and first == list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != first


def test_shape_batch_sampler():
    shapes = [(64, 64), (48, 80), (80, 48)]
    batches = ShapeBatchSampler(EpochRandomSampler(10, seed=0), 3, shapes, seed=0)
    assert len(batches) == 3
    batches.set_epoch(1)
    epoch1 = list(batches)
    assert len(epoch1) == 3
    for batch in epoch1:
        assert len(batch) == 3
        assert len({(h, w) for _, h, w, _ in batch}) == 1  # one canvas shape per batch
        assert (batch[0][1], batch[0][2]) in shapes
        assert all(e == 1 for *_, e in batch)
    assert epoch1 == list(batches)  # deterministic
    batches.set_epoch(2)
    assert list(batches) != epoch1
    assert batches.sampler.epoch == 2  # forwarded
    every = ShapeBatchSampler(EpochRandomSampler(10, seed=0), 3, shapes, seed=0, drop_last=False)
    assert len(every) == 4
    used = set()
    for epoch in range(1, 6):
        every.set_epoch(epoch)
        keys = [k for batch in every for k in batch]
        assert sorted(i for i, *_ in keys) == list(range(10))
        used |= {(h, w) for _, h, w, _ in keys}
    assert used == set(shapes)


def test_shape_batch_sampler_ranks_agree_on_shapes():
    ranks = [
        ShapeBatchSampler(DistributedSampler(range(20), 2, r, seed=0), 2, [(32, 32), (32, 48)], seed=0)
        for r in range(2)
    ]
    for s in ranks:
        s.set_epoch(3)
    b0, b1 = list(ranks[0]), list(ranks[1])
    assert [(b[0][1], b[0][2]) for b in b0] == [(b[0][1], b[0][2]) for b in b1]
    assert not {k[0] for b in b0 for k in b} & {k[0] for b in b1 for k in b}


# ---------------------------------------------------------------------------------------------------- augmentation


def test_augment_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown augment options \['blur'\]"):
        AugmentConfig.from_dict({"blur": 0.5})


@pytest.mark.parametrize("composite", [0.0, 1.0])
def test_train_dataset_is_deterministic_per_key(make_dataset, composite):
    pool = SamplePool([open_source(make_dataset(n=4, size=(60, 40)))], max_side=None)
    data = TrainDataset(pool, [0, 1, 2, 3], AugmentConfig(composite=composite, noise=1.0, shadow=1.0), seed=5)
    x, y = data[(1, 32, 48, 1)]
    assert x.shape == (3, 32, 48) and y.shape == (1, 32, 48) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and set(torch.unique(y).tolist()) <= {0.0, 1.0}
    x2, y2 = data[(1, 32, 48, 1)]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = data[(1, 32, 48, 2)]
    assert not torch.equal(x, x3)  # a new epoch draws new augmentation


def test_auto_crop_keeps_the_person_in_view(make_dataset):
    pool = SamplePool([open_source(make_dataset(n=4, size=(80, 60)))], max_side=None)
    data = TrainDataset(pool, [0, 1, 2, 3], AugmentConfig(crop=1.0, crop_scale=(0.2, 0.3)), seed=0)
    assert all(data[(i, 24, 24, e)][1].sum() > 0 for i in range(4) for e in range(5))


# ---------------------------------------------------------------------------------------------------- check-data


def test_check_good_dataset(make_dataset):
    root = make_dataset(n=5, size=(48, 40))
    (report,) = check_datasets([root])
    pool = SamplePool([open_source(root)], max_side=None)
    assert (report.layout, report.samples, report.usable, report.problems) == ("folder", 5, 5, [])
    assert report.sizes == {(40, 48): 5}
    assert report.person_fraction == pytest.approx(pool.positive_fraction())
    text = format_report([report])
    assert "5 samples, 5 usable, 0 problems" in text and "40x48 (5)" in text
    assert main(["check-data", str(root)]) == 0


def test_check_bad_dataset_names_every_file(bad_dataset, capsys):
    root, bad = bad_dataset
    (report,) = check_datasets([root])
    assert (report.samples, report.usable, len(report.problems)) == (8, 4, 4)
    for path in bad.values():
        assert sum(str(path) in p for p in report.problems) == 1, path
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", str(root)])
    assert exit_info.value.code == 1
    out = capsys.readouterr()
    assert all(str(p) in out.out for p in bad.values()) and "4 problem" in out.err
    assert main(["check-data", str(root), "--skip-bad"]) == 0  # 4 usable samples remain
    with pytest.raises(SystemExit):
        main(["check-data", str(root), str(root.parent / "absent"), "--skip-bad"])  # a whole dataset is missing


def test_check_layout_problems_and_notes(make_dataset):
    root = make_dataset(n=3)
    cv2.imwrite(str(root / "masks" / "0001.jpg"), np.zeros((48, 40), np.uint8))  # second mask for 0001
    cv2.imwrite(str(root / "masks" / "extra.png"), np.zeros((48, 40), np.uint8))  # no image
    cv2.imwrite(str(root / "masks" / "0002.png"), np.zeros((48, 40), np.uint8))  # no person
    report = check_source(FolderSource(root / "images", root / "masks"))
    assert [p for p in report.problems if "several masks for the image stem '0001'" in p] == report.problems
    assert report.problems[0].startswith(str(root / "images" / "0001.jpg"))
    assert (report.samples, report.usable) == (3, 2)  # the ambiguous pair is a problem, not also usable
    assert any("1 masks have no image (extra.png)" in n for n in report.notes)
    assert any("0002.png: the mask holds no person pixel" in n for n in report.notes)


def test_check_counts_every_sample_once(bad_dataset):
    root, bad = bad_dataset
    cv2.imwrite(str(root / "masks" / "0001.jpg"), np.zeros((32, 40), np.uint8))  # a second mask for 0001
    cv2.imwrite(str(root / "masks" / "0005.jpg"), np.zeros((32, 40), np.uint8))  # and for 0005, whose mask is bad
    (report,) = check_datasets([root])
    assert (report.samples, report.usable, len(report.problems)) == (8, 3, 5)
    assert report.usable + len(report.problems) == report.samples
    assert "8 samples, 3 usable, 5 problems" in format_report([report])


def test_check_coco(tmp_path):
    path, _ = _write_coco(tmp_path)
    (report,) = check_datasets([path])
    assert (report.layout, report.samples, report.usable, report.problems) == ("coco", 3, 3, [])


def test_check_real_samples(ccp_samples):
    (report,) = check_datasets([ccp_samples])
    assert (report.samples, report.usable, report.problems) == (8, 8, [])
    assert 0.1 < report.person_fraction < 0.4


# ------------------------------------------------------------------------------------------------ preview-augment


def _config(data: Path, output: Path, **values) -> TrainConfig:
    base = dict(
        data={"train": [str(data)], "val_fraction": 0.25, "max_side": 64},
        shapes=[[32, 32], [24, 40]],
        batch_size=2,
        augment={"composite": 0.5},
        workers=0,
        output=str(output),
    )
    return TrainConfig(**{**base, **values})


def test_preview_shows_what_training_is_fed(make_dataset, tmp_path):
    cfg = _config(make_dataset(n=8, size=(60, 44)), tmp_path / "run", seed=4)
    samples = preview_samples(cfg, count=5, epoch=2, pool_size=None)
    # the same construction as the training loop
    pool = SamplePool([open_source(s) for s in cfg.data.train], cfg.data.max_side)
    train_idx, _ = split_indices(len(pool), cfg.data.val_fraction, cfg.seed)
    dataset = TrainDataset(pool, train_idx, AugmentConfig.from_dict(cfg.augment), cfg.seed)
    batches = ShapeBatchSampler(EpochRandomSampler(len(dataset), cfg.seed), cfg.batch_size, cfg.shapes, cfg.seed)
    batches.set_epoch(2)
    keys = [k for b in batches for k in b][:5]
    assert len(samples) == 5
    for sample, key in zip(samples, keys, strict=True):
        x, y = dataset[key]
        np.testing.assert_array_equal(sample.image, denormalize(x))
        np.testing.assert_array_equal(sample.mask, y[0].numpy())
        assert sample.image.shape[:2] == (key[1], key[2])
        assert sample.name == pool.names[train_idx[key[0]]]


def test_preview_more_samples_than_an_epoch_and_grid(make_dataset, tmp_path):
    cfg = _config(make_dataset(n=4), tmp_path / "run")
    samples = preview_samples(cfg, count=7, pool_size=2)  # 2 loaded, 2 for training: 4 epochs' worth
    assert len(samples) == 7
    out = save_grid(samples, tmp_path / "grids" / "grid.png", title="test")
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > 200 and grid.shape[1] > 200
    with pytest.raises(ValueError, match="count must be at least 1"):
        preview_samples(cfg, count=0)
    with pytest.raises(ValueError, match=r"grid\.xyz: cannot save the grid"):
        save_grid(samples, tmp_path / "grid.xyz")


def test_preview_augment_cli(make_dataset, tmp_path, capsys):
    data = make_dataset(n=6)
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data: {{train: ['{data}'], max_side: 64}}\nshapes: [[32, 32]]\nbatch_size: 2\n")
    out = tmp_path / "grid.png"
    assert (
        main(["preview-augment", "--config", str(config), "--count", "4", "--output", str(out), "augment.composite=1"])
        == 0
    )
    assert out.stat().st_size > 1000 and "wrote" in capsys.readouterr().out
    assert main(["preview-augment", "--config", str(tmp_path / "missing.yaml"), "--output", str(out)]) == 2
