from .configuration_piigan import PiiGANConfig
from .modeling_piigan import (
    PiiGANConv,
    PiiGANDiscriminator,
    PiiGANModel,
    PiiGANOutput,
    PiiGANStyleExtractor,
    crop_patches,
    hole_boxes,
    paste_patches,
)


__all__ = [
    "PiiGANConfig",
    "PiiGANConv",
    "PiiGANDiscriminator",
    "PiiGANModel",
    "PiiGANOutput",
    "PiiGANStyleExtractor",
    "crop_patches",
    "hole_boxes",
    "paste_patches",
]
