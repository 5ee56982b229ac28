"""The training loss: weighted binary cross-entropy (Section IV-B) with optional soft-Dice, Lovasz and edge terms.

Target pixels of value `IGNORE` (CamVid's cyclists, `asbunet.data.mixture`) count in no term.
"""

from __future__ import annotations

import torch
from torch import nn

from asbunet.data.mixture import IGNORE


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image Lovasz hinge (Berman et al., "The Lovasz-Softmax loss", CVPR 2018, Eq. 10 and Alg. 1): a convex
    surrogate of 1 - IoU of the person mask, `(B,)` from logits and binary targets `(B, 1, H, W)`.

    The hinge errors `1 - logit * sign(label)` are sorted, largest first, and weighted by the steps of the Jaccard
    loss as the sorted pixels join the false set (the gradient of its Lovasz extension). For logits of +-1 it is
    2 (1 - IoU) of the mask `logits > 0`, image by image. Pixels where `valid` (B, 1, H, W) is 0 sort last with no
    error, so they change nothing.
    """
    labels = (target > 0.5).flatten(1).to(logits.dtype)  # (B, P)
    errors = 1 - logits.flatten(1) * (2 * labels - 1)  # (B, P)
    if valid is not None:
        keep = valid.flatten(1) > 0  # (B, P)
        labels, errors = labels * keep, errors.masked_fill(~keep, -1e9)
    errors, order = torch.sort(errors, dim=1, descending=True)
    labels = torch.gather(labels, 1, order)
    people = labels.sum(1, keepdim=True)  # (B, 1)
    jaccard = 1 - (people - labels.cumsum(1)) / (people + (1 - labels).cumsum(1))  # (B, P), union >= 1
    steps = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)  # (B, P)
    return (nn.functional.relu(errors) * steps).sum(1)  # (B,)


class SegmentationLoss(nn.Module):
    """Weighted binary cross-entropy (Section IV-B), plus optional soft-Dice and Lovasz hinge terms (`lovasz_hinge`,
    which aims at the per-image IoU the evaluation averages) and an optional extra weight on the pixels near the
    label's edges.

    `boundary_weight` adds that much weight to the cross-entropy of every pixel within `boundary_band` pixels of a
    person/background edge of the label (dilated minus eroded label, as the ignore band of Section IV-C), as
    boundary losses for portrait segmentation do (PortraitNet, Zhang et al. 2019): thin limbs and outlines carry most
    of a full-body photo's errors and few of its pixels.
    """

    def __init__(
        self,
        pos_weight: float,
        dice_weight: float = 0.0,
        boundary_weight: float = 0.0,
        boundary_band: int = 3,
        lovasz_weight: float = 0.0,
    ):
        super().__init__()
        if boundary_weight < 0 or boundary_band < 1:
            raise ValueError(
                f"boundary_weight must be >= 0 and boundary_band >= 1, got {boundary_weight}, {boundary_band}"
            )
        if lovasz_weight < 0:
            raise ValueError(f"lovasz_weight must be >= 0, got {lovasz_weight}")
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))
        self.dice_weight, self.boundary_weight, self.boundary_band = dice_weight, boundary_weight, boundary_band
        self.lovasz_weight = lovasz_weight

    def edge_band(self, target: torch.Tensor) -> torch.Tensor:
        """1 on the pixels within `boundary_band` of an edge of `target` (B, 1, H, W), else 0."""
        k = 2 * self.boundary_band + 1
        dilated = nn.functional.max_pool2d(target, k, stride=1, padding=self.boundary_band)
        eroded = -nn.functional.max_pool2d(-target, k, stride=1, padding=self.boundary_band)
        return dilated - eroded  # (B, 1, H, W)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ignore = target == IGNORE  # (B, 1, H, W)
        valid = None
        if ignore.any():  # every term is taken over the other pixels only
            valid = (~ignore).to(logits.dtype)
            target = target.masked_fill(ignore, 0.0)
        weight = valid
        if self.boundary_weight:
            band = 1 + self.boundary_weight * self.edge_band(target)  # (B, 1, H, W)
            weight = band if valid is None else band * valid
        bce = nn.functional.binary_cross_entropy_with_logits
        if valid is None:
            loss = bce(logits, target, weight=weight, pos_weight=self.pos_weight)
        else:
            loss = bce(logits, target, weight=weight, pos_weight=self.pos_weight, reduction="sum") / valid.sum()
        if self.dice_weight:
            p = torch.sigmoid(logits) if valid is None else torch.sigmoid(logits) * valid  # (B, 1, H, W)
            inter = (p * target).sum((1, 2, 3))
            dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
            loss = loss + self.dice_weight * dice.mean()
        if self.lovasz_weight:
            loss = loss + self.lovasz_weight * lovasz_hinge(logits, target, valid).mean()
        return loss
