"""Copy-paste canvases: people cut out of labelled photos pasted onto person-free frames (synthetic scenes).

Copy-paste augmentation (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for Instance
Segmentation", CVPR 2021) at the scale of a whole data source: 1-6 people from every labelled source, 3% to 100% of
the canvas high, overlapping each other and partly outside the frame, pasted onto person-free frames (indoor ones
included). So that a pasted person is not told apart by its edge or tint, its colour and brightness are pulled
towards the canvas' (in CIE Lab), the seam is blurred, and a soft contact shadow may be drawn under its feet. The
label follows the paste exactly: a soft alpha becomes a hard label at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from asbunet.data.augment import _placement, crop_box, options_from_dict, random_angle, resize_pair, rotate_cutout


@dataclass(frozen=True)
class Cutout:
    """One person to paste: the image cropped to the person's box and its alpha there."""

    image: np.ndarray  # (h, w, 3) uint8 RGB
    alpha: np.ndarray  # (h, w) float32 in [0, 1]; the label is alpha >= 0.5
    cut: tuple[bool, bool, bool, bool]  # the person runs off its photo at the top, bottom, left, right
    name: str = ""


@dataclass(frozen=True)
class CanvasConfig:
    """How canvases are made; `configs/*.yaml` set it under `data.mixture.canvas`."""

    people: tuple[int, int] = (1, 6)  # people pasted per canvas, drawn uniformly
    height: tuple[float, float] = (0.03, 1.0)  # pasted height relative to the canvas, drawn log-uniformly
    crop_scale: tuple[float, float] = (0.5, 1.0)  # area of the background window (`crop_box`)
    outside: float = 0.3  # share of a person's box that may leave the frame on a free side
    rotate: float = 0.15  # probability of a rotated (lying, falling, tumbling) person; not for cut people
    rotate_limit: float = 60.0
    match: float = 0.8  # probability of pulling the person's colour and brightness towards the canvas
    match_strength: tuple[float, float] = (0.2, 0.7)  # share of the Lab mean difference removed
    seam_blur: tuple[float, float] = (0.4, 1.5)  # Gaussian sigma in pixels of the blended alpha's edge
    shadow: float = 0.3  # probability of a contact shadow under an uncut person's feet

    @classmethod
    def from_dict(cls, values: dict | None) -> CanvasConfig:
        return options_from_dict(cls, values, "canvas")


def cutout_from_alpha(image: np.ndarray, alpha: np.ndarray, name: str = "") -> Cutout | None:
    """The person of `image` (H, W, 3) with alpha (H, W) (float in [0, 1], or a 0/1 mask), cropped to the box of
    alpha >= 0.5; None when there is no such pixel."""
    alpha = alpha.astype(np.float32)
    ys, xs = np.nonzero(alpha >= 0.5)
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = alpha.shape
    cut = (bool(y0 == 0), bool(y1 == h), bool(x0 == 0), bool(x1 == w))
    return Cutout(image[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy(), cut, name)


def rgba_cutout(rgba: np.ndarray, name: str = "") -> Cutout | None:
    """A cut-out from an RGBA image (H, W, 4) with a soft alpha channel."""
    return cutout_from_alpha(rgba[..., :3], rgba[..., 3].astype(np.float32) / 255.0, name)


def component_cutouts(image: np.ndarray, mask: np.ndarray, min_height: int, name: str = "") -> list[Cutout]:
    """Every connected person of `mask` (H, W; 1 = person) at least `min_height` pixels tall, each cut out alone
    (other people inside its box are left out of its alpha), not touching pixels of another label (2 = ignore)."""
    people = (mask == 1).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(people, connectivity=8)
    out = []
    for k in range(1, count):
        x, y, w, h = stats[k, :4]
        if h < min_height or (mask[y : y + h, x : x + w] > 1).any():
            continue
        alpha = (labels[y : y + h, x : x + w] == k).astype(np.float32)
        cutout = cutout_from_alpha(image[y : y + h, x : x + w], alpha, f"{name}#{k}")
        if cutout is not None:
            out.append(cutout)
    return out


def match_colour(person: np.ndarray, alpha: np.ndarray, canvas: np.ndarray, strength: float) -> np.ndarray:
    """`person` (h, w, 3) with its Lab mean over alpha >= 0.5 moved `strength` of the way to `canvas`'s mean."""
    lab = cv2.cvtColor(person, cv2.COLOR_RGB2LAB).astype(np.float32)  # (h, w, 3)
    inside = alpha >= 0.5
    if not inside.any():
        return person
    target = cv2.cvtColor(canvas, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32).mean(0)  # (3,)
    lab += strength * (target - lab[inside].mean(0))
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def contact_shadow(canvas: np.ndarray, box: tuple[int, int, int, int], darkness: float) -> np.ndarray:
    """`canvas` darkened by a blurred ellipse under the feet of the person box `(top, left, height, width)`."""
    top, left, ph, pw = box
    h, w = canvas.shape[:2]
    shade = np.zeros((h, w), np.float32)
    centre = (int(left + pw / 2), int(top + ph))
    axes = (max(1, int(pw * 0.45)), max(1, int(ph * 0.04)))
    cv2.ellipse(shade, centre, axes, 0, 0, 360, 1.0, -1)
    sigma = max(1.0, axes[1] * 0.8)
    shade = cv2.GaussianBlur(shade, (0, 0), sigma)[..., None]  # (h, w, 1)
    return (canvas.astype(np.float32) * (1 - darkness * shade)).round().astype(np.uint8)


def paste_cutout(
    canvas: np.ndarray,
    label: np.ndarray,
    cutout: Cutout,
    height: float,
    rng: np.random.Generator,
    cfg: CanvasConfig,
    top_left: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pastes `cutout` onto `canvas` (H, W, 3) at `height` x H pixels tall; returns the new canvas and label (H, W).

    A person cut by an edge of its photo is anchored to the same edge of the canvas (a portrait's chest stays at
    the bottom); others may leave the frame by up to `cfg.outside` of their box. `top_left` places it by hand. The
    label gains alpha >= 0.5 of the pasted person, unblurred; the image blends the alpha with a blurred seam.
    """
    image, alpha = cutout.image, cutout.alpha
    top_cut, bottom_cut, left_cut, right_cut = cutout.cut
    if cfg.rotate and not any(cutout.cut) and rng.random() < cfg.rotate:
        image, alpha = rotate_cutout(image, alpha, random_angle(rng, cfg.rotate_limit), soft=True)
    canvas_h, canvas_w = canvas.shape[:2]
    scale = height * canvas_h / image.shape[0]
    if top_cut and bottom_cut:
        scale = max(scale, canvas_h / image.shape[0])
    if left_cut and right_cut:
        scale = max(scale, canvas_w / image.shape[1])
    ph, pw = max(2, round(image.shape[0] * scale)), max(2, round(image.shape[1] * scale))
    if (ph, pw) != alpha.shape:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (pw, ph), interpolation=interp)
        alpha = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_LINEAR)  # (ph, pw)
    if top_left is None:
        out = cfg.outside
        top = int(rng.uniform(*_placement(top_cut, bottom_cut, ph, canvas_h, out, out)))
        left = int(rng.uniform(*_placement(left_cut, right_cut, pw, canvas_w, out, out)))
    else:
        top, left = top_left
    cy0, cx0, cy1, cx1 = max(top, 0), max(left, 0), min(top + ph, canvas_h), min(left + pw, canvas_w)
    if cy1 <= cy0 or cx1 <= cx0:
        return canvas, label
    if cfg.match and rng.random() < cfg.match:
        image = match_colour(image, alpha, canvas, float(rng.uniform(*cfg.match_strength)))
    canvas = canvas.copy()
    if cfg.shadow and not bottom_cut and top + ph < canvas_h and rng.random() < cfg.shadow:
        canvas = contact_shadow(canvas, (top, left, ph, pw), float(rng.uniform(0.2, 0.5)))
    sigma = float(rng.uniform(*cfg.seam_blur))
    soft = cv2.GaussianBlur(alpha, (0, 0), sigma) if sigma > 0 else alpha  # (ph, pw)
    py0, px0, py1, px1 = cy0 - top, cx0 - left, cy1 - top, cx1 - left
    a = soft[py0:py1, px0:px1, None]  # (h, w, 1)
    region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    canvas[cy0:cy1, cx0:cx1] = (a * image[py0:py1, px0:px1] + (1 - a) * region).round().astype(np.uint8)
    label = label.copy()
    label[cy0:cy1, cx0:cx1] |= (alpha[py0:py1, px0:px1] >= 0.5).astype(label.dtype)
    return canvas, label


def synth_canvas(
    background: np.ndarray,
    people: list[Cutout],
    hw: tuple[int, int],
    rng: np.random.Generator,
    cfg: CanvasConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """A window of the person-free `background` at `hw` with every one of `people` pasted onto it in order, at
    heights drawn and sorted smallest (the farthest) first, so that nearer people occlude them.

    Returns `(image (H, W, 3), label (H, W) in {0, 1})`."""
    empty = np.zeros(background.shape[:2], np.uint8)
    y0, y1, x0, x1 = crop_box(empty, hw, rng, cfg.crop_scale)
    image, label = resize_pair(background[y0:y1, x0:x1], empty[y0:y1, x0:x1], hw)
    lo, hi = cfg.height
    heights = sorted(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) for _ in people)  # the last is the largest
    for cutout, height in zip(people, heights, strict=True):
        image, label = paste_cutout(image, label, cutout, height, rng, cfg)
    return image, label
