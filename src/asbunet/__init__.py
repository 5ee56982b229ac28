"""asbunet: person segmentation with ASBU-Net (Bansal et al., "Atrous Space Bender U-Net")."""

from asbunet.models import create_model, list_models
from asbunet.predict import Segmenter

__version__ = "0.1.0"
__all__ = ["Segmenter", "create_model", "list_models", "__version__"]
