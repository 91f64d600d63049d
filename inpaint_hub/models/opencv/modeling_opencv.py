"""OpenCV's classical inpainting (``cv2.inpaint``) behind the :class:`InpaintModel` interface.

Wrapping the baselines as models (instead of special cases in the demo, ``eval`` and ``run``) means they get
everything a network gets: the pipeline's padding, HD strategies, dilation, feathering and compositing, the same
evaluation code, and a place side by side with the networks in every tool. They have no weights.

References: Telea, JGT 2004 (``telea``); Bertalmio et al., CVPR 2001 (``ns``); OpenCV ``photo`` module, Apache-2.0.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ...modeling_utils import InpaintModel, InpaintOutput
from .configuration_opencv import OpenCVInpaintConfig


_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


class OpenCVInpaintModel(InpaintModel):
    """``cv2.inpaint`` as an inpainting model (CPU, no parameters, deterministic).

    The image is quantised to 8 bits (``round(255 * x)``; exact for images that came from 8-bit files, as through
    :class:`~inpaint_hub.pipeline.InpaintPipeline`) because ``cv2.inpaint`` works on 8-bit images. Both methods treat
    channels alike, so RGB order needs no conversion. ``generator`` is accepted and ignored.
    """

    config_class = OpenCVInpaintConfig

    def __init__(self, config: OpenCVInpaintConfig) -> None:
        super().__init__(config)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> InpaintOutput:
        """Inpaint ``image`` ``[B, 3, H, W]`` in [0, 1] where ``mask`` ``[B, 1, H, W]`` is 1.

        Returns:
            :class:`InpaintOutput` on the input's device and dtype; ``predicted`` equals ``inpainted`` (the method
            only writes hole pixels).
        """
        self._check_inputs(image, mask)
        flag = _FLAGS[self.config.method]
        pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        holes = (mask.detach() > 0.5).to(torch.uint8).cpu().numpy()[:, 0]
        # Blank the hole first: cv2.inpaint leaves pixels it cannot reach (an all-hole mask) as they were, and the
        # contract is that a model never sees what is under the hole.
        pixels = pixels * (1 - holes[..., None])
        filled = np.stack(
            [cv2.inpaint(np.ascontiguousarray(p), np.ascontiguousarray(h), self.config.radius, flag)
             for p, h in zip(pixels, holes)]
        )  # fmt: skip
        predicted = torch.from_numpy(filled).permute(0, 3, 1, 2).to(device=image.device, dtype=image.dtype) / 255
        hole = (mask > 0.5).to(image.dtype)
        inpainted = hole * predicted + (1 - hole) * image
        return InpaintOutput(inpainted=inpainted, predicted=inpainted)
