"""Training data: an image-folder dataset with augmentation and training masks, a resumable sampler, sample grids.

:class:`InpaintDataset` turns folders of photos into ``{"image", "mask", "index"}`` items for every model in the
library: ``image`` float32 ``[3, size, size]`` RGB in [0, 1] and ``mask`` float32 ``[1, size, size]`` with 1 = hole
(the tensor contract of ``DESIGN.md``), the mask drawn by :func:`inpaint_hub.masks.make_mask`.

**Determinism (what makes resuming exact).** Every random draw of an item -- crop position, flip, jitter, mask --
comes from one generator, ``numpy.random.default_rng([seed, epoch, index])``, created afresh for the item. An item
is therefore a pure function of ``(seed, epoch, index)`` and of the dataset's options: the same whatever the number
of DataLoader workers, the process rank, the order in which items are asked for, or how often. No global random
state (``random``, ``numpy.random``, ``torch``) is read or changed.

:class:`ResumableRandomSampler` gives the matching visiting order: a permutation drawn from
``numpy.random.default_rng([seed, epoch])``, identical on every process. Accelerate shards the batches of the
prepared DataLoader across processes and ``accelerator.skip_first_batches`` skips what a resumed run has already
seen, so ``(seed, epoch, batches done)`` is all a checkpoint has to remember. A typical loop::

    dataset = InpaintDataset("data/places/train", size=256, mask_protocol="lama-train", seed=args.seed)
    sampler = ResumableRandomSampler(dataset, seed=args.seed)  # its set_epoch forwards to the dataset
    loader = accelerator.prepare(DataLoader(dataset, batch_size=10, sampler=sampler, num_workers=4, drop_last=True))
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)  # before iterating: new order *and* new augmentation / masks
        batches = accelerator.skip_first_batches(loader, done) if epoch == start_epoch else loader
        for batch in batches: ...

Call the sampler's ``set_epoch`` yourself: Accelerate's ``DataLoaderShard.set_epoch`` forwards to a sampler that has
one and then does *not* call the dataset's (its ``elif``), which is why the sampler forwards it. The epoch lives in a
small shared-memory tensor, so DataLoader workers -- persistent ones included -- see a new epoch as soon as
``set_epoch`` returns (call it before starting the epoch's iteration, not during it).

**Validation.** ``crop="center"``, ``flip=False``, ``jitter=False`` and an evaluation protocol (``lama-thick-256``,
``pennet-center``...) give a fixed validation set: every item depends on ``(seed, epoch, index)`` only, and a
validation dataset never has ``set_epoch`` called, so it stays at epoch 0. ``set_epoch`` changes the random draws
(augmentation and masks) and nothing else: the files, their order and the length never change.

Pixels come from :func:`inpaint_hub.image_processing.load_image` (strict decoding, EXIF orientation applied,
decompression-bomb guard, the library's mode table), reduced to 8-bit RGB: grayscale is repeated over three channels,
alpha is dropped (the stored colours are used as they are), 16-bit and float images are quantised to 8 bits.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from inpaint_hub.image_processing import DEFAULT_MAX_PIXELS, load_image, resize_mask, to_uint8
from inpaint_hub.masks import get_mask_protocol, make_mask
from inpaint_hub.utils import atomic_write


logger = logging.getLogger(__name__)

__all__ = [
    "DATASET_EXTENSIONS",
    "CropMode",
    "InpaintDataset",
    "ResumableRandomSampler",
    "find_dataset_files",
    "make_grid",
    "save_image_grid",
]

DATASET_EXTENSIONS = (".jpeg", ".jpg", ".png", ".webp")
"""File suffixes :class:`InpaintDataset` collects (compared case-insensitively)."""

CropMode = Literal["random", "center", "resize", "fit"]
_CROP_MODES = ("random", "center", "resize", "fit")

# Jitter ranges (``jitter=True``): LaMa's ``distortions`` transform (configs/training/data/abl-04-256-mh-dist.yaml,
# MODELS.md §1.3: IAAAffine2 scale 0.7-1.3 / rotate +-40 deg, RandomBrightnessContrast(0.2, 0.2),
# HueSaturationValue(5, 30, 5)), reduced: milder geometry, no perspective / optical distortion / CLAHE.
JITTER_ROTATION_DEGREES = 10.0
"""Largest rotation of the geometric jitter, degrees (LaMa: 40)."""
JITTER_SCALE = (0.9, 1.1)
"""Zoom range of the geometric jitter (LaMa: 0.7-1.3)."""
JITTER_BRIGHTNESS = 0.2
"""Largest additive brightness shift, in [0, 1] units (LaMa's RandomBrightnessContrast brightness_limit 0.2)."""
JITTER_CONTRAST = 0.2
"""Largest relative contrast change (LaMa's contrast_limit 0.2)."""
JITTER_SATURATION = 0.3
"""Largest relative saturation change (LaMa's HueSaturationValue sat_shift_limit 30 of 255, made a factor)."""
JITTER_HUE_DEGREES = 5.0
"""Largest hue rotation, degrees (LaMa's hue_shift_limit 5 is in OpenCV's 0-180 units, i.e. 10 degrees)."""
JITTER_PROBABILITY = 0.5
"""Each jitter group (geometry; brightness/contrast; saturation/hue) is applied with this probability, the
albumentations default ``p`` of the three transforms LaMa uses."""

_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, what PIL's convert("L") uses


# ------------------------------------------------------------------------------------------------- finding files


def _as_roots(roots: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(roots, (str, os.PathLike)):
        return [Path(roots)]
    if isinstance(roots, Sequence) and all(isinstance(r, (str, os.PathLike)) for r in roots):
        return [Path(r) for r in roots]
    raise TypeError(f"roots must be a path or a sequence of paths, got {roots!r}")


def _walk(root: Path) -> list[Path]:
    """Image files below ``root``, recursively (following symlinked folders once), hidden files and folders skipped,
    sorted by their path relative to ``root``."""
    found: list[tuple[str, Path]] = []
    seen_dirs: set[str] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_dirs:  # a symlink loop, or a folder reached twice through links
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in DATASET_EXTENSIONS:
                continue
            path = Path(folder, name)
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return [path for _, path in sorted(found, key=lambda item: item[0])]


def find_dataset_files(roots: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The image files of one or more roots, as :class:`InpaintDataset` lists them (nothing is opened).

    Each root is a folder, searched recursively for ``.jpg``, ``.jpeg``, ``.png`` and ``.webp`` files (any case),
    skipping hidden files and folders (names starting with ``.``, e.g. macOS ``._*`` files), or one image file
    (taken whatever its suffix). Files are sorted by their path relative to their root, roots in the order given; a
    file reached twice (overlapping roots, symlinks) is kept at its first place only.

    Raises:
        FileNotFoundError: a root does not exist.
        TypeError: ``roots`` is not a path or a sequence of paths.
    """
    files: list[Path] = []
    seen: set[str] = set()
    for root in _as_roots(roots):
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = _walk(root)
        else:
            raise FileNotFoundError(f"dataset root {root} does not exist")
        for path in candidates:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                files.append(path)
    return files


def _header_problem(path: Path, min_size: int | None) -> tuple[str | None, bool]:
    """Read the header of ``path`` (and let Pillow verify what it cheaply can).

    Returns:
        ``(problem, too_small)``: a description of why the file is unreadable (``None`` when it looks fine), and
        whether its shorter side is below ``min_size``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(path) as image:
                width, height = image.size
                image.verify()  # PNG: walks every chunk and checks its CRC; most formats: a no-op
    except Exception as err:  # noqa: BLE001 - any failure to read a header means the file cannot be used
        return f"{type(err).__name__}: {err}", False
    if width < 1 or height < 1:
        return f"the image is empty ({width}x{height})", False
    if width * height > DEFAULT_MAX_PIXELS:
        return f"too many pixels ({width}x{height} > {DEFAULT_MAX_PIXELS}, the decompression-bomb guard)", False
    return None, min_size is not None and min(width, height) < min_size


# ------------------------------------------------------------------------------------------------- the dataset


def _check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class InpaintDataset(torch.utils.data.Dataset):
    """Images from folders, augmented and paired with a training mask.

    Files: see :func:`find_dataset_files`. Unless ``check_files=False``, every file's header is read once here
    (``PIL.Image.open`` + ``verify``); unreadable files are skipped with one warning each. A file that still fails
    to decode when an item is built is skipped with one warning (per process) and the item of the next index is
    returned instead (wrapping around), so a bad file never stops training and the substitute is the same
    everywhere.

    Augmentation of item ``index``, all from ``rng = numpy.random.default_rng([seed, epoch, index])``, in this order:

    1. **crop** (``crop``):

       * ``"random"`` (training): an image whose shorter side is below ``size`` is first enlarged (bicubic) so that
         its shorter side is ``size``; then a uniformly placed ``size x size`` window is cut out (top, then left,
         each ``rng.integers``). Larger images are cropped at their native resolution, never downscaled (no
         LaMa-style random rescale).
       * ``"center"`` (validation; CelebA-style faces): the shorter side is resized (bicubic, antialiased when
         shrinking) to ``size``, then the centred ``size x size`` window is kept. No random draw.
       * ``"resize"`` (PEN-Net): the whole image is resized to ``size x size`` (aspect ratio not kept). No draw.
       * ``"fit"``: the shorter side is resized to ``size`` as in ``"center"``, then the window is placed uniformly
         as in ``"random"``: the scale at which ``inpaint-hub eval --resize N --hd-strategy resize --resize-limit
         size`` shows images to a model, with a random position.

    2. **jitter** geometry (``jitter=True``, probability 0.5): rotation by ``U(-10, 10)`` degrees and zoom by
       ``U(0.9, 1.1)`` about the centre, with ``PIL.Image.transform`` (affine, bicubic) on the crop padded by
       mirror reflection (``numpy.pad(mode="reflect")``) by half its side, so every output pixel samples real,
       mirrored content and no constant fill ever appears (the worst corner needs ``0.79 x size`` from the centre,
       the padded image reaches ``size``).
    3. **flip** (``flip=True``): horizontal flip with probability 0.5 (one ``rng.random()``).
    4. **jitter** colour (``jitter=True``), in float [0, 1], clipped to [0, 1] after each step:

       * with probability 0.5: contrast ``x <- m + a (x - m)``, ``a ~ U(0.8, 1.2)``, ``m`` the crop's mean luma,
         then brightness ``x <- x + b``, ``b ~ U(-0.2, 0.2)`` (LaMa's RandomBrightnessContrast(0.2, 0.2), with the
         contrast taken about the mean rather than about 0 so that it clips less);
       * with probability 0.5: saturation ``x <- L + s (x - L)``, ``s ~ U(0.7, 1.3)``, ``L`` the pixel's luma
         (ITU-R 601-2), then a hue rotation by ``U(-5, 5)`` degrees in OpenCV's float HSV (LaMa's
         HueSaturationValue(5, 30, 5), reduced; no value shift, brightness covers it).

       The jitter's nine numbers (three coins, six parameters) are always drawn, applied or not.
    5. **mask**: ``make_mask(mask_protocol, size, size, rng)``, with the same ``rng``; with ``mask_size``, drawn at
       ``mask_size x mask_size`` and brought to ``size`` with :func:`~inpaint_hub.image_processing.resize_mask`
       (max-pooling, as the pipeline's ``resize`` HD strategy brings a mask down).

    Args:
        roots: a folder, an image file, or a sequence of them.
        size: side of the square output, pixels.
        mask_protocol: a name from :func:`inpaint_hub.masks.list_mask_protocols`. Protocol parameters are in pixels:
            use one designed for ``size`` to reproduce a paper's hole statistics.
        crop: ``"random"``, ``"center"``, ``"resize"`` or ``"fit"`` (above).
        flip: random horizontal flips.
        jitter: LaMa-style mild geometric and colour jitter (above).
        seed: non-negative integer, the first word of every item's generator.
        min_size: skip images whose shorter side (from the header) is below this; ``None`` keeps every size.
        mask_size: draw the masks at this size and resize them to ``size``: a protocol designed for one size keeps
            its hole statistics at another (``lama-train`` covers 32 % of a 256 px image on average, 61 % of a 64
            px one when drawn there). ``None``: drawn at ``size``.
        check_files: read every header at construction (skips corrupt files early; about a millisecond per
            file). ``False`` skips that scan for very large datasets (``min_size`` still reads headers): bad files
            are then only found, and skipped, when an item is built.

    Attributes:
        files: the images, in index order.
        roots: the roots as given, as paths.

    Raises:
        ValueError: no usable image under ``roots``, an unknown mask protocol, a bad ``size`` / ``crop`` / ``seed``
            / ``min_size``.
        FileNotFoundError: a root does not exist.
    """

    def __init__(
        self,
        roots: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        size: int = 256,
        mask_protocol: str = "lama-train",
        crop: CropMode = "random",
        flip: bool = True,
        jitter: bool = False,
        seed: int = 0,
        min_size: int | None = None,
        mask_size: int | None = None,
        check_files: bool = True,
    ) -> None:
        self.size = _check_int(size, "size", minimum=1)
        self.mask_size = None if mask_size is None else _check_int(mask_size, "mask_size", minimum=1)
        get_mask_protocol(mask_protocol)  # ValueError listing the known protocols
        self.mask_protocol = mask_protocol
        if crop not in _CROP_MODES:
            raise ValueError(f"crop must be one of {', '.join(map(repr, _CROP_MODES))}, got {crop!r}")
        self.crop = crop
        self.flip = bool(flip)
        self.jitter = bool(jitter)
        self.seed = _check_int(seed, "seed", minimum=0)
        self.min_size = None if min_size is None else _check_int(min_size, "min_size", minimum=1)
        self.roots = _as_roots(roots)

        candidates = find_dataset_files(self.roots)
        files: list[Path] = []
        too_small = 0
        if check_files or self.min_size is not None:
            for path in candidates:
                problem, small = _header_problem(path, self.min_size)
                if problem is not None:
                    logger.warning("skipping unreadable image %s: %s", path, problem)
                elif small:
                    too_small += 1
                else:
                    files.append(path)
        else:
            files = candidates
        if too_small:
            logger.info("skipped %d image(s) whose shorter side is below min_size=%d", too_small, self.min_size)
        if not files:
            where = ", ".join(str(r) for r in self.roots)
            found = f"{len(candidates)} image file(s) found, none usable" if candidates else "no image files found"
            raise ValueError(
                f"the dataset is empty: {found} under {where} (searched recursively for "
                f"{', '.join(DATASET_EXTENSIONS)}, hidden files skipped"
                + (f", min_size={self.min_size}" if self.min_size is not None else "")
                + ")"
            )
        self.files: list[Path] = files
        # In shared memory, so that DataLoader workers (persistent ones too) see set_epoch from the main process.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._bad: set[int] = set()

    # -------------------------------------------------------------------------------------------- epoch

    @property
    def epoch(self) -> int:
        """The epoch the random draws use (0 until :meth:`set_epoch`)."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s random draws (augmentation and masks) from now on; files, order and length stay.

        Args:
            epoch: non-negative integer.
        """
        self._epoch.fill_(_check_int(epoch, "epoch", minimum=0))

    # -------------------------------------------------------------------------------------------- items

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.files)} images, size={self.size}, mask_protocol={self.mask_protocol!r}, "
            f"crop={self.crop!r}, flip={self.flip}, jitter={self.jitter}, seed={self.seed}, epoch={self.epoch})"
        )

    def read(self, index: int) -> Image.Image:
        """The decoded image of file ``index`` before augmentation: 8-bit RGB, EXIF orientation applied.

        Raises:
            ValueError: the file cannot be decoded.
            FileNotFoundError: it has disappeared.
        """
        decoded = load_image(self.files[index])
        color = decoded.color
        if color.dtype == np.uint8 and decoded.max_value == 255:
            rgb = color if color.ndim == 3 else np.repeat(color[..., None], 3, axis=-1)
        else:  # 16-bit or float: to 8 bits as the library quantises (rint, ties to even)
            rgb = np.rint(np.clip(decoded.to_model_rgb(), 0.0, 1.0) * np.float32(255)).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(rgb))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index`` at the current epoch.

        Returns:
            ``{"image": float32 [3, size, size] in [0, 1], "mask": float32 [1, size, size] in {0, 1} (1 = hole),
            "index": int}``; ``index`` is the file actually used (the next readable one when file ``index`` cannot
            be decoded).

        Raises:
            IndexError: ``index`` out of range.
            RuntimeError: no file of the dataset can be decoded.
        """
        count = len(self.files)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset index must be an integer, got {type(index).__name__}")
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for a dataset of {count} images")
        index = int(index) % count
        for offset in range(count):
            current = (index + offset) % count
            if current in self._bad:
                continue
            try:
                image = self.read(current)
            except (ValueError, OSError) as err:
                self._bad.add(current)
                logger.warning(
                    "cannot decode image %s (index %d), using the next index instead: %s",
                    self.files[current],
                    current,
                    err,
                )
                continue
            return self._item(image, current)
        raise RuntimeError(f"none of the {count} images of the dataset can be decoded (roots: {self.roots})")

    def _item(self, image: Image.Image, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        size = self.size
        image = self._crop(image, rng)

        # the jitter's numbers are drawn in a fixed order, whether or not a group is applied
        if self.jitter:
            geometry = rng.random() < JITTER_PROBABILITY
            angle = rng.uniform(-JITTER_ROTATION_DEGREES, JITTER_ROTATION_DEGREES)
            zoom = rng.uniform(*JITTER_SCALE)
            if geometry:
                image = _affine_reflect(image, angle, zoom)
        flipped = self.flip and rng.random() < 0.5
        rgb = np.asarray(image, dtype=np.float32) / np.float32(255)  # [size, size, 3]
        if flipped:
            rgb = rgb[:, ::-1]
        if self.jitter:
            tone = rng.random() < JITTER_PROBABILITY
            contrast = rng.uniform(1 - JITTER_CONTRAST, 1 + JITTER_CONTRAST)
            brightness = rng.uniform(-JITTER_BRIGHTNESS, JITTER_BRIGHTNESS)
            colour = rng.random() < JITTER_PROBABILITY
            saturation = rng.uniform(1 - JITTER_SATURATION, 1 + JITTER_SATURATION)
            hue = rng.uniform(-JITTER_HUE_DEGREES, JITTER_HUE_DEGREES)
            if tone:
                rgb = _contrast_brightness(rgb, contrast, brightness)
            if colour:
                rgb = _saturation_hue(rgb, saturation, hue)

        if self.mask_size is None:
            mask = make_mask(self.mask_protocol, size, size, rng) != 0
        else:
            mask = resize_mask(make_mask(self.mask_protocol, self.mask_size, self.mask_size, rng) != 0, (size, size))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)),
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "index": index,
        }

    def _crop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        size = self.size
        width, height = image.size
        if self.crop == "resize":
            return image.resize((size, size), Image.Resampling.BICUBIC) if image.size != (size, size) else image
        short = min(width, height)
        if self.crop in ("center", "fit") or short < size:
            scale = size / short
            new = (max(size, round(width * scale)), max(size, round(height * scale)))
            if new != (width, height):
                image = image.resize(new, Image.Resampling.BICUBIC)
            width, height = new
        if self.crop == "center":
            top, left = (height - size) // 2, (width - size) // 2
        else:
            top = int(rng.integers(0, height - size + 1))
            left = int(rng.integers(0, width - size + 1))
        return image.crop((left, top, left + size, top + size))


def _affine_reflect(image: Image.Image, angle: float, zoom: float) -> Image.Image:
    """Rotate by ``angle`` degrees and zoom by ``zoom`` (> 1 magnifies) about the centre, bicubic, sampling a
    mirror-padded copy so that no constant fill appears (valid for zoom >= 0.75 and any angle)."""
    width, height = image.size
    pad = max(width, height) // 2 + 2  # + the bicubic support
    padded = Image.fromarray(np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
    # PIL's AFFINE data maps an output point (x, y) to the input point (a x + b y + c, d x + e y + f)
    theta = math.radians(angle)
    cos, sin = math.cos(theta) / zoom, math.sin(theta) / zoom
    cx, cy = width / 2, height / 2
    a, b, d, e = cos, sin, -sin, cos
    c = pad + cx - a * cx - b * cy
    f = pad + cy - d * cx - e * cy
    return padded.transform((width, height), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BICUBIC)


def _contrast_brightness(rgb: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    mean = np.float32(float((rgb @ _LUMA).mean()))
    rgb = np.clip(mean + np.float32(contrast) * (rgb - mean), 0.0, 1.0)
    return np.clip(rgb + np.float32(brightness), 0.0, 1.0)


def _saturation_hue(rgb: np.ndarray, saturation: float, hue: float) -> np.ndarray:
    luma = (rgb @ _LUMA)[..., None]
    rgb = np.clip(luma + np.float32(saturation) * (rgb - luma), 0.0, 1.0).astype(np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)  # float: H in [0, 360), S and V in [0, 1]
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(hue), np.float32(360))
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


# ------------------------------------------------------------------------------------------------- the sampler


class ResumableRandomSampler(torch.utils.data.Sampler[int]):
    """A random order that depends only on ``(seed, epoch)``: the same on every process, every run.

    The order of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation(n)`` (``0..n-1`` when
    ``shuffle=False``). Give the same sampler to the DataLoader on every process: Accelerate's prepared DataLoader
    splits its batches across processes, and ``accelerator.skip_first_batches`` skips what a resumed run has done.

    Args:
        data_source_len_or_dataset: the number of items, or the dataset itself (anything with ``len``). A dataset
            with a ``set_epoch`` method gets every :meth:`set_epoch` call forwarded, so one call sets both the order
            and the augmentation of an epoch.
        seed: non-negative integer.
        shuffle: ``False`` visits ``0..n-1`` in order every epoch.
    """

    def __init__(self, data_source_len_or_dataset: int | Any, *, seed: int = 0, shuffle: bool = True) -> None:
        source = data_source_len_or_dataset
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            self.num_samples = _check_int(source, "the number of samples", minimum=0)
            self.dataset = None
        elif hasattr(source, "__len__"):
            self.num_samples = len(source)
            self.dataset = source
        else:
            raise TypeError(f"expected a length or a sized dataset, got {type(source).__name__}")
        self.seed = _check_int(seed, "seed", minimum=0)
        self.shuffle = bool(shuffle)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next iteration on (and forward to the dataset's ``set_epoch``)."""
        self.epoch = _check_int(epoch, "epoch", minimum=0)
        if self.dataset is not None and callable(getattr(self.dataset, "set_epoch", None)):
            self.dataset.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples).tolist())

    def __len__(self) -> int:
        return self.num_samples


# ------------------------------------------------------------------------------------------------- sample grids


def _as_image_batch(images: Sequence[Tensor] | Tensor, what: str = "images") -> Tensor:
    """``[N, C, H, W]`` tensor or a sequence of ``[C, H, W]`` / ``[1, C, H, W]`` -> ``[N, 3, H, W]`` (C in 1, 3)."""
    if isinstance(images, Tensor):
        batch = images
        if batch.ndim == 3:
            batch = batch[None]
    else:
        items = [t if t.ndim == 4 else t[None] for t in images]
        if not items:
            raise ValueError(f"{what}: nothing to lay out")
        shapes = {tuple(t.shape[1:]) for t in items}
        if len(shapes) != 1:
            raise ValueError(f"{what}: every image must have the same [C, H, W] shape, got {sorted(shapes)}")
        batch = torch.cat(items)
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ValueError(
            f"{what} must be [N, 3, H, W] or [N, 1, H, W] (or a list of [C, H, W]), got {tuple(batch.shape)}"
        )
    if batch.shape[1] == 1:
        batch = batch.expand(-1, 3, -1, -1)
    return batch.detach()


def make_grid(images: Sequence[Tensor] | Tensor, nrow: int, padding: int = 2, value: float = 1.0) -> Tensor:
    """Lay images out in a grid, ``nrow`` per row (``torchvision.utils.make_grid``'s layout, which we cannot import).

    Image ``i`` goes to row ``i // nrow``, column ``i % nrow``. Every image is surrounded by ``padding`` pixels of
    ``value`` (the outer border too); cells after the last image are filled with ``value``. Values are not clipped.

    Args:
        images: ``[N, 3, H, W]`` (``[N, 1, H, W]`` is repeated to RGB) or a sequence of same-shaped ``[3, H, W]``.
        nrow: images per row (the number of columns; fewer when ``N < nrow``).
        padding: pixels between images and around the grid.
        value: the fill of padding and empty cells.

    Returns:
        ``[3, rows * (H + padding) + padding, cols * (W + padding) + padding]`` with ``rows = ceil(N / nrow)``,
        ``cols = min(nrow, N)``, on the device and with the dtype of ``images``.
    """
    batch = _as_image_batch(images)
    nrow = _check_int(nrow, "nrow", minimum=1)
    padding = _check_int(padding, "padding", minimum=0)
    count, _, height, width = batch.shape
    if count == 0:
        raise ValueError("make_grid: nothing to lay out (0 images)")
    cols = min(nrow, count)
    rows = math.ceil(count / cols)
    grid = batch.new_full((3, rows * (height + padding) + padding, cols * (width + padding) + padding), value)
    for i in range(count):
        top = padding + (i // cols) * (height + padding)
        left = padding + (i % cols) * (width + padding)
        grid[:, top : top + height, left : left + width] = batch[i]
    return grid


def save_image_grid(
    rows: Sequence[Tensor | Sequence[Tensor]], path: str | os.PathLike, *, padding: int = 2, value: float = 1.0
) -> Path:
    """Write a PNG of sample images, one grid row per entry of ``rows`` (atomically: a crash leaves no half file).

    Typically ``[masked_input, prediction, ground_truth]`` for a few samples, or one row per sample. Rows may hold
    different numbers of images; shorter rows end in empty (``value``) cells.

    Args:
        rows: each ``[N, 3, H, W]`` in [0, 1] (``[N, 1, H, W]`` masks are shown gray-scale), all with the same
            ``H, W``; values outside [0, 1] are clipped.
        path: the PNG to write (parent folders are created).
        padding: pixels between images.
        value: fill of the padding and empty cells.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    batches = [_as_image_batch(row, what=f"row {i}").float().cpu() for i, row in enumerate(rows)]
    if not batches:
        raise ValueError("save_image_grid: no rows to save")
    shapes = {tuple(b.shape[2:]) for b in batches}
    if len(shapes) != 1:
        raise ValueError(f"save_image_grid: every row must hold images of the same H x W, got {sorted(shapes)}")
    cols = max(b.shape[0] for b in batches)
    filled = [
        torch.cat([b, b.new_full((cols - b.shape[0], *b.shape[1:]), value)]) if b.shape[0] < cols else b
        for b in batches
    ]
    grid = make_grid(torch.cat(filled), nrow=cols, padding=padding, value=value)
    pixels = Image.fromarray(to_uint8(grid))
    path = Path(path)
    atomic_write(path, lambda tmp: pixels.save(tmp, format="PNG"))
    return path
