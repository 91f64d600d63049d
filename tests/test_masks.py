"""Tests of inpaint_hub.masks: determinism, sizes, the redraw rule, and statistics that follow the parameters.

The expected values come from ``../shared/MODELS.md`` (LaMa §1.4, PEN-Net §2.3, DeepFill v2 §3.2, PiiGAN §4.3) and
from geometry, never from running the generators: every bound below is derived in the comment next to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal

import cv2
import numpy as np
import pytest
from scipy import ndimage

from inpaint_hub import masks
from inpaint_hub.masks import (
    HOLE_BUCKETS,
    MaskProtocol,
    box_mask,
    deepfill_box_mask,
    deepfill_freeform_mask,
    deepfill_stroke_mask,
    get_mask_protocol,
    hole_bucket,
    hole_ratio,
    irregular_mask,
    list_mask_protocols,
    make_mask,
    pennet_center_mask,
    pennet_square_mask,
    piigan_center_mask,
)


LAMA_EVAL = [
    "lama-thin-256",
    "lama-thin-512",
    "lama-medium-256",
    "lama-medium-512",
    "lama-thick-256",
    "lama-thick-512",
    "lama-box-256",
    "lama-box-512",
]
TRAINING = ["lama-train", "deepfill-freeform", "pennet-square"]
EXPECTED_PROTOCOLS = sorted([*LAMA_EVAL, *TRAINING, "pennet-center", "piigan-center"])
EVALUATION = [*LAMA_EVAL, "pennet-center", "piigan-center"]

# MODELS.md §1.4: irregular (min_times, max_times, max_width, max_len) and box (proba, margin, min, max, min_times,
# max_times) of LaMa's evaluation sets; max_angle is 4 everywhere.
LAMA_TABLE = {
    "lama-thin-512": ((4, 70, 20, 100), None),
    "lama-medium-512": ((4, 10, 100, 200), (0.3, 0, 30, 150, 1, 5)),
    "lama-thick-512": ((1, 5, 250, 450), (0.3, 10, 30, 300, 1, 4)),
    "lama-thin-256": ((4, 50, 10, 40), None),
    "lama-medium-256": ((4, 5, 50, 100), (0.3, 0, 10, 50, 1, 5)),
    "lama-thick-256": ((1, 5, 100, 200), (0.3, 10, 30, 150, 1, 3)),
}
LAMA_TRAIN_BOX_MIN = 30  # abl-04-256-mh-dist.yaml: bbox_min_size 30


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def native_size(name: str) -> int:
    return get_mask_protocol(name).size


def filled_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom_exclusive, left, right_exclusive) of the hole."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def is_filled_rectangle(mask: np.ndarray) -> bool:
    if not mask.any():
        return False
    top, bottom, left, right = filled_bbox(mask)
    return int(mask.sum()) == (bottom - top) * (right - left)


def is_union_of_boxes(mask: np.ndarray, min_side: int) -> bool:
    """Whether every hole pixel lies in an axis-aligned ``k x k`` square of hole pixels (``k <= min_side``).

    A union of rectangles whose sides are all >= min_side passes (it equals its opening by the square); strokes do
    not: their round caps and slanted edges lose pixels to the opening (cv2's border handling leaves shapes cut by the
    image border alone).
    """
    k = min_side if min_side % 2 else min_side - 1
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    return bool(mask.any()) and np.array_equal(opened, mask)


def stroke_stats(mask: np.ndarray) -> tuple[float, float, int]:
    """(mean distance to the hole border over hole pixels, border pixels per hole pixel, connected components).

    For a band of width t the first is about t / 4 and the second about 2 / t.
    """
    hole = mask.astype(bool)
    distance = ndimage.distance_transform_edt(np.pad(hole, 1))[1:-1, 1:-1]
    border = hole & ~ndimage.binary_erosion(hole, border_value=0)
    return float(distance[hole].mean()), np.count_nonzero(border) / np.count_nonzero(hole), ndimage.label(hole)[1]


def padded_width(mask: np.ndarray) -> float:
    """Twice the largest distance from a hole pixel to a known pixel, with the outside of the image known."""
    return 2 * float(ndimage.distance_transform_edt(np.pad(mask, 1)).max())


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging when a generator loops forever (SIGALRM; no limit where there is none)."""
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - Windows
        yield
        return

    def _raise(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------- registry


def test_list_mask_protocols_sorted_and_complete():
    names = list_mask_protocols()
    assert names == sorted(names)
    assert names == EXPECTED_PROTOCOLS
    assert len(names) == 13  # 9 LaMa, 1 DeepFill v2, 2 PEN-Net, 1 PiiGAN (DGI has no mask protocol of its own)


def test_get_mask_protocol_unknown_lists_names():
    with pytest.raises(ValueError, match="unknown mask protocol 'lama-huge'") as info:
        get_mask_protocol("lama-huge")
    for name in EXPECTED_PROTOCOLS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown mask protocol"):
        get_mask_protocol(["lama-train"])  # unhashable: still a ValueError, not a TypeError
    with pytest.raises(ValueError, match="unknown mask protocol"):
        make_mask("nvidia-irregular", 64, 64, rng())


# The generator functions that draw from an rng (pennet_center_mask is deterministic).
SEEDED_GENERATORS = [
    irregular_mask,
    box_mask,
    deepfill_stroke_mask,
    deepfill_box_mask,
    deepfill_freeform_mask,
    pennet_square_mask,
    piigan_center_mask,
]


@pytest.mark.parametrize("name", EXPECTED_PROTOCOLS)
def test_protocol_metadata(name):
    spec = get_mask_protocol(name)
    assert isinstance(spec, MaskProtocol)
    assert spec.name == name
    assert spec.description and spec.source
    # The design size: LaMa sets carry it in their name, LaMa training and DeepFill/PEN-Net train at 256, PiiGAN 128.
    expected_size = int(name.rsplit("-", 1)[1]) if name[-3:] in ("256", "512") else 128 if "piigan" in name else 256
    assert spec.size == expected_size
    if name in LAMA_EVAL:
        assert spec.hole_range == (0.0, 0.5)  # gen_mask_dataset.py drops masks with more than 50 % hole
    elif name in TRAINING:
        assert spec.hole_range is None  # training protocols never redraw
    else:
        low, high = spec.hole_range
        assert low == 0.0 and high >= 0.5


# ------------------------------------------------------------------------------------------------- determinism, types


@pytest.mark.parametrize("name", EXPECTED_PROTOCOLS)
@pytest.mark.parametrize("size", [None, (200, 320)], ids=["native", "200x320"])
def test_determinism_shape_dtype(name, size):
    height, width = size or (native_size(name),) * 2
    first = make_mask(name, height, width, rng(7))
    again = make_mask(name, height, width, rng(7))
    assert first.dtype == np.uint8
    assert first.shape == (height, width)
    assert set(np.unique(first).tolist()) <= {0, 1}
    assert first.tobytes() == again.tobytes()
    distinct = {make_mask(name, height, width, rng(seed)).tobytes() for seed in range(10)}
    if name == "pennet-center":
        assert distinct == {first.tobytes()}  # the test mask is fixed
    elif name == "piigan-center":
        assert len(distinct) >= 2  # only 5 x 5 jitter values: collisions are possible, identity is not
    else:
        assert len(distinct) == 10


@pytest.mark.parametrize("name", [name for name in EXPECTED_PROTOCOLS if name != "pennet-center"])
def test_same_generator_continues_the_stream(name):
    """Two masks drawn in a row from one generator differ from each other but repeat with the same seed."""
    size = native_size(name)
    generator = rng(3)
    pair = [make_mask(name, size, size, generator) for _ in range(2)]
    generator = rng(3)
    again = [make_mask(name, size, size, generator) for _ in range(2)]
    assert [m.tobytes() for m in pair] == [m.tobytes() for m in again]
    if name != "piigan-center":
        assert pair[0].tobytes() != pair[1].tobytes()


@pytest.mark.parametrize("name", EXPECTED_PROTOCOLS)
@pytest.mark.parametrize("bad_rng", [0, None, np.random.RandomState(0)], ids=["int", "None", "RandomState"])
def test_rng_must_be_a_generator(name, bad_rng):
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        make_mask(name, 32, 32, bad_rng)


@pytest.mark.parametrize(
    "function",
    SEEDED_GENERATORS,
)
def test_generator_functions_check_rng(function):
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        function(32, 32, 1234)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "64", None])
def test_bad_sizes_raise_value_error(bad):
    with pytest.raises(ValueError, match="positive integer"):
        make_mask("lama-train", bad, 64, rng())
    with pytest.raises(ValueError, match="positive integer"):
        make_mask("pennet-center", 64, bad, rng())
    with pytest.raises(ValueError, match="positive integer"):
        irregular_mask(bad, 64, rng())
    with pytest.raises(ValueError, match="positive integer"):
        pennet_center_mask(64, bad)


def test_numpy_integer_sizes_are_accepted():
    mask = make_mask("lama-thick-256", np.int64(64), np.int32(48), rng())
    assert mask.shape == (64, 48)


@pytest.mark.parametrize("name", EXPECTED_PROTOCOLS)
@pytest.mark.parametrize("size", [(1, 1), (8, 8)], ids=["1x1", "8x8"])
def test_tiny_sizes_terminate(name, size):
    """Far below the design size a protocol gives a valid mask or a clear ValueError; it never hangs."""
    height, width = size
    with time_limit(30):
        try:
            mask = make_mask(name, height, width, rng(1))
        except ValueError as err:
            assert name in str(err) and "hole ratio" in str(err)
            return
    assert mask.shape == size and mask.dtype == np.uint8
    spec = get_mask_protocol(name)
    if spec.hole_range is not None:
        low, high = spec.hole_range
        assert low < hole_ratio(mask) <= high


@pytest.mark.parametrize(
    "function",
    [*SEEDED_GENERATORS, pennet_center_mask],
)
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1), (2, 3), (8, 8)])
def test_generator_functions_at_tiny_sizes(function, size):
    for seed in range(5):
        mask = function(*size, rng(seed))
        assert mask.shape == size and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 1}


# ------------------------------------------------------------------------------------------------- redraw rule


def ratio_mask(ratio: float, height: int = 10, width: int = 10) -> np.ndarray:
    mask = np.zeros(height * width, np.uint8)
    mask[: round(ratio * height * width)] = 1
    return mask.reshape(height, width)


class Scripted:
    """A generator returning scripted masks; each call consumes one draw from the rng it is given."""

    def __init__(self, *script: np.ndarray, repeat_last: bool = False) -> None:
        self.script, self.repeat_last, self.calls, self.rngs = list(script), repeat_last, 0, []

    def __call__(self, height: int, width: int, generator: np.random.Generator) -> np.ndarray:
        self.rngs.append(generator)
        generator.integers(1 << 30)
        index = min(self.calls, len(self.script) - 1) if self.repeat_last else self.calls
        self.calls += 1
        return self.script[index].copy()


def install(monkeypatch, name: str, generate: Scripted) -> None:
    """Swap the generator of a registered protocol (the registry dict is restored after the test)."""
    monkeypatch.setitem(masks._PROTOCOLS, name, dataclasses.replace(get_mask_protocol(name), generate=generate))


@pytest.mark.parametrize("name", LAMA_EVAL)
def test_redraw_rule_over_half(monkeypatch, name):
    too_big, at_limit = ratio_mask(0.51), ratio_mask(0.5)
    fake = Scripted(too_big, at_limit)
    install(monkeypatch, name, fake)
    generator = rng(5)
    out = make_mask(name, 10, 10, generator)
    assert np.array_equal(out, at_limit)  # (0, 0.5]: exactly 50 % is kept
    assert fake.calls == 2
    assert all(g is generator for g in fake.rngs)  # both draws from the caller's generator, in order
    reference = rng(5)
    reference.integers(1 << 30)
    reference.integers(1 << 30)
    assert generator.random() == reference.random()


@pytest.mark.parametrize("name", EVALUATION)
def test_redraw_rule_empty_mask(monkeypatch, name):
    valid = ratio_mask(0.2)
    fake = Scripted(np.zeros((10, 10), np.uint8), valid)
    install(monkeypatch, name, fake)
    assert np.array_equal(make_mask(name, 10, 10, rng()), valid)
    assert fake.calls == 2


@pytest.mark.parametrize("name", LAMA_EVAL)
def test_redraw_gives_up_after_max_redraws(monkeypatch, name):
    monkeypatch.setattr(masks, "MAX_REDRAWS", 4)
    fake = Scripted(ratio_mask(0.9), repeat_last=True)
    install(monkeypatch, name, fake)
    with pytest.raises(ValueError, match=rf"{name}.*4 tries"):
        make_mask(name, 10, 10, rng())
    assert fake.calls == 4


@pytest.mark.parametrize("name", TRAINING)
def test_training_protocols_never_redraw(monkeypatch, name):
    huge = ratio_mask(0.9)
    fake = Scripted(huge, ratio_mask(0.2))
    install(monkeypatch, name, fake)
    assert np.array_equal(make_mask(name, 10, 10, rng()), huge)
    assert fake.calls == 1


def test_temporary_fake_protocol(monkeypatch):
    fake = Scripted(ratio_mask(0.8), ratio_mask(0.3))
    monkeypatch.setitem(masks._PROTOCOLS, "fake", MaskProtocol("fake", "test", fake, hole_range=(0.0, 0.5)))
    assert "fake" in list_mask_protocols()
    assert hole_ratio(make_mask("fake", 10, 10, rng())) == 0.3
    assert fake.calls == 2


@pytest.mark.parametrize("name", EVALUATION)
def test_make_mask_is_the_first_acceptable_draw_of_the_stream(name):
    """make_mask returns the first draw of the protocol's own generator that is in range, from the same stream."""
    spec = get_mask_protocol(name)
    low, high = spec.hole_range
    size = spec.size
    for seed in range(10):
        got_rng, ref_rng = rng(seed), rng(seed)
        got = make_mask(name, size, size, got_rng)
        while True:
            expected = spec.generate(size, size, ref_rng)
            if low < hole_ratio(expected) <= high:
                break
        assert got.tobytes() == expected.tobytes()
        assert got_rng.random() == ref_rng.random()


@pytest.mark.parametrize("name", TRAINING)
def test_training_make_mask_is_one_draw(name):
    spec = get_mask_protocol(name)
    for seed in range(5):
        assert make_mask(name, 256, 256, rng(seed)).tobytes() == spec.generate(256, 256, rng(seed)).tobytes()


@pytest.mark.parametrize("name", EVALUATION)
def test_evaluation_hole_ratios_in_range(name):
    spec = get_mask_protocol(name)
    low, high = spec.hole_range
    generator = rng(11)
    ratios = [hole_ratio(make_mask(name, spec.size, spec.size, generator)) for _ in range(100)]
    assert all(low < r <= high for r in ratios)


@pytest.mark.parametrize("name", ["lama-medium-256", "lama-thick-256", "lama-thick-512", "lama-box-512"])
def test_the_redraw_rule_matters(name):
    """The raw generators do draw masks over 50 % at the design size; make_mask (previous test) never returns one."""
    spec = get_mask_protocol(name)
    generator = rng(12)
    ratios = [hole_ratio(spec.generate(spec.size, spec.size, generator)) for _ in range(200)]
    assert max(ratios) > 0.5


# ------------------------------------------------------------------------------------------------- LaMa statistics


def test_thin_strokes_are_narrower_and_more_numerous_than_thick():
    stats = {}
    for name in ["lama-thin-512", "lama-medium-512", "lama-thick-512", "lama-thin-256", "lama-medium-256",
                 "lama-thick-256"]:  # fmt: skip
        generator = rng(21)
        size = native_size(name)
        stats[name] = np.array([stroke_stats(make_mask(name, size, size, generator)) for _ in range(40)])
    for size in (256, 512):
        thin, medium, thick = (stats[f"lama-{kind}-{size}"] for kind in ("thin", "medium", "thick"))
        # Mean stroke widths (5 + (max_width - 1) / 2): thin 14.5 / 9.5, thick 129.5 / 54.5 px (512 / 256); the
        # thick sets' boxes (30 to 300 / 150 px) are wider still. A factor of 3 leaves room for the redraw rule,
        # which keeps the narrower thick masks.
        assert np.median(thick[:, 0]) > 3 * np.median(thin[:, 0])
        assert np.median(thin[:, 1]) > 3 * np.median(thick[:, 1])
        assert np.median(thin[:, 0]) < np.median(medium[:, 0]) < np.median(thick[:, 0])
        # 4 to 70 (or 50) thin strokes, 1 to 5 thick ones (each stroke is one connected polyline; boxes: 1 to 4).
        assert thin[:, 2].mean() > 2 * thick[:, 2].mean()
        assert thick[:, 2].max() <= 5
        assert medium[:, 2].max() <= 10


@pytest.mark.parametrize("max_width", [1, 10, 40])
def test_irregular_stroke_width_follows_max_width(max_width):
    """One stroke going straight (max_angle=1: every segment turns by 0.01 rad) has width 5 + U{0..max_width-1}.

    cv2.line rasterises a thickness-t line at most t + 2 pixels wide, hence twice the centre distance <= t + 3.
    """
    generator = rng(max_width)
    widths, inner = [], []
    for _ in range(120):
        mask = irregular_mask(256, 256, generator, max_angle=1, max_width=max_width, min_times=1, max_times=1)
        widths.append(padded_width(mask))  # outside known: never overestimates a stroke cut by the border
        inner.append(2 * float(ndimage.distance_transform_edt(mask).max()))  # only image pixels count as known
    widest = 5 + max_width - 1
    assert max(widths) <= widest + 3
    assert min(inner) >= 5
    if max_width >= 10:  # the whole range is drawn, not one fixed width
        assert max(widths) >= widest - max_width / 4
        assert min(widths) <= 5 + max_width / 4 + 3


def test_irregular_stroke_count_and_length():
    generator = rng(2)
    for _ in range(100):
        # Each stroke is connected, so at most max_times components.
        mask = irregular_mask(256, 256, generator, max_times=3, max_width=5)
        assert 1 <= ndimage.label(mask)[1] <= 3
    assert not irregular_mask(64, 64, rng(), min_times=0, max_times=0).any()
    for _ in range(100):
        # One straight stroke: at most 5 segments of 10 + U{0..max_len-1} px, plus the brush (<= 5 + 2 px wide);
        # sideways, each segment's end point moves by length * sin(0.01) < 1 px, truncated to a whole pixel.
        mask = irregular_mask(512, 512, generator, max_angle=1, max_len=20, max_width=1, min_times=1, max_times=1)
        top, bottom, left, right = filled_bbox(mask)
        assert bottom - top <= 5 * (10 + 19) + 5 + 2
        assert right - left <= 5 + 2 + 5 * math.ceil((10 + 19) * math.sin(0.01))


@pytest.mark.parametrize(
    ("height", "width", "kwargs", "low", "high", "margin"),
    [
        (512, 512, dict(margin=10, bbox_min_size=30, bbox_max_size=300), 30, 300, 10),
        (256, 256, dict(margin=0, bbox_min_size=10, bbox_max_size=50), 10, 50, 0),
        (200, 320, dict(margin=10, bbox_min_size=30, bbox_max_size=150), 30, 150, 10),
        # bbox_max_size is capped at min(H, W) - 2 * margin = 100 (for both sides).
        (120, 320, dict(margin=10, bbox_min_size=30, bbox_max_size=150), 30, 100, 10),
    ],
)
def test_box_mask_sizes_and_margin(height, width, kwargs, low, high, margin):
    generator = rng(4)
    sides = []
    for _ in range(300):
        mask = box_mask(height, width, generator, min_times=1, max_times=1, **kwargs)
        assert is_filled_rectangle(mask)
        top, bottom, left, right = filled_bbox(mask)
        assert low <= bottom - top < high and low <= right - left < high
        assert top >= margin and left >= margin
        assert bottom <= height - margin and right <= width - margin
        sides += [bottom - top, right - left]
    span = high - low
    assert min(sides) < low + span / 10 and max(sides) >= high - 1 - span / 10  # uniform over [low, high)


def test_box_mask_count():
    generator = rng(8)
    for _ in range(100):
        assert 1 <= ndimage.label(box_mask(256, 256, generator, min_times=1, max_times=3))[1] <= 3
    assert not box_mask(64, 64, rng(), min_times=0, max_times=0).any()


def test_box_classifier_sanity():
    """The helper the mixture tests rely on: boxes pass, strokes of any LaMa width do not."""
    generator = rng(9)
    for _ in range(50):
        assert is_union_of_boxes(box_mask(256, 256, generator, margin=0, bbox_min_size=10, bbox_max_size=50), 10)
        assert not is_union_of_boxes(irregular_mask(512, 512, generator, max_width=20, max_len=100), 30)
    rectangles = np.zeros((64, 64), np.uint8)
    rectangles[0:20, 0:40] = rectangles[10:50, 30:45] = 1
    assert is_union_of_boxes(rectangles, 15)
    assert not is_union_of_boxes(cv2.circle(np.zeros((64, 64), np.uint8), (32, 32), 20, 1, -1), 15)


@pytest.mark.parametrize("name", ["lama-medium-256", "lama-medium-512", "lama-thick-256", "lama-thick-512"])
def test_medium_and_thick_mix_in_boxes(name):
    """Boxes are chosen with probability 0.3 / 1.3; the redraw rule then keeps each kind at its own rate.

    The expected fraction of box masks among the returned ones is 0.3 a_box / (0.3 a_box + a_stroke), with the
    acceptance rates a measured on the two generators run alone with the MODELS.md parameters.
    """
    (min_t, max_t, max_width, max_len), (proba, margin, smallest, largest, box_min_t, box_max_t) = LAMA_TABLE[name]
    size = native_size(name)
    n = 400
    generator = rng(31)
    observed = np.mean([is_union_of_boxes(make_mask(name, size, size, generator), smallest) for _ in range(n)])

    def accepted(mask):
        return 0 < hole_ratio(mask) <= 0.5

    generator = rng(32)
    box_kwargs = dict(margin=margin, bbox_min_size=smallest, bbox_max_size=largest, min_times=box_min_t,
                      max_times=box_max_t)  # fmt: skip
    stroke_kwargs = dict(max_angle=4, max_len=max_len, max_width=max_width, min_times=min_t, max_times=max_t)
    a_box = np.mean([accepted(box_mask(size, size, generator, **box_kwargs)) for _ in range(n)])
    a_stroke = np.mean([accepted(irregular_mask(size, size, generator, **stroke_kwargs)) for _ in range(n)])
    expected = proba * a_box / (proba * a_box + a_stroke)
    # Binomial standard error of the observed fraction ~0.023 at n=400, plus the error of the estimate: 4 sigma.
    assert abs(observed - expected) < 0.11, (observed, expected)
    assert 0.1 < observed < 0.5


@pytest.mark.parametrize("name", ["lama-thin-256", "lama-thin-512"])
def test_thin_sets_have_no_boxes(name):
    size = native_size(name)
    generator = rng(33)
    assert not any(is_union_of_boxes(make_mask(name, size, size, generator), 30) for _ in range(200))


@pytest.mark.parametrize("name", ["lama-box-256", "lama-box-512"])
def test_box_sets_are_boxes_only(name):
    _, (_, margin, smallest, largest, _, max_times) = LAMA_TABLE[name.replace("box", "thick")]
    size = native_size(name)
    generator = rng(34)
    for _ in range(100):
        mask = make_mask(name, size, size, generator)
        assert is_union_of_boxes(mask, smallest)
        assert ndimage.label(mask)[1] <= max_times
        top, bottom, left, right = filled_bbox(mask)
        assert top >= margin and left >= margin and bottom <= size - margin and right <= size - margin


@pytest.mark.parametrize("name", [*LAMA_TABLE, "lama-box-256", "lama-box-512", "lama-train"])
def test_lama_protocols_use_the_models_md_parameters(monkeypatch, name):
    """Every stroke or box of a LaMa protocol comes from irregular_mask / box_mask with MODELS.md §1.4 values."""
    if name == "lama-train":  # abl-04-256-mh-dist.yaml
        stroke_values, box_values = (1, 5, 100, 200), (1.0, 10, 30, 150, 1, 4)
    elif name.startswith("lama-box"):
        stroke_values, box_values = None, LAMA_TABLE[name.replace("box", "thick")][1]
    else:
        stroke_values, box_values = LAMA_TABLE[name]
    calls = []

    def spy(kind, function):
        def wrapper(height, width, generator, **kwargs):
            calls.append((kind, kwargs))
            return function(height, width, generator, **kwargs)

        return wrapper

    monkeypatch.setattr(masks, "irregular_mask", spy("stroke", irregular_mask))
    monkeypatch.setattr(masks, "box_mask", spy("box", box_mask))
    size = native_size(name)
    generator = rng(36)
    for _ in range(40):
        make_mask(name, size, size, generator)
    kinds = {kind for kind, _ in calls}
    assert kinds <= {"stroke", "box"} and calls
    if stroke_values is None:
        assert kinds == {"box"}
    elif box_values is None:
        assert kinds == {"stroke"}
    else:
        assert kinds == {"stroke", "box"}
    if stroke_values is not None:
        min_t, max_t, max_width, max_len = stroke_values
        expected = dict(max_angle=4, max_len=max_len, max_width=max_width, min_times=min_t, max_times=max_t)
        assert all(kwargs == expected for kind, kwargs in calls if kind == "stroke")
    if box_values is not None:
        _, margin, smallest, largest, min_t, max_t = box_values
        expected = dict(margin=margin, bbox_min_size=smallest, bbox_max_size=largest, min_times=min_t, max_times=max_t)
        assert all(kwargs == expected for kind, kwargs in calls if kind == "box")


def test_lama_train_is_half_boxes():
    generator = rng(35)
    n = 400
    boxes = [is_union_of_boxes(make_mask("lama-train", 256, 256, generator), LAMA_TRAIN_BOX_MIN) for _ in range(n)]
    # irregular_proba 1, box_proba 1, renormalised: p = 0.5, standard error 0.025 at n=400; 4 sigma.
    assert abs(np.mean(boxes) - 0.5) < 0.1


# ------------------------------------------------------------------------------------------------- DeepFill v2


def test_deepfill_box_mask_at_256():
    """A 128 x 128 box at t, l ~ U[0, 128), each side shrunk by U{0..16} (MODELS.md §3.2)."""
    generator = rng(41)
    heights, tops = set(), set()
    for _ in range(300):
        mask = deepfill_box_mask(256, 256, generator)
        assert is_filled_rectangle(mask)
        top, bottom, left, right = filled_bbox(mask)
        for start, side in ((top, bottom - top), (left, right - left)):
            shrink = 128 - side
            assert 0 <= shrink <= 32 and shrink % 2 == 0  # both ends shrink by the same delta
            assert 0 <= start - shrink // 2 < 128  # the unshrunk box's corner
        heights.add(bottom - top)
        tops.add(top - (128 - (bottom - top)) // 2)
    assert min(heights) <= 128 - 24 and max(heights) >= 128 - 8  # the jitter spans its range
    assert min(tops) < 16 and max(tops) > 111


def test_deepfill_freeform_is_box_or_strokes():
    for seed in range(20):
        mask = make_mask("deepfill-freeform", 256, 256, rng(seed))
        generator = rng(seed)
        box = deepfill_box_mask(256, 256, generator)
        strokes = deepfill_stroke_mask(256, 256, generator)
        assert np.array_equal(mask, np.maximum(box, strokes))
        assert np.all(mask[box == 1] == 1)
        assert np.array_equal(deepfill_freeform_mask(256, 256, rng(seed)), mask)
        assert (strokes & ~box.astype(bool)).any()  # the strokes do add something


def test_deepfill_stroke_width_in_12_40():
    """One segment (one vertex) of width int(U(12, 40)), discs of that diameter at both ends."""
    generator = rng(42)
    upper, lower = [], []
    for _ in range(120):
        mask = deepfill_stroke_mask(256, 256, generator, max_strokes=2, min_vertices=1, max_vertices=2)
        upper.append(padded_width(mask))  # outside known: never overestimates a stroke cut by the border
        lower.append(2 * float(ndimage.distance_transform_edt(mask).max()))  # only image pixels count as known
    assert max(upper) <= 40 + 2
    assert min(lower) >= 12 - 1
    assert min(upper) < 20 and max(upper) > 32  # uniform over [12, 40)


def test_deepfill_strokes_default_shape():
    generator = rng(43)
    for _ in range(100):
        mask = deepfill_stroke_mask(256, 256, generator)
        assert 1 <= ndimage.label(mask)[1] <= 3  # randint(1, 4) strokes, each one connected polyline
        assert padded_width(mask) >= 12


def test_deepfill_strokes_span_width_on_non_square_images():
    """x starts uniform over the width (not the height, as in the original): the hole's centroid is not left of
    centre (strokes drift right: cos(2 pi / 5) > 0) nor below it (the first segment goes up)."""
    generator = rng(44)
    total = np.zeros((200, 320))
    for _ in range(100):
        total += deepfill_stroke_mask(200, 320, generator)
    rows, cols = np.mgrid[0:200, 0:320]
    assert (total * cols).sum() / total.sum() > 160 - 10
    assert (total * rows).sum() / total.sum() < 100 + 10
    assert total[:, 300:].sum() > 0 and total[180:, :].sum() > 0
    # With mean_angle pi/2 and no spread every segment is vertical, so the columns are those of the start points.
    total = np.zeros((200, 320))
    for _ in range(50):
        total += deepfill_stroke_mask(200, 320, generator, mean_angle=math.pi / 2, angle_range=0)
    assert total[:, 240:].sum() > 0  # start x reaches past the height (200) + half the widest brush (20)
    assert 120 < (total * cols).sum() / total.sum() < 200


# ------------------------------------------------------------------------------------------------- PEN-Net, PiiGAN


@pytest.mark.parametrize(("height", "width"), [(256, 256), (200, 320), (64, 48)])
def test_pennet_center_exact(height, width):
    expected = np.zeros((height, width), np.uint8)
    expected[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
    for generator in (rng(0), rng(1), None):
        assert np.array_equal(pennet_center_mask(height, width, generator), expected)
    assert np.array_equal(make_mask("pennet-center", height, width, rng(5)), expected)


def test_pennet_center_is_a_quarter():
    assert hole_ratio(make_mask("pennet-center", 256, 256, rng())) == 0.25


@pytest.mark.parametrize(("height", "width"), [(256, 256), (200, 320)])
def test_pennet_square_rotated_and_shrunk(height, width):
    """A H/2 x W/2 square, rotated by 0..45 degrees with expand=True, dilated by 1 px, resized back.

    The resize shrinks the square by the canvas growth, so the hole keeps between 1/8 (square images, 45 degrees)
    and 1/4 of the image, plus the dilation (1 px each side) and nearest-neighbour rounding.
    """
    generator = rng(51)
    axis_aligned = 0
    upper = (height // 2 + 3) / height * (width // 2 + 3) / width
    # The canvas grows to (W cos a + H sin a) x (W sin a + H cos a) = H W + (H^2 + W^2) sin(2a) / 2, largest at 45.
    lower = (height * width / 4) / (height * width + (height**2 + width**2) / 2)
    for _ in range(150):
        mask = pennet_square_mask(height, width, generator)
        assert lower - 0.01 <= hole_ratio(mask) <= upper
        assert ndimage.label(mask)[1] == 1
        axis_aligned += is_filled_rectangle(mask)
    assert axis_aligned <= 0.1 * 150  # only angle 0 (p = 1/46) keeps the square axis-aligned


def test_pennet_square_rotates_counter_clockwise():
    """Pillow's rotate(angle) turns counter-clockwise: for 0 < angle < 45 degrees the square's top corner is right
    of its centre (a clockwise turn, or angles past 45, would put it left)."""
    generator = rng(52)
    right = left = 0
    for _ in range(150):
        mask = pennet_square_mask(256, 256, generator)
        top = np.nonzero(mask.any(1))[0][0]
        _, centre_col = ndimage.center_of_mass(mask)
        top_col = np.nonzero(mask[top])[0].mean()
        right += top_col > centre_col + 0.5
        left += top_col < centre_col - 0.5
    assert left <= 0.05 * 150 and right >= 0.8 * 150


def test_pennet_square_is_dilated():
    """Unrotated draws (angle 0, p = 1/46) are the H/2 square grown by the 3 x 3 max filter: 66 px at 128 (65 where
    the square touches the border), never 64."""
    generator = rng(53)
    sides = []
    for _ in range(400):
        mask = pennet_square_mask(128, 128, generator)
        if is_filled_rectangle(mask):
            top, bottom, left, right = filled_bbox(mask)
            sides += [bottom - top, right - left]
    assert sides and set(sides) <= {65, 66}


def test_piigan_center_at_128():
    """The 64 x 64 box at (32, 32), each side shrunk by U{0..4} (MODELS.md §4.3)."""
    generator = rng(61)
    deltas = set()
    for _ in range(200):
        mask = make_mask("piigan-center", 128, 128, generator)
        assert is_filled_rectangle(mask)
        top, bottom, left, right = filled_bbox(mask)
        assert top + bottom == 128 and left + right == 128  # centred
        delta_h, delta_w = top - 32, left - 32
        assert 0 <= delta_h <= 4 and 0 <= delta_w <= 4
        assert 64 - 2 * 4 <= bottom - top <= 64
        deltas.add((delta_h, delta_w))
    assert {d for d, _ in deltas} == set(range(5)) == {d for _, d in deltas}
    assert any(h != w for h, w in deltas)  # independent jitter per axis


def test_piigan_center_scales_with_the_image():
    """Other sizes: the H/2 x W/2 centred box, jitter up to H/32 and W/32 per side."""
    generator = rng(62)
    for _ in range(100):
        mask = piigan_center_mask(200, 320, generator)
        top, bottom, left, right = filled_bbox(mask)
        assert is_filled_rectangle(mask)
        assert top + bottom == 200 and left + right == 320
        assert 0 <= top - 50 <= 200 // 32 and 0 <= left - 80 <= 320 // 32


# ------------------------------------------------------------------------------------------------- hole ratio, buckets


@pytest.mark.parametrize(
    ("ratio", "bucket"),
    [
        (0.0, "0-10%"),
        (0.05, "0-10%"),
        (0.1, "0-10%"),
        (0.1000001, "10-20%"),
        (0.2, "10-20%"),
        (0.25, "20-30%"),
        (0.5, "40-50%"),
        (0.5000001, "50-60%"),
        (0.6, "50-60%"),
        (0.61, "60-100%"),
        (1.0, "60-100%"),
    ],
)
def test_hole_bucket_boundaries(ratio, bucket):
    assert hole_bucket(ratio) == bucket


@pytest.mark.parametrize("bad", [-0.01, 1.0000001, float("nan"), float("inf"), -float("inf")])
def test_hole_bucket_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="hole ratio"):
        hole_bucket(bad)


def test_hole_buckets_tile_the_unit_interval():
    assert HOLE_BUCKETS[0][0] == 0.0 and HOLE_BUCKETS[-1][1] == 1.0
    for (_, high, _), (low, _, _) in zip(HOLE_BUCKETS, HOLE_BUCKETS[1:]):
        assert high == low
    assert len({name for _, _, name in HOLE_BUCKETS}) == len(HOLE_BUCKETS)


def test_hole_ratio():
    mask = np.zeros((4, 5), np.uint8)
    mask[0, :2] = 1
    mask[3, 4] = 255
    assert hole_ratio(mask) == 3 / 20  # any non-zero value is a hole
    assert hole_ratio(mask.astype(bool)) == 3 / 20
    assert hole_ratio(np.ones((3, 3), np.float32)) == 1.0
    assert hole_ratio(np.zeros((3, 3), np.uint8)) == 0.0
    for bad in (np.zeros((2, 3, 3)), np.zeros(5), np.zeros((0, 4))):
        with pytest.raises(ValueError, match=r"\[H, W\]"):
            hole_ratio(bad)
