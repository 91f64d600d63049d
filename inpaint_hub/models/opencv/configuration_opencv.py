"""Configuration of the classical OpenCV inpainting baselines (``cv2.inpaint``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...configuration_utils import InpaintConfig


class OpenCVInpaintConfig(InpaintConfig):
    """A classical, non-learned inpainting method from OpenCV's ``photo`` module.

    ``telea``: Telea, "An Image Inpainting Technique Based on the Fast Marching Method", JGT 2004.
    ``ns``: Bertalmio, Bertozzi and Sapiro, "Navier-Stokes, Fluid Dynamics, and Image and Video Inpainting", CVPR
    2001. Both fill the hole from its border inwards and know nothing about semantics: they are the quality floor
    every trained model has to beat.
    """

    summary: ClassVar[str] = (
        "OpenCV classical inpainting, no weights: Telea (JGT 2004) and Navier-Stokes (Bertalmio et al., CVPR 2001); "
        "built in as cv2-telea, cv2-ns"
    )

    model_type: Literal["opencv"] = Field("opencv", description="Selects OpenCVInpaintModel in AutoInpaintModel.")
    method: Literal["telea", "ns"] = Field(
        "telea", description="cv2.INPAINT_TELEA (fast marching) or cv2.INPAINT_NS (Navier-Stokes)."
    )
    radius: float = Field(
        3.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description=(
            "inpaintRadius: the neighbourhood, in pixels, each filled pixel is estimated from. 3 is the value of "
            "OpenCV's own inpainting sample (samples/python/inpaint.py). OpenCV rounds it to a whole number and "
            "clamps it to [1, 100], so 0.4 behaves like 1."
        ),
    )

    @classmethod
    def telea(cls) -> OpenCVInpaintConfig:
        """The ``cv2-telea`` baseline."""
        return cls(method="telea")

    @classmethod
    def ns(cls) -> OpenCVInpaintConfig:
        """The ``cv2-ns`` baseline."""
        return cls(method="ns")
