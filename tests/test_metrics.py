"""Metrics on small hand-made masks whose expected values are worked out by hand (Section IV-C, Eq. 3)."""

import numpy as np
import pytest
import torch

from asbunet.inference.postprocess import binarize
from asbunet.metrics import (
    METRICS,
    IgnoreBand,
    boundary_dilation,
    boundary_iou,
    count_wins,
    dice,
    false_detection_mask,
    ignore_band,
    ignore_band_iou,
    image_stats,
    iou,
    mean_absolute_error,
    precision,
    recall,
    summarize,
)


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


# ------------------------------------------------------------------------------------------- ignore band (Eq. 3)


def test_error_only_inside_the_band_is_ignored():
    # A 50x50 object: band half-width round(0.02 * sqrt(2500)) = 1, i.e. one pixel either side of the edge.
    label = square(100, 20, 20, 50)
    pred = label.copy()
    pred[19, 20:70] = 1  # one row too high...
    pred[69, 20:70] = 0  # ...and one row short at the bottom: every error is within 1 px of the edge
    # plain IoU: 49 common rows of 50 over 51 rows of 50
    assert iou(pred, label) == pytest.approx(49 * 50 / (51 * 50))
    assert ignore_band_iou(pred, label) == 1.0


def test_error_outside_the_band_counts():
    label = square(100, 20, 20, 50)
    pred = label.copy()
    pred[20:22, 20:70] = 0  # two rows missing at the top: the second one is outside the 1 px band
    # kept label = the 48x48 eroded interior; the prediction misses its first row
    assert ignore_band_iou(pred, label) == pytest.approx(47 * 48 / (48 * 48))


def test_one_false_blob_costs_the_penalty():
    label = square(100, 10, 10, 50)
    pred = label.copy()
    pred[90:95, 90:95] = 1  # 25 px far from the object (the smallest counted blob is ceil(1e-4 * 100^2) = 1 px)
    # outside the band: the 48x48 interior is correct, the blob is in the union only
    band_iou = 48 * 48 / (48 * 48 + 25)
    assert ignore_band_iou(pred, label) == pytest.approx(band_iou - 1.0)
    assert ignore_band_iou(pred, label, IgnoreBand(penalty=0.25)) == pytest.approx(band_iou - 0.25)
    assert ignore_band_iou(pred, label, IgnoreBand(floor=0.0)) == 0.0
    stats = image_stats(pred, label)
    assert stats.false_detections == 1
    assert stats.scores()["band_iou"] == pytest.approx(band_iou)

    pred[90:95, 10:15] = 1  # a second blob costs another penalty
    assert ignore_band_iou(pred, label) == pytest.approx(48 * 48 / (48 * 48 + 50) - 2.0)


def test_blob_touching_the_band_or_an_object_is_no_false_detection():
    label = square(100, 10, 10, 50)
    band = ignore_band(label)
    near = label.copy()
    near[30:35, 60:65] = 1  # starts at column 60, the first column outside the object: inside the 1 px band
    assert false_detection_mask(near, label, band)[1] == 0
    attached = label.copy()
    attached[30:35, 60:90] = 1  # sticks out far beyond the band, but is one piece with the object
    assert false_detection_mask(attached, label, band)[1] == 0
    apart = label.copy()
    apart[30:35, 62:90] = 1  # one pixel of background between it and the band
    blobs, n = false_detection_mask(apart, label, band)
    assert n == 1 and blobs.sum() == 5 * 28


def test_speckles_below_the_minimum_size_are_not_detections():
    label = square(200, 10, 10, 50)
    pred = label.copy()
    pred[150, 150] = 1  # 1 px < ceil(1e-4 * 200^2) = 4 px
    assert image_stats(pred, label).false_detections == 0
    pred[100:102, 100:102] = 1  # 4 px: counted
    assert image_stats(pred, label).false_detections == 1
    assert image_stats(pred, label, params=IgnoreBand(min_false_fraction=0.0)).false_detections == 2


def test_empty_label_and_prediction_score_one():
    empty = np.zeros((32, 32), np.uint8)
    for metric in (ignore_band_iou, iou, dice, precision, recall, boundary_iou):
        assert metric(empty, empty) == 1.0, metric.__name__


def test_prediction_on_empty_label_is_wrong_and_a_false_detection():
    empty = np.zeros((32, 32), np.uint8)
    pred = square(32, 4, 4, 8)
    assert iou(pred, empty) == 0.0
    assert ignore_band_iou(pred, empty) == -1.0  # IoU 0 minus one false detection
    assert recall(pred, empty) == 1.0 and precision(pred, empty) == 0.0


def test_bigger_object_gets_a_wider_band():
    band_params = IgnoreBand()
    assert band_params.width(20 * 20) == 1  # round(0.02 * 20) = 0, raised to min_width
    assert band_params.width(200 * 200) == 4  # round(0.02 * 200)
    label = square(300, 10, 10, 20) | square(300, 60, 60, 200)
    band = ignore_band(label)
    # along a row through each object's middle: r px outside the left edge and r px inside it
    small_row, big_row = band[20, :40], band[160, :120]
    assert small_row.sum() == 2 * 2  # left and right edge of the small object, 2 px each
    assert np.flatnonzero(small_row).tolist() == [9, 10, 29, 30]
    assert np.flatnonzero(big_row).tolist() == list(range(56, 64))  # 4 px outside + 4 px inside column 60
    assert IgnoreBand(max_width=2).width(200 * 200) == 2
    assert IgnoreBand(min_width=0).width(20 * 20) == 0


def test_band_scales_with_the_image():
    small = square(100, 20, 20, 50)  # r = 1
    big = np.kron(small, np.ones((4, 4), np.uint8))  # the same picture 4x larger: 200x200 object, r = 4
    assert ignore_band(small)[45].sum() == 2 * 2
    assert ignore_band(big)[180].sum() == 2 * 8


def test_image_frame_is_not_an_edge():
    label = np.zeros((40, 40), np.uint8)
    label[:, :20] = 1  # the left half, touching three sides of the frame
    band = ignore_band(label, IgnoreBand(scale=0.0, min_width=2))
    assert band[:, :18].sum() == 0 and band[:, 22:].sum() == 0
    assert band[:, 18:22].all()


# ------------------------------------------------------------------------------------------- other metrics


def test_confusion_metrics_on_a_known_case():
    label = np.zeros((4, 5), np.uint8)
    label[0:2] = 1  # 10 px
    pred = np.zeros((4, 5), np.uint8)
    pred[1:3] = 1  # 10 px, 5 of them right
    assert iou(pred, label) == pytest.approx(5 / 15)
    assert dice(pred, label) == pytest.approx(0.5)
    assert precision(pred, label) == pytest.approx(0.5)
    assert recall(pred, label) == pytest.approx(0.5)
    pred[0] = 1  # 15 predicted, all 10 labelled found
    assert precision(pred, label) == pytest.approx(10 / 15)
    assert recall(pred, label) == 1.0
    assert dice(pred, label) == pytest.approx(2 * 10 / 25)


def test_boundary_iou_on_known_cases():
    assert boundary_dilation(100, 100) == 3  # round(0.02 * 141.4)
    assert boundary_dilation(10, 10) == 1  # at least one pixel
    label = np.zeros((100, 100), np.uint8)
    label[:, :50] = 1
    full = np.ones((100, 100), np.uint8)
    assert boundary_iou(label, label) == 1.0
    assert boundary_iou(np.zeros_like(label), label) == 0.0
    # the image frame counts as contour: boundary of `full` = 3 px ring = 100^2 - 94^2 = 1164 px;
    # boundary of the left half = 5000 - 94 * 44 = 864 px; common = left half of the ring = 5000 - 94 * 47 = 582
    assert boundary_iou(full, label) == pytest.approx(582 / (1164 + 864 - 582))
    # a one-pixel shift of a big square hardly matters to IoU and matters more to Boundary IoU
    big, shifted = square(100, 20, 20, 60), square(100, 20, 21, 60)
    assert boundary_iou(shifted, big) < iou(shifted, big)


def test_mean_absolute_error():
    label = np.array([[1, 1], [0, 0]], np.uint8)
    prob = np.array([[0.75, 1.0], [0.5, 0.0]], np.float32)
    assert mean_absolute_error(prob, label) == pytest.approx((0.25 + 0 + 0.5 + 0) / 4)
    with pytest.raises(ValueError, match="sigmoid"):
        mean_absolute_error(prob * 4, label)
    with pytest.raises(ValueError, match="differs from target"):
        mean_absolute_error(prob[:1], label)


def test_binarize_is_at_or_above_the_threshold():
    assert binarize(np.array([0.4, 0.5, 0.6]), 0.5).tolist() == [False, True, True]


# ------------------------------------------------------------------------------------------- aggregation


def test_mean_pooled_and_per_image_aggregation():
    label = np.zeros((2, 4, 4), np.uint8)
    pred = np.zeros((2, 4, 4), np.uint8)
    label[0, 0, :2] = 1
    pred[0, 0, 0] = 1  # image 0: 1 of 2 -> IoU 0.5
    label[1, :2] = 1
    pred[1, :2] = 1  # image 1: 8 of 8 -> IoU 1.0
    assert iou(pred, label, reduction="none").tolist() == [0.5, 1.0]
    assert iou(pred, label) == pytest.approx(0.75)
    assert iou(pred, label, reduction="pooled") == pytest.approx(9 / 10)
    assert recall(pred, label, reduction="pooled") == pytest.approx(9 / 10)
    assert precision(pred, label, reduction="pooled") == 1.0
    # one image: mean and pooled agree
    assert iou(pred[0], label[0]) == iou(pred[0], label[0], reduction="pooled") == 0.5


def test_ignore_band_iou_aggregation_and_summarize_agree():
    labels = np.stack([square(100, 10, 10, 50), square(100, 30, 30, 20)])
    preds = labels.copy()
    preds[0, 90:95, 90:95] = 1  # a false blob in image 0
    preds[1, 30:34, 30:50] = 0  # image 1 misses its top 4 rows (3 outside the band)
    per_image = ignore_band_iou(preds, labels, reduction="none")
    first = 48 * 48 / (48 * 48 + 25) - 1.0
    second = 15 * 18 / (18 * 18)  # 18x18 kept interior, its top 3 rows missed
    assert per_image.tolist() == pytest.approx([first, second])
    assert ignore_band_iou(preds, labels) == pytest.approx((first + second) / 2)
    pooled = (48 * 48 + 15 * 18) / (48 * 48 + 25 + 18 * 18) - 1.0 / 2  # pooled IoU - penalty * falses per image
    assert ignore_band_iou(preds, labels, reduction="pooled") == pytest.approx(pooled)

    summary = summarize(
        [image_stats(p, y, probability=p.astype(np.float32)) for p, y in zip(preds, labels, strict=True)]
    )
    assert set(summary["mean"]) == set(summary["pooled"]) == set(METRICS)
    assert summary["mean"]["ignore_band_iou"] == pytest.approx((first + second) / 2)
    assert summary["pooled"]["ignore_band_iou"] == pytest.approx(pooled)
    assert summary["mean"]["iou"] == pytest.approx(iou(preds, labels))
    assert summary["pooled"]["dice"] == pytest.approx(dice(preds, labels, reduction="pooled"))
    assert summary["mean"]["boundary_iou"] == pytest.approx(boundary_iou(preds, labels))
    assert summary["pooled"]["false_detections"] == 0.5


def test_background_fp_rate_person_share_and_over_2x_on_hand_made_masks():
    # 10x10 images (100 px). Image 0: 20 px labelled, 25 predicted (15 on the person): fp 10 of 80 background px,
    # share 0.25, 25 <= 2 * 20 so not over. Image 1: 10 px labelled, 25 predicted (all 10 found): fp 15 of 90,
    # share 0.25, over 2x. Image 2: nothing labelled (a person-free frame), 5 px predicted.
    y0, p0 = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    y0[0:2, :] = 1  # rows 0-1: 20 px
    p0[1:3, :] = 1  # rows 1-2: 10 px on the person, 10 beside it
    p0[0, 0:5] = 1  # half of row 0: 5 more on the person
    y1, p1 = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    y1[5, :] = 1
    p1[5:7, :] = 1
    p1[7, 0:5] = 1  # 25 px: tp 10, fp 15
    y2, p2 = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    p2[0, 0:5] = 1
    stats = [image_stats(p, y) for p, y in ((p0, y0), (p1, y1), (p2, y2))]
    assert [(s.tp, s.fp, s.fn) for s in stats] == [(15, 10, 5), (10, 15, 0), (0, 5, 0)]
    scores = [s.scores() for s in stats]
    assert [s["background_fp_rate"] for s in scores] == pytest.approx([10 / 80, 15 / 90, 5 / 100])
    assert [s["person_share"] for s in scores] == pytest.approx([0.25, 0.25, 0.05])
    assert scores[0]["over_2x"] == 0.0 and scores[1]["over_2x"] == 1.0 and np.isnan(scores[2]["over_2x"])

    summary = summarize(stats)
    assert summary["mean"]["background_fp_rate"] == pytest.approx((10 / 80 + 15 / 90 + 5 / 100) / 3)
    assert summary["pooled"]["background_fp_rate"] == pytest.approx(30 / 270)
    assert summary["mean"]["person_share"] == pytest.approx(55 / 300)  # all images of one size: mean = pooled
    assert summary["pooled"]["person_share"] == pytest.approx(55 / 300)
    assert summary["mean"]["over_2x"] == summary["pooled"]["over_2x"] == 0.5  # 1 of the 2 images with a person
    assert np.isnan(summarize(stats[2:])["mean"]["over_2x"])  # no labelled person: no share
    everything = image_stats(np.ones((4, 4), np.uint8), np.ones((4, 4), np.uint8)).scores()
    assert everything["background_fp_rate"] == 0.0 and everything["person_share"] == 1.0  # no background at all


def test_count_wins_margin_and_ties():
    reference = [0.90, 0.92, 0.50, 0.80, 0.70]
    other = [0.85, 0.91, 0.52, 0.80, 0.72]  # win, exactly 0.01 (a tie), loss by 0.02, tie, loss
    assert count_wins(reference, other) == {"wins": 1, "ties": 2, "losses": 2}
    assert count_wins(other, reference) == {"wins": 2, "ties": 2, "losses": 1}
    assert count_wins(reference, other, margin=0.0) == {"wins": 2, "ties": 1, "losses": 2}
    with pytest.raises(ValueError, match="same images"):
        count_wins([0.5, 0.6], [0.5])


def test_torch_tensors_match_numpy():
    label = square(64, 8, 8, 30)
    pred = square(64, 10, 9, 30)
    pred[50:55, 50:55] = 1
    batch_p, batch_y = np.stack([pred, label]), np.stack([label, label])
    for metric in (iou, dice, precision, recall, boundary_iou, ignore_band_iou):
        for reduction in ("mean", "pooled"):
            expected = metric(batch_p, batch_y, reduction=reduction)
            got = metric(torch.from_numpy(batch_p).bool(), torch.from_numpy(batch_y), reduction=reduction)
            assert got == pytest.approx(expected), (metric.__name__, reduction)


# ------------------------------------------------------------------------------------------- validation


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        iou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        ignore_band_iou(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)))


def test_non_binary_masks_are_errors():
    label = square(8, 2, 2, 4)
    with pytest.raises(ValueError, match="mask > 0"):
        iou(label * 255, label)
    with pytest.raises(ValueError, match="binarize"):
        dice(np.full((8, 8), 0.7), label)
    with pytest.raises(ValueError, match="target must be binary"):
        ignore_band_iou(label, label * 2 + 1)


def test_bad_parameters_are_errors():
    label = square(8, 2, 2, 4)
    with pytest.raises(ValueError, match="valid: mean, pooled, none"):
        iou(label, label, reduction="sum")
    with pytest.raises(ValueError, match="max_width"):
        IgnoreBand(min_width=3, max_width=2)
    with pytest.raises(ValueError, match="scale"):
        IgnoreBand(scale=-1)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        iou([[0, 1]], [[0, 1]])
