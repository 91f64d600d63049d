from .configuration_opencv import OpenCVInpaintConfig
from .modeling_opencv import OpenCVInpaintModel


__all__ = ["OpenCVInpaintConfig", "OpenCVInpaintModel"]
