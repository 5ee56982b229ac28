"""Only the main person: the largest, most central connected region is kept."""

import numpy as np

from asbunet.frames.regions import keep_main_person, main_person_region


def disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_the_central_person_is_kept_over_one_of_the_same_size_at_the_side():
    centre, side = disc(90, 160, 45, 80, 15), disc(90, 160, 45, 20, 15)
    kept = main_person_region(centre | side)
    assert kept[centre].all() and not kept[side].any()


def test_a_much_larger_person_at_the_side_wins():
    small, large = disc(90, 160, 45, 80, 6), disc(90, 160, 45, 30, 28)
    kept = main_person_region(small | large)
    assert kept[large].all() and not kept[small].any()


def test_empty_and_single_region_masks_are_unchanged():
    assert not main_person_region(np.zeros((8, 8), bool)).any()
    one = disc(20, 20, 10, 10, 4)
    assert (main_person_region(one) == one).all()


def test_probability_outside_the_main_region_is_zeroed_and_its_soft_edge_kept():
    prob = np.zeros((90, 160), np.float32)
    prob[disc(90, 160, 45, 80, 15)] = 0.9
    prob[disc(90, 160, 45, 80, 18) & ~disc(90, 160, 45, 80, 15)] = 0.3  # soft edge below the threshold
    prob[disc(90, 160, 20, 140, 8)] = 0.8  # someone passing behind
    out = keep_main_person(prob, threshold=0.5, margin=4)
    assert out[45, 80] == np.float32(0.9) and out[45, 80 + 17] == np.float32(0.3)
    assert out[20, 140] == 0 and out.dtype == np.float32


def test_main_person_option_keeps_one_person_in_the_pipeline():
    """`main_person=True` (`--main-person`) drops the person at the side in the frame API's output."""
    from asbunet import Segmenter, VideoSegmenter

    frame = np.full((90, 160, 3), 20, np.uint8)
    frame[disc(90, 160, 45, 80, 25)] = 230  # the speaker, in the middle
    frame[disc(90, 160, 20, 145, 10)] = 230  # someone passing behind, at the side
    segmenter = Segmenter(lambda batch: (8 * batch.mean(axis=1, keepdims=True)).astype(np.float32), input_size=64)
    both = VideoSegmenter(segmenter, threshold=0.5, refine=False).process(frame).mask
    main = VideoSegmenter(segmenter, threshold=0.5, refine=False, main_person=True).process(frame).mask
    assert both[45, 80] and both[20, 145]
    assert main[45, 80] and not main[20, 145]
