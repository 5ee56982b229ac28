"""Knowledge distillation (`teacher:` in a training config): the soft-target loss pulls the student toward a frozen
teacher, a run with a teacher trains, and a bad teacher is refused before any data is read."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config

from asbunet.train.config import TrainConfig
from asbunet.train.distill import Distiller
from asbunet.train.engine import train


@pytest.fixture(scope="module")
def teacher_checkpoint(ccp_samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(TrainConfig(**tiny_config(ccp_samples, out, epochs=1, max_steps=1)))
    return out / "last.pt"


def test_soft_targets_pull_toward_the_frozen_teacher(teacher_checkpoint):
    distiller = Distiller(str(teacher_checkpoint), weight=2.0, channels_last=False)
    distiller.train()
    assert not distiller.teacher.training  # its BatchNorm statistics are not updated
    assert not any(p.requires_grad for p in distiller.parameters())
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        teacher_logits = distiller.teacher(x)  # (2, 1, 64, 48)
    agreeing, opposite = distiller(x, teacher_logits), distiller(x, -teacher_logits)
    assert agreeing < opposite
    student = torch.zeros_like(teacher_logits, requires_grad=True)
    distiller(x, student).backward()
    # the gradient of BCE w.r.t. the logits is weight * (sigmoid(s) - p) / N: it points away from the teacher
    expected = 2.0 * (0.5 - torch.sigmoid(teacher_logits)) / teacher_logits.numel()
    torch.testing.assert_close(student.grad, expected)


def test_targets_centred_on_the_teachers_threshold(teacher_checkpoint, tmp_path):
    ckpt = torch.load(teacher_checkpoint, weights_only=False)
    ckpt["threshold"] = 0.7
    torch.save(ckpt, tmp_path / "teacher_at_0.7.pt")
    raw = Distiller(str(tmp_path / "teacher_at_0.7.pt"), weight=1.0, channels_last=False)
    centred = Distiller(str(tmp_path / "teacher_at_0.7.pt"), weight=1.0, channels_last=False, at_threshold=True)
    assert raw.center == 0.5 and centred.center == 0.7
    x = torch.rand(2, 3, 64, 48)
    p_raw, p_centred = raw.targets(x), centred.targets(x)  # (2, 1, 64, 48)
    with torch.no_grad():
        logits = raw.teacher(x)  # (2, 1, 64, 48)
    torch.testing.assert_close(p_raw, torch.sigmoid(logits))
    torch.testing.assert_close(p_centred, torch.sigmoid(logits - torch.logit(torch.tensor(0.7))))
    assert ((p_centred >= 0.5) == (p_raw >= 0.7)).float().mean() > 0.999  # the teacher's mask, now at 0.5


def test_a_run_with_a_teacher_trains_and_says_so(ccp_samples, teacher_checkpoint, tmp_path, capsys):
    out = tmp_path / "student"
    row = train(TrainConfig(**tiny_config(ccp_samples, out, teacher=str(teacher_checkpoint), max_steps=2)))
    assert row["step"] == 2 and torch.isfinite(torch.tensor(row["train_loss"]))
    assert f"distilling from {teacher_checkpoint}" in capsys.readouterr().out


def test_a_missing_teacher_is_refused_before_the_data_is_read(tmp_path):
    cfg = TrainConfig(**tiny_config(tmp_path / "no_data", tmp_path / "run", teacher=str(tmp_path / "gone.pt")))
    with pytest.raises(ValueError, match=r"teacher .*gone\.pt"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_distill_weight_must_be_positive(teacher_checkpoint):
    with pytest.raises(ValueError, match="distill_weight"):
        Distiller(str(teacher_checkpoint), weight=0.0)
