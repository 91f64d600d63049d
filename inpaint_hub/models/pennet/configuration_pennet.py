"""Configuration of PEN-Net's pyramid-context encoder generator.

Defaults reproduce the authors' released generator (``researchmm/PEN-Net-for-Inpainting@pytorch``,
``model/pennet.py:InpaintGenerator``, cnum = 32; every released checkpoint -- Places2, CelebA-HQ, DTD, Facade -- uses
it): 10,231,538 parameters. See ``../shared/MODELS.md`` section 2.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...configuration_utils import InpaintConfig


NUM_LEVELS = 6  # PEN-Net's encoder has six stride-2 levels: the network needs H and W divisible by 2**6 = 64


class PENNetConfig(InpaintConfig):
    """Architecture of a PEN-Net generator and its spectral-norm patch discriminator.

    The encoder has six stride-2 levels with ``base_channels * (1, 2, 4, 8, 16, 16)`` channels, each capped at
    ``max_channels`` (the original: 32 ... 512, 512). The attention transfer runs from level 6 down to level 1;
    the decoder mirrors the encoder and emits an RGB image at every level (the "pyramid").
    """

    summary: ClassVar[str] = (
        "PEN-Net (Zeng et al., CVPR 2019): pyramid-context encoder with attention transfer; preset places2"
    )

    model_type: Literal["pennet"] = Field("pennet", description="Selects PENNetModel in AutoInpaintModel.")

    in_channels: Literal[4] = Field(4, description="Generator input: image with holes set to +1, and the mask.")
    out_channels: Literal[3] = Field(3, description="RGB output.")
    base_channels: int = Field(32, ge=4, description="Channels of the first encoder level [cnum].")
    max_channels: int = Field(
        512, ge=4, description="Cap on the channels of any level (the original's deepest two levels have 16 * cnum)."
    )
    softmax_scale: float = Field(
        10.0, gt=0, description="Scale of the cosine similarities before the attention softmax [softmax_scale]."
    )
    attention_patch_size: int = Field(
        3,
        ge=1,
        description=(
            "Size of the high-level patches compared by cosine similarity [ksize]; the deepest transfer (level 6 to "
            "5) always uses 1x1 patches, as the original."
        ),
    )
    fuse_dilations: tuple[int, ...] = Field(
        (1, 2, 4, 8),
        min_length=1,
        description=(
            "Dilations of the parallel 3x3 convolutions after each attention transfer (levels 1-4) [conv00..03]; "
            "each has channels / len(fuse_dilations) outputs and their concatenation replaces the feature."
        ),
    )
    attention_chunk_elements: int = Field(
        2**24,
        ge=1,
        description=(
            "Runtime memory bound, not architecture: the attention's score matrix is computed in blocks of whole "
            "rows, as many as fit in this many elements (64 MiB in float32) but at least one row. The original "
            "holds all (H/4*W/4)^2 scores at once (3.6 GB at 512x512); results agree with it to float rounding."
        ),
    )
    discriminator_base_channels: int = Field(
        64, ge=1, description="Discriminator channels of the first layer (64, 128, 256, 512 in the original)."
    )

    @model_validator(mode="after")
    def _check(self) -> PENNetConfig:
        for level, channels in enumerate(self.level_channels[:4], start=1):
            if channels % len(self.fuse_dilations):
                raise ValueError(
                    f"level {level} has {channels} channels, which the {len(self.fuse_dilations)} fuse convolutions "
                    "cannot split evenly; choose base_channels / fuse_dilations so that they divide"
                )
        if self.attention_patch_size % 2 == 0:
            raise ValueError(f"attention_patch_size must be odd, got {self.attention_patch_size}")
        return self

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channels of encoder levels 1..6."""
        mult = (1, 2, 4, 8, 16, 16)
        return tuple(min(self.base_channels * m, self.max_channels) for m in mult)

    @property
    def size_multiple(self) -> int:
        return 2**NUM_LEVELS

    @classmethod
    def places2(cls) -> PENNetConfig:
        """The released generator (all four released checkpoints share it): 10,231,538 parameters."""
        return cls()

    @classmethod
    def tiny(cls) -> PENNetConfig:
        """The same structure at a few thousand parameters, for tests and smoke runs."""
        return cls(base_channels=4, max_channels=16, discriminator_base_channels=8)
