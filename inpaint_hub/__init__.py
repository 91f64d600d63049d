"""inpaint-hub: five image-inpainting papers behind one Hugging Face-style API."""

from .configuration_utils import InpaintConfig
from .modeling_utils import (
    BUILTIN_MODELS,
    AutoInpaintModel,
    InpaintModel,
    InpaintOutput,
    WeightsMismatchError,
    get_config_class,
    get_model_class,
    list_model_types,
)
from .models.deepfill_v2 import DeepFillV2Config, DeepFillV2Discriminator, DeepFillV2Model, DeepFillV2Output
from .models.dgi import DGIConfig, DGIDiscriminator, DGIModel, DGIOutput, DGITeacher
from .models.lama import LamaConfig, LamaDiscriminator, LamaModel
from .models.opencv import OpenCVInpaintConfig, OpenCVInpaintModel
from .models.pennet import PENNetConfig, PENNetDiscriminator, PENNetModel, PENNetOutput
from .models.piigan import PiiGANConfig, PiiGANDiscriminator, PiiGANModel, PiiGANOutput, PiiGANStyleExtractor
from .pipeline import InpaintPipeline, InpaintPipelineOutput


__version__ = "0.1.0"

__all__ = [
    "BUILTIN_MODELS",
    "AutoInpaintModel",
    "DeepFillV2Config",
    "DeepFillV2Discriminator",
    "DeepFillV2Model",
    "DeepFillV2Output",
    "DGIConfig",
    "DGIDiscriminator",
    "DGIModel",
    "DGIOutput",
    "DGITeacher",
    "InpaintConfig",
    "InpaintModel",
    "InpaintOutput",
    "InpaintPipeline",
    "InpaintPipelineOutput",
    "LamaConfig",
    "LamaDiscriminator",
    "LamaModel",
    "OpenCVInpaintConfig",
    "OpenCVInpaintModel",
    "PENNetConfig",
    "PENNetDiscriminator",
    "PENNetModel",
    "PENNetOutput",
    "PiiGANConfig",
    "PiiGANDiscriminator",
    "PiiGANModel",
    "PiiGANOutput",
    "PiiGANStyleExtractor",
    "WeightsMismatchError",
    "get_config_class",
    "get_model_class",
    "list_model_types",
]
