from .configuration_lama import LamaConfig
from .modeling_lama import LamaDiscriminator, LamaModel


__all__ = ["LamaConfig", "LamaDiscriminator", "LamaModel"]
