from .configuration_piigan import PiiGANConfig
from .modeling_piigan import PiiGANConv, PiiGANDiscriminator, PiiGANModel, PiiGANOutput, PiiGANStyleExtractor


__all__ = ["PiiGANConfig", "PiiGANConv", "PiiGANDiscriminator", "PiiGANModel", "PiiGANOutput", "PiiGANStyleExtractor"]
