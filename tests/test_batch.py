"""Batch inference (``inpaint_hub.batch`` and ``inpaint-hub run``): pairing images with masks, output layout and
formats, EXIF, robustness to bad files, skipping and overwriting.

Models: the built-in OpenCV baselines (no weights, deterministic) and a tiny LaMa saved with save_pretrained.
The two-process ``accelerate launch`` run is in ``test_cli.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint_hub import InpaintPipeline, LamaConfig, LamaModel
from inpaint_hub.batch import (
    BatchItem,
    BatchOptions,
    BatchReport,
    find_images,
    model_folder_names,
    pair_images_and_masks,
    run_batch,
)
from inpaint_hub.cli import main
from inpaint_hub.image_processing import load_image, load_mask, resize_mask


HEIGHT, WIDTH = 30, 41
HOLE = (slice(6, 18), slice(9, 25))


def _rgb(path: Path, seed: int, size: tuple[int, int] = (WIDTH, HEIGHT), mode: str = "RGB", **save) -> Path:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8), mode).save(path, **save)
    return path


def _mask(path: Path, size: tuple[int, int] = (WIDTH, HEIGHT), hole=HOLE, value: int = 255) -> Path:
    mask = np.zeros((size[1], size[0]), dtype=np.uint8)
    mask[hole] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _assert_inpainted(output: Path, source: Path, hole: np.ndarray | None = None) -> None:
    """Bit-identical to the source outside the hole; the hole itself changed."""
    out, src = _pixels(output), _pixels(source)
    assert out.shape == src.shape
    if hole is None:
        hole = np.zeros(src.shape[:2], dtype=bool)
        hole[HOLE] = True
    np.testing.assert_array_equal(out[~hole], src[~hole])
    assert not np.array_equal(out[hole], src[hole]), "the hole came back unchanged"


def _names(items: list[BatchItem]) -> list[tuple[str, str | None]]:
    return [(item.name, item.mask.name if item.mask else None) for item in items]


@pytest.fixture(scope="module")
def lama_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch_model") / "lama-tiny"
    LamaModel(LamaConfig.tiny()).save_pretrained(folder)
    return folder


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    """images/{a.png, b.jpg, sub/c.png}, masks/{a.png, b_mask.png, sub/c.png}, and an output folder."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    _rgb(images / "a.png", 1)
    _rgb(images / "b.png", 2)
    _rgb(images / "sub" / "c.png", 3)
    _mask(masks / "a.png")
    _mask(masks / "b_mask.png")
    _mask(masks / "sub" / "c.png")
    return {"images": images, "masks": masks, "out": tmp_path / "out"}


def _run(photos: dict[str, Path], *extra: str, model: str = "cv2-telea") -> list[str]:
    return [
        "run", "--model", model, "--images", str(photos["images"]), "--masks", str(photos["masks"]),
        "--output", str(photos["out"]), *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------- pairing


def test_pairing_by_name_with_subfolders_and_the_mask_suffix(photos):
    items = pair_images_and_masks(photos["images"], photos["masks"])
    assert _names(items) == [("a", "a.png"), ("b", "b_mask.png"), ("sub/c", "c.png")]
    assert items[2].mask == photos["masks"] / "sub" / "c.png"


def test_exact_name_wins_over_the_mask_suffix_and_png_over_other_formats(tmp_path, caplog):
    _rgb(tmp_path / "images" / "x.jpg", 1)
    _mask(tmp_path / "masks" / "x_mask.png")
    _mask(tmp_path / "masks" / "x.bmp")
    assert _names(pair_images_and_masks(tmp_path / "images", tmp_path / "masks")) == [("x", "x.bmp")]
    _mask(tmp_path / "masks" / "x.png")
    with caplog.at_level(logging.WARNING, logger="inpaint_hub"):
        assert _names(pair_images_and_masks(tmp_path / "images", tmp_path / "masks")) == [("x", "x.png")]
    assert "several masks" in caplog.text


def test_images_are_found_recursively_sorted_case_insensitively_without_hidden_or_other_files(tmp_path):
    for name in ("b.JPG", "a.png", "z/y.TIFF", "m.webp", "n.bmp", "o.jpeg"):
        _rgb(tmp_path / name, 0)
    (tmp_path / "notes.txt").write_text("not an image")
    _rgb(tmp_path / ".hidden" / "h.png", 0)
    _rgb(tmp_path / ".h.png", 0)
    files, root = find_images(tmp_path)
    assert root == tmp_path
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.png", "b.JPG", "m.webp", "n.bmp", "o.jpeg", "z/y.TIFF"
    ]  # fmt: skip
    # the output folder inside the images folder is left out
    files, _ = find_images(tmp_path, exclude=tmp_path / "z")
    assert "z/y.TIFF" not in [f.relative_to(tmp_path).as_posix() for f in files]


def test_one_mask_for_every_image_and_a_single_image_file(photos, tmp_path):
    mask = _mask(tmp_path / "one.png")
    items = pair_images_and_masks(photos["images"], mask)
    assert [(i.name, i.mask) for i in items] == [("a", mask), ("b", mask), ("sub/c", mask)]
    items = pair_images_and_masks(photos["images"] / "sub" / "c.png", photos["masks"])
    assert _names(items) == [("c", None)], "a single file's name is its stem, looked up at the masks folder's top"
    items = pair_images_and_masks(photos["images"] / "a.png", photos["masks"])
    assert _names(items) == [("a", "a.png")]


def test_masks_in_the_images_folder_are_not_inpainted_themselves(tmp_path):
    folder = tmp_path / "both"
    _rgb(folder / "p.png", 1)
    _rgb(folder / "q.jpg", 2)
    _mask(folder / "p_mask.png")
    items = pair_images_and_masks(folder, folder)
    assert _names(items) == [("p", "p_mask.png"), ("q", None)]


def test_images_with_the_same_name_keep_their_suffix(tmp_path, caplog):
    _rgb(tmp_path / "images" / "a.png", 1)
    _rgb(tmp_path / "images" / "a.jpg", 2)
    _mask(tmp_path / "masks" / "a.png")
    with caplog.at_level(logging.WARNING, logger="inpaint_hub"):
        items = pair_images_and_masks(tmp_path / "images", tmp_path / "masks")
    assert _names(items) == [("a.jpg", "a.png"), ("a.png", "a.png")]
    assert "several images are named a" in caplog.text


def test_pairing_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pair_images_and_masks(tmp_path / "nope", tmp_path)
    _rgb(tmp_path / "images" / "a.png", 1)
    with pytest.raises(FileNotFoundError, match="mask folder or file .*nope does not exist"):
        pair_images_and_masks(tmp_path / "images", tmp_path / "nope")
    with pytest.raises(ValueError, match="no images found in"):
        pair_images_and_masks(tmp_path / "empty", tmp_path / "images")


def test_model_folder_names(tmp_path):
    (tmp_path / "models" / "lama").mkdir(parents=True)
    (tmp_path / "other" / "lama").mkdir(parents=True)
    names = model_folder_names(
        ["org/lama", "cv2-telea", str(tmp_path / "models" / "lama"), str(tmp_path / "other" / "lama") + "/", "a b/c:d"]
    )
    assert list(names.values()) == ["org--lama", "cv2-telea", "lama", "lama-2", "a_b--c_d"]
    with pytest.raises(ValueError, match="given twice"):
        model_folder_names(["cv2-ns", "cv2-ns"])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_samples": 0}, "num_samples must be >= 1"),
        ({"mask_dilate": -1}, "mask_dilate must be >= 0"),
        ({"mask_feather": -0.5}, "mask_feather must be >= 0"),
        ({"jpeg_quality": 0}, "jpeg_quality must be >= 1"),
        ({"jpeg_quality": 101}, "jpeg_quality must be <= 100"),
        ({"output_format": "gif"}, "unknown output_format 'gif'"),
        ({"hd_strategy": "tile"}, "unknown hd_strategy 'tile'"),
        ({"resize_limit": 0}, "resize_limit must be >= 1"),
        ({"crop_trigger_size": 0}, "crop_trigger_size must be >= 1"),
        ({"crop_margin": -1}, "crop_margin must be >= 0"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"seed": 2**63 - 1, "num_samples": 2}, "seed must be below"),
    ],
)
def test_options_are_checked_up_front(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        BatchOptions(**kwargs)


def test_hd_strategy_settings_reach_the_pipeline(photos, monkeypatch):
    seen = []
    original = InpaintPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append({k: kwargs[k] for k in ("hd_strategy", "resize_limit", "crop_trigger_size", "crop_margin")})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InpaintPipeline, "__call__", spy)
    extra = ("--hd-strategy", "crop", "--crop-trigger-size", "40", "--crop-margin", "5", "--resize-limit", "64")
    assert main(_run(photos, *extra)) == 0
    assert seen == [{"hd_strategy": "crop", "resize_limit": 64, "crop_trigger_size": 40, "crop_margin": 5}] * 3
    for name in ("a", "b", "sub/c"):
        _assert_inpainted(photos["out"] / f"{name}.png", photos["images"] / f"{name}.png")


# ------------------------------------------------------------------------------------------------- outputs


def test_png_outputs_keep_known_pixels_and_the_folder_structure(photos, capsys):
    assert main(_run(photos)) == 0
    out = photos["out"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a.png", "b.png", "sub/c.png"
    ]  # fmt: skip
    for name in ("a", "b", "sub/c"):
        _assert_inpainted(out / f"{name}.png", photos["images"] / f"{name}.png")
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and image.mode == "RGB"
    stdout = capsys.readouterr().out
    assert f"wrote {out / 'sub' / 'c.png'}" in stdout
    assert "3 written, 0 skipped, 0 failed" in stdout


def test_a_mask_of_another_size_is_resized_and_thresholded(tmp_path, caplog):
    image = _rgb(tmp_path / "img.png", 5)
    # half the size, grey (value 1) pixels: any non-zero pixel is a hole
    small = _mask(tmp_path / "small.png", size=(20, 15), hole=(slice(3, 9), slice(4, 12)), value=1)
    items = pair_images_and_masks(image, small)
    with caplog.at_level(logging.INFO, logger="inpaint_hub"):
        report = run_batch({"cv2-telea": InpaintPipeline.from_pretrained("cv2-telea")}, items, tmp_path / "out")
    assert report.summary() == "1 written, 0 skipped, 0 failed" and report.ok
    assert "mask" in caplog.text and "is 20x15" in caplog.text and "resizing" in caplog.text
    expected = resize_mask(load_mask(small), (WIDTH, HEIGHT))
    assert expected.sum() == 12 * 16, "nearest-neighbour enlargement of a 6x8 hole by 2 x 2.05"
    _assert_inpainted(tmp_path / "out" / "img.png", image, hole=expected)
    direct = InpaintPipeline.from_pretrained("cv2-telea")(str(image), expected).image
    np.testing.assert_array_equal(_pixels(tmp_path / "out" / "img.png"), np.asarray(direct))


def test_jpeg_output(photos, tmp_path):
    assert main(_run(photos, "--format", "jpg")) == 0
    jpg = photos["out"] / "a.jpg"
    with Image.open(jpg) as image:
        assert image.format == "JPEG" and image.size == (WIDTH, HEIGHT)
        from PIL import JpegImagePlugin

        assert JpegImagePlugin.get_sampling(image) == 0, "4:4:4, no chroma subsampling"
    # exactly the PNG result saved at quality 95 without subsampling
    png_run = dict(photos, out=tmp_path / "png")
    assert main(_run(png_run)) == 0
    buffer = tmp_path / "expected.jpg"
    Image.open(png_run["out"] / "a.png").save(buffer, format="JPEG", quality=95, subsampling=0)
    assert jpg.read_bytes() == buffer.read_bytes()
    # --jpeg-quality
    low = dict(photos, out=tmp_path / "low")
    assert main(_run(low, "--format", "jpg", "--jpeg-quality", "30")) == 0
    assert (low["out"] / "a.jpg").stat().st_size < jpg.stat().st_size


def test_rgba_input_png_keeps_alpha_and_jpeg_drops_it(tmp_path):
    image = _rgb(tmp_path / "images" / "rgba.png", 7, mode="RGBA")
    _mask(tmp_path / "masks" / "rgba.png")
    args = ["run", "--model", "cv2-ns", "--images", str(image), "--masks", str(tmp_path / "masks")]
    assert main([*args, "--output", str(tmp_path / "png")]) == 0
    with Image.open(tmp_path / "png" / "rgba.png") as out, Image.open(image) as src:
        assert out.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(src)[..., 3])
    assert main([*args, "--output", str(tmp_path / "jpg"), "--format", "jpg"]) == 0
    with Image.open(tmp_path / "jpg" / "rgba.jpg") as out:
        assert out.format == "JPEG" and out.mode == "RGB"


def test_grayscale_16_bit_png_stays_16_bit(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    mask = _mask(tmp_path / "m.png")
    items = pair_images_and_masks(tmp_path / "g16.png", mask)
    run_batch({"cv2-telea": InpaintPipeline.from_pretrained("cv2-telea")}, items, tmp_path / "out")
    with Image.open(tmp_path / "out" / "g16.png") as out:
        assert out.mode.startswith("I")
        result = np.asarray(out).astype(np.uint16)
    keep = np.ones((HEIGHT, WIDTH), dtype=bool)
    keep[HOLE] = False
    np.testing.assert_array_equal(result[keep], values[keep])


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_exif_is_kept_with_orientation_1(tmp_path, fmt):
    exif = Image.Exif()
    exif[0x010F] = "InpaintCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    source = _rgb(tmp_path / "images" / "phone.jpg", 9, size=(HEIGHT, WIDTH), exif=exif.tobytes(), quality=95)
    # the mask is drawn on the upright (displayed) photo: WIDTH x HEIGHT
    _mask(tmp_path / "masks" / "phone.png")
    args = ["run", "--model", "cv2-telea", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks")]
    assert main([*args, "--output", str(tmp_path / "out"), "--format", fmt]) == 0
    out = tmp_path / "out" / f"phone.{fmt}"
    with Image.open(out) as image:
        assert image.size == (WIDTH, HEIGHT), "written upright"
        written = image.getexif()
        assert written[0x010F] == "InpaintCam"
        assert written.get(0x0112, 1) == 1, "the pixels are already rotated: no second rotation"
    if fmt == "png":
        upright = load_image(source).to_pil()
        hole = np.zeros((HEIGHT, WIDTH), dtype=bool)
        hole[HOLE] = True
        np.testing.assert_array_equal(_pixels(out)[~hole], np.asarray(upright)[~hole])


def test_several_models_write_one_folder_each(photos, lama_dir, capsys):
    args = _run(photos, model="cv2-telea")
    assert main([*args, "--model", "cv2-ns", "--model", str(lama_dir)]) == 0
    out = photos["out"]
    assert sorted(p.name for p in out.iterdir()) == ["cv2-ns", "cv2-telea", "lama-tiny"]
    for model in ("cv2-ns", "cv2-telea", "lama-tiny"):
        for name in ("a", "b", "sub/c"):
            _assert_inpainted(out / model / f"{name}.png", photos["images"] / f"{name}.png")
    assert not np.array_equal(_pixels(out / "cv2-ns" / "a.png"), _pixels(out / "lama-tiny" / "a.png"))
    assert "9 written, 0 skipped, 0 failed" in capsys.readouterr().out


def test_num_samples_names_the_files(photos):
    assert main(_run(photos, "--num-samples", "3", "--seed", "4")) == 0
    out = photos["out"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a_0.png", "a_1.png", "a_2.png", "b_0.png", "b_1.png", "b_2.png", "sub/c_0.png", "sub/c_1.png", "sub/c_2.png"
    ]  # fmt: skip
    _assert_inpainted(out / "b_2.png", photos["images"] / "b.png")


def test_concat_writes_image_mask_and_every_result_side_by_side(photos, tmp_path):
    extra = ["--model", "cv2-ns", "--num-samples", "2", "--seed", "0"]
    assert main([*_run(photos, "--concat"), *extra]) == 0
    out = photos["out"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a.png", "b.png", "sub/c.png"
    ], "one file per image, no per-model files"  # fmt: skip
    strip = _pixels(out / "a.png")
    assert strip.shape == (HEIGHT, WIDTH * 6, 3)  # image | mask | telea x2 | ns x2
    panels = [strip[:, k * WIDTH : (k + 1) * WIDTH] for k in range(6)]
    np.testing.assert_array_equal(panels[0], _pixels(photos["images"] / "a.png"))
    expected_mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    expected_mask[HOLE] = 255
    for channel in range(3):
        np.testing.assert_array_equal(panels[1][..., channel], expected_mask)
    separate = dict(photos, out=tmp_path / "separate")
    assert main([*_run(separate), *extra]) == 0
    np.testing.assert_array_equal(panels[2], _pixels(separate["out"] / "cv2-telea" / "a_0.png"))
    np.testing.assert_array_equal(panels[3], _pixels(separate["out"] / "cv2-telea" / "a_1.png"))
    np.testing.assert_array_equal(panels[4], _pixels(separate["out"] / "cv2-ns" / "a_0.png"))


# ------------------------------------------------------------------------------------------------- robustness


def test_a_bad_image_is_reported_and_the_others_are_written(photos, capsys):
    (photos["images"] / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    truncated = photos["images"] / "trunc.png"
    _rgb(truncated, 4)
    truncated.write_bytes(truncated.read_bytes()[:200])
    _mask(photos["masks"] / "bad.png")
    _mask(photos["masks"] / "trunc.png")
    assert main(_run(photos)) == 1
    captured = capsys.readouterr()
    assert f"{photos['images'] / 'bad.png'}: cannot read image" in captured.err
    assert f"{photos['images'] / 'trunc.png'}: cannot read image" in captured.err and "truncated" in captured.err
    assert "Traceback" not in captured.err
    assert "3 written, 0 skipped, 2 failed" in captured.out
    for name in ("a", "b", "sub/c"):
        _assert_inpainted(photos["out"] / f"{name}.png", photos["images"] / f"{name}.png")
    assert not (photos["out"] / "bad.png").exists() and not (photos["out"] / "trunc.png").exists()


def test_an_image_without_a_mask_counts_as_failed(photos, capsys):
    _rgb(photos["images"] / "lonely.png", 8)
    assert main(_run(photos)) == 1
    captured = capsys.readouterr()
    assert f"{photos['images'] / 'lonely.png'}: no mask found" in captured.err
    assert "3 written, 0 skipped, 1 failed" in captured.out


def test_an_unreadable_mask_fails_its_image_only(photos, capsys):
    (photos["masks"] / "a.png").write_bytes(b"not a mask")
    assert main(_run(photos)) == 1
    captured = capsys.readouterr()
    assert "a.png: cannot read mask" in captured.err
    assert "2 written, 0 skipped, 1 failed" in captured.out


def test_an_unreadable_shared_mask_stops_before_any_work(photos, tmp_path, capsys):
    bad = tmp_path / "one.png"
    bad.write_bytes(b"broken")
    args = _run(photos)
    args[args.index("--masks") + 1] = str(bad)
    assert main(args) == 1
    assert "cannot read mask" in capsys.readouterr().err
    assert not photos["out"].exists()


class _FailingPipeline(InpaintPipeline):
    """Raises on images whose top-left pixel is odd, like a model that breaks on some inputs."""

    def __call__(self, image, mask_image, **kwargs):
        if load_image(image).color[0, 0, 0] % 2:
            raise RuntimeError("out of memory (simulated)")
        return super().__call__(image, mask_image, **kwargs)


def test_a_model_raising_on_one_image_fails_that_pair_only(photos, caplog):
    items = pair_images_and_masks(photos["images"], photos["masks"])
    odd = [i for i in items if load_image(i.image).color[0, 0, 0] % 2]
    assert 0 < len(odd) < len(items), "the fixture must have images of both kinds"
    failing = _FailingPipeline(InpaintPipeline.from_pretrained("cv2-telea").model)
    pipelines = {"flaky": failing, "cv2-ns": InpaintPipeline.from_pretrained("cv2-ns")}
    events = []
    report = run_batch(pipelines, items, photos["out"], on_event=events.append)
    assert isinstance(report, BatchReport) and not report.ok
    assert (report.written, report.skipped, report.failed) == (2 * len(items) - len(odd), 0, len(odd))
    assert [str(path) for path, _ in report.failures] == [str(i.image) for i in odd]
    assert "model flaky failed: RuntimeError: out of memory (simulated)" in report.failures[0][1]
    assert [e.kind for e in events].count("failed") == len(odd)
    for item in items:  # the other model still ran on every image
        assert (photos["out"] / "cv2-ns" / f"{item.name}.png").is_file()
        assert (photos["out"] / "flaky" / f"{item.name}.png").is_file() == (item not in odd)
    # without a callback, failures are logged
    with caplog.at_level(logging.WARNING, logger="inpaint_hub"):
        run_batch(pipelines, items, photos["out"], BatchOptions(overwrite=True))
    assert "out of memory (simulated)" in caplog.text


def test_concat_is_not_written_when_a_model_fails(photos):
    items = pair_images_and_masks(photos["images"], photos["masks"])
    failing = _FailingPipeline(InpaintPipeline.from_pretrained("cv2-telea").model)
    report = run_batch(
        {"flaky": failing, "cv2-ns": InpaintPipeline.from_pretrained("cv2-ns")},
        items,
        photos["out"],
        BatchOptions(concat=True),
        progress=False,
    )
    odd = {i.name for i in items if load_image(i.image).color[0, 0, 0] % 2}
    assert report.failed == len(odd)
    for item in items:
        assert (photos["out"] / f"{item.name}.png").is_file() == (item.name not in odd)


def test_existing_outputs_are_skipped_unless_overwrite(photos, capsys):
    assert main(_run(photos)) == 0
    target = photos["out"] / "a.png"
    target.write_bytes(b"a result from an earlier run")
    os.utime(target, (1_000_000_000, 1_000_000_000))
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(_run(photos)) == 0
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before
    stdout = capsys.readouterr().out
    assert f"skipped {target}: it exists" in stdout and "0 written, 3 skipped, 0 failed" in stdout
    # a missing file is written again, the others skipped
    (photos["out"] / "b.png").unlink()
    assert main(_run(photos)) == 0
    assert "1 written, 2 skipped, 0 failed" in capsys.readouterr().out
    assert main(_run(photos, "--overwrite")) == 0
    assert "3 written, 0 skipped, 0 failed" in capsys.readouterr().out
    assert target.stat().st_mtime_ns != before[1]
    _assert_inpainted(target, photos["images"] / "a.png")
    leftovers = [p for p in photos["out"].rglob("*") if p.name.startswith(".")]
    assert not leftovers, "atomic writes leave no temporary file behind"


def test_concat_output_is_skipped_too(photos, capsys):
    assert main(_run(photos, "--concat")) == 0
    capsys.readouterr()
    assert main(_run(photos, "--concat")) == 0
    assert "0 written, 3 skipped, 0 failed" in capsys.readouterr().out


def test_output_inside_the_images_folder_is_not_read_back(photos, capsys):
    photos = dict(photos, out=photos["images"] / "results")
    assert main(_run(photos)) == 0
    assert main(_run(photos)) == 0
    out = capsys.readouterr().out
    assert "0 written, 3 skipped, 0 failed" in out, out


def test_inputs_are_never_written_over(photos, capsys):
    # the images folder as the output folder is refused up front
    same = dict(photos, out=photos["images"])
    assert main(_run(same)) == 1
    assert "is the images folder" in capsys.readouterr().err
    # results named like the masks they were made with, in the masks folder: refused even with --overwrite
    masks = dict(photos, out=photos["masks"])
    before = (photos["masks"] / "a.png").read_bytes()
    assert main(_run(masks, "--overwrite")) == 1
    captured = capsys.readouterr()
    assert "refusing to write" in captured.err and str(photos["masks"] / "a.png") in captured.err
    assert (photos["masks"] / "a.png").read_bytes() == before
    assert (photos["masks"] / "b.png").is_file(), "b's mask is b_mask.png: b.png is a new file"
