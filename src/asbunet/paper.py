"""The paper's own figures, written out to be set beside ours: Fig. 6 (accuracy and computation time), Fig. 7
(parameters and model size) and the convolution weights of the layer table of Fig. 8."""

from __future__ import annotations

# Fig. 6, "Accuracy and Computation Time Comparison": (accuracy, computation time in ms on an RTX 2080 SUPER).
PAPER_FIG6: dict[str, tuple[float, float]] = {
    "mobilenetv2_unet_100": (0.8976, 12.98),
    "mobilenetv2_unet_130": (0.9089, 15.28),
    "mobilenetv2_unet_140": (0.9100, 15.80),
    "efficientnet_unet_b0": (0.9042, 16.40),
    "efficientnet_unet_b1": (0.9108, 19.68),
    "efficientnet_unet_b2": (0.9148, 21.54),
    "asbunet": (0.9244, 7.46),
    "asbunet_swish": (0.9293, 9.68),
}


PAPER_MACHINE = "NVIDIA GeForce RTX 2080 SUPER, Intel Core i9-9900K; input resolution not stated"


LABELS = {  # model name -> row name of Fig. 6 and 7
    "mobilenetv2_unet_100": "MobileNetV2-UNet x1.0",
    "mobilenetv2_unet_130": "MobileNetV2-UNet x1.3",
    "mobilenetv2_unet_140": "MobileNetV2-UNet x1.4",
    "efficientnet_unet_b0": "EfficientNet-UNet B0",
    "efficientnet_unet_b1": "EfficientNet-UNet B1",
    "efficientnet_unet_b2": "EfficientNet-UNet B2",
    "asbunet": "ASBU-Net ReLU",
    "asbunet_swish": "ASBU-Net Swish",
}

# Fig. 7, "Total params and Model Size Comparison": (total params, model size in MB).
PAPER_FIG7: dict[str, tuple[int, float]] = {
    "mobilenetv2_unet_100": (1_057_013, 4.7),
    "mobilenetv2_unet_130": (1_577_717, 6.8),
    "mobilenetv2_unet_140": (1_786_565, 7.6),
    "efficientnet_unet_b0": (1_448_056, 6.3),
    "efficientnet_unet_b1": (1_808_860, 7.9),
    "efficientnet_unet_b2": (2_075_728, 9.0),
    "asbunet": (1_656_385, 6.9),
    "asbunet_swish": (1_656_385, 6.9),
}


# Sum of the convolution weights listed in Fig. 8 (no biases, no normalization).
FIG8_CONV_WEIGHTS = 1_362_624
