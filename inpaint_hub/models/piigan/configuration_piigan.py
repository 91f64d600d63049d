"""Configuration of PiiGAN's generator, style extractor and local/global WGAN critics.

Defaults reproduce the original (``vivitsai/PiiGAN@dcdd3be``, ``model.py`` and ``setting.yml``; no weights were ever
released): a generator with cnum = 32, 3,603,942 parameters; the style extractor on the 64x64 local patch (36,230,528,
almost all in its two dense heads); the local critic on the 64x64 patch (4,314,753) and the global critic on the
128x128 image (2,684,289). See ``../shared/MODELS.md`` section 4.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...configuration_utils import InpaintConfig


class PiiGANConfig(InpaintConfig):
    """Architecture of a PiiGAN generator (DeepFill-v1-style coarse + refinement networks with a style map ``z``).

    The generator is fully convolutional; the extractor and the critics end in dense layers, so they take inputs of
    fixed sizes: ``style_size`` for the local patch (the hole's bounding box, resized) and ``global_size`` for the
    whole training image.
    """

    summary: ClassVar[str] = (
        "PiiGAN (Cai & Wei, IEEE Access 2020): pluralistic inpainting, a style map z -> several fills per input"
    )

    model_type: Literal["piigan"] = Field("piigan", description="Selects PiiGANModel.")

    in_channels: Literal[6] = Field(6, description="Generator input: image with holes zeroed, z, ones, mask.")
    out_channels: Literal[3] = Field(3, description="RGB output.")
    base_channels: int = Field(32, ge=4, description="The original's cnum (32).")
    softmax_scale: float = Field(10.0, gt=0, description="Contextual attention: scale of the cosine similarities.")
    attention_patch_size: int = Field(3, ge=1, description="Contextual attention: size of the matched patches.")
    fuse: bool = Field(True, description="Contextual attention's score propagation (the original's fuse=True).")
    fuse_kernel_size: int = Field(3, ge=1, description="Size of the identity kernel of the score propagation.")
    style_size: int = Field(
        64,
        ge=16,
        description=(
            "Side of the style extractor's input patch and of the style map it outputs (the original's 64x64 local "
            "patch -> 64 * 64 = 4096 values of z). A multiple of 16."
        ),
    )
    extractor_base_channels: int = Field(
        64, ge=1, description="Style extractor: channels of its first convolution (64, 128, 256, 256 in the original)."
    )
    discriminator_base_channels: int = Field(
        64,
        ge=1,
        description="Critics: channels of the first convolution (local 64..512, global 64..256 in the original).",
    )
    global_size: int = Field(
        128,
        ge=16,
        description="Side of the (square) image the global critic sees: the training resolution. A multiple of 16.",
    )

    @model_validator(mode="after")
    def _check(self) -> PiiGANConfig:
        if self.base_channels % 2:
            raise ValueError(f"base_channels must be even (conv16 has base_channels / 2), got {self.base_channels}")
        for name in ("attention_patch_size", "fuse_kernel_size"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")
        for name in ("style_size", "global_size"):
            if getattr(self, name) % 16:
                raise ValueError(
                    f"{name} must be a multiple of 16 (four stride-2 convolutions), got {getattr(self, name)}"
                )
        return self

    @property
    def size_multiple(self) -> int:
        # Two stride-2 levels, and the attention matches on a further 2x downsampled grid: H/8.
        return 8

    @classmethod
    def celeba(cls) -> PiiGANConfig:
        """The paper's configuration (CelebA, 128 px images, 64 px hole): a 3,603,942-parameter generator."""
        return cls()

    @classmethod
    def tiny(cls) -> PiiGANConfig:
        """The same structure at ~0.23 M parameters (generator), for tests and smoke runs."""
        return cls(
            base_channels=8, style_size=16, extractor_base_channels=4, discriminator_base_channels=4, global_size=32
        )
