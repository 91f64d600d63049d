from .configuration_deepfill_v2 import DeepFillV2Config
from .modeling_deepfill_v2 import (
    DeepFillV2Discriminator,
    DeepFillV2Model,
    DeepFillV2Output,
    contextual_attention,
    nn_downsample_tf,
    pad_same,
    tf_same_padding,
)


__all__ = [
    "DeepFillV2Config",
    "DeepFillV2Discriminator",
    "DeepFillV2Model",
    "DeepFillV2Output",
    "contextual_attention",
    "nn_downsample_tf",
    "pad_same",
    "tf_same_padding",
]
