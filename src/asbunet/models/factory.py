"""Named model variants: one plain dict of small factories, `create_model` and `list_models`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from asbunet.models import baselines
from asbunet.models.asbunet import ASBUNet, ASBUNetConfig


def _asbunet(**overrides) -> ASBUNet:
    return ASBUNet(ASBUNetConfig(**overrides))


def asbunet(**overrides) -> ASBUNet:
    """The paper's model: ReLU, output stride 16 (Fig. 7: 1,656,385 parameters)."""
    return _asbunet(**overrides)


def asbunet_swish(**overrides) -> ASBUNet:
    """Swish variant of the paper's model (Fig. 6)."""
    return _asbunet(**{"activation": "swish", **overrides})


def asbunet_os8(**overrides) -> ASBUNet:
    """Output stride 8: max pools after conv1 and ASBL3 only (Section III-C)."""
    return _asbunet(**{"output_stride": 8, **overrides})


def asbunet_050(**overrides) -> ASBUNet:
    """Width multiplier 0.5 on every encoder and decoder layer."""
    return _asbunet(**{"width_mult": 0.5, **overrides})


def asbunet_035(**overrides) -> ASBUNet:
    """Width multiplier 0.35 on every encoder and decoder layer."""
    return _asbunet(**{"width_mult": 0.35, **overrides})


def asbunet_035_s4(**overrides) -> ASBUNet:
    """`asbunet_035` whose decoder stops at stride 4 (no stride-2 block): for upsampling along the image's edges
    (`asbunet.inference.refine`)."""
    return _asbunet(**{"width_mult": 0.35, "decoder_stride": 4, **overrides})


def asbunet_035_s4_subpixel(**overrides) -> ASBUNet:
    """`asbunet_035_s4` whose head predicts at stride 2 from the decoder and conv1's features (`SubPixelHead`)."""
    return _asbunet(**{"width_mult": 0.35, "decoder_stride": 4, "subpixel_head": True, **overrides})


def asbunet_025(**overrides) -> ASBUNet:
    """Width multiplier 0.25 on every encoder and decoder layer."""
    return _asbunet(**{"width_mult": 0.25, **overrides})


MODELS: dict[str, Callable[..., nn.Module]] = {
    "asbunet": asbunet,
    "asbunet_swish": asbunet_swish,
    "asbunet_os8": asbunet_os8,
    "asbunet_050": asbunet_050,
    "asbunet_035": asbunet_035,
    "asbunet_035_s4": asbunet_035_s4,
    "asbunet_035_s4_subpixel": asbunet_035_s4_subpixel,
    "asbunet_025": asbunet_025,
    **baselines.MODELS,
}


def list_models() -> list[str]:
    """Names accepted by `create_model`, in registry order."""
    return list(MODELS)


def create_model(name: str, **overrides) -> nn.Module:
    """Builds the named model; `overrides` replace fields of its config (e.g. `activation="swish"`).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones) or an unknown config field.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    try:
        return MODELS[name](**overrides)
    except TypeError as err:
        raise ValueError(f"bad option for model {name!r}: {err}") from None
