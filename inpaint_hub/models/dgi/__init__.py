"""DGI (Suin, Purohit & Rajagopalan, ICCV 2021): the student network for inference; the teacher, the meta-networks and
the distillation losses for training (:mod:`.distillation_dgi`)."""

from .configuration_dgi import DGIConfig
from .distillation_dgi import (
    DGIChannelWeights,
    DGIDistillationLosses,
    DGIDistiller,
    DGIFeatureAdapter,
    DGIPixelWeights,
    DGITeacher,
    attention_transfer_loss,
    masked_channel_mse,
)
from .modeling_dgi import (
    DGIAdaptiveConv,
    DGIAttention,
    DGICompletionBlock,
    DGIDiscriminator,
    DGIGlobalLocalFusion,
    DGIModel,
    DGINetwork,
    DGIOutput,
    DGIResidualAttention,
    DGIResidualBlock,
    level_mask,
)


__all__ = [
    "DGIAdaptiveConv",
    "DGIAttention",
    "DGIChannelWeights",
    "DGICompletionBlock",
    "DGIConfig",
    "DGIDiscriminator",
    "DGIDistillationLosses",
    "DGIDistiller",
    "DGIFeatureAdapter",
    "DGIGlobalLocalFusion",
    "DGIModel",
    "DGINetwork",
    "DGIOutput",
    "DGIPixelWeights",
    "DGIResidualAttention",
    "DGIResidualBlock",
    "DGITeacher",
    "attention_transfer_loss",
    "level_mask",
    "masked_channel_mse",
]
