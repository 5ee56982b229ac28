"""The shipping rule of retrained person models (`experiments/person_mix/ship_rule.py`) on made-up summaries."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RULE_FILE = Path(__file__).resolve().parents[1] / "experiments" / "person_mix" / "ship_rule.py"
spec = importlib.util.spec_from_file_location("ship_rule", RULE_FILE)
ship_rule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_rule)

SHIPPED_IOU = {"pfcn_portrait_test": 0.952, "ccp_test": 0.907, "coco128_person": 0.324, "lucia": 0.672,
               "tennis": 0.524, "dance-twirl": 0.555}  # fmt: skip


def datasets(iou: dict, share: float, fp: float = 0.05) -> dict:
    out = {name: {"mean": {"iou": v, "background_fp_rate": fp, "person_share": 0.3}} for name, v in iou.items()}
    out[ship_rule.PERSON_FREE] = {"mean": {"iou": 0.0, "background_fp_rate": share, "person_share": share}}
    return out


def summary(candidate_iou: dict, share: float) -> dict:
    peer = {name: 0.8 for name in SHIPPED_IOU}
    return {
        "models": ["candidate", "asbunet_person", "mediapipe_general"],
        "datasets": datasets(candidate_iou, share),
        "others": {
            "asbunet_person": {"datasets": datasets(SHIPPED_IOU, 0.199)},
            "mediapipe_general": {"datasets": datasets(peer, 0.196, fp=0.01)},
        },
    }


def test_a_model_better_on_average_by_two_points_everywhere_else_no_worse_ships():
    better = {name: v + 0.021 for name, v in SHIPPED_IOU.items()}
    ships, lines = ship_rule.judge(summary(better, 0.10), "candidate", "person")
    assert ships and lines[-1].startswith("**candidate ships")


@pytest.mark.parametrize(
    "change, share",
    [
        ({"lucia": +0.30, "tennis": -0.031}, 0.10),  # one set more than 3 points lower
        ({name: 0.019 for name in SHIPPED_IOU}, 0.10),  # 1.9 points on average
        ({"pfcn_portrait_test": -0.008, "coco128_person": +0.3}, 0.10),  # pfcn under 0.945
        ({name: 0.05 for name in SHIPPED_IOU}, 0.20),  # more person-free pixels called person
    ],
)
def test_each_clause_of_the_rule_can_stop_a_model(change, share):
    candidate = {name: v + change.get(name, 0.0) for name, v in SHIPPED_IOU.items()}
    ships, lines = ship_rule.judge(summary(candidate, share), "candidate", "person")
    assert not ships
    assert sum(line.startswith("- [ ]") for line in lines[: lines.index("Floors (done when all hold):")]) == 1


def test_floors_are_reported_and_a_missing_set_is_named():
    _, lines = ship_rule.judge(summary(dict(SHIPPED_IOU), 0.04), "candidate", "person")
    assert "- [x] person-free share 0.0400 <= 0.05" in lines
    assert "- [ ] coco128_person IoU 0.3240 >= 0.42" in lines
    broken = summary(dict(SHIPPED_IOU), 0.04)
    del broken["datasets"]["tennis"]
    with pytest.raises(ValueError, match="lacks tennis"):
        ship_rule.judge(broken, "candidate", "person")
