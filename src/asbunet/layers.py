"""Layer helpers shared by every model of the package.

`ConvNormAct` follows torchvision's `Conv2dNormActivation`: `padding=None` means
`dilation * (k - 1) // 2`, and `norm_layer` / `act_layer` are callables where `None` skips the layer.
BatchNorm uses the paper's decay of 0.99 (Section IV-B), i.e. PyTorch momentum 0.01.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

BN_MOMENTUM = 0.01  # Keras decay 0.99 (Section IV-B) == PyTorch momentum 0.01

BatchNorm2d = partial(nn.BatchNorm2d, momentum=BN_MOMENTUM)

ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": partial(nn.ReLU, inplace=True),
    "swish": partial(nn.SiLU, inplace=True),
}


def get_activation(name: str) -> Callable[..., nn.Module]:
    """Returns the activation constructor for `name` ("relu" or "swish")."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a width to the nearest multiple of `divisor`, never below 90% of `value` (MobileNet rule)."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm -> activation, the unit every convolution of the paper uses."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: Callable[..., nn.Module] | None = BatchNorm2d,
        act_layer: Callable[..., nn.Module] | None = ACTIVATIONS["relu"],
        bias: bool | None = None,
    ):
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(*layers)
        self.out_channels = out_channels


class SeparableConvNormAct(nn.Sequential):
    """A depthwise `kernel_size` convolution then a pointwise 1x1 one, each Conv -> BatchNorm -> activation
    (MobileNetV1's depthwise-separable convolution): a factorized stand-in for a dense `ConvNormAct`, with about
    `1 / out_channels + 1 / kernel_size**2` of its multiply-adds."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        act_layer: Callable[..., nn.Module] | None = ACTIVATIONS["relu"],
    ):
        super().__init__(
            ConvNormAct(
                in_channels, in_channels, kernel_size, dilation=dilation, groups=in_channels, act_layer=act_layer
            ),
            ConvNormAct(in_channels, out_channels, 1, act_layer=act_layer),
        )
        self.out_channels = out_channels


def init_weights_kaiming(module: nn.Module) -> None:
    """Kaiming-He initialization of every convolution (Section IV-B), unit BatchNorm, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resize_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of a feature map to `size` (H, W); a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return nn.functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
