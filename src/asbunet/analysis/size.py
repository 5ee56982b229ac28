"""Model size (Fig. 7, `asbunet summary`): parameter counts, fp32 size, MACs, output strides.

Parameters are counted two ways. `count_parameters` is PyTorch's count (`model.parameters()`, no buffers).
`count_keras_parameters` adds the BatchNorm running mean and variance, which Keras lists as non-trainable
parameters and includes in its "Total params", the figure Fig. 7 most likely reports.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from asbunet.models import create_model, list_models
from asbunet.paper import PAPER_FIG7


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """PyTorch's parameter count: every tensor of `model.parameters()`, buffers excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_bn_statistics(model: nn.Module) -> int:
    """Number of BatchNorm running-mean and running-variance entries (Keras "non-trainable params")."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            total += m.running_mean.numel() + m.running_var.numel()
    return total


def count_keras_parameters(model: nn.Module) -> int:
    """Keras-style "Total params": the parameters plus the BatchNorm moving mean and variance."""
    return count_parameters(model) + count_bn_statistics(model)


def fp32_size_bytes(model: nn.Module) -> int:
    """Bytes of the state dict's floating-point tensors stored as fp32 (integer counters such as
    `num_batches_tracked` excluded): what a float32 weight file holds, headers aside."""
    return sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())


def count_macs(model: nn.Module, size: tuple[int, int] = (256, 256)) -> int:
    """Multiply-accumulates of one forward pass on a (1, 3, H, W) input, from `nn.Conv2d` and `nn.Linear` only.

    Counted with forward hooks on a copy of the model on the meta device, so no arithmetic runs and the model
    itself is left untouched. A convolution costs `out.numel() * in_channels / groups * kh * kw`, a linear layer
    `out.numel() * in_features`; biases, normalization, activations, pooling and resizing are not counted.
    """
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be two positive integers (H, W), got {size}")
    meta = copy.deepcopy(model).to("meta").eval()
    macs = 0

    def conv_hook(m: nn.Conv2d, inputs, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, inputs, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * m.in_features

    for m in meta.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        meta(torch.empty(1, 3, height, width, device="meta"))  # (1, K, H, W) on meta: shapes only
    return macs


def output_strides(model: nn.Module) -> list[int]:
    """Strides of the encoder's features, shallowest first (encoder contract: `model.encoder.strides`)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "strides"):
        raise ValueError(f"{type(model).__name__} has no `encoder.strides`; pass a model built by asbunet.create_model")
    return list(encoder.strides)


def encoder_conv_weights(model: nn.Module) -> int:
    """Sum of the encoder's convolution weights (biases excluded), comparable with Fig. 8's 1,362,624."""
    return sum(m.weight.numel() for m in model.encoder.modules() if isinstance(m, nn.Conv2d))


@dataclass(frozen=True)
class ModelSummary:
    """The figures `asbunet summary` prints for one model."""

    name: str
    params: int  # PyTorch count, no buffers
    keras_params: int  # params + BatchNorm running mean/var
    fp32_bytes: int
    macs: int
    size: tuple[int, int]
    strides: tuple[int, ...]
    encoder_conv_weights: int

    @property
    def fp32_mb(self) -> float:
        return self.fp32_bytes / 1e6

    @property
    def fp32_mib(self) -> float:
        return self.fp32_bytes / 2**20

    @property
    def paper(self) -> tuple[int, float] | None:
        """(params, MB) from Fig. 7, or None for variants the paper does not list."""
        return PAPER_FIG7.get(self.name)


def summarize(name: str, size: tuple[int, int] = (256, 256)) -> ModelSummary:
    """Builds the named model and measures it; MACs at an input of `size` (H, W)."""
    model = create_model(name).eval()
    return ModelSummary(
        name=name,
        params=count_parameters(model),
        keras_params=count_keras_parameters(model),
        fp32_bytes=fp32_size_bytes(model),
        macs=count_macs(model, size),
        size=tuple(size),
        strides=tuple(output_strides(model)),
        encoder_conv_weights=encoder_conv_weights(model),
    )


def format_summary(s: ModelSummary) -> str:
    """Multi-line report of one model."""
    macs_label = f"MACs at {s.size[0]}x{s.size[1]}"
    lines = [
        f"model                    {s.name}",
        f"parameters (PyTorch)     {s.params:,}",
        f"parameters (Keras-style) {s.keras_params:,}  (+ BatchNorm running mean/var)",
        f"fp32 size                {s.fp32_mb:.2f} MB ({s.fp32_mib:.2f} MiB), state dict incl. BN statistics",
        f"{macs_label:<25}{s.macs / 1e9:.3f} G",
        f"output strides           {', '.join(map(str, s.strides))}",
        f"encoder conv weights     {s.encoder_conv_weights:,}",
    ]
    if s.paper is not None:
        params, mb = s.paper
        lines.append(
            f"paper (Fig. 7)           {params:,} params, {mb} MB; ours/paper {s.params / params:.3f} (PyTorch), "
            f"{s.keras_params / params:.3f} (Keras-style)"
        )
    return "\n".join(lines)


def format_table(summaries: Sequence[ModelSummary]) -> str:
    """One table in the layout of Fig. 7 (name, params, size) plus MACs and the paper's figures beside ours."""
    size = summaries[0].size if summaries else (256, 256)
    header = (
        f"{'model':<22}{'params':>12}{'keras':>12}{'fp32 MB':>9}{'GMACs':>8}"
        f"{'paper params':>14}{'paper MB':>10}{'params/paper':>14}{'MB/paper':>10}"
    )
    lines = [f"MACs at {size[0]}x{size[1]}; params = PyTorch count, keras = params + BN running mean/var", header]
    lines.append("-" * len(header))
    for s in summaries:
        row = f"{s.name:<22}{s.params:>12,}{s.keras_params:>12,}{s.fp32_mb:>9.2f}{s.macs / 1e9:>8.3f}"
        if s.paper is None:
            row += f"{'-':>14}{'-':>10}{'-':>14}{'-':>10}"
        else:
            params, mb = s.paper
            row += f"{params:>14,}{mb:>10.1f}{s.params / params:>14.3f}{s.fp32_mb / mb:>10.3f}"
        lines.append(row)
    return "\n".join(lines)


def summarize_all(size: tuple[int, int] = (256, 256)) -> list[ModelSummary]:
    """`summarize` for every name of `asbunet.list_models()`."""
    return [summarize(name, size) for name in list_models()]
