"""The paper's baselines (Fig. 6, 7): MobileNetV2-UNet x1.0/1.3/1.4 and EfficientNet-UNet B0/B1/B2.

Backbones come from torchvision, truncated where they reach output stride 16 (the project's paper notes show
that this matches the paper's parameter counts), and wrapped in the same encoder contract as ASB-Net: `forward`
returns a stride-ordered list of features and the encoder exposes `out_channels` and `strides`. The decoder is the
ASBU-Net decoder (`asbunet.models.unet`) with widths chosen per backbone so that each model lands within 10% of
the paper's total parameter count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from asbunet.layers import ACTIVATIONS, init_weights_kaiming
from asbunet.models.unet import DecoderStage, EncoderDecoder


class TorchvisionEncoder(nn.Module):
    """Runs `features` and returns the outputs of the blocks listed in `taps` (the last block of each stride)."""

    def __init__(self, features: nn.Sequential, taps: Sequence[int]):
        super().__init__()
        self.features = features[: taps[-1] + 1]
        self.taps = tuple(taps)
        with torch.no_grad():
            was_training = self.training
            self.eval()
            outs = self(torch.zeros(1, 3, 64, 64))
            self.train(was_training)
        self.out_channels = [o.shape[1] for o in outs]
        self.strides = [64 // o.shape[-1] for o in outs]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                features.append(x)  # strides 2, 4, 8, 16
        return features


def _load_backbone_weights(features: nn.Module, path: str | Path, prefix: str = "features.") -> None:
    """Loads ImageNet weights saved by torchvision (`model.state_dict()`) into a truncated feature stack."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = features.state_dict()
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix) :] in own}
    if not picked:
        raise ValueError(f"{path} holds no '{prefix}*' tensors matching this backbone")
    features.load_state_dict(picked, strict=False)


class BaselineUNet(EncoderDecoder):
    """A torchvision backbone (stride 16) with the package's U-Net decoder."""

    def __init__(
        self,
        features: nn.Sequential,
        taps: Sequence[int],
        stages: Sequence[DecoderStage],
        head_channels: int,
        num_classes: int = 1,
        backbone_weights: str | Path | None = None,
    ):
        act = ACTIVATIONS["relu"]
        super().__init__(TorchvisionEncoder(features, taps), stages, head_channels, num_classes, act)
        init_weights_kaiming(self)
        if backbone_weights is not None:
            _load_backbone_weights(self.encoder.features, backbone_weights)


def _stages(*widths: tuple[int, int, int, int]) -> tuple[DecoderStage, ...]:
    return tuple(DecoderStage(*w) for w in widths)


# Last block of each stride in torchvision's feature stacks: strides 2, 4, 8, 16.
MOBILENETV2_TAPS = (1, 3, 6, 13)
EFFICIENTNET_TAPS = (1, 2, 3, 5)

# Decoder widths per backbone, (skip, up, squeeze, expand) from stride 2 to stride 8: the ASBU-Net decoder scaled
# so that each model's total lands within 2% of Fig. 7 (`asbunet summary --all` prints both).
MOBILENETV2_DECODERS = {
    1.0: _stages((24, 40, 32, 40), (32, 64, 40, 64), (40, 128, 80, 128)),
    1.3: _stages((24, 48, 40, 48), (40, 72, 48, 72), (48, 144, 96, 144)),
    1.4: _stages((24, 48, 40, 48), (40, 80, 48, 80), (48, 152, 104, 152)),
}
EFFICIENTNET_DECODERS = {
    "b0": _stages((24, 48, 32, 48), (32, 64, 48, 64), (48, 136, 88, 136)),
    "b1": _stages((24, 48, 32, 48), (32, 64, 48, 64), (48, 136, 88, 136)),
    "b2": _stages((24, 48, 40, 48), (40, 72, 48, 72), (48, 144, 96, 144)),
}
EFFICIENTNET_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "b0": tvm.efficientnet_b0,
    "b1": tvm.efficientnet_b1,
    "b2": tvm.efficientnet_b2,
}


def mobilenetv2_unet(width_mult: float, num_classes: int = 1, backbone_weights=None) -> BaselineUNet:
    """MobileNetV2-UNet with torchvision's `mobilenet_v2(width_mult=...)` up to output stride 16."""
    features = tvm.mobilenet_v2(weights=None, width_mult=width_mult).features
    stages = MOBILENETV2_DECODERS[width_mult]
    return BaselineUNet(features, MOBILENETV2_TAPS, stages, 32, num_classes, backbone_weights)


def efficientnet_unet(variant: str, num_classes: int = 1, backbone_weights=None) -> BaselineUNet:
    """EfficientNet-UNet with torchvision's `efficientnet_b0..b2` up to output stride 16."""
    features = EFFICIENTNET_BUILDERS[variant](weights=None).features
    stages = EFFICIENTNET_DECODERS[variant]
    return BaselineUNet(features, EFFICIENTNET_TAPS, stages, 32, num_classes, backbone_weights)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mobilenetv2_unet_100": lambda **kw: mobilenetv2_unet(1.0, **kw),
    "mobilenetv2_unet_130": lambda **kw: mobilenetv2_unet(1.3, **kw),
    "mobilenetv2_unet_140": lambda **kw: mobilenetv2_unet(1.4, **kw),
    "efficientnet_unet_b0": lambda **kw: efficientnet_unet("b0", **kw),
    "efficientnet_unet_b1": lambda **kw: efficientnet_unet("b1", **kw),
    "efficientnet_unet_b2": lambda **kw: efficientnet_unet("b2", **kw),
}
