"""The data mixture (`asbunet.data.mixture`), copy-paste canvases (`asbunet.data.canvases`), the ignore label in the
loss and the validation score, and checkpoints every N steps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_config

from asbunet.data.canvases import CanvasConfig, Cutout, paste_cutout
from asbunet.data.mixture import IGNORE, CamvidSource, Mixture, MixtureConfig, cutout_split, drive, source_draws
from asbunet.data.sources import open_source
from asbunet.inference.weights import load_checkpoint
from asbunet.train import engine
from asbunet.train.calibrate import threshold_sweep
from asbunet.train.config import TrainConfig
from asbunet.train.loss import SegmentationLoss
from asbunet.train.mixture import score_kinds

REPO = Path(__file__).resolve().parents[1]


def test_sources_are_drawn_by_their_weights():
    weights = np.array([0.5, 0.3, 0.0, 0.2])
    draws = source_draws(weights, 20000, seed=0, epoch=1)
    counts = np.bincount(draws, minlength=4) / 20000
    assert counts[2] == 0  # a source of weight zero is never drawn
    np.testing.assert_allclose(counts, weights, atol=0.015)
    assert np.array_equal(draws, source_draws(weights, 20000, seed=0, epoch=1))  # the same after a resume
    assert not np.array_equal(draws, source_draws(weights, 20000, seed=0, epoch=2))


def test_ignored_pixels_count_in_no_loss_and_no_score():
    torch.manual_seed(0)
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()  # (B, 1, H, W)
    target[:, :, 4:9, 3:12] = IGNORE
    loss_fn = SegmentationLoss(1.5, dice_weight=0.5, boundary_weight=1.0, lovasz_weight=0.5)
    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    loss = loss_fn(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, :, 4:9, 3:12].abs().max() == 0  # ignored pixels get no gradient
    changed = logits.detach().clone()
    changed[:, :, 4:9, 3:12] = 50.0  # confidently "person" where the label says ignore
    assert torch.allclose(loss_fn(changed, target), loss.detach())
    # the same pixels labelled background do cost
    assert loss_fn(changed, target.masked_fill(target == IGNORE, 0)) > loss.detach() + 0.1

    mask = np.zeros((8, 8), np.uint8)
    mask[1:4, 1:4] = 1
    mask[5:8, 5:8] = IGNORE
    pred = mask > 0  # the person, and "person" on the ignored pixels
    scores, pooled = score_kinds([pred], [mask], ["camvid"])
    assert scores == {"camvid": 1.0} and pooled == 1.0


def test_pasted_label_follows_the_alpha_at_half():
    rng = np.random.default_rng(0)
    alpha = np.tile(np.linspace(0, 1, 10, dtype=np.float32), (20, 1))  # (20, 10): soft, 0 to 1 left to right
    alpha[:, 0] = 0.0
    person = np.full((20, 10, 3), 200, np.uint8)
    cutout = Cutout(person, alpha, (False, False, False, False))
    cfg = CanvasConfig(rotate=0.0, match=0.0, shadow=0.0, seam_blur=(0.0, 0.0))
    canvas, label = np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), np.uint8)
    out, out_label = paste_cutout(canvas, label, cutout, 0.5, rng, cfg, top_left=(5, 7))  # 0.5 x 40 = 20: no resize
    expected = np.zeros((40, 40), np.uint8)
    expected[5:25, 7:17] = alpha >= 0.5
    assert np.array_equal(out_label, expected)
    assert np.array_equal(out[5:25, 7:17, 0], np.round(alpha * 200).astype(np.uint8))  # the soft alpha blends
    assert out[label == 0].sum() == out[5:25, 7:17].sum() and not label.any()  # nothing outside, inputs unchanged

    # partly outside the frame: the label is the part in view
    _, clipped = paste_cutout(canvas, label, cutout, 0.5, rng, cfg, top_left=(30, -4))
    expected = np.zeros((40, 40), np.uint8)
    expected[30:40, 0:6] = (alpha >= 0.5)[:10, 4:]
    assert np.array_equal(clipped, expected)


def test_validation_canvases_use_only_held_out_frames_and_people(make_dataset, tmp_path):
    photos = make_dataset("photos", n=20, size=(48, 40))
    frames = {}
    for split in ("train", "val"):
        folder = tmp_path / f"frames_{split}"
        folder.mkdir()
        for i in range(3):
            cv2.imwrite(str(folder / f"{split}{i}.jpg"), np.full((40, 56, 3), 60 + 40 * i, np.uint8))
        frames[split] = {"images": str(folder), "person_free": True}
    cfg = MixtureConfig(
        sources=[
            {"name": "photos", "kind": "photos", "weight": 1.0, "train": str(photos)},
            {"name": "free", "kind": "person_free", "weight": 1.0, "train": frames["train"], "val": frames["val"]},
            {"name": "canvases", "kind": "canvases", "weight": 1.0},
        ],
        val_fraction=0.25,
        val_canvases=12,
    )
    mixture = Mixture(cfg, max_side=64, seed=0)
    photos_src = mixture.sources[0]
    assert not set(photos_src.train) & set(photos_src.val)
    val_people = {name for name in (mixture.val_people.get(k).name for k in range(len(mixture.val_people)))}
    train_people = {mixture.people.get(k).name for k in range(len(mixture.people))}
    assert val_people and not val_people & train_people
    pool, kinds = mixture.validation()
    scenes = [n for n, k in zip(pool.names, kinds, strict=True) if k == "canvases"]
    assert len(scenes) == 12 and all("frames_val" in n and "frames_train" not in n for n in scenes)
    assert kinds.count("person_free") == 3 and kinds.count("photos") == len(photos_src.val)


def test_shipped_mixture_holds_out_frames_people_and_a_drive(shared_data):
    cfg = yaml.safe_load((REPO / "configs" / "person_mix_pilot.yaml").read_text())["data"]["mixture"]
    by_name = {s["name"]: s for s in cfg["sources"]}
    for name in ("davis_free", "backgrounds"):
        train = {s.image.name for s in open_source(by_name[name]["train"]).samples}
        val = {s.image.name for s in open_source(by_name[name]["val"]).samples}
        assert train and val and not train & val, name
    indoor_val = {"bg_016", "bg_034", "bg_039", "bg_057", "bg_067", "bg_076", "bg_082", "bg_086", "bg_090", "bg_094"}
    assert indoor_val <= {Path(n).stem for n in val}  # held-out indoor frames
    camvid = by_name["camvid"]
    train_drives = {drive(s.image.name) for s in CamvidSource(camvid["root"], exclude=camvid["val_drives"]).samples}
    val_drives = {drive(s.image.name) for s in CamvidSource(camvid["root"], drives=camvid["val_drives"]).samples}
    assert val_drives == set(camvid["val_drives"]) and not train_drives & val_drives
    train_cut, val_cut = cutout_split(cfg["cutouts"]["root"], cfg["cutouts"]["val_fraction"], 0)
    assert val_cut and not set(train_cut) & set(val_cut)


def test_checkpoint_every_resumes_mid_epoch_as_an_uninterrupted_run(make_dataset, tmp_path, monkeypatch):
    data = make_dataset(n=8, size=(56, 48))
    straight = tmp_path / "straight"
    engine.train(TrainConfig(**tiny_config(data, straight, epochs=2, checkpoint_every=1)))

    class KilledError(Exception):
        pass

    real_save = engine.atomic_save

    def save_then_die(ckpt, path):
        real_save(ckpt, path)
        if ckpt["step"] == 4 and ckpt["batch"]:  # killed right after a checkpoint inside epoch 2
            raise KilledError

    killed = tmp_path / "killed"
    cfg = TrainConfig(**tiny_config(data, killed, epochs=2, checkpoint_every=1))
    monkeypatch.setattr(engine, "atomic_save", save_then_die)
    with pytest.raises(KilledError):
        engine.train(cfg)
    state = load_checkpoint(killed / "last.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (1, 1, 4)
    monkeypatch.setattr(engine, "atomic_save", real_save)
    engine.train(cfg, resume=True)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert (b["epoch"], b["step"]) == (a["epoch"], a["step"])
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_threshold_sweep_scores_ignored_pixels_as_neither_class():
    class Fixed:  # a segmenter that calls every labelled and every ignored pixel person
        def predict(self, image):
            return (mask > 0).astype(np.float32)

    mask = np.zeros((8, 8), np.uint8)
    mask[1:4, 1:4] = 1
    mask[5:8, 5:8] = IGNORE
    sweep = threshold_sweep(Fixed(), [np.zeros((8, 8, 3), np.uint8)], [mask], thresholds=[0.5])
    assert sweep == {0.5: 1.0}
