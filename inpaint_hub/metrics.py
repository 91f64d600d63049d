"""Image-quality metrics for inpainting: PSNR, SSIM, L1 in the hole, LPIPS, FID and KID.

Pixel metrics (:func:`psnr`, :func:`ssim`, :func:`l1_hole`, :func:`compute_image_metrics`) take **uint8** images,
``[H, W, 3]`` RGB or ``[H, W]`` grayscale (numpy arrays or PIL images of mode ``RGB`` / ``L``): the papers measure
the 8-bit images they save, so the result must be quantised first (:func:`inpaint_hub.image_processing.to_uint8`).
Masks are ``[H, W]``, any non-zero pixel is a hole (the "Pixels" convention of ``DESIGN.md``).

Learned metrics need weights that inpaint-hub does not ship and never downloads; the user passes the files:

* **LPIPS** (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
  https://github.com/richzhang/PerceptualSimilarity, BSD-2-Clause), version 0.1 with the AlexNet backbone.
  :class:`LPIPS` re-implements the network without torchvision and loads two files: torchvision's ImageNet AlexNet
  ``alexnet-owt-7be5be79.pth`` (BSD-3-Clause) and the LPIPS linear layers ``lpips/weights/v0.1/alex.pth``.
* **FID** (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium")
  and **KID** (Binkowski et al. 2018, "Demystifying MMD GANs") on the 2048-d pool features of the TensorFlow
  Inception-v3 graph of 2015-12-05, through NVIDIA's TorchScript export ``inception-2015-12-05.pt`` (the detector of
  StyleGAN2-ADA's metrics and of clean-fid). :class:`FIDKIDAccumulator` collects features of real and inpainted
  images and computes both.

Numbers are computed the way the common reference code does (cited at each function), but evaluation protocols differ
between papers (resizing, crops, which images), so compare numbers measured under the same protocol only.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from .image_processing import to_tensor
from .modeling_utils import WeightsMismatchError, state_dict_mismatches


logger = logging.getLogger(__name__)

__all__ = [
    "LPIPS",
    "SSIM_SETTINGS",
    "SSIM_WINDOW",
    "FIDKIDAccumulator",
    "InceptionFeatures",
    "MissingWeightsError",
    "compute_image_metrics",
    "frechet_distance",
    "kernel_inception_distance",
    "l1_hole",
    "lpips_distance",
    "psnr",
    "ssim",
]

DATA_RANGE = 255
"""Value range of the uint8 images every pixel metric works on."""

SSIM_SETTINGS: dict[str, Any] = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": DATA_RANGE,
    "K1": 0.01,
    "K2": 0.03,
}
"""Keyword arguments :func:`ssim` passes to ``skimage.metrics.structural_similarity`` (plus ``channel_axis=-1`` for
colour images).

They are the settings of Wang et al. 2004 ("Image Quality Assessment: From Error Visibility to Structural
Similarity", Sec. III-C): an 11x11 circular-symmetric Gaussian window of standard deviation 1.5 (skimage truncates the
Gaussian at 3.5 sigma, i.e. radius 5), population (not sample) covariances, ``K1 = 0.01``, ``K2 = 0.03`` and
``L = 255``. Colour SSIM is the mean of the three per-channel SSIMs. skimage filters with ``reflect`` borders and
averages the SSIM map over the pixels at least 5 away from the border. LaMa's evaluation
(``advimman/lama : saicinpainting/evaluation/losses/ssim.py``) uses the same window and constants but zero padding
and averages over the whole map, so its values differ slightly near the borders. Do not mutate this dict."""

_SSIM_TRUNCATE = 3.5  # skimage.metrics.structural_similarity's truncation of the Gaussian window (in sigmas)
SSIM_WINDOW = 2 * int(_SSIM_TRUNCATE * SSIM_SETTINGS["sigma"] + 0.5) + 1
"""Side of the SSIM window in pixels (11): images must be at least this large in both dimensions."""


class MissingWeightsError(ValueError):
    """A metric needs a weights file that was not given or does not exist.

    inpaint-hub never downloads metric networks; the message names the file, what it is and where to get it.
    """


# ------------------------------------------------------------------------------------------------- input checks


def _as_uint8_image(image: Any, name: str) -> np.ndarray:
    """Validate one image for the pixel metrics: uint8 ``[H, W, 3]`` or ``[H, W]`` (PIL ``RGB`` / ``L`` accepted)."""
    if isinstance(image, torch.Tensor):
        raise ValueError(
            f"{name} is a torch tensor; metrics take uint8 [H, W, 3] numpy arrays or PIL images: convert a model "
            "output with inpaint_hub.image_processing.to_uint8"
        )
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L"):
            raise ValueError(f"{name} is a PIL image of mode {image.mode!r}; convert it with .convert('RGB') first")
        image = np.asarray(image)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8, got dtype {array.dtype}: metrics are computed on uint8-quantised images like the "
            "papers; convert with inpaint_hub.image_processing.to_uint8"
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"{name} must be [H, W, 3] (RGB) or [H, W] (grayscale), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    return array


def _as_image_pair(prediction: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    prediction = _as_uint8_image(prediction, "prediction")
    target = _as_uint8_image(target, "target")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target must have the same shape, got {prediction.shape} and {target.shape}")
    return prediction, target


def _as_hole_mask(mask: Any, height: int, width: int) -> np.ndarray:
    """``[H, W]`` mask (bool, 0/1, 0/255 or a PIL image; non-zero = hole) -> bool ``[H, W]`` with at least one hole."""
    if isinstance(mask, torch.Tensor):
        raise ValueError("mask is a torch tensor; pass an [H, W] numpy array or PIL image (non-zero = hole)")
    array = np.asarray(mask)
    if array.shape != (height, width):
        raise ValueError(f"mask must be [H, W] = {(height, width)} like the images, got shape {array.shape}")
    if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"mask must be boolean or numeric, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError("mask contains NaN or infinite values")
    hole = array != 0
    if not hole.any():
        raise ValueError("mask has no hole pixels: hole-only metrics are undefined for an empty mask")
    return hole


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse == 0 else float(10.0 * np.log10(DATA_RANGE**2 / mse))


# ------------------------------------------------------------------------------------------------- pixel metrics


def psnr(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(255^2 / MSE)`` in dB, the MSE taken in float64.

    Args:
        prediction: uint8 ``[H, W, 3]`` (or ``[H, W]``) image, e.g. the inpainted result.
        target: uint8 image of the same shape, the ground truth.
        mask: ``None`` for the whole image, or an ``[H, W]`` mask (bool, 0/1 or 0/255; non-zero = hole) to measure
            the hole only: the MSE is then the mean over all channels of the hole pixels.

    Returns:
        PSNR in dB; ``inf`` when the compared pixels are identical. The whole-image value is
        ``skimage.metrics.peak_signal_noise_ratio(target, prediction, data_range=255)``; the hole value uses the same
        formula on the selected pixels.

    Raises:
        ValueError: for images that are not uint8 ``[H, W, 3]`` / ``[H, W]`` of one shape, a mask of another
            ``[H, W]``, or a mask without holes.
    """
    prediction, target = _as_image_pair(prediction, target)
    if mask is None:
        if np.array_equal(prediction, target):
            return float("inf")  # skimage would divide by zero (with a RuntimeWarning)
        return float(peak_signal_noise_ratio(target, prediction, data_range=DATA_RANGE))
    hole = _as_hole_mask(mask, *prediction.shape[:2])
    difference = prediction[hole].astype(np.float64) - target[hole].astype(np.float64)
    return _psnr_from_mse(float(np.mean(difference**2)))


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """Structural similarity of two whole images (Wang et al. 2004), with the pinned :data:`SSIM_SETTINGS`.

    Args:
        prediction: uint8 ``[H, W, 3]`` (or ``[H, W]``) image, at least :data:`SSIM_WINDOW` (11) pixels on each side.
        target: uint8 image of the same shape.

    Returns:
        SSIM in [-1, 1] (1 for identical images); for colour, the mean of the per-channel SSIMs.

    Raises:
        ValueError: for images that are not uint8 of one shape, or smaller than 11x11.
    """
    prediction, target = _as_image_pair(prediction, target)
    height, width = prediction.shape[:2]
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (the Gaussian window of sigma "
            f"{SSIM_SETTINGS['sigma']}), got {height}x{width}"
        )
    channel_axis = -1 if prediction.ndim == 3 else None
    return float(structural_similarity(target, prediction, channel_axis=channel_axis, **SSIM_SETTINGS))


def l1_hole(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error inside the hole, on the [0, 1] scale.

    Args:
        prediction: uint8 ``[H, W, 3]`` (or ``[H, W]``) image.
        target: uint8 image of the same shape.
        mask: ``[H, W]`` mask, non-zero = hole (must contain at least one hole pixel).

    Returns:
        ``mean(|prediction - target|) / 255`` over all channels of the hole pixels, in [0, 1].

    Raises:
        ValueError: as :func:`psnr`.
    """
    prediction, target = _as_image_pair(prediction, target)
    hole = _as_hole_mask(mask, *prediction.shape[:2])
    difference = np.abs(prediction[hole].astype(np.float64) - target[hole].astype(np.float64))
    return float(np.mean(difference) / DATA_RANGE)


def compute_image_metrics(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """All per-image pixel metrics of one inpainted image.

    Args:
        prediction: uint8 ``[H, W, 3]`` (or ``[H, W]``) inpainted image, at least 11x11.
        target: uint8 ground-truth image of the same shape.
        mask: ``[H, W]`` hole mask (non-zero = hole, at least one hole pixel).

    Returns:
        ``{"psnr": whole-image PSNR (dB), "psnr_hole": PSNR of the hole pixels (dB), "ssim": whole-image SSIM,
        "l1_hole": mean absolute error in the hole on the [0, 1] scale}``.
    """
    prediction, target = _as_image_pair(prediction, target)
    hole = _as_hole_mask(mask, *prediction.shape[:2])
    return {
        "psnr": psnr(prediction, target),
        "psnr_hole": psnr(prediction, target, hole),
        "ssim": ssim(prediction, target),
        "l1_hole": l1_hole(prediction, target, hole),
    }


# ------------------------------------------------------------------------------------------------- weights files

_ALEXNET_FILE_HELP = (
    "alexnet-owt-7be5be79.pth: torchvision's ImageNet AlexNet weights (IMAGENET1K_V1, BSD-3-Clause), the backbone "
    "of LPIPS; get it from https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (or from torchvision's cache "
    "on a machine where it was downloaded, ~/.cache/torch/hub/checkpoints/)"
)
_LPIPS_LIN_FILE_HELP = (
    "alex.pth: the learned linear layers of LPIPS v0.1 for AlexNet (Zhang et al. 2018, BSD-2-Clause), the file "
    "lpips/weights/v0.1/alex.pth of https://github.com/richzhang/PerceptualSimilarity (also inside the 'lpips' pip "
    "package)"
)
_INCEPTION_FILE_HELP = (
    "inception-2015-12-05.pt (TorchScript, as used by StyleGAN2-ADA's metrics and clean-fid): NVIDIA's export of the "
    "TensorFlow Inception-v3 graph of 2015-12-05 that FID and KID are defined on; download it elsewhere, e.g. from "
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt (StyleGAN3 "
    "publishes the same network as a pickle, https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/"
    "1/files/metrics/inception-2015-12-05.pkl, which is not this file)"
)


def _load_state_dict_file(path: str | os.PathLike, help_text: str) -> dict[str, torch.Tensor]:
    """Read a ``torch.save``'d state dict without running pickled code (``weights_only=True``)."""
    if not os.path.isfile(path):
        raise MissingWeightsError(f"weights file {os.fspath(path)!r} not found; it must be {help_text}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, struct.error, EOFError ... for bad files
        raise ValueError(
            f"{os.fspath(path)!r} could not be read as a PyTorch state dict with weights_only=True ({err}); it must "
            f"be {help_text}"
        ) from err
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise ValueError(
            f"{os.fspath(path)!r} is not a state dict (a mapping of names to tensors), got {type(state).__name__}; "
            f"it must be {help_text}"
        )
    return dict(state)


# ------------------------------------------------------------------------------------------------- LPIPS

_LPIPS_CHANNELS = (64, 192, 384, 256, 256)  # channels of AlexNet's relu1..relu5 (lpips.pretrained_networks.alexnet)
_LPIPS_TAPS = (1, 4, 7, 9, 11)  # indices in torchvision's alexnet().features of the ReLUs LPIPS reads
_LPIPS_MIN_SIZE = 31  # smallest side for which AlexNet's relu5 is non-empty (11x11/4 conv, two 3/2 max-pools)
_LPIPS_LIN_KEY = re.compile(r"^lin[0-4]\.model\.1\.weight$")


class LPIPS(nn.Module):
    """LPIPS v0.1, AlexNet variant (Zhang et al. 2018): a learned perceptual distance, 0 for identical images.

    The network is the one of ``lpips.LPIPS(net="alex", version="0.1")``
    (``richzhang/PerceptualSimilarity : lpips/lpips.py``), written without torchvision: images in [-1, 1] go through
    the ``ScalingLayer`` (``(x - shift) / scale``), torchvision's AlexNet ``features`` (same layer indices, so
    torchvision's state dict loads as is), and for each of relu1..relu5 the channel-normalised features of the two
    images are subtracted, squared, weighted by a non-negative 1x1 convolution ``lin{k}`` and averaged over space;
    the five layer scores are summed. Dropout of the ``lin`` layers is omitted (it is inactive in evaluation).

    The state dict holds ``features.{0,3,6,8,10}.{weight,bias}`` and ``lin{0..4}.model.1.weight``, the key names of
    the two released files. Build it with :meth:`from_files`; a bare ``LPIPS()`` has random weights. All parameters
    are frozen (``requires_grad=False``); gradients still flow to the input images, so it can be used as a loss.
    """

    def __init__(self) -> None:
        super().__init__()
        # lpips/lpips.py ScalingLayer: the ImageNet mean/std of torchvision expressed for inputs in [-1, 1]
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        # torchvision.models.alexnet().features, index for index
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(),  # 1 -> relu1
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            nn.ReLU(),  # 4 -> relu2
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(),  # 7 -> relu3
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(),  # 9 -> relu4
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(),  # 11 -> relu5
            nn.MaxPool2d(kernel_size=3, stride=2),  # 12 (unused by LPIPS)
        )
        # lpips.NetLinLayer: Sequential(Dropout(), Conv2d(C, 1, 1, bias=False)) -> key "lin{k}.model.1.weight"
        for index, channels in enumerate(_LPIPS_CHANNELS):
            self.add_module(f"lin{index}", _LPIPSLinear(channels))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, backbone_path: str | os.PathLike, lin_path: str | os.PathLike | None = None) -> LPIPS:
        """Load the released weights (read with ``torch.load(weights_only=True)``: no pickled code runs).

        Args:
            backbone_path: torchvision's AlexNet state dict ``alexnet-owt-7be5be79.pth`` (its ``classifier.*`` keys
                are ignored), or one file holding both ``features.*`` and ``lin{k}.model.1.weight`` (e.g. a saved
                ``LPIPS().state_dict()``), in which case ``lin_path`` is ``None``.
            lin_path: the LPIPS v0.1 linear layers ``lpips/weights/v0.1/alex.pth``.

        Returns:
            The model on the CPU in float32, in eval mode.

        Raises:
            MissingWeightsError: a file does not exist, or the linear layers (or the backbone) are in none of them.
            ValueError: a file is not a state dict readable with ``weights_only=True``.
            WeightsMismatchError: keys missing, unexpected, given twice, or of the wrong shape (all named).
        """
        model = cls()
        backbone = _load_state_dict_file(backbone_path, _ALEXNET_FILE_HELP)
        sources = [(backbone_path, backbone)]
        if lin_path is not None:
            sources.append((lin_path, _load_state_dict_file(lin_path, _LPIPS_LIN_FILE_HELP)))

        state: dict[str, torch.Tensor] = {}
        unexpected, duplicated = [], []
        for source_index, (path, tensors) in enumerate(sources):
            for key, value in tensors.items():
                if key.startswith("classifier.") and source_index == 0:
                    continue  # AlexNet's ImageNet classifier head: not part of LPIPS
                if not (key.startswith("features.") or _LPIPS_LIN_KEY.match(key)):
                    unexpected.append(f"{key} (in {os.fspath(path)})")
                elif key in state:
                    duplicated.append(key)
                else:
                    state[key] = value
        if not any(key.startswith("features.") for key in state):
            raise MissingWeightsError(
                f"no AlexNet backbone weights (features.*) in {os.fspath(backbone_path)!r}; LPIPS needs "
                f"{_ALEXNET_FILE_HELP}, and {_LPIPS_LIN_FILE_HELP}"
            )
        if not any(_LPIPS_LIN_KEY.match(key) for key in state):
            where = os.fspath(backbone_path) if lin_path is None else f"{os.fspath(backbone_path)} or {lin_path}"
            raise MissingWeightsError(
                f"no LPIPS linear layers (lin0.model.1.weight ... lin4.model.1.weight) in {where}; LPIPS needs two "
                f"files: {_ALEXNET_FILE_HELP}, and {_LPIPS_LIN_FILE_HELP}. Pass them as "
                "LPIPS.from_files(backbone_path, lin_path)"
            )

        mismatches = state_dict_mismatches(state, model.state_dict())
        mismatches["unexpected"] = unexpected + mismatches["unexpected"]
        mismatches["given twice"] = duplicated
        problems = [f"{label}: {', '.join(keys)}" for label, keys in mismatches.items() if keys]
        if problems:
            raise WeightsMismatchError(
                "LPIPS weights do not match the AlexNet LPIPS v0.1 layout; " + "; ".join(problems)
            )
        model.load_state_dict({key: value.to(torch.float32) for key, value in state.items()}, strict=True)
        if any((getattr(model, f"lin{k}").model[1].weight < 0).any() for k in range(len(_LPIPS_CHANNELS))):
            logger.warning("LPIPS lin weights contain negative values (the released v0.1 weights are non-negative)")
        return model

    def _relu_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features[: _LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if index in _LPIPS_TAPS:
                taps.append(x)
        return taps

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of each pair of images.

        Args:
            prediction: float ``[B, 3, H, W]`` RGB in [0, 1], ``H, W >= 31``.
            target: float ``[B, 3, H, W]`` RGB in [0, 1].

        Returns:
            ``[B]`` distances (>= 0 with the released weights; 0 for identical images), in the parameters' dtype.
        """
        if not (isinstance(prediction, torch.Tensor) and isinstance(target, torch.Tensor)):
            raise ValueError(
                "LPIPS takes two float tensors [B, 3, H, W] in [0, 1]; see lpips_distance for uint8 arrays"
            )
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction and target must have the same shape, got {tuple(prediction.shape)} and "
                f"{tuple(target.shape)}"
            )
        if prediction.ndim != 4 or prediction.shape[1] != 3:
            raise ValueError(f"LPIPS takes RGB batches [B, 3, H, W], got shape {tuple(prediction.shape)}")
        if not (prediction.is_floating_point() and target.is_floating_point()):
            raise ValueError(f"LPIPS takes float tensors in [0, 1], got {prediction.dtype} and {target.dtype}")
        if min(prediction.shape[-2:]) < _LPIPS_MIN_SIZE:
            raise ValueError(
                f"LPIPS (AlexNet) needs images of at least {_LPIPS_MIN_SIZE}x{_LPIPS_MIN_SIZE} pixels, got "
                f"{prediction.shape[-2]}x{prediction.shape[-1]}"
            )
        batch = prediction.shape[0]
        images = torch.cat([prediction, target]).to(self.shift.dtype)
        images = ((2 * images - 1) - self.shift) / self.scale  # [0, 1] -> [-1, 1] -> ScalingLayer
        distance = torch.zeros(batch, dtype=images.dtype, device=images.device)
        for index, features in enumerate(self._relu_features(images)):
            normalised = features / (torch.sqrt(torch.sum(features**2, dim=1, keepdim=True)) + 1e-10)
            squared_difference = (normalised[:batch] - normalised[batch:]) ** 2
            distance = distance + getattr(self, f"lin{index}")(squared_difference).mean(dim=(1, 2, 3))
        return distance


class _LPIPSLinear(nn.Module):
    """``lpips.NetLinLayer`` without its dropout: ``model[1]`` keeps the released key ``lin{k}.model.1.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def lpips_distance(model: LPIPS, prediction: np.ndarray, target: np.ndarray) -> float:
    """LPIPS distance of two uint8 images.

    Args:
        model: an :class:`LPIPS` (from :meth:`LPIPS.from_files`), on any device.
        prediction: uint8 ``[H, W, 3]`` (or ``[H, W]``, repeated to RGB) image, at least 31x31.
        target: uint8 image of the same shape.

    Returns:
        The distance (0 for identical images).
    """
    prediction, target = _as_image_pair(prediction, target)
    parameter = next(model.parameters())
    tensors = []
    for image in (prediction, target):
        rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
        tensors.append(to_tensor(rgb).to(device=parameter.device, dtype=parameter.dtype))
    with torch.no_grad():
        return float(model(*tensors)[0])


# ------------------------------------------------------------------------------------------------- FID / KID


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (FID on Inception features).

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))`` in float64, as ``pytorch-fid``'s
    ``calculate_frechet_distance`` (``mseitzer/pytorch-fid : src/pytorch_fid/fid_score.py``): when
    ``scipy.linalg.sqrtm`` of the product is not finite (singular product), ``1e-6 * I`` is added to both
    covariances; the real part of the square root is used (an imaginary part larger than 1e-3 on the diagonal is
    logged as a warning).

    Args:
        mu1: ``[D]`` mean of the first feature set.
        sigma1: ``[D, D]`` covariance of the first feature set.
        mu2: ``[D]`` mean of the second feature set.
        sigma2: ``[D, D]`` covariance of the second feature set.

    Returns:
        The distance (>= 0 up to rounding).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,):
        raise ValueError(f"mu1 and mu2 must be vectors of one length, got shapes {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"sigma1 and sigma2 must be [{dim}, {dim}] covariances, got shapes {sigma1.shape} and {sigma2.shape}"
        )
    difference = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular products are handled below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            eps = 1e-6
            logger.warning("FID: singular covariance product; adding %g to the diagonal of both covariances", eps)
            offset = np.eye(dim) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if imaginary > 1e-3:
            logger.warning(
                "FID: sqrtm has an imaginary component of %g on the diagonal; using the real part", imaginary
            )
        covmean = covmean.real
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_inception_distance(
    feats1: np.ndarray,
    feats2: np.ndarray,
    subset_size: int = 1000,
    subsets: int = 100,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with the kernel ``k(x, y) = (x . y / D + 1)^3``, over subsets.

    As StyleGAN2-ADA's ``compute_kid`` (``NVlabs/stylegan2-ada-pytorch : metrics/kernel_inception_distance.py``, after
    Binkowski et al. 2018): each of ``subsets`` rounds draws ``m = min(subset_size, N1, N2)`` rows without
    replacement from each set and computes ``(sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)) / (m (m - 1))
    - 2 sum_{i,j} k(x_i, y_j) / m^2``.

    Args:
        feats1: ``[N1, D]`` features (e.g. of real images).
        feats2: ``[N2, D]`` features (e.g. of inpainted images).
        subset_size: maximum subset size.
        subsets: number of random subsets.
        rng: numpy ``Generator`` (or seed) drawing the subsets.

    Returns:
        ``(mean, std)`` of the per-subset MMD^2 (population std over the subsets, as torch-fidelity reports it).
    """
    feats1, feats2 = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    if feats1.ndim != 2 or feats2.ndim != 2 or feats1.shape[1] != feats2.shape[1]:
        raise ValueError(f"features must be [N, D] with one D, got shapes {feats1.shape} and {feats2.shape}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, feats1.shape[0], feats2.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {feats1.shape[0]} and {feats2.shape[0]}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    dim = feats1.shape[1]
    values = np.empty(subsets, dtype=np.float64)
    for index in range(subsets):
        x = feats1[rng.choice(feats1.shape[0], m, replace=False)]
        y = feats2[rng.choice(feats2.shape[0], m, replace=False)]
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        within = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
        values[index] = within / (m * (m - 1)) - 2 * kxy.sum() / m**2
    return float(values.mean()), float(values.std())


class InceptionFeatures:
    """The FID / KID feature extractor: NVIDIA's TorchScript Inception-v3 ``inception-2015-12-05.pt``.

    The detector is called as StyleGAN2-ADA does, ``detector(images, return_features=True) -> [B, 2048]``, with RGB
    ``[B, 3, H, W]`` float32 values in 0..255; it converts to [-1, 1] and resizes to 299x299 (bilinear) itself, so
    images of any size go in unchanged. (clean-fid's default "clean" mode resizes with PIL bicubic first, so its
    numbers differ slightly.)

    Attributes:
        detector: the loaded module.
        device: where the detector runs.
        batch_size: at most this many equally-sized consecutive images are sent at once.
    """

    FILENAME = "inception-2015-12-05.pt"

    def __init__(self, detector: nn.Module, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.detector = detector.to(self.device).eval()
        self.batch_size = batch_size

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", batch_size: int = 32
    ) -> InceptionFeatures:
        """Load ``inception-2015-12-05.pt`` with ``torch.jit.load(path, map_location="cpu")``.

        The file is TorchScript: code as well as weights, which ``torch.jit.load`` runs. Only load files you trust.

        Args:
            path: the TorchScript file.
            device: where the detector runs.
            batch_size: see the class attributes.

        Raises:
            MissingWeightsError: the file does not exist (nothing is downloaded).
            ValueError: the file is not a TorchScript archive.
        """
        if not os.path.isfile(path):
            raise MissingWeightsError(
                f"Inception detector {os.fspath(path)!r} not found; FID/KID need {_INCEPTION_FILE_HELP}"
            )
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning
                )
                detector = torch.jit.load(os.fspath(path), map_location="cpu")
        except Exception as err:  # RuntimeError (not a zip / no TorchScript code), ValueError, ...
            raise ValueError(
                f"{os.fspath(path)!r} is not a TorchScript file ({err}); FID/KID need {_INCEPTION_FILE_HELP}"
            ) from err
        return cls(detector, device=device, batch_size=batch_size)

    def __call__(self, images: Any) -> np.ndarray:
        """Features of a set of images.

        Args:
            images: a list / tuple of uint8 ``[H, W, 3]`` (or ``[H, W]``, repeated to RGB) arrays or PIL images,
                possibly of different sizes; a uint8 numpy batch ``[B, H, W, 3]``; or a uint8 tensor ``[B, 3, H, W]``.

        Returns:
            float64 ``[N, D]`` features (``D = 2048`` for the Inception detector).
        """
        features = [self._run(batch) for batch in _batches(images, self.batch_size)]
        if not features:
            raise ValueError("no images given")
        return np.concatenate(features)

    @torch.no_grad()
    def _run(self, batch: torch.Tensor) -> np.ndarray:
        output = self.detector(batch.to(device=self.device, dtype=torch.float32), return_features=True)
        if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != batch.shape[0]:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"the detector must return [B, D] features for B = {batch.shape[0]} images, got {shape}")
        return output.detach().to(device="cpu", dtype=torch.float64).numpy()


def _batches(images: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 ``[B, 3, H, W]`` tensors of at most ``batch_size`` equally-sized consecutive images."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"a tensor of images must be uint8 [B, 3, H, W], got {images.dtype} of shape {tuple(images.shape)}"
            )
        yield from images.split(batch_size)
        return
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"a numpy batch of images must be [B, H, W, 3], got shape {images.shape}; pass a list")
    elif not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
        raise ValueError(f"images must be a list of uint8 [H, W, 3] arrays or a uint8 tensor, got {type(images)}")
    pending: list[np.ndarray] = []
    for index, image in enumerate(images):
        array = _as_uint8_image(image, f"image {index}")
        array = array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=-1)
        if pending and (array.shape != pending[0].shape or len(pending) == batch_size):
            yield _stack(pending)
            pending = []
        pending.append(array)
    if pending:
        yield _stack(pending)


def _stack(arrays: Iterable[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(list(arrays))).permute(0, 3, 1, 2)


class FIDKIDAccumulator:
    """Collects Inception features of real and inpainted (fake) images and computes FID and KID.

    Example::

        features = InceptionFeatures.from_file("inception-2015-12-05.pt")
        accumulator = FIDKIDAccumulator(features)
        for real, fake in pairs:
            accumulator.update_real([real])
            accumulator.update_fake([fake])
        accumulator.compute()  # {"fid": ..., "kid": ..., "kid_std": ..., "n": ...}

    Args:
        features: the feature extractor.
        kid_subset_size: KID subset size (capped at the number of images), 1000 as in StyleGAN2-ADA.
        kid_subsets: number of KID subsets, 100 as in StyleGAN2-ADA.
        seed: seed of the numpy ``Generator`` drawing the KID subsets (a fresh one per :meth:`compute`, so the
            result is reproducible).
    """

    def __init__(
        self, features: InceptionFeatures, kid_subset_size: int = 1000, kid_subsets: int = 100, seed: int = 0
    ) -> None:
        if kid_subset_size < 2 or kid_subsets < 1:
            raise ValueError(f"need kid_subset_size >= 2 and kid_subsets >= 1, got {kid_subset_size}, {kid_subsets}")
        self.features = features
        self.kid_subset_size = kid_subset_size
        self.kid_subsets = kid_subsets
        self.seed = seed
        self._real: list[np.ndarray] = []
        self._fake: list[np.ndarray] = []

    @property
    def num_real(self) -> int:
        return sum(len(block) for block in self._real)

    @property
    def num_fake(self) -> int:
        return sum(len(block) for block in self._fake)

    def update_real(self, images: Any) -> None:
        """Add ground-truth images (any form :meth:`InceptionFeatures.__call__` takes)."""
        self._real.append(self.features(images))

    def update_fake(self, images: Any) -> None:
        """Add inpainted images (any form :meth:`InceptionFeatures.__call__` takes)."""
        self._fake.append(self.features(images))

    def reset(self) -> None:
        """Forget all images."""
        self._real, self._fake = [], []

    def compute(self) -> dict[str, float | int]:
        """FID and KID between everything added so far.

        Returns:
            ``{"fid": FID, "kid": mean KID over the subsets, "kid_std": its std over the subsets,
            "n": min(number of real, number of fake images)}`` (both counts are equal in the usual evaluation, one
            inpainted result per real image).

        Raises:
            ValueError: fewer than 2 real or 2 fake images (no covariance).
        """
        if self.num_real < 2 or self.num_fake < 2:
            raise ValueError(
                f"FID/KID need at least 2 real and 2 fake images, got {self.num_real} and {self.num_fake}"
            )
        if self.num_real != self.num_fake:
            logger.warning("FID/KID on %d real and %d fake images", self.num_real, self.num_fake)
        real, fake = np.concatenate(self._real), np.concatenate(self._fake)
        if real.shape[1] != fake.shape[1]:
            raise ValueError(f"real and fake features differ in size: {real.shape[1]} and {fake.shape[1]}")
        if not (np.isfinite(real).all() and np.isfinite(fake).all()):
            raise ValueError("the detector returned NaN or infinite features")
        # pytorch-fid / StyleGAN2-ADA: sample covariance (ddof=1)
        fid = frechet_distance(
            real.mean(axis=0), np.cov(real, rowvar=False), fake.mean(axis=0), np.cov(fake, rowvar=False)
        )
        kid, kid_std = kernel_inception_distance(
            real, fake, self.kid_subset_size, self.kid_subsets, np.random.default_rng(self.seed)
        )
        return {"fid": fid, "kid": kid, "kid_std": kid_std, "n": min(self.num_real, self.num_fake)}
