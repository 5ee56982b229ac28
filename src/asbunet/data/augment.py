"""Training-time augmentation (Section IV-A) and scene synthesis for varied framings.

Geometry is done here with OpenCV: *auto cropping* (a window of the canvas' aspect ratio that keeps the person in
view, Section IV-A), *compositing* (people cut out with their masks, pasted at random scales, positions and angles
onto another sample or a background frame, whose own people stay in the label) and a tilt of the whole canvas.
Photometric augmentation goes through albumentations: flip, Gaussian noise, gamma, random shadows, colour/saturation
jitter, and for scenes unlike the training photos motion blur, low light, sensor noise and JPEG artefacts, then
normalization.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import albumentations as A
import cv2
import numpy as np

from asbunet.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD


def options_from_dict(cls, values: dict | None, what: str):
    """A frozen options dataclass `cls` from a config's mapping: unknown keys are an error naming the valid ones, and
    YAML lists become the tuples the fields hold."""
    values = dict(values or {})
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {what} options {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of every augmentation; `configs/*.yaml` set them under `augment:`."""

    crop: float = 1.0  # auto cropping (Section IV-A)
    crop_scale: tuple[float, float] = (0.35, 1.0)  # area of the crop window relative to the largest that fits
    composite: float = 0.0  # paste the person onto another sample
    person_height: tuple[float, float] = (0.3, 1.2)  # pasted person's box height, relative to the canvas height
    log_height: bool = False  # draw the pasted height log-uniformly (as many small people as large ones)
    background: float = 0.0  # composites: share of canvases drawn from the background frames (`data.backgrounds`)
    people: tuple[int, int] = (1, 1)  # composites: number of people pasted, drawn uniformly from this range
    rotate: float = 0.0  # pasted people not cut by their photo's edge: probability of a rotation
    rotate_limit: float = 45.0  # degrees either way; a quarter of the rotations are larger (up to upside down)
    tilt: float = 0.0  # rotation of the whole canvas (reflected border)
    tilt_limit: float = 15.0  # degrees either way
    flip: float = 0.5
    noise: float = 0.2
    gamma: float = 0.3
    shadow: float = 0.2
    color: float = 0.5
    motion_blur: float = 0.0
    low_light: float = 0.0  # darkened frame with sensor (ISO) noise
    jpeg: float = 0.0  # JPEG artefacts, quality 25-90

    @classmethod
    def from_dict(cls, values: dict | None) -> AugmentConfig:
        return options_from_dict(cls, values, "augment")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def resize_pair(image: np.ndarray, mask: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resizes an image (area/linear) and its mask (linear, thresholded at half) to `hw`."""
    h, w = hw
    interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
    image = cv2.resize(image, (w, h), interpolation=interp)
    mask = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    return image, mask.astype(np.uint8)


def auto_crop(
    image: np.ndarray, mask: np.ndarray, hw: tuple[int, int], rng: np.random.Generator, scale=(0.35, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Crops a window of the canvas' aspect ratio that overlaps the person, then resizes it to `hw`."""
    y0, y1, x0, x1 = crop_box(mask, hw, rng, scale)
    return resize_pair(image[y0:y1, x0:x1], mask[y0:y1, x0:x1], hw)


def crop_box(
    mask: np.ndarray, hw: tuple[int, int], rng: np.random.Generator, scale=(0.35, 1.0)
) -> tuple[int, int, int, int]:
    """`auto_crop`'s window `(y0, y1, x0, x1)`: the canvas' aspect ratio, `scale` of the largest window's area, its
    centre inside the box of `mask`'s person (anywhere when there is none)."""
    img_h, img_w = mask.shape[:2]
    aspect = hw[1] / hw[0]  # width / height
    max_h = min(img_h, img_w / aspect)
    area = rng.uniform(*scale)
    ch = min(img_h, max(8.0, max_h * np.sqrt(area)))  # at least 8 px, unless the image is smaller
    cw = min(img_w, ch * aspect)
    ys, xs = np.nonzero(mask)
    if len(ys):
        # the window's centre falls in the person's box, so some of the person stays in view
        cy = rng.uniform(ys.min(), ys.max() + 1)
        cx = rng.uniform(xs.min(), xs.max() + 1)
    else:
        cy, cx = rng.uniform(0, img_h), rng.uniform(0, img_w)
    y0 = int(np.clip(cy - ch / 2, 0, img_h - ch))
    x0 = int(np.clip(cx - cw / 2, 0, img_w - cw))
    return y0, int(y0 + round(ch)), x0, int(x0 + round(cw))


def paste_person(
    canvas: np.ndarray,
    canvas_mask: np.ndarray,
    person: np.ndarray,
    person_mask: np.ndarray,
    rng: np.random.Generator,
    height_range=(0.3, 1.2),
    log_height: bool = False,
    angle: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts the person out of `person` and pastes it onto `canvas` at a random scale and position.

    Where the person is cut by an edge of its own photo (a portrait's chest at the bottom), the pasted cut-out is
    anchored to the same edge of the canvas, so no person ends in a straight line in mid-frame. The pasted person
    occludes the canvas' own people; the label is the union of both. A person that no edge cuts is rotated by `angle`
    degrees (its box grows to hold it); `log_height` draws the height log-uniformly.
    """
    ys, xs = np.nonzero(person_mask)
    if len(ys) == 0:
        return canvas, canvas_mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop, crop_mask = person[y0:y1, x0:x1], person_mask[y0:y1, x0:x1]
    src_h, src_w = person_mask.shape
    canvas_h, canvas_w = canvas.shape[:2]
    cut_top, cut_bottom, cut_left, cut_right = y0 == 0, y1 == src_h, x0 == 0, x1 == src_w
    if angle and not (cut_top or cut_bottom or cut_left or cut_right):
        crop, crop_mask = rotate_cutout(crop, crop_mask, angle)
    lo, hi = height_range
    height = np.exp(rng.uniform(np.log(lo), np.log(hi))) if log_height else rng.uniform(lo, hi)
    scale = height * canvas_h / crop.shape[0]
    if cut_top and cut_bottom:
        scale = max(scale, canvas_h / crop.shape[0])
    if cut_left and cut_right:
        scale = max(scale, canvas_w / crop.shape[1])
    ph, pw = max(2, round(crop.shape[0] * scale)), max(2, round(crop.shape[1] * scale))
    crop, crop_mask = resize_pair(crop, crop_mask, (ph, pw))
    # free sides: up to 10% outside at the top, 30% at the sides, the bottom may leave the frame (webcam framing)
    top = int(rng.uniform(*_placement(cut_top, cut_bottom, ph, canvas_h, 0.1, 0.4)))
    left = int(rng.uniform(*_placement(cut_left, cut_right, pw, canvas_w, 0.3, 0.3)))
    cy0, cx0, cy1, cx1 = max(top, 0), max(left, 0), min(top + ph, canvas_h), min(left + pw, canvas_w)
    if cy1 <= cy0 or cx1 <= cx0:
        return canvas, canvas_mask
    py0, px0 = cy0 - top, cx0 - left
    sub_mask = crop_mask[py0 : py0 + cy1 - cy0, px0 : px0 + cx1 - cx0]
    alpha = cv2.GaussianBlur(sub_mask.astype(np.float32), (3, 3), 0)[..., None]  # feathered 1 px edge
    sub = crop[py0 : py0 + cy1 - cy0, px0 : px0 + cx1 - cx0].astype(np.float32)
    canvas = canvas.copy()
    region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    canvas[cy0:cy1, cx0:cx1] = (alpha * sub + (1 - alpha) * region).round().astype(np.uint8)
    canvas_mask = canvas_mask.copy()
    canvas_mask[cy0:cy1, cx0:cx1] |= sub_mask
    return canvas, canvas_mask


def composite_scene(
    canvas: np.ndarray,
    canvas_mask: np.ndarray,
    people: list[tuple[np.ndarray, np.ndarray]],
    hw: tuple[int, int],
    rng: np.random.Generator,
    cfg: AugmentConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """A training scene: a crop of `canvas` at `hw`, every one of `people` pasted on it (rotated with probability
    `cfg.rotate`), then the whole canvas tilted with probability `cfg.tilt`. Returns `(image, mask)` at `hw`."""
    image, mask = auto_crop(canvas, canvas_mask, hw, rng, cfg.crop_scale)
    for person, person_mask in people:
        angle = random_angle(rng, cfg.rotate_limit) if cfg.rotate and rng.random() < cfg.rotate else 0.0
        image, mask = paste_person(image, mask, person, person_mask, rng, cfg.person_height, cfg.log_height, angle)
    if cfg.tilt and rng.random() < cfg.tilt:
        image, mask = tilt_pair(image, mask, float(rng.uniform(-cfg.tilt_limit, cfg.tilt_limit)))
    return image, mask


def rotate_cutout(
    image: np.ndarray, mask: np.ndarray, angle: float, soft: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Rotates a person cut-out by `angle` degrees on a canvas large enough to hold it, cropped to the new mask.

    `soft`: `mask` is an alpha in [0, 1] and stays one (float32), cropped to where it is above 0.5."""
    h, w = mask.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)  # about the centre of the pixel grid
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos - 1e-6)), int(np.ceil(h * cos + w * sin - 1e-6))
    m[0, 2] += (nw - w) / 2
    m[1, 2] += (nh - h) / 2
    image = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask.astype(np.float32), m, (nw, nh), flags=cv2.INTER_LINEAR)  # (nh, nw)
    mask = alpha if soft else (alpha > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) == 0:
        return image, mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def tilt_pair(image: np.ndarray, mask: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotates a whole canvas and its mask by `angle` degrees about the centre, borders reflected (same size)."""
    h, w = mask.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(mask.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return image, (mask > 0.5).astype(np.uint8)


def random_angle(rng: np.random.Generator, limit: float) -> float:
    """A rotation in degrees: within +-`limit` three times in four, otherwise anywhere up to upside down."""
    if rng.random() < 0.75:
        return float(rng.uniform(-limit, limit))
    return float(rng.uniform(limit, 180.0) * rng.choice((-1, 1)))


def _placement(cut_lo: bool, cut_hi: bool, size: int, canvas: int, out_lo: float, out_hi: float) -> tuple[float, float]:
    """Range of the pasted box's start along one axis: touching the canvas edge on the sides the person is cut."""
    if cut_lo and cut_hi:
        return min(0.0, canvas - size), 0.0 + 1e-6
    if cut_lo:
        return -0.4 * size, 0.0 + 1e-6
    if cut_hi:
        return canvas - size, max(canvas - size + 1, canvas - 0.6 * size)
    return -out_lo * size, max(-out_lo * size + 1, canvas - (1 - out_hi) * size)


def photometric(cfg: AugmentConfig) -> A.Compose:
    """Flip, Gaussian noise, gamma, shadows and colour/saturation jitter (Section IV-A); motion blur, low light with
    sensor noise and JPEG artefacts where configured; then normalization."""
    optics = [A.MotionBlur(blur_limit=(3, 11), p=cfg.motion_blur)] if cfg.motion_blur else []
    sensor = []
    if cfg.low_light:
        darker = A.MultiplicativeNoise(multiplier=(0.25, 0.6), per_channel=False, elementwise=False, p=1)
        grain = A.GaussNoise(std_range=(0.03, 0.08), per_channel=True, p=1)
        sensor.append(A.Sequential([darker, grain], p=cfg.low_light))
    if cfg.jpeg:
        sensor.append(A.ImageCompression(quality_range=(25, 90), p=cfg.jpeg))
    return A.Compose(
        [
            A.HorizontalFlip(p=cfg.flip),
            *optics,  # blur happens in the lens, before the sensor's noise
            A.GaussNoise(std_range=(0.02, 0.08), p=cfg.noise),
            A.RandomGamma(gamma_limit=(70, 140), p=cfg.gamma),
            A.RandomShadow(shadow_roi=(0, 0, 1, 1), num_shadows_limit=(1, 2), p=cfg.shadow),
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.03, p=cfg.color),
            *sensor,
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )
