"""Every mask generator the five papers use, seeded and deterministic.

A mask is a ``uint8`` array ``[H, W]`` with **1 = hole** and 0 = known pixel. Every generator takes a numpy
:class:`numpy.random.Generator`; the same generator state gives a byte-identical mask on every platform (OpenCV's
and Pillow's line rasterisers are exact integer algorithms, and both are pinned in ``requirements.txt``).

The protocols, by name (:func:`list_mask_protocols`, :func:`make_mask`):

=====================  ==========================================================================================
``lama-train``         LaMa training: irregular "wide" strokes or random boxes, 50/50 (``abl-04-256-mh-dist.yaml``)
``lama-thin-256/512``  LaMa evaluation sets (``configs/data_gen/random_thin_*.yaml``), thin strokes only
``lama-medium-256/512`` LaMa evaluation sets, medium strokes or boxes (odds 1 : 0.3, i.e. 23 % boxes)
``lama-thick-256/512`` LaMa evaluation sets, thick strokes or boxes (odds 1 : 0.3)
``lama-box-256/512``   the box half of LaMa's thick sets alone (ours: a box-only protocol for reporting)
``deepfill-freeform``  DeepFill v2 training: free-form brush strokes OR'ed with a random box
``pennet-square``      PEN-Net training: a random H/2 x W/2 square, flipped, rotated, dilated, resized back
``pennet-center``      PEN-Net test: the centred H/2 x W/2 square
``piigan-center``      PiiGAN: the centred H/2 x W/2 box with each side shrunk by a random jitter
=====================  ==========================================================================================

The LaMa evaluation protocols redraw masks with more than 50 % hole (``gen_mask_dataset.py`` drops them); all
evaluation protocols also redraw empty masks, which carry no information. Training protocols never redraw.

Parameters come from ``../shared/MODELS.md`` (LaMa §1.4, PEN-Net §2.3, DeepFill v2 §3.2, PiiGAN §4.3), which
records the original repositories' values. The generators are written from those descriptions; they reproduce the
distributions, not the originals' exact random streams (those used numpy's legacy global state).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter


__all__ = [
    "HOLE_BUCKETS",
    "MAX_REDRAWS",
    "MaskProtocol",
    "box_mask",
    "deepfill_box_mask",
    "deepfill_freeform_mask",
    "deepfill_stroke_mask",
    "get_mask_protocol",
    "hole_bucket",
    "hole_ratio",
    "irregular_mask",
    "list_mask_protocols",
    "make_mask",
    "pennet_center_mask",
    "pennet_square_mask",
    "piigan_center_mask",
]

MAX_REDRAWS = 1000
"""How many times an evaluation protocol redraws a mask outside its hole range before giving up."""

HOLE_BUCKETS: tuple[tuple[float, float, str], ...] = (
    (0.0, 0.1, "0-10%"),
    (0.1, 0.2, "10-20%"),
    (0.2, 0.3, "20-30%"),
    (0.3, 0.4, "30-40%"),
    (0.4, 0.5, "40-50%"),
    (0.5, 0.6, "50-60%"),
    (0.6, 1.0, "60-100%"),
)
"""Hole-area buckets for reporting (NVIDIA partial-convolution style, Liu et al. 2018): ``(low, high, name)``.

A ratio ``r`` falls in the bucket with ``low < r <= high``; the first bucket also takes ``r == 0``. The last bucket
(above 60 %) is not one of NVIDIA's; it catches user masks that are larger than any protocol draws.
"""


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (for example numpy.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_size(height: object, width: object) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"mask {name} must be a positive integer, got {value!r}")
    return int(height), int(width)


# ------------------------------------------------------------------------------------------------- LaMa


def irregular_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    max_angle: int = 4,
    max_len: int = 200,
    max_width: int = 100,
    min_times: int = 1,
    max_times: int = 5,
) -> np.ndarray:
    """LaMa's irregular stroke mask (``make_random_irregular_mask`` with the LINE draw method).

    ``times ~ U{min_times..max_times}`` strokes, each starting at a uniform random pixel and made of
    ``1 + U{0..4}`` straight segments. A segment turns by ``0.01 + U{0..max_angle-1}`` radians (whole radians, as
    in the original; mirrored to ``2*pi - angle`` for even-numbered strokes), is ``10 + U{0..max_len-1}`` pixels long
    and ``5 + U{0..max_width-1}`` pixels wide; its end point is clipped to the image. Defaults are the training
    parameters of ``abl-04-256-mh-dist.yaml``.

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    mask = np.zeros((height, width), dtype=np.uint8)
    times = int(rng.integers(min_times, max_times + 1))
    for stroke in range(times):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + int(rng.integers(max_angle))
            if stroke % 2 == 0:
                angle = 2 * math.pi - angle
            length = 10 + int(rng.integers(max_len))
            brush = 5 + int(rng.integers(max_width))
            end_x = int(np.clip(x + length * math.sin(angle), 0, width))
            end_y = int(np.clip(y + length * math.cos(angle), 0, height))
            cv2.line(mask, (x, y), (end_x, end_y), 1, brush)
            x, y = end_x, end_y
    return mask


def box_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    margin: int = 10,
    bbox_min_size: int = 30,
    bbox_max_size: int = 150,
    min_times: int = 1,
    max_times: int = 4,
) -> np.ndarray:
    """LaMa's random rectangles (``make_random_rectangle_mask``).

    ``times ~ U{min_times..max_times}`` axis-aligned boxes with sides ``U{bbox_min_size..bbox_max_size-1}``, kept
    ``margin`` pixels away from the border; ``bbox_max_size`` is first capped at ``min(H, W) - 2 * margin``.
    Defaults are the training parameters of ``abl-04-256-mh-dist.yaml`` (the released big-lama config uses
    ``max_times=3``). On images too small for the requested sizes the sides shrink to fit (our choice: the original
    raises).

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    mask = np.zeros((height, width), dtype=np.uint8)
    margin = min(margin, (min(height, width) - 1) // 2)
    largest = min(bbox_max_size, height - 2 * margin, width - 2 * margin)
    smallest = min(bbox_min_size, largest - 1) if largest > 1 else 1
    largest = max(largest, smallest + 1)
    times = int(rng.integers(min_times, max_times + 1))
    for _ in range(times):
        box_w = int(rng.integers(smallest, largest))
        box_h = int(rng.integers(smallest, largest))
        x = int(rng.integers(margin, max(margin, width - margin - box_w) + 1))
        y = int(rng.integers(margin, max(margin, height - margin - box_h) + 1))
        mask[y : y + box_h, x : x + box_w] = 1
    return mask


@dataclass(frozen=True)
class _LamaMixture:
    """LaMa's ``MixedMaskGenerator``: one generator per mask, chosen with renormalised probabilities."""

    irregular: dict
    box: dict | None = None
    box_proba: float = 0.0
    irregular_proba: float = 1.0

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        total = self.irregular_proba + (self.box_proba if self.box is not None else 0.0)
        use_box = self.box is not None and rng.random() * total >= self.irregular_proba
        if use_box:
            return box_mask(height, width, rng, **self.box)
        return irregular_mask(height, width, rng, **self.irregular)


# The six evaluation sets of LaMa (configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml, MODELS.md §1.4):
# irregular (min_times, max_times, max_width, max_len) and box (proba, margin, min, max, min_times, max_times).
_LAMA_EVAL = {
    "thin-512": ((4, 70, 20, 100), None),
    "medium-512": ((4, 10, 100, 200), (0.3, 0, 30, 150, 1, 5)),
    "thick-512": ((1, 5, 250, 450), (0.3, 10, 30, 300, 1, 4)),
    "thin-256": ((4, 50, 10, 40), None),
    "medium-256": ((4, 5, 50, 100), (0.3, 0, 10, 50, 1, 5)),
    "thick-256": ((1, 5, 100, 200), (0.3, 10, 30, 150, 1, 3)),
}


def _irregular_kwargs(values: tuple[int, int, int, int]) -> dict:
    min_times, max_times, max_width, max_len = values
    return {"max_angle": 4, "max_len": max_len, "max_width": max_width, "min_times": min_times, "max_times": max_times}


def _box_kwargs(values: tuple[float, int, int, int, int, int]) -> tuple[float, dict]:
    proba, margin, smallest, largest, min_times, max_times = values
    return proba, {
        "margin": margin,
        "bbox_min_size": smallest,
        "bbox_max_size": largest,
        "min_times": min_times,
        "max_times": max_times,
    }


# ------------------------------------------------------------------------------------------------- DeepFill v2


def deepfill_stroke_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    min_strokes: int = 1,
    max_strokes: int = 4,
    min_vertices: int = 4,
    max_vertices: int = 12,
    mean_angle: float = 2 * math.pi / 5,
    angle_range: float = 2 * math.pi / 15,
    min_width: int = 12,
    max_width: int = 40,
) -> np.ndarray:
    """DeepFill v2's free-form brush strokes (``brush_stroke_mask`` in ``inpaint_ops.py``).

    ``U{min_strokes..max_strokes-1}`` strokes (numpy ``randint(1, 4)``: 1 to 3), each a polyline of
    ``U{min_vertices..max_vertices-1}`` segments from a uniform random start. Segment angles alternate between
    ``2*pi - U(a_min, a_max)`` and ``U(a_min, a_max)`` with ``a_min/max = mean_angle -/+ U(0, angle_range)``;
    lengths are ``clip(N(r, r // 2), 0, 2r)`` with ``r = sqrt(H^2 + W^2) / 8``; vertices are clipped to the image.
    Each stroke is drawn with Pillow ``line(width=U(min_width, max_width))`` plus a disc at every vertex.

    The original draws x within ``[0, H)`` and y within ``[0, W)`` (it unpacks Pillow's ``(W, H)`` size as
    ``h, w``); that only matters for non-square images, and here x spans the width and y the height. Its two
    random flips are no-ops (the flipped image is discarded), so there are none here.

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    radius = math.sqrt(height * height + width * width) / 8
    for _ in range(int(rng.integers(min_strokes, max_strokes))):
        vertices = int(rng.integers(min_vertices, max_vertices))
        angle_min = mean_angle - rng.uniform(0, angle_range)
        angle_max = mean_angle + rng.uniform(0, angle_range)
        angles = [
            2 * math.pi - rng.uniform(angle_min, angle_max) if i % 2 == 0 else rng.uniform(angle_min, angle_max)
            for i in range(vertices)
        ]
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height)))]
        for angle in angles:
            length = float(np.clip(rng.normal(radius, radius // 2), 0, 2 * radius))
            new_x = np.clip(points[-1][0] + length * math.cos(angle), 0, width)
            new_y = np.clip(points[-1][1] + length * math.sin(angle), 0, height)
            points.append((int(new_x), int(new_y)))
        brush = int(rng.uniform(min_width, max_width))
        draw.line(points, fill=1, width=brush)
        for px, py in points:
            draw.ellipse((px - brush // 2, py - brush // 2, px + brush // 2, py + brush // 2), fill=1)
    return np.asarray(canvas, dtype=np.uint8).copy()


def deepfill_box_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """DeepFill v2's random box (``random_bbox`` + ``bbox2mask``).

    At 256 x 256 this is the original: a 128 x 128 box at ``t, l ~ U{0..127}``, each side then shrunk by
    ``U{0..16}`` (``max_delta 32``). Other sizes scale the box (H/2 x W/2) and the jitter (H/8, W/8) with the image
    (our choice; the original only trains at 256).

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    box_h, box_w = max(1, height // 2), max(1, width // 2)
    top = int(rng.integers(0, max(1, height - box_h)))
    left = int(rng.integers(0, max(1, width - box_w)))
    delta_h = int(rng.integers(height // 8 // 2 + 1))
    delta_w = int(rng.integers(width // 8 // 2 + 1))
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top + delta_h : top + box_h - delta_h, left + delta_w : left + box_w - delta_w] = 1
    return mask


def deepfill_freeform_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """DeepFill v2's training mask: the random box OR'ed with free-form strokes (MODELS.md §3.2).

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    box = deepfill_box_mask(height, width, rng)
    return np.maximum(box, deepfill_stroke_mask(height, width, rng))


# ------------------------------------------------------------------------------------------------- PEN-Net, PiiGAN


def pennet_square_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """PEN-Net's training mask (``core/dataset.py``, ``"mask": "square"``), with its augmentation.

    An ``H/2 x W/2`` square at ``t ~ U{0..H/2}``, ``l ~ U{0..W/2}``; then, as the original's mask transform: a
    horizontal flip with probability 1/2, a rotation by ``U{0..45}`` degrees with ``expand=True`` (Pillow, nearest),
    a 3 x 3 max filter (dilation), and a nearest resize back to ``W x H``, so the square ends up rotated and
    shrunk. The integer draws are inclusive as Python's ``random.randint`` (our reading of the original).

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    side_h, side_w = max(1, height // 2), max(1, width // 2)
    top, left = int(rng.integers(0, height // 2 + 1)), int(rng.integers(0, width // 2 + 1))
    square = np.zeros((height, width), dtype=np.uint8)
    square[top : top + side_h, left : left + side_w] = 255
    image = Image.fromarray(square)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.rotate(int(rng.integers(0, 46)), resample=Image.Resampling.NEAREST, expand=True)
    image = image.filter(ImageFilter.MaxFilter(3))
    image = image.resize((width, height), Image.Resampling.NEAREST)
    return (np.asarray(image) > 0).astype(np.uint8)


def pennet_center_mask(height: int, width: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """PEN-Net's test mask: the centred square ``[H/4, 3H/4) x [W/4, 3W/4)``. Deterministic (``rng`` unused).

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4 : height * 3 // 4, width // 4 : width * 3 // 4] = 1
    if not mask.any():
        mask[height // 2, width // 2] = 1
    return mask


def piigan_center_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """PiiGAN's centre box with jitter (``setting.yml``: ``bbox = (H/2, W/2, H, W)`` read as (t, l, h, w) / 2).

    At 128 x 128 this is the original: the 64 x 64 box at (32, 32), each side shrunk by ``U{0..4}`` (``MAX_DELTA 8``
    -> ``randint(8 // 2 + 1)``). Other sizes scale the box (H/2 x W/2, centred) and the jitter (H/16, W/16).

    Returns:
        ``uint8 [height, width]``, 1 = hole.
    """
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    delta_h = int(rng.integers(height // 16 // 2 + 1))
    delta_w = int(rng.integers(width // 16 // 2 + 1))
    mask = np.zeros((height, width), dtype=np.uint8)
    top, left = height // 4, width // 4
    mask[top + delta_h : top + height // 2 - delta_h, left + delta_w : left + width // 2 - delta_w] = 1
    if not mask.any():
        mask[height // 2, width // 2] = 1
    return mask


# ------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class MaskProtocol:
    """A named mask protocol.

    Attributes:
        name: the registry name (``lama-thick-512``).
        description: one line for ``inpaint-hub list`` and docs.
        generate: ``(height, width, rng) -> uint8 [H, W]``.
        size: the image size the protocol was designed for (square), or ``None`` for any size.
        hole_range: masks whose hole ratio is outside ``(low, high]`` are redrawn; ``None`` never redraws.
        source: where the parameters come from.
    """

    name: str
    description: str
    generate: Callable[[int, int, np.random.Generator], np.ndarray] = field(repr=False)
    size: int | None = None
    hole_range: tuple[float, float] | None = None
    source: str = ""


_PROTOCOLS: dict[str, MaskProtocol] = {}


def _register(protocol: MaskProtocol) -> None:
    _PROTOCOLS[protocol.name] = protocol


_register(
    MaskProtocol(
        "lama-train",
        "LaMa training masks: wide irregular strokes or 1-4 boxes, 50/50",
        _LamaMixture(
            irregular=_irregular_kwargs((1, 5, 100, 200)), box=_box_kwargs((1, 10, 30, 150, 1, 4))[1], box_proba=1.0
        ),  # fmt: skip
        size=256,
        source="LaMa configs/training/data/abl-04-256-mh-dist.yaml (MODELS.md §1.4)",
    )
)
for _name, (_irregular, _box) in _LAMA_EVAL.items():
    _kind, _size = _name.split("-")
    _proba, _box_args = _box_kwargs(_box) if _box is not None else (0.0, None)
    _register(
        MaskProtocol(
            f"lama-{_name}",
            f"LaMa evaluation, {_kind} strokes" + (" or boxes (odds 1:0.3)" if _box else "") + f", at {_size} px",
            _LamaMixture(irregular=_irregular_kwargs(_irregular), box=_box_args, box_proba=_proba),
            size=int(_size),
            hole_range=(0.0, 0.5),
            source=f"LaMa configs/data_gen/random_{_kind}_{_size}.yaml (MODELS.md §1.4)",
        )
    )
    if _kind == "thick":
        _register(
            MaskProtocol(
                f"lama-box-{_size}",
                f"boxes only, with the box parameters of LaMa's thick set, at {_size} px",
                _LamaMixture(irregular={}, box=_box_args, box_proba=1.0, irregular_proba=0.0),
                size=int(_size),
                hole_range=(0.0, 0.5),
                source=f"ours: the box generator of LaMa random_thick_{_size}.yaml alone",
            )
        )
_register(
    MaskProtocol(
        "deepfill-freeform",
        "DeepFill v2 training: free-form brush strokes OR a random box",
        deepfill_freeform_mask,
        size=256,
        source="DeepFill v2 inpaint_ops.py brush_stroke_mask + random_bbox/bbox2mask (MODELS.md §3.2)",
    )
)
_register(
    MaskProtocol(
        "pennet-square",
        "PEN-Net training: random H/2 square, flipped, rotated 0-45 degrees, dilated",
        pennet_square_mask,
        size=256,
        source="PEN-Net core/dataset.py, mask 'square', train (MODELS.md §2.3)",
    )
)
_register(
    MaskProtocol(
        "pennet-center",
        "PEN-Net test: the centred H/2 x W/2 square (25% hole)",
        pennet_center_mask,
        size=256,
        hole_range=(0.0, 1.0),
        source="PEN-Net core/dataset.py, mask 'square', test (MODELS.md §2.3)",
    )
)
_register(
    MaskProtocol(
        "piigan-center",
        "PiiGAN: centred H/2 x W/2 box, each side shrunk by up to H/32",
        piigan_center_mask,
        size=128,
        hole_range=(0.0, 1.0),
        source="PiiGAN setting.yml BBOX/MAX_DELTA (MODELS.md §4.3)",
    )
)


def list_mask_protocols() -> list[str]:
    """The registered protocol names, sorted."""
    return sorted(_PROTOCOLS)


def get_mask_protocol(name: str) -> MaskProtocol:
    """The :class:`MaskProtocol` called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return _PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown mask protocol {name!r}; known protocols: {', '.join(list_mask_protocols())}"
        ) from None


def make_mask(protocol: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one mask of ``protocol`` for a ``height x width`` image.

    Evaluation protocols (``hole_range`` set) redraw until the hole ratio is in ``(low, high]``, at most
    :data:`MAX_REDRAWS` times. Every draw comes from ``rng``, so the same generator state gives the same mask.

    Args:
        protocol: a name from :func:`list_mask_protocols`.
        height, width: the mask size in pixels. Protocol parameters are in pixels, as in the originals, so use the
            size the protocol was designed for (``MaskProtocol.size``) to reproduce a paper's statistics.
        rng: ``numpy.random.default_rng(seed)``.

    Returns:
        ``uint8 [height, width]`` with 1 = hole.

    Raises:
        ValueError: unknown protocol, bad size, or no acceptable mask after :data:`MAX_REDRAWS` draws.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    spec = get_mask_protocol(protocol)
    height, width = _check_size(height, width)
    rng = _check_rng(rng)
    for _ in range(MAX_REDRAWS if spec.hole_range is not None else 1):
        mask = spec.generate(height, width, rng)
        if spec.hole_range is None:
            return mask
        low, high = spec.hole_range
        if low < hole_ratio(mask) <= high:
            return mask
    raise ValueError(
        f"mask protocol {protocol!r} drew no mask with a hole ratio in ({low}, {high}] in {MAX_REDRAWS} tries at "
        f"{width}x{height}; the image is probably far from the protocol's size ({spec.size} px)"
    )


# ------------------------------------------------------------------------------------------------- buckets


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole pixels (any non-zero value) in a ``[H, W]`` mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be a non-empty [H, W] array, got shape {mask.shape}")
    return float(np.count_nonzero(mask)) / mask.size


def hole_bucket(ratio: float) -> str:
    """The :data:`HOLE_BUCKETS` name for a hole ratio in [0, 1] (``0.25`` -> ``"20-30%"``)."""
    if not 0.0 <= ratio <= 1.0 or math.isnan(ratio):
        raise ValueError(f"hole ratio must be in [0, 1], got {ratio}")
    for low, high, name in HOLE_BUCKETS:
        if ratio <= high and (ratio > low or low == 0.0):
            return name
    return HOLE_BUCKETS[-1][2]  # pragma: no cover - the buckets cover [0, 1]
