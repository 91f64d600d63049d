"""Configuration of DGI (Distillation-Guided Image Inpainting): the inpainting network (IN, the student), and the
settings the auxiliary network (AN, the teacher) and the distillation losses read from it.

The authors released no code and the paper's architectural numbers could not be retrieved, so every width, depth and
weight below is **our choice** unless it says otherwise; each follows the proposal of ``../shared/DGI_SPEC.md`` (the
gap register, section 10) and cites the section. What the paper attests (the spec's [PAPER] / [SEC] items): one
encoder-decoder design for IN and AN; a completion block at the end of every encoder level; cross-distillation with a
conv meta-network gamma and non-negative channel weights rho from a fully-connected meta-network; self-distillation
from deeper to shallower levels with channel weights phi; a matrix-multiplication non-local attention (1x1 query/key
convolutions, softmax over all pixels) in both decoders, whose hole rows are distilled with per-pixel weights
t = sigmoid(conv); a pixel-adaptive global-local feature fusion.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...configuration_utils import InpaintConfig


class DGIConfig(InpaintConfig):
    """Architecture of a DGI network (the student IN; the teacher AN is built from the same config) and the loss
    weights of its training objective.

    The backbone (``DGI_SPEC.md`` section 3.2, an EdgeConnect-style generator without skip connections, so that the
    teacher cannot copy its input and its features stay meaningful targets)::

        level 1:  reflect-pad 3, conv 7x7 (in -> C), InstanceNorm (``norm``), ReLU, res blocks, [completion block]
        level k:  conv 4x4 stride 2 (doubling the width up to max_channels), IN, ReLU, res blocks, [completion block]
                  (k = 2 .. num_downsamples + 1)
        level L:  bottleneck_blocks res blocks (dilation bottleneck_dilation), [completion block]
        attention at H / 2^num_downsamples, then the global-local fusion
        decoder:  num_downsamples x [transposed conv 4x4 stride 2 (halving the width), IN, ReLU]
                  -> reflect-pad 3, conv 7x7 -> 3, tanh

    so the distilled levels are L = num_downsamples + 2 (4 by default: 64, 128, 256 channels at H, H/2, H/4, and the
    256-channel bottleneck at H/4). Completion blocks exist in the student only.
    """

    summary: ClassVar[str] = (
        "DGI (Suin et al., ICCV 2021): a student inpainter distilled from a teacher that sees the whole image; "
        "completion blocks, non-local attention"
    )

    model_type: Literal["dgi"] = Field("dgi", description="Selects DGIModel.")

    # ---- backbone (DGI_SPEC 3.2: our choices)
    base_channels: int = Field(64, ge=4, description="Width of the first encoder level (spec 3.2: 64).")
    max_channels: int = Field(256, ge=4, description="Widths double per downsampling up to this (spec 3.2: 256).")
    num_downsamples: int = Field(
        2, ge=1, le=4, description="Stride-2 encoder levels; the attention runs at H / 2^n (spec 3.2: 2, at 64x64)."
    )
    level_blocks: int = Field(1, ge=0, description="Residual blocks at the end of each resolution level (spec: 1).")
    bottleneck_blocks: int = Field(6, ge=1, description="Residual blocks of the bottleneck level (spec 3.2: 6).")
    bottleneck_dilation: int = Field(2, ge=1, description="Dilation of the bottleneck's residual blocks (spec: 2).")
    norm: Literal["instance", "none"] = Field(
        "instance",
        description=(
            "Normalisation after every convolution but the last (spec 3.2: InstanceNorm, EdgeConnect's; the paper's "
            "is not known). 'none' for short trainings: without skip connections, InstanceNorm removes each "
            "image's colour statistics at every level, and our first small students filled with one flat colour for a "
            "thousand steps (train/configs/dgi-cpu-small.yaml)."
        ),
    )

    # ---- adaptive completion block (DGI_SPEC 3.3)
    completion_blocks: bool = Field(
        True, description="Put an adaptive completion block at the end of every encoder level (the paper's CB)."
    )
    completion_kernel_size: int = Field(
        3, ge=1, description="Taps of the adaptive convolution: k x k (spec 3.3: 3, i.e. K = 9)."
    )
    completion_groups: int = Field(
        8, ge=1, description="Channel groups sharing a per-pixel kernel (spec 3.3: 8; 1 = one kernel for all)."
    )

    # ---- attention and fusion (DGI_SPEC 3.4, 3.5)
    attention_reduction: int = Field(8, ge=1, description="Query/key channels = width / this (spec 3.4: 8).")
    attention_chunk_size: int = Field(
        1024,
        ge=1,
        description=(
            "Query rows per block of the non-local attention: the N x N affinity is never built whole (at 512 px "
            "and H/4, N = 16384 would be 1 GiB per image); the result does not depend on it."
        ),
    )
    global_local_fusion: bool = Field(
        True,
        description=(
            "Pixel-adaptive global-local fusion of the attention output with a local conv branch (spec 3.5). "
            "Without it: d + gamma * attention(d), gamma a learned scalar starting at 0."
        ),
    )

    discriminator_channels: int = Field(
        64, ge=1, description="PatchGAN critic: width of its first convolution (64, 128, 256, 512; spec 5.4)."
    )

    # ---- training objective (DGI_SPEC 5.1, 5.2: all our choices; read by train/dgi.py as its defaults)
    weight_l1: float = Field(
        1.0, ge=0, description="L1 over every pixel, or the known pixels when weight_l1_hole is set (spec 5.1: 1)."
    )
    weight_l1_hole: float | None = Field(
        None,
        ge=0,
        description=(
            "L1 over the hole's pixels, split from weight_l1's (spec 5.1's optional PConv split, 6:1): each part is "
            "normalised by the pixel count of the whole image, as PConv's. None: one L1 over every pixel."
        ),
    )
    weight_perceptual: float = Field(
        0.1, ge=0, description="VGG19 perceptual loss (spec 5.1: 0.1; needs VGG weights, else train with 0)."
    )
    weight_style: float = Field(250.0, ge=0, description="VGG19 Gram (style) loss (spec 5.1: 250; needs VGG weights).")
    weight_adversarial: float = Field(0.1, ge=0, description="Non-saturating GAN loss on the composite (spec: 0.1).")
    weight_cross: float = Field(1.0, ge=0, description="Cross-distillation, teacher -> student encoder (spec: 1).")
    weight_self: float = Field(1.0, ge=0, description="Self-distillation, deeper -> shallower level (spec: 1).")
    weight_attention: float = Field(1.0, ge=0, description="Attention-transfer distillation (spec: 1).")

    @model_validator(mode="after")
    def _check(self) -> DGIConfig:
        if self.max_channels < self.base_channels:
            raise ValueError(f"max_channels ({self.max_channels}) must be >= base_channels ({self.base_channels})")
        if self.completion_kernel_size % 2 == 0:
            raise ValueError(f"completion_kernel_size must be odd, got {self.completion_kernel_size}")
        for width in self.level_channels:
            if width % self.completion_groups:
                raise ValueError(
                    f"every level's width must divide into completion_groups={self.completion_groups}; "
                    f"level widths {list(self.level_channels)}"
                )
        if self.level_channels[-1] < self.attention_reduction:
            raise ValueError(
                f"attention_reduction {self.attention_reduction} leaves no query/key channel at width "
                f"{self.level_channels[-1]}"
            )
        return self

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Width of each distilled encoder level: the resolution levels, then the bottleneck (as wide as the last)."""
        widths = [min(self.base_channels * 2**k, self.max_channels) for k in range(self.num_downsamples + 1)]
        return (*widths, widths[-1])

    @property
    def level_strides(self) -> tuple[int, ...]:
        """Downsampling factor of each distilled level relative to the input (1, 2, ..., 2^n, 2^n)."""
        strides = [2**k for k in range(self.num_downsamples + 1)]
        return (*strides, strides[-1])

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downsamples

    @property
    def min_size(self) -> int:
        # The bottleneck's reflection padding (the dilation) needs more than `dilation` pixels per side there; we ask
        # for at least 4 (a conservative floor that keeps the attention's map from being trivially small).
        return self.size_multiple * max(4, self.bottleneck_dilation + 1)

    # ------------------------------------------------------------------------------------------------- presets

    @classmethod
    def paper(cls) -> DGIConfig:
        """The spec's proposal for 256 px training (``DGI_SPEC.md`` 3.2): 64/128/256 channels, attention at 64 x 64."""
        return cls()

    @classmethod
    def small(cls) -> DGIConfig:
        """A narrower network for training on a CPU (bundled checkpoints): 24/48/96 channels, 4 bottleneck blocks."""
        return cls(base_channels=24, max_channels=96, bottleneck_blocks=4, discriminator_channels=32)

    @classmethod
    def tiny(cls) -> DGIConfig:
        """The same structure at a few thousand parameters, for tests."""
        return cls(
            base_channels=8, max_channels=16, bottleneck_blocks=1, completion_groups=2, attention_reduction=4,
            attention_chunk_size=16, discriminator_channels=4,
        )  # fmt: skip
