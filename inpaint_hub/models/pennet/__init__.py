from .configuration_pennet import PENNetConfig
from .modeling_pennet import PENNetDiscriminator, PENNetModel, PENNetOutput, attention_transfer


__all__ = ["PENNetConfig", "PENNetDiscriminator", "PENNetModel", "PENNetOutput", "attention_transfer"]
