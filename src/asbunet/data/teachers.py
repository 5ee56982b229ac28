"""Person labels for unlabelled frames from two teachers: MediaPipe Selfie Segmentation and MediaPipe Pose.

Both teachers ship in the `mediapipe==0.10.21` wheel (Apache-2.0) and run here with ai-edge-litert; they label
training data only and are never used by `segment` or `Segmenter`.

- Selfie (`selfie_segmentation.tflite`): the whole frame resized to 256x256, RGB in [0, 1] -> person probability.
  Good on head-and-shoulders framing and several people, weak on small full-body people.
- Pose (`pose_detection.tflite` + `pose_landmark_full.tflite`), fed as MediaPipe Pose feeds it: the detector runs on a
  224x224 letterbox (RGB in [-1, 1], 2254 SSD anchors); its best detection's keypoint 0 (hips centre) and keypoint 1
  give a rotated square region of side 2.5 x |kp1 - kp0| around the hips, which the landmark model reads at 256x256
  (RGB in [0, 1]); the sigmoid of its segmentation output is warped back to the frame. Strong on one full-body person.

Both call animals and vehicles people, so a frame's label is kept only when the teachers agree
(`TeacherConfig`): the pose detector is confident, the two person masks overlap well, and the label is the pose
teacher's mask (sharper on bodies and limbs), limited to where the selfie teacher also sees a person nearby.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from asbunet import atomic
from asbunet.inference.mediapipe_wheel import MEDIAPIPE_VERSION, extract_from_wheel
from asbunet.inference.postprocess import binarize, sigmoid

# paths inside the mediapipe wheel
TEACHER_FILES = {
    "selfie": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "pose_detection": "mediapipe/modules/pose_detection/pose_detection.tflite",
    "pose_landmark": "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
}
DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
ROI_SCALE = 2.5  # side of the landmark model's square region, in units of |kp1 - kp0|


@dataclass(frozen=True)
class TeacherConfig:
    """When a teacher label is kept, and how it is made."""

    min_detection: float = 0.7  # pose detector confidence of the best detection
    min_agreement: float = 0.5  # IoU between the two teachers' masks at 0.5
    agreement_dilation: float = 0.03  # the selfie mask is dilated by this fraction of the frame diagonal
    min_person: float = 0.002  # smallest kept person area, fraction of the frame


def _interpreter(path: Path, threads: int | None = None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError("teacher labels need ai-edge-litert: pip install ai-edge-litert") from None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: teacher model not found; `asbunet teacher-labels --fetch` extracts it")
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def _run(interpreter, x: np.ndarray) -> list[np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ascontiguousarray(x, np.float32))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def detector_anchors() -> np.ndarray:
    """The pose detector's SSD anchor centres `(2254, 2)` as (x, y) in [0, 1]: feature maps of stride 8, 16 and
    32 (three layers share stride 32), two anchors per cell per layer, fixed anchor size."""
    centres = []
    for size, per_cell in ((28, 2), (14, 2), (7, 6)):
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        grid = np.stack([(xs.ravel() + 0.5) / size, (ys.ravel() + 0.5) / size], axis=1)  # (size^2, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class Teachers:
    """The selfie and pose teachers of one folder of MediaPipe model files (`TEACHER_FILES` names)."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        folder = Path(folder)
        self.selfie = _interpreter(folder / Path(TEACHER_FILES["selfie"]).name, threads)
        self.detector = _interpreter(folder / Path(TEACHER_FILES["pose_detection"]).name, threads)
        self.landmark = _interpreter(folder / Path(TEACHER_FILES["pose_landmark"]).name, threads)
        self.anchors = detector_anchors()

    def selfie_probability(self, image: np.ndarray) -> np.ndarray:
        """Selfie teacher: person probability `(H, W)` of an RGB uint8 frame."""
        h, w = image.shape[:2]
        x = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        prob = _run(self.selfie, x[None])[0][0, ..., 0]  # (256, 256)
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)

    def detect(self, image: np.ndarray) -> tuple[float, np.ndarray] | None:
        """Pose detector: `(score, keypoints (4, 2) in pixels)` of the best detection, or None."""
        h, w = image.shape[:2]
        scale = DETECTOR_SIZE / max(h, w)
        sw, sh = round(w * scale), round(h * scale)
        pad_x, pad_y = (DETECTOR_SIZE - sw) // 2, (DETECTOR_SIZE - sh) // 2
        canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
        resized = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
        canvas[pad_y : pad_y + sh, pad_x : pad_x + sw] = resized / 127.5 - 1.0
        boxes, scores = _run(self.detector, canvas[None])  # (1, 2254, 12), (1, 2254, 1)
        score = sigmoid(scores[0, :, 0])  # (2254,)
        best = int(np.argmax(score))
        if score[best] <= 0:
            return None
        raw = boxes[0, best]  # (12,): box (x, y, w, h), then 4 keypoints (x, y)
        keypoints = raw[4:].reshape(4, 2) / DETECTOR_SIZE + self.anchors[best]  # (4, 2) in the letterbox, [0, 1]
        keypoints = (keypoints * DETECTOR_SIZE - (pad_x, pad_y)) / scale  # pixels of the frame
        return float(score[best]), keypoints

    def pose_probability(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Pose teacher: person probability `(H, W)` in the rotated region set by the detector's keypoints."""
        h, w = image.shape[:2]
        (x0, y0), (x1, y1) = keypoints[0], keypoints[1]
        side = ROI_SCALE * math.hypot(x1 - x0, y1 - y0)
        if side < 4:
            return np.zeros((h, w), np.float32)
        rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)  # 0 for an upright person
        c, s = math.cos(rotation), math.sin(rotation)
        # crop pixel (u, v) -> frame pixel: centre + R(rotation) @ ((u, v) / size - 0.5) * side
        k = side / LANDMARK_SIZE
        crop_to_frame = np.array(
            [[c * k, -s * k, x0 - (c - s) * side / 2], [s * k, c * k, y0 - (s + c) * side / 2]], np.float32
        )
        crop = cv2.warpAffine(
            image,
            crop_to_frame,
            (LANDMARK_SIZE, LANDMARK_SIZE),
            flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        outputs = _run(self.landmark, crop.astype(np.float32)[None] / 255.0)
        logits = next(o for o in outputs if o.shape == (1, LANDMARK_SIZE, LANDMARK_SIZE, 1))[0, ..., 0]
        prob = sigmoid(logits).astype(np.float32)  # (256, 256)
        return cv2.warpAffine(prob, crop_to_frame, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass(frozen=True)
class TeacherLabel:
    """A frame's teacher label, or why there is none."""

    mask: np.ndarray | None  # uint8 (H, W) in {0, 1}; None when the frame is not labelled
    detection: float  # pose detector score (0 without a detection)
    agreement: float  # IoU of the two teachers' masks
    reason: str  # "kept" or why the frame was dropped


def teacher_label(teachers: Teachers, image: np.ndarray, cfg: TeacherConfig = TeacherConfig()) -> TeacherLabel:
    """The label of one RGB frame: the pose teacher's mask, kept where both teachers agree (module docstring)."""
    selfie = binarize(teachers.selfie_probability(image), 0.5)
    found = teachers.detect(image)
    if found is None or found[0] < cfg.min_detection:
        return TeacherLabel(None, found[0] if found else 0.0, 0.0, "no confident pose detection")
    score, keypoints = found
    pose = binarize(teachers.pose_probability(image, keypoints), 0.5)
    union = int((pose | selfie).sum())
    agreement = int((pose & selfie).sum()) / union if union else 0.0
    if agreement < cfg.min_agreement:
        return TeacherLabel(None, score, agreement, "teachers disagree")
    radius = max(1, round(cfg.agreement_dilation * math.hypot(*image.shape[:2])))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    near_selfie = cv2.dilate(selfie.astype(np.uint8), disk)
    mask = (pose & near_selfie.astype(bool)).astype(np.uint8)
    if mask.mean() < cfg.min_person:
        return TeacherLabel(None, score, agreement, "person too small")
    return TeacherLabel(mask, score, agreement, "kept")


def fetch_teachers(folder: str | Path, version: str = MEDIAPIPE_VERSION) -> Path:
    """Extracts the three teacher models from the mediapipe wheel (`pip download --no-deps`) into `folder`."""
    extract_from_wheel(TEACHER_FILES.values(), folder, version=version)
    return Path(folder)


def label_folder(
    images: list[Path], output: str | Path, teachers: Teachers, cfg: TeacherConfig = TeacherConfig(), progress=None
) -> list[dict]:
    """Teacher labels of `images`: `output/masks/<stem>.png` (0/255) for each kept frame, `output/kept.txt` listing
    them and `output/labels.csv` with every frame's detection score, agreement and outcome."""
    import csv

    from asbunet.data.io import read_image

    output = Path(output)
    (output / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in progress(images) if progress else images:
        label = teacher_label(teachers, read_image(path), cfg)
        if label.mask is not None:
            png = cv2.imencode(".png", label.mask * 255)[1].tobytes()
            atomic.write_bytes(output / "masks" / f"{path.stem}.png", png)
        rows.append(
            {
                "image": path.name,
                "detection": round(label.detection, 4),
                "agreement": round(label.agreement, 4),
                "person": round(float(label.mask.mean()), 4) if label.mask is not None else "",
                "outcome": label.reason,
            }
        )
    with atomic.open_atomic(output / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image"])
        writer.writeheader()
        writer.writerows(rows)
    atomic.write_text(output / "kept.txt", "".join(f"{r['image']}\n" for r in rows if r["outcome"] == "kept"))
    return rows
