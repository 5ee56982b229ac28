"""asbunet: person segmentation with ASBU-Net (Bansal et al., "Atrous Space Bender U-Net")."""

from asbunet.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "__version__"]
