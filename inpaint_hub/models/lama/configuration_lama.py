"""Configuration of LaMa's FFC-ResNet generator.

Defaults reproduce the released **big-lama** checkpoint: the ``generator:`` block of
``advimman/lama:configs/training/big-lama.yaml`` (same block in the released ``big-lama/config.yaml``), plus the
``FFCResNetGenerator`` defaults that block does not override (``saicinpainting/training/modules/ffc.py``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...configuration_utils import InpaintConfig


class LamaConfig(InpaintConfig):
    """Architecture of a LaMa generator (``FFCResNetGenerator``) and its NLayer patch discriminator.

    Original names (``config.yaml`` ``generator:`` block) are given in brackets; the converter maps them.
    """

    summary: ClassVar[str] = (
        "LaMa (Suvorov et al., WACV 2022): Fast Fourier Convolutions; presets big-lama, lama-fourier"
    )

    model_type: Literal["lama"] = Field("lama", description="Selects LamaModel in AutoInpaintModel.")

    in_channels: int = Field(
        4, ge=1, description="Generator input channels: masked RGB image + mask [input_nc]. Must be 4 for LaMa."
    )
    out_channels: int = Field(3, ge=1, description="Generator output channels (RGB) [output_nc].")
    base_channels: int = Field(64, ge=1, description="Channels after the 7x7 stem convolution [ngf].")
    num_downsampling: int = Field(
        3,
        ge=1,
        description="Stride-2 convolutions before the residual blocks; sizes must divide 2**this [n_downsampling].",
    )
    num_residual_blocks: int = Field(
        18, ge=0, description="FFC residual blocks in the bottleneck: 18 for big-lama, 9 for lama-fourier [n_blocks]."
    )
    max_channels: int = Field(1024, ge=1, description="Cap on the channel count at any depth [max_features].")
    global_ratio: float = Field(
        0.75,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of the bottleneck channels in the global (spectral) branch of every FFC "
            "[resnet_conv_kwargs.ratio_gin = ratio_gout]; the last downsampling layer splits its output this way."
        ),
    )
    discriminator_base_channels: int = Field(64, ge=1, description="Discriminator channels of the first layer [ndf].")
    discriminator_num_layers: int = Field(
        4, ge=1, description="Discriminator depth: stride-2 layers + 1 [discriminator.n_layers]."
    )

    @model_validator(mode="after")
    def _check(self) -> LamaConfig:
        if self.in_channels != self.out_channels + 1:
            raise ValueError(
                f"in_channels ({self.in_channels}) must be out_channels + 1 ({self.out_channels + 1}): "
                "the generator input is the masked image concatenated with the mask"
            )
        bottleneck = min(self.max_channels, self.base_channels * 2**self.num_downsampling)
        if self.global_ratio > 0 and int(bottleneck * self.global_ratio) in (0, bottleneck):
            raise ValueError(
                f"global_ratio {self.global_ratio} leaves no channel in one branch of the "
                f"{bottleneck}-channel bottleneck"
            )
        if int(bottleneck * self.global_ratio) % 2:
            raise ValueError(
                f"the global branch ({int(bottleneck * self.global_ratio)} channels) must have an even number of "
                "channels: the spectral transform halves it"
            )
        return self

    @property
    def bottleneck_channels(self) -> int:
        return min(self.max_channels, self.base_channels * 2**self.num_downsampling)

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downsampling

    @classmethod
    def big_lama(cls) -> LamaConfig:
        """big-lama (18 FFC blocks, 50,975,875 generator parameters): ``configs/training/big-lama.yaml``."""
        return cls()

    @classmethod
    def lama_fourier(cls) -> LamaConfig:
        """lama-fourier (9 FFC blocks, 27,048,835 parameters): ``configs/training/generator/ffc_resnet_075.yaml``."""
        return cls(num_residual_blocks=9)

    @classmethod
    def tiny(cls) -> LamaConfig:
        """A few-thousand-parameter model with the same structure, for tests and smoke runs."""
        return cls(
            base_channels=8,
            num_downsampling=2,
            num_residual_blocks=1,
            discriminator_base_channels=8,
            discriminator_num_layers=2,
        )
