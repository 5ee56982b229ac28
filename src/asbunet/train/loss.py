"""The training loss: weighted binary cross-entropy (Section IV-B) with optional soft-Dice and edge terms."""

from __future__ import annotations

import torch
from torch import nn


class SegmentationLoss(nn.Module):
    """Weighted binary cross-entropy (Section IV-B), plus an optional soft-Dice term and an optional extra weight on
    the pixels near the label's edges.

    `boundary_weight` adds that much weight to the cross-entropy of every pixel within `boundary_band` pixels of a
    person/background edge of the label (dilated minus eroded label, as the ignore band of Section IV-C), as
    boundary losses for portrait segmentation do (PortraitNet, Zhang et al. 2019): thin limbs and outlines carry most
    of a full-body photo's errors and few of its pixels.
    """

    def __init__(
        self, pos_weight: float, dice_weight: float = 0.0, boundary_weight: float = 0.0, boundary_band: int = 3
    ):
        super().__init__()
        if boundary_weight < 0 or boundary_band < 1:
            raise ValueError(
                f"boundary_weight must be >= 0 and boundary_band >= 1, got {boundary_weight}, {boundary_band}"
            )
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))
        self.dice_weight, self.boundary_weight, self.boundary_band = dice_weight, boundary_weight, boundary_band

    def edge_band(self, target: torch.Tensor) -> torch.Tensor:
        """1 on the pixels within `boundary_band` of an edge of `target` (B, 1, H, W), else 0."""
        k = 2 * self.boundary_band + 1
        dilated = nn.functional.max_pool2d(target, k, stride=1, padding=self.boundary_band)
        eroded = -nn.functional.max_pool2d(-target, k, stride=1, padding=self.boundary_band)
        return dilated - eroded  # (B, 1, H, W)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None
        if self.boundary_weight:
            weight = 1 + self.boundary_weight * self.edge_band(target)  # (B, 1, H, W)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight, pos_weight=self.pos_weight)
        if self.dice_weight:
            p = torch.sigmoid(logits)  # (B, 1, H, W)
            inter = (p * target).sum((1, 2, 3))
            dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
            loss = loss + self.dice_weight * dice.mean()
        return loss
