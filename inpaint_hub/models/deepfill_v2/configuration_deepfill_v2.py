"""Configuration of DeepFill v2's gated-convolution generator and SN-PatchGAN discriminator.

Defaults reproduce the authors' released Places2 generator (``JiahuiYu/generative_inpainting@v2.0.0``,
``inpaint_model.py:build_inpaint_net``, cnum = 48; the CelebA-HQ release shares it): 4,052,478 parameters, and the
SN-PatchGAN discriminator (``build_sn_patch_gan_discriminator``, cnum = 64): 5,946,816. See ``../shared/MODELS.md``
section 3.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...configuration_utils import InpaintConfig


class DeepFillV2Config(InpaintConfig):
    """Architecture of a DeepFill v2 generator (coarse network + refinement network with contextual attention).

    Channel widths are multiples of ``base_channels`` (the original's ``cnum``): a gated convolution with ``2n``
    filters outputs ``n`` channels (features and gates split in half), so the widest layers output
    ``2 * base_channels``.
    """

    summary: ClassVar[str] = (
        "DeepFill v2 (Yu et al., ICCV 2019): gated convolutions, contextual attention; preset places2"
    )

    model_type: Literal["deepfill_v2"] = Field("deepfill_v2", description="Selects DeepFillV2Model.")

    in_channels: Literal[5] = Field(5, description="Generator input: image with holes zeroed, ones, mask.")
    out_channels: Literal[3] = Field(3, description="RGB (or BGR, see channel_order) output.")
    base_channels: int = Field(48, ge=4, description="The original's cnum (48 for the released models).")
    channel_order: Literal["rgb", "bgr"] = Field(
        "bgr",
        description=(
            "Channel order the network was trained on. The TF original read its training images with OpenCV, so "
            "its weights expect BGR; 'bgr' reverses the channels on the way in and back on the way out. The API "
            "always takes and returns RGB."
        ),
    )
    fuse: bool = Field(
        True,
        description=(
            "Contextual attention's score propagation (a 3x3 identity kernel over the score matrix, along both "
            "axes), as the TF original. The widely used PyTorch port of the official weights turns it off."
        ),
    )
    attention_mask_resize: Literal["two_step", "one_step"] = Field(
        "two_step",
        description=(
            "How the hole mask reaches the attention's H/8 grid (nearest neighbour, align_corners=True): the TF "
            "original goes H -> H/4 -> H/8 ('two_step'); the PyTorch port of the official weights goes H -> H/8 "
            "directly ('one_step'). It only changes which patches near the hole's border count as valid sources."
        ),
    )
    softmax_scale: float = Field(10.0, gt=0, description="Scale of the cosine similarities before the softmax.")
    attention_patch_size: int = Field(3, ge=1, description="Size of the patches matched by the attention [ksize].")
    fuse_kernel_size: int = Field(3, ge=1, description="Size of the identity kernel of the score propagation.")
    discriminator_base_channels: int = Field(
        64, ge=1, description="SN-PatchGAN channels of the first layer (64, 128, 256, 256, 256, 256 in the original)."
    )

    @model_validator(mode="after")
    def _check(self) -> DeepFillV2Config:
        if self.base_channels % 4:
            raise ValueError(
                f"base_channels must be a multiple of 4 (the last gated layers output base_channels / 4 channels), "
                f"got {self.base_channels}"
            )
        for name in ("attention_patch_size", "fuse_kernel_size"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")
        return self

    @property
    def size_multiple(self) -> int:
        # Two stride-2 levels, and the attention matches on a further 2x downsampled grid: H/8.
        return 8

    @classmethod
    def places2(cls) -> DeepFillV2Config:
        """The released generator (Places2 and CelebA-HQ share it): 4,052,478 parameters."""
        return cls()

    @classmethod
    def tiny(cls) -> DeepFillV2Config:
        """The same structure at a few thousand parameters, for tests and smoke runs."""
        return cls(base_channels=8, discriminator_base_channels=4)
