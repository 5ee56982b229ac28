"""Temporal smoothing study: choose a smoother on synthetic clips, then report it on davis_person.

    PYTHONPATH=src python experiments/temporal/study.py            # both parts
    PYTHONPATH=src python experiments/temporal/study.py --part grid
    PYTHONPATH=src python experiments/temporal/study.py --part davis

Part `grid` builds synthetic clips from the training data only: people cut out of ccp/train and pfcn_portrait/train
(a fixed seeded subset, masks as alpha) move over person-free DAVIS frames of the training and validation lists
(`configs/lists/davis_person_free_{train,val}.txt`, static or slowly panning) along a path of changing speed, with
changing
scale, some rotation and per-frame sensor noise; the labels are the pasted masks. Every smoother of a small grid
(`asbunet.temporal.SMOOTHERS`) runs on the bundled model's probabilities through the video pipeline (network ->
smoother -> guided-filter refinement -> threshold at the model's threshold), and the choice is the lowest flicker among
the settings whose mean IoU is at least frame-by-frame IoU - 0.005. Writes `grid.csv`, `grid.md`, `chosen.json` and
the cost per 640x360 frame of each smoother.

Part `davis` reports on every davis_person sequence (evaluation only, never used to choose) the IoU and flicker of
the same pipeline frame by frame, with the old moving average (momentum 0.6), with the chosen smoother
(`chosen.json`), and of MediaPipe landscape frame by frame (its probability at threshold 0.5, as `asbunet evaluate`
runs it); masks are compared before any video encoding. Writes `davis_person.md` and `davis_person.csv`.

The network's outputs (logits at network size) are cached under `out/temporal/` so re-runs do not re-run networks.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from asbunet import effects, temporal
from asbunet.inference import logits_to_probability
from asbunet.metrics import iou
from asbunet.predict import Segmenter

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "out" / "temporal"
SEED = 17
CLIP_HW = (360, 640)  # live-video size
CLIP_FRAMES = 48
PEOPLE = (("ccp/train", 7), ("pfcn_portrait/train", 5))  # (source, clips); ccp: full bodies, pfcn: portraits
DAVIS_SEQUENCES = ("lucia", "tennis", "dance-twirl")
IOU_TOLERANCE = 0.005  # the choice may cost at most this much mean IoU against frame by frame

# the grid: (smoother name, parameter values to combine)
GRID = [
    ("frame_by_frame", {}),
    ("ema", {"momentum": [0.3, 0.45, 0.6]}),
    ("confidence", {"momentum": [0.7, 0.85, 0.95], "delta": [0.2, 0.4, 0.7]}),
    ("motion", {"momentum": [0.7, 0.85, 0.95], "tau": [10.0, 20.0, 40.0, 80.0]}),
    ("flow", {"momentum": [0.4, 0.6, 0.8], "delta": [None, 0.4, 0.7]}),
    ("hysteresis", {"margin": [0.05, 0.1, 0.2, 0.25]}),
    ("motion+hysteresis", {"motion.momentum": [0.85], "motion.tau": [20.0, 40.0], "hysteresis.margin": [0.1, 0.2]}),
    ("flow+hysteresis", {"flow.momentum": [0.6], "flow.delta": [0.7], "hysteresis.margin": [0.1, 0.2]}),
]

# ------------------------------------------------------------------------------------------------ synthetic clips


def _pairs(source: str) -> list[tuple[Path, Path]]:
    folder = DATA / source
    images = sorted((folder / "images").glob("*.jpg"))
    return [(p, folder / "masks" / f"{p.stem}.png") for p in images if (folder / "masks" / f"{p.stem}.png").is_file()]


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def clip_specs() -> list[dict]:
    """The clips' recipes: person photo, background frame and motion parameters, drawn from one seed."""
    rng = np.random.default_rng(SEED)
    backgrounds = [
        name
        for split in ("train", "val")
        for name in (ROOT / f"configs/lists/davis_person_free_{split}.txt").read_text().split()
    ]
    specs = []
    for source, n in PEOPLE:
        pairs = _pairs(source)
        for k in rng.choice(len(pairs), n, replace=False):
            specs.append(
                {
                    "person": str(pairs[k][0].relative_to(DATA)),
                    "mask": str(pairs[k][1].relative_to(DATA)),
                    "background": backgrounds[int(rng.integers(len(backgrounds)))],
                    "height": float(rng.uniform(0.5, 0.9)),  # person height / frame height
                    "speed": float(rng.uniform(3.0, 14.0)),  # peak horizontal speed, px per frame at 640 wide
                    "phase": float(rng.uniform(0, 2 * np.pi)),
                    "scale_swing": float(rng.uniform(0.05, 0.2)),
                    "angle": float(rng.uniform(0.0, 10.0)),  # peak rotation, degrees
                    "pan": float(rng.choice([0.0, rng.uniform(0.5, 2.0)])),  # background pan, px per frame
                    "noise": float(rng.uniform(1.5, 4.0)),  # sensor noise, grey levels
                    "start": float(rng.uniform(0.25, 0.75)),  # start position, share of the width
                    "seed": int(rng.integers(1 << 31)),
                }
            )
    return specs


def make_clip(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Frames `(T, H, W, 3)` uint8 and labels `(T, H, W)` bool of one synthetic clip."""
    h, w = CLIP_HW
    rng = np.random.default_rng(spec["seed"])
    person = _read_rgb(DATA / spec["person"])
    pmask = cv2.imread(str(DATA / spec["mask"]), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(pmask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    cut_bottom = y1 == pmask.shape[0]  # a portrait cut by its photo's bottom edge stays anchored to the frame's
    crop = person[y0:y1, x0:x1].astype(np.float32)
    alpha = cv2.GaussianBlur(pmask[y0:y1, x0:x1].astype(np.float32), (3, 3), 0)
    ch, cw = alpha.shape
    bg = _read_rgb(DATA / "davis_scenes" / "images" / spec["background"])
    pan_total = spec["pan"] * CLIP_FRAMES
    scale_bg = max((h + 2) / bg.shape[0], (w + pan_total + 2) / bg.shape[1]) * 1.05
    bg = cv2.resize(bg, (round(bg.shape[1] * scale_bg), round(bg.shape[0] * scale_bg)), interpolation=cv2.INTER_AREA)
    frames, labels = [], []
    x = spec["start"] * w
    direction = 1.0 if rng.random() < 0.5 else -1.0
    base = spec["height"] * h / ch
    for t in range(CLIP_FRAMES):
        u = t / CLIP_FRAMES
        # speed changes along the clip (stops and sprints); the person bounces off the frame's sides
        speed = spec["speed"] * 0.5 * (1 + np.sin(2 * np.pi * 1.5 * u + spec["phase"]))
        x += direction * speed
        if not 0.1 * w < x < 0.9 * w:
            direction, x = -direction, float(np.clip(x, 0.1 * w, 0.9 * w))
        s = base * (1 + spec["scale_swing"] * np.sin(2 * np.pi * u + spec["phase"]))
        angle = 0.0 if cut_bottom else spec["angle"] * np.sin(2 * np.pi * 2 * u)
        bottom = h + 0.02 * h if cut_bottom else h * (0.97 + 0.02 * np.sin(2 * np.pi * 3 * u))
        m = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, s)  # about the cut-out's centre
        m[0, 2] += x - cw / 2
        m[1, 2] += bottom - s * ch / 2 - ch / 2
        person_t = cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha_t = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
        off = round(spec["pan"] * t)
        back = bg[1 : 1 + h, 1 + off : 1 + off + w].astype(np.float32)
        image = alpha_t * person_t + (1 - alpha_t) * back + rng.normal(0, spec["noise"], (h, w, 1))
        frames.append(np.clip(image, 0, 255).round().astype(np.uint8))
        labels.append(alpha_t[..., 0] >= 0.5)
    return np.stack(frames), np.stack(labels)


# ------------------------------------------------------------------------------------------------ network cache


def cached_logits(key: str, segmenter: Segmenter, frames) -> list[np.ndarray]:
    """The segmenter's logits of every frame, read from `out/temporal/<key>.npz` when the model name matches."""
    path = CACHE / f"{key}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        if str(data["model"]) == segmenter.name and len(data["logits"]) == len(frames):
            return list(data["logits"])
    logits = [segmenter.logits(f) for f in frames]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, logits=np.stack(logits), model=segmenter.name)
    return logits


# ------------------------------------------------------------------------------------------------ pipeline


def pipeline_masks(segmenter: Segmenter, probs, frames, smoother, refine: bool = True) -> np.ndarray:
    """Masks of the video pipeline: smoother, then guided-filter refinement, then the model's threshold."""
    radius = effects.default_radius(*probs[0].shape, segmenter.input_size)

    def post(p, i):
        return effects.refine_probability(frames[i], p, radius) if refine else p

    out = temporal.smooth_sequence(probs, frames, smoother, post)
    return np.stack([p >= segmenter.threshold for p in out])


def scores(masks: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean IoU over frames, flicker where the label is steady)."""
    return float(iou(masks, labels, reduction="mean")), temporal.flicker(masks, labels)


def settings(grid=GRID):
    for name, params in grid:
        keys = list(params)
        for values in itertools.product(*(params[k] for k in keys)):
            yield name, dict(zip(keys, values, strict=True))


def build(name: str, params: dict, threshold: float):
    return temporal.create_smoother(name, **temporal.with_threshold(name, params, threshold))


def describe(name: str, params: dict) -> str:
    return name + ("(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else "")


def cpu_description() -> str:
    """CPU model and the SIMD instruction sets OpenCV and numpy can use."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni") if f in flags]
    return f"{model}, {len(os.sched_getaffinity(0))} usable CPUs, {', '.join(isa) or 'no AVX'}"


def time_smoother(name: str, params: dict, threshold: float, frames: np.ndarray, probs) -> float:
    """Median milliseconds of one smoother call on a 640x360 frame (after 5 warm-up frames, one OpenCV thread)."""
    smoother = build(name, params, threshold)
    times = []
    for i in range(len(frames)):
        start = time.perf_counter()
        smoother(probs[i], frames[i])
        times.append(time.perf_counter() - start)
    return float(np.median(times[5:]) * 1000)


# ------------------------------------------------------------------------------------------------ parts


def run_grid(segmenter: Segmenter) -> dict:
    specs = clip_specs()
    clips = []
    for i, spec in enumerate(specs):
        frames, labels = make_clip(spec)
        logits = cached_logits(f"clip{i:02d}_{SEED}", segmenter, frames)
        probs = [logits_to_probability(lg, *CLIP_HW) for lg in logits]
        clips.append((frames, labels, probs))
        print(f"clip {i}: {spec['person']} over {spec['background']}", file=sys.stderr)
    rows = []
    for name, params in settings():
        per_clip = [
            scores(pipeline_masks(segmenter, probs, frames, build(name, params, segmenter.threshold)), labels)
            for frames, labels, probs in clips
        ]
        ious, flick = zip(*per_clip, strict=True)
        rows.append(
            {
                "smoother": name,
                "params": params,
                "iou": float(np.mean(ious)),
                "flicker": float(np.mean(flick)),
                "worst_clip_iou_drop": None,
                "per_clip_iou": ious,
                "per_clip_flicker": flick,
            }
        )
        print(
            f"{describe(name, params):45s} IoU {rows[-1]['iou']:.4f} flicker {rows[-1]['flicker']:.5f}", file=sys.stderr
        )
    ref = rows[0]
    for r in rows:
        r["worst_clip_iou_drop"] = float(
            max(a - b for a, b in zip(ref["per_clip_iou"], r["per_clip_iou"], strict=True))
        )
    eligible = [r for r in rows if r["iou"] >= ref["iou"] - IOU_TOLERANCE]
    chosen = min(eligible, key=lambda r: r["flicker"])
    # cost per 640x360 frame of each smoother family at its best eligible setting (or its first)
    cv2.setNumThreads(1)
    frames, _, probs = clips[0]
    cost = {}
    for name, _ in GRID:
        family = [r for r in eligible if r["smoother"] == name] or [r for r in rows if r["smoother"] == name]
        best = min(family, key=lambda r: r["flicker"])
        cost[describe(name, best["params"])] = time_smoother(name, best["params"], segmenter.threshold, frames, probs)
    cv2.setNumThreads(-1)
    result = {
        "model": segmenter.name,
        "threshold": segmenter.threshold,
        "clips": specs,
        "frames_per_clip": CLIP_FRAMES,
        "size": list(CLIP_HW),
        "rule": f"lowest flicker with mean IoU >= frame-by-frame IoU - {IOU_TOLERANCE}",
        "chosen": {"smoother": chosen["smoother"], "params": chosen["params"]},
        "cost_ms": cost,
        "cpu": cpu_description(),
        "load_average_1min": os.getloadavg()[0],
    }
    write_grid(rows, ref, chosen, result)
    return result


def write_grid(rows, ref, chosen, result) -> None:
    with open(HERE / "grid.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "smoother",
                "params",
                "iou",
                "iou_minus_frame_by_frame",
                "worst_clip_iou_drop",
                "flicker",
                "flicker_ratio",
                "eligible",
            ]
        )
        for r in rows:
            out.writerow(
                [
                    r["smoother"],
                    json.dumps(r["params"]),
                    f"{r['iou']:.4f}",
                    f"{r['iou'] - ref['iou']:+.4f}",
                    f"{r['worst_clip_iou_drop']:.4f}",
                    f"{r['flicker']:.5f}",
                    f"{r['flicker'] / ref['flicker']:.3f}",
                    r["iou"] >= ref["iou"] - IOU_TOLERANCE,
                ]
            )
    lines = [
        "# Temporal smoothing: grid on synthetic clips",
        "",
        f"Written by `experiments/temporal/study.py --part grid`. Model {result['model']} (threshold "
        f"{result['threshold']}); pipeline: network -> smoother -> guided-filter refinement -> threshold. "
        f"{len(result['clips'])} clips of {CLIP_FRAMES} frames at {CLIP_HW[1]}x{CLIP_HW[0]}: people from "
        + ", ".join(f"{s} ({n} clips)" for s, n in PEOPLE)
        + " moved over person-free DAVIS frames (`configs/lists/davis_person_free_{train,val}.txt`), "
        f"seed {SEED}. IoU: mean over frames, then over clips; flicker: share of pixels whose mask changes between "
        "consecutive frames where the label does not, mean over pairs, then over clips.",
        "",
        f"Rule: {result['rule']}. Chosen: **{describe(chosen['smoother'], chosen['params'])}** "
        f"(IoU {chosen['iou']:.4f}, {chosen['iou'] - ref['iou']:+.4f} against frame by frame; flicker "
        f"{chosen['flicker']:.5f}, {chosen['flicker'] / ref['flicker']:.2f} of frame by frame).",
        "",
        "| smoother | IoU | vs frame by frame | worst clip drop | flicker | flicker ratio | eligible |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "**" if r is chosen else ""
        lines.append(
            f"| {mark}{describe(r['smoother'], r['params'])}{mark} | {r['iou']:.4f} | {r['iou'] - ref['iou']:+.4f} | "
            f"{r['worst_clip_iou_drop']:.4f} | {r['flicker']:.5f} | {r['flicker'] / ref['flicker']:.2f} | "
            f"{'yes' if r['iou'] >= ref['iou'] - IOU_TOLERANCE else 'no'} |"
        )
    lines += [
        "",
        "## Cost per 640x360 frame (smoother alone, median, one OpenCV thread)",
        "",
        f"CPU: {result['cpu']}. A training job shared this machine during the measurement (1-minute load average "
        f"{result['load_average_1min']:.2f}), so these are upper bounds. Refinement and network are not included.",
        "",
        "| smoother | ms per frame |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in result["cost_ms"].items()],
        "",
    ]
    (HERE / "grid.md").write_text("\n".join(lines))
    (HERE / "chosen.json").write_text(json.dumps(result, indent=2) + "\n")


def load_sequence(name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = DATA / "davis_person" / name
    images = sorted((folder / "images").glob("*.jpg"))
    frames = np.stack([_read_rgb(p) for p in images])
    labels = np.stack([cv2.imread(str(folder / "masks" / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE) > 127 for p in images])
    return frames, labels


def run_davis(segmenter: Segmenter) -> None:
    from asbunet.peers import load_peer

    chosen = json.loads((HERE / "chosen.json").read_text())["chosen"]
    peer = load_peer("mediapipe_landscape", ROOT / "peers" / "mediapipe")
    rows = []
    for seq in DAVIS_SEQUENCES:
        frames, labels = load_sequence(seq)
        h, w = labels.shape[1:]
        probs = [logits_to_probability(lg, h, w) for lg in cached_logits(f"davis_{seq}", segmenter, frames)]
        mp = [logits_to_probability(lg, h, w) for lg in cached_logits(f"davis_{seq}_mediapipe", peer, frames)]
        variants = [
            ("frame by frame", temporal.FrameByFrame()),
            (
                "old moving average (momentum 0.6)",
                temporal.create_smoother(*temporal.OLD_SMOOTHER[:1], **temporal.OLD_SMOOTHER[1]),
            ),
            (
                f"new: {describe(chosen['smoother'], chosen['params'])}",
                build(chosen["smoother"], chosen["params"], segmenter.threshold),
            ),
        ]
        for label, smoother in variants:
            rows.append((seq, label, *scores(pipeline_masks(segmenter, probs, frames, smoother), labels)))
        mp_masks = np.stack([p >= peer.threshold for p in mp])
        rows.append((seq, "MediaPipe landscape frame by frame", *scores(mp_masks, labels)))
        print("\n".join(f"{r[0]:12s} {r[1]:45s} IoU {r[2]:.4f} flicker {r[3]:.5f}" for r in rows[-4:]), file=sys.stderr)
    write_davis(rows, segmenter, chosen)


def write_davis(rows, segmenter: Segmenter, chosen: dict) -> None:
    with open(HERE / "davis_person.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["sequence", "method", "iou", "flicker"])
        out.writerows([r[0], r[1], f"{r[2]:.4f}", f"{r[3]:.5f}"] for r in rows)
    lines = [
        "# Temporal smoothing on davis_person",
        "",
        "Written by `PYTHONPATH=src python experiments/temporal/study.py --part davis` (evaluation only: the smoother "
        "and its parameters were chosen on synthetic clips, `grid.md`). "
        f"ASBU-Net rows: {segmenter.name}, pipeline network -> smoother -> guided-filter refinement -> threshold "
        f"{segmenter.threshold}; MediaPipe landscape: its probability at threshold 0.5, no refinement (as "
        "`asbunet evaluate --model mediapipe_landscape`). Masks at the frames' full resolution, before any video "
        "encoding. IoU: mean over frames; flicker: share of pixels whose mask changes between consecutive frames "
        "where the label does not, mean over frame pairs.",
        "",
        "| sequence | method | IoU | flicker |",
        "|---|---|---|---|",
        *[f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.5f} |" for r in rows],
        "",
        "## Target: the new method's flicker below MediaPipe landscape's, its IoU no lower than frame by frame - 0.005",
        "",
        "| sequence | new IoU - frame by frame | new flicker / MediaPipe landscape flicker | met |",
        "|---|---|---|---|",
    ]
    for seq in DAVIS_SEQUENCES:
        by = {r[1].split(":")[0]: r for r in rows if r[0] == seq}
        new, fbf, mp = by["new"], by["frame by frame"], by["MediaPipe landscape frame by frame"]
        met = new[3] < mp[3] and new[2] >= fbf[2] - 0.005
        lines.append(f"| {seq} | {new[2] - fbf[2]:+.4f} | {new[3] / mp[3]:.2f} | {'yes' if met else 'no'} |")
    lines.append("")
    (HERE / "davis_person.md").write_text("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("grid", "davis", "all"), default="all")
    args = parser.parse_args(argv)
    segmenter = Segmenter.from_pretrained()
    if args.part in ("grid", "all"):
        run_grid(segmenter)
    if args.part in ("davis", "all"):
        run_davis(segmenter)


if __name__ == "__main__":
    main()
