"""Whether a retrained person model ships: the shipping rule and the floors of the generalization issue, read from the
`summary.json` of the README's accuracy command run with the candidate beside the shipped model and MediaPipe.

    asbunet evaluate --model CANDIDATE asbunet_person asbunet_person_fast mediapipe_general mediapipe_landscape \
        ../shared/data/{pfcn_portrait/test,ccp/test,coco128_person} \
        ../shared/data/davis_person/{lucia,tennis,dance-twirl} ../shared/data/davis_scenes/person_free_eval.txt \
        --gallery 0 --output out/eval_CANDIDATE
    python experiments/person_mix/ship_rule.py out/eval_CANDIDATE/summary.json CANDIDATE --role person

Rule, against the shipped model of the same role: mean IoU over the six IoU sets at least 2 points higher, no set
more than 3 points lower, pfcn_portrait/test at `PFCN_FLOOR` or above, a person-free share no higher.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

IOU_SETS = ("pfcn_portrait_test", "ccp_test", "coco128_person", "lucia", "tennis", "dance-twirl")
CLIPS = ("lucia", "tennis", "dance-twirl")
PERSON_FREE = "davis_scenes_person_free_eval"
SHIPPED = {"person": "asbunet_person", "fast": "asbunet_person_fast"}
PFCN_FLOOR = {"person": 0.945, "fast": 0.925}
PEER = "mediapipe_general"
# The "done" floors: (what, data set, figure, bound, "min" or "max").
FLOORS = {
    "person": [
        ("pfcn_portrait/test IoU", "pfcn_portrait_test", "iou", 0.950, "min"),
        ("ccp/test IoU", "ccp_test", "iou", 0.905, "min"),
        ("coco128_person IoU", "coco128_person", "iou", 0.42, "min"),
        ("davis_person mean IoU", "clips", "iou", 0.68, "min"),
        ("person-free share", PERSON_FREE, "person_share", 0.05, "max"),
        ("coco128 background FP rate", "coco128_person", "background_fp_rate", 0.107, "max"),
    ],
    "fast": [
        ("pfcn_portrait/test IoU", "pfcn_portrait_test", "iou", 0.93, "min"),
        ("ccp/test IoU", "ccp_test", "iou", 0.86, "min"),
        ("coco128_person IoU", "coco128_person", "iou", 0.40, "min"),
        ("davis_person mean IoU", "clips", "iou", 0.70, "min"),
        ("person-free share", PERSON_FREE, "person_share", 0.05, "max"),
    ],
}


def figures(summary: dict, model: str) -> dict[str, dict[str, float]]:
    """data set -> figure -> value (mean over images) of one model of an evaluation summary, with "clips": the mean
    of the three DAVIS clips."""
    if model == summary["models"][0]:
        datasets = summary["datasets"]
    elif model in summary.get("others", {}):
        datasets = summary["others"][model]["datasets"]
    else:
        raise ValueError(f"{model} is not in the summary (models: {', '.join(summary['models'])})")
    out = {name: dict(ds["mean"]) for name, ds in datasets.items()}
    missing = [name for name in (*IOU_SETS, PERSON_FREE) if name not in out]
    if missing:
        raise ValueError(f"{model}: the summary lacks {', '.join(missing)}; run the command in this file's docstring")
    out["clips"] = {key: sum(out[c][key] for c in CLIPS) / len(CLIPS) for key in ("iou", "background_fp_rate")}
    return out


def judge(summary: dict, candidate: str, role: str) -> tuple[bool, list[str]]:
    """(ships by the rule, report lines) for `candidate` against the shipped model of `role` ("person" or "fast")."""
    new, old, peer = figures(summary, candidate), figures(summary, SHIPPED[role]), figures(summary, PEER)
    lines = [f"| set | {candidate} | {SHIPPED[role]} | difference | {PEER} |", "|---|---:|---:|---:|---:|"]
    for name in IOU_SETS:
        a, b = new[name]["iou"], old[name]["iou"]
        lines.append(f"| {name} IoU | {a:.4f} | {b:.4f} | {a - b:+.4f} | {peer[name]['iou']:.4f} |")
    a, b = new[PERSON_FREE]["person_share"], old[PERSON_FREE]["person_share"]
    lines.append(f"| person-free share | {a:.4f} | {b:.4f} | {a - b:+.4f} | {peer[PERSON_FREE]['person_share']:.4f} |")
    mean_new = sum(new[n]["iou"] for n in IOU_SETS) / len(IOU_SETS)
    mean_old = sum(old[n]["iou"] for n in IOU_SETS) / len(IOU_SETS)
    worst = min(IOU_SETS, key=lambda n: new[n]["iou"] - old[n]["iou"])
    checks = [
        (f"mean IoU of the six sets {mean_new:.4f} >= {mean_old:.4f} + 0.02", mean_new >= mean_old + 0.02),
        (
            f"no set more than 3 points lower (worst {worst}: {new[worst]['iou'] - old[worst]['iou']:+.4f})",
            new[worst]["iou"] >= old[worst]["iou"] - 0.03,
        ),
        (
            f"pfcn_portrait/test {new['pfcn_portrait_test']['iou']:.4f} >= {PFCN_FLOOR[role]}",
            new["pfcn_portrait_test"]["iou"] >= PFCN_FLOOR[role],
        ),
        (f"person-free share no higher ({a:.4f} vs {b:.4f})", a <= b),
    ]
    lines += ["", "Shipping rule:"] + [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]
    floors = []
    for what, ds, key, bound, kind in FLOORS[role]:
        value = new[ds][key]
        ok = value >= bound if kind == "min" else value <= bound
        floors.append((f"{what} {value:.4f} {'>=' if kind == 'min' else '<='} {bound}", ok))
    clips_fp, peer_fp = new["clips"]["background_fp_rate"], peer["clips"]["background_fp_rate"]
    floors.append((f"davis background FP rate {clips_fp:.4f} <= {PEER}'s {peer_fp:.4f}", clips_fp <= peer_fp))
    lines += ["", "Floors (done when all hold):"] + [f"- [{'x' if ok else ' '}] {text}" for text, ok in floors]
    ahead = [n for n in IOU_SETS if new[n]["iou"] > peer[n]["iou"]]
    lines += ["", f"Ahead of {PEER} on {len(ahead)} of {len(IOU_SETS)} IoU sets: {', '.join(ahead) or 'none'}"]
    ships = all(ok for _, ok in checks)
    lines += ["", f"**{candidate} {'ships' if ships else 'does not ship'} as {SHIPPED[role]} by the rule.**"]
    return ships, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", help="summary.json of `asbunet evaluate` (see this file's docstring)")
    parser.add_argument("candidate", help="the candidate's name in that summary (as given to --model)")
    parser.add_argument("--role", choices=sorted(SHIPPED), required=True, help="the bundled model it would replace")
    args = parser.parse_args()
    ships, lines = judge(json.loads(Path(args.summary).read_text()), args.candidate, args.role)
    print("\n".join(lines))
    raise SystemExit(0 if ships else 1)


if __name__ == "__main__":
    main()
