"""Models of the package: ASBU-Net variants and the paper's baselines."""

from asbunet.models.factory import MODELS, create_model, list_models

__all__ = ["MODELS", "create_model", "list_models"]
