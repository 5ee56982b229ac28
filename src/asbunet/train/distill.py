"""Knowledge distillation: a trained, larger model's probabilities as soft targets for a small one.

The student keeps the labelled loss of Section IV-B and adds `weight` x binary cross-entropy against the teacher's
per-pixel probability on the same augmented batch (Hinton et al., "Distilling the Knowledge in a Neural Network",
2015). The teacher sees exactly what the student sees, so its targets follow every augmentation; it runs in
inference mode and is never updated.

A teacher trained with the person-weighted BCE of Section IV-B is not calibrated at 0.5: its own mask threshold,
chosen on its validation split and stored with it, is often higher, so its raw probabilities teach a student masks
wider than the teacher's. With `at_threshold` the targets are centred on that threshold instead,
`sigmoid(teacher_logit - logit(threshold))`: a pixel the teacher calls person at its threshold is a target above 0.5.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asbunet.inference.weights import load_model


class Distiller(nn.Module):
    """Soft-target loss from a frozen teacher; `teacher` is any model spec `load_model` accepts (torch runtime);
    `at_threshold` centres the targets on the teacher's stored mask threshold."""

    def __init__(self, teacher: str, weight: float, channels_last: bool = True, at_threshold: bool = False):
        super().__init__()
        if weight <= 0:
            raise ValueError(f"distill_weight must be above 0, got {weight}")
        try:
            with torch.random.fork_rng(devices=[]):  # building the teacher leaves the run's random stream alone
                loaded = load_model(teacher, runtime="torch")
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"teacher {teacher}: {e}") from None
        self.teacher = loaded.module.eval().requires_grad_(False)
        if channels_last:
            self.teacher = self.teacher.to(memory_format=torch.channels_last)
        self.weight = weight
        self.center = loaded.threshold if at_threshold else 0.5  # the teacher probability that becomes a 0.5 target
        self.logit_shift = math.log(self.center / (1 - self.center))  # 0 for the raw probabilities

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # BatchNorm statistics stay the trained ones
        return self

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's person probability, (B, 1, H, W) in [0, 1], for a batch `x` of (B, 3, H, W), centred on
        its threshold with `at_threshold`."""
        return torch.sigmoid(self.teacher(x).float() - self.logit_shift)

    def forward(self, x: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        target = self.targets(x)  # (B, 1, H, W)
        if target.shape != student_logits.shape:
            raise ValueError(f"teacher output {tuple(target.shape)} differs from student {tuple(student_logits.shape)}")
        return self.weight * nn.functional.binary_cross_entropy_with_logits(student_logits, target)
