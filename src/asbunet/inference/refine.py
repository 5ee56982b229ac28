"""Edge-aware upsampling of the person probability: a colour guided filter.

The network sees the image at its input size (176x320 for a 640x360 frame) and its probability is resized back to the
image's own size. `GuidedRefine` resizes it back along the image's own edges instead: the colour guided filter (He,
Sun and Tang, "Guided Image Filtering", TPAMI 2013, eqs. 14-16) fits, in every window of the small image, a linear map
from RGB to probability; the maps are averaged, resized to full size and applied to the full-size RGB image
(the fast guided filter: He and Sun, arXiv:1505.00996, 2015, with `subsample` as its `s`). The probability then follows
the edges of the full-size image, not the network's grid. Its settings are chosen on validation data and stored with
a model (`asbunet bundle --refine`); a model without them resizes the probability bilinearly
(`asbunet.inference.postprocess.logits_to_probability`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from asbunet.inference.scratch import scratch

TEXT_FORMAT = "guided:radius=R,eps=E,subsample=S"
_TEXT = re.compile(r"guided:radius=(\d+),eps=([0-9.eE+-]+),subsample=(\d+)")


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the `(2r+1) x (2r+1)` window around each pixel of a float32 map `(h, w)` or `(h, w, c)`, each plane
    alone (mirrored at the border)."""
    size = 2 * radius + 1
    return cv2.boxFilter(x, -1, (size, size), borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class GuidedRefine:
    """The colour guided filter that resizes a probability map back to the image's size along the image's edges.

    Args:
        radius: window radius of the filter, in pixels of the subsampled map.
        eps: regularization of the linear fit (He et al., eq. 14): larger keeps the input probability smoother,
            smaller follows the image's colours more closely; for RGB in [0, 1].
        subsample: the coefficients are fitted on the network-size image and probability shrunk by this factor.
    """

    radius: int = 3
    eps: float = 3e-4
    subsample: int = 2

    def __post_init__(self):
        if not (isinstance(self.radius, int) and self.radius >= 1):
            raise ValueError(f"guided refine radius must be a whole number >= 1, got {self.radius!r}")
        if not self.eps > 0:
            raise ValueError(f"guided refine eps must be > 0, got {self.eps!r}")
        if not (isinstance(self.subsample, int) and self.subsample >= 1):
            raise ValueError(f"guided refine subsample must be a whole number >= 1, got {self.subsample!r}")

    @classmethod
    def from_text(cls, text: str) -> GuidedRefine:
        """Parses `to_text`'s form, `guided:radius=3,eps=0.0003,subsample=2`; `ValueError` for anything else."""
        found = _TEXT.fullmatch(text.strip())
        if not found:
            raise ValueError(f"refine setting {text!r} is not of the form {TEXT_FORMAT!r}")
        try:
            eps = float(found[2])
        except ValueError:
            raise ValueError(f"refine setting {text!r}: eps {found[2]!r} is not a number") from None
        return cls(int(found[1]), eps, int(found[3]))

    def to_text(self) -> str:
        """The setting as stored in a model's metadata."""
        return f"guided:radius={self.radius},eps={self.eps:g},subsample={self.subsample}"

    def coefficients(self, small_rgb: np.ndarray, small_probability: np.ndarray) -> list[np.ndarray]:
        """Per-pixel linear maps from RGB uint8 to probability, `p = a . rgb + b`: the four planes `(h', w')` float32
        of `(a_r, a_g, a_b)` (He et al., eqs. 14-16, for RGB in [0, 1], scaled by 1/255) and `b`, each averaged over
        the windows covering a pixel (eq. 16). The probability may be smaller than `small_rgb` (logits at the
        network's output stride, `asbunet export --head-stride`): it is resized to the fitting size like the image."""
        h, w = small_rgb.shape[:2]
        size = (max(1, w // self.subsample), max(1, h // self.subsample))  # (w', h')
        if self.subsample > 1:
            small_rgb = cv2.resize(small_rgb, size, interpolation=cv2.INTER_AREA)
        if small_probability.shape != (size[1], size[0]):
            grows = small_probability.shape[0] < size[1]
            small_probability = cv2.resize(
                small_probability, size, interpolation=cv2.INTER_LINEAR if grows else cv2.INTER_AREA
            )
        r, eps = self.radius, np.float32(self.eps)
        p = np.ascontiguousarray(small_probability, dtype=np.float32)  # (h', w')
        channels = [c.astype(np.float32) * np.float32(1 / 255) for c in cv2.split(small_rgb)]  # 3 x (h', w') in [0, 1]
        means = [box_mean(c, r) for c in channels]
        mean_p = box_mean(p, r)
        cov = [box_mean(c * p, r) - m * mean_p for c, m in zip(channels, means, strict=True)]
        # Sigma + eps*I, symmetric 3x3 per pixel, and its inverse through the adjugate.
        s = {
            (i, j): box_mean(channels[i] * channels[j], r) - means[i] * means[j] for i in range(3) for j in range(i, 3)
        }
        s00, s01, s02, s11, s12, s22 = s[0, 0] + eps, s[0, 1], s[0, 2], s[1, 1] + eps, s[1, 2], s[2, 2] + eps
        i00, i01, i02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
        i11, i12, i22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
        inv_det = 1 / (s00 * i00 + s01 * i01 + s02 * i02)
        c0, c1, c2 = cov
        a = [
            (i00 * c0 + i01 * c1 + i02 * c2) * inv_det,
            (i01 * c0 + i11 * c1 + i12 * c2) * inv_det,
            (i02 * c0 + i12 * c1 + i22 * c2) * inv_det,
        ]
        b = mean_p - a[0] * means[0] - a[1] * means[1] - a[2] * means[2]
        to_uint8 = np.float32(1 / 255)  # `a` is applied to the full-size image's uint8 values
        return [box_mean(x, r) * to_uint8 for x in a] + [box_mean(b, r)]

    def __call__(self, rgb: np.ndarray, small_rgb: np.ndarray, small_probability: np.ndarray) -> np.ndarray:
        """Person probability `(H, W)` float32 in [0, 1] of the RGB uint8 image `rgb (H, W, 3)`, from the network's
        probability `(h, w)` (or at its output stride) on `small_rgb (h, w, 3)`, the image as the network saw it."""
        height, width = rgb.shape[:2]
        *a, b = self.coefficients(small_rgb, small_probability)
        probability = cv2.resize(b, (width, height))  # (H, W)
        term = scratch("refine.term", (height, width))  # reused: a fresh full-size plane faults in on every frame
        channels = cv2.split(rgb, [scratch(f"refine.channel{c}", (height, width), np.uint8) for c in range(3)])
        for a_channel, channel in zip(a, channels, strict=True):
            cv2.resize(a_channel, (width, height), dst=term)
            cv2.multiply(term, channel, dst=term, dtype=cv2.CV_32F)  # uint8 channel, read as float32
            cv2.add(probability, term, dst=probability)
        return np.clip(probability, 0.0, 1.0, out=probability)
