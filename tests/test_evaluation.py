"""Evaluation: reproducible samples, per-bucket rows, failures kept apart, model-index cards."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint_hub.evaluation import (
    PSNR_CAP,
    EvalSample,
    evaluate,
    load_eval_samples,
    mask_seed,
    prepare_image,
    results_to_markdown,
    summarize,
    write_model_index,
)
from inpaint_hub.image_processing import resize_mask
from inpaint_hub.masks import make_mask
from inpaint_hub.pipeline import InpaintPipeline, InpaintPipelineOutput


def _textured(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i, (h, w) in enumerate([(96, 128), (128, 96), (100, 100)]):
        Image.fromarray(_textured(h, w, i)).save(folder / f"img{i}.png")
    Image.fromarray(_textured(80, 120, 9)).save(folder / "sub" / "deep.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    return folder


# ------------------------------------------------------------------------------------------------- samples


def test_images_are_found_recursively_in_sorted_order(image_dir: Path, tmp_path: Path) -> None:
    samples, problems = load_eval_samples(image_dir, protocol="pennet-center")
    assert [s.name for s in samples] == ["img0.png", "img1.png", "img2.png", "sub/deep.jpg"] and problems == []
    single, _ = load_eval_samples(image_dir / "img1.png", protocol="pennet-center")
    assert [s.name for s in single] == ["img1.png"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_eval_samples(image_dir / "missing", protocol="pennet-center")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_eval_samples(tmp_path / "empty", protocol="pennet-center")


def test_prepare_image_resizes_short_side_and_centre_crops() -> None:
    image = Image.fromarray(_textured(60, 90, 0))
    out = prepare_image(image, 30)
    assert out.size == (30, 30) and out.mode == "RGB"
    expected = image.resize((45, 30), Image.Resampling.BICUBIC).crop((7, 0, 37, 30))
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    assert prepare_image(image, None).size == (90, 60)


def test_protocol_masks_depend_only_on_seed_and_name(image_dir: Path) -> None:
    first, problems = load_eval_samples(image_dir, protocol="lama-thin-256", seed=3, resize=64)
    assert problems == [] and [s.name for s in first] == ["img0.png", "img1.png", "img2.png", "sub/deep.jpg"]
    again, _ = load_eval_samples(image_dir, protocol="lama-thin-256", seed=3, resize=64)
    assert all(a.mask.tobytes() == b.mask.tobytes() for a, b in zip(first, again))
    # The mask of an image is the one drawn from [seed, crc32(name)], whatever else is in the folder.
    for sample in first:
        expected = make_mask("lama-thin-256", 64, 64, np.random.default_rng(mask_seed(3, sample.name)))
        assert np.array_equal(sample.mask, expected)
    limited, _ = load_eval_samples(image_dir, protocol="lama-thin-256", seed=3, resize=64, limit=2)
    assert [s.mask.tobytes() for s in limited] == [s.mask.tobytes() for s in first[:2]]
    other_seed, _ = load_eval_samples(image_dir, protocol="lama-thin-256", seed=4, resize=64)
    assert any(a.mask.tobytes() != b.mask.tobytes() for a, b in zip(first, other_seed))
    assert all(s.image.shape == (64, 64, 3) and s.mask.shape == (64, 64) for s in first)


def test_native_size_without_resize(image_dir: Path) -> None:
    samples, _ = load_eval_samples(image_dir, protocol="pennet-center")
    assert [s.image.shape[:2] for s in samples] == [(96, 128), (128, 96), (100, 100), (80, 120)]
    assert samples[0].mask[24:72, 32:96].all() and samples[0].mask.sum() == 48 * 64


def test_mask_folder_matching_and_resizing(image_dir: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    (masks / "sub").mkdir(parents=True)
    square = np.zeros((96, 128), np.uint8)
    square[10:40, 20:60] = 255
    Image.fromarray(square).save(masks / "img0.png")  # exact stem, the image's own size
    half = np.zeros((64, 48), np.uint8)
    half[:, :24] = 7  # any non-zero value is a hole
    Image.fromarray(half).save(masks / "img1_mask.png")  # <stem>_mask, another size: resized nearest
    Image.fromarray(square[:80, :120]).save(masks / "sub" / "deep.png")  # subfolder, other extension
    samples, problems = load_eval_samples(image_dir, masks=masks)
    by_name = {s.name: s for s in samples}
    assert set(by_name) == {"img0.png", "img1.png", "sub/deep.jpg"}
    assert len(problems) == 1 and problems[0].startswith("img2.png") and "no mask" in problems[0]
    assert np.array_equal(by_name["img0.png"].mask, (square > 0).astype(np.uint8))
    assert by_name["img1.png"].mask.shape == (128, 96)
    assert by_name["img1.png"].mask[:, :48].all() and not by_name["img1.png"].mask[:, 48:].any()

    # With --resize, a mask gets the image's own resize + crop, whatever resolution it was saved at.
    resized, _ = load_eval_samples(image_dir, masks=masks, resize=48)
    img0 = next(s for s in resized if s.name == "img0.png")
    expected = resize_mask(square > 0, (64, 48))[:, 8:56]
    assert np.array_equal(img0.mask, expected.astype(np.uint8))
    Image.fromarray(square).resize((64, 48), Image.Resampling.NEAREST).save(masks / "img0.png")  # half resolution
    half_res = next(s for s in load_eval_samples(image_dir, masks=masks, resize=48)[0] if s.name == "img0.png")
    assert np.array_equal(half_res.mask, expected.astype(np.uint8))


def test_masks_follow_the_library_conventions(tmp_path: Path) -> None:
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir(), masks.mkdir()
    Image.fromarray(_textured(40, 50, 0)).save(images / "a.png")
    painted = np.zeros((40, 50, 4), np.uint8)  # black strokes on a transparent layer (the demo's editor)
    painted[10:20, 5:25, 3] = 255
    Image.fromarray(painted, "RGBA").save(masks / "a.png")
    (sample,), problems = load_eval_samples(images, masks=masks)
    assert problems == [] and sample.mask.sum() == 200 and sample.mask[10:20, 5:25].all()


def test_sixteen_bit_and_grayscale_images_are_quantised_not_clipped(tmp_path: Path) -> None:
    images = tmp_path / "i"
    images.mkdir()
    deep = np.random.default_rng(0).integers(0, 65536, (32, 40), dtype=np.uint16)
    Image.fromarray(deep).save(images / "deep.png")
    Image.fromarray((deep >> 8).astype(np.uint8)).save(images / "gray.png")
    samples, problems = load_eval_samples(images, protocol="pennet-center")
    assert problems == []
    by_name = {s.name: s for s in samples}
    expected = np.rint(deep / 65535 * 255).astype(np.uint8)
    assert np.abs(by_name["deep.png"].image[..., 0].astype(int) - expected).max() <= 1
    assert by_name["deep.png"].image.mean() < 200  # not clipped to white
    assert np.array_equal(by_name["gray.png"].image, np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, -1))


def test_images_smaller_than_the_ssim_window_are_skipped(tmp_path: Path) -> None:
    images = tmp_path / "i"
    images.mkdir()
    Image.fromarray(_textured(8, 30, 0)).save(images / "tiny.png")
    Image.fromarray(_textured(30, 30, 0)).save(images / "ok.png")
    samples, problems = load_eval_samples(images, protocol="pennet-center")
    assert [s.name for s in samples] == ["ok.png"] and "smaller than SSIM" in problems[0]


def test_bad_inputs_are_reported_not_fatal(image_dir: Path, tmp_path: Path) -> None:
    (image_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    samples, problems = load_eval_samples(image_dir, protocol="pennet-center")
    assert "broken.png" not in [s.name for s in samples] and len(samples) == 4
    assert len(problems) == 1 and problems[0].startswith("broken.png")
    masks = tmp_path / "m"
    masks.mkdir()
    Image.fromarray(np.zeros((96, 128), np.uint8)).save(masks / "img0.png")
    _, problems = load_eval_samples(image_dir / "img0.png", masks=masks / "img0.png")
    assert "empty" in problems[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"protocol": "lama-thin-256", "masks": "x"}, "exactly one"),
        ({"protocol": "lama-tiny-9"}, "unknown mask protocol"),
        ({"protocol": "lama-thin-256", "resize": 2}, "resize"),
        ({"protocol": "lama-thin-256", "limit": 0}, "limit"),
        ({"protocol": "lama-thin-256", "seed": -1}, "seed"),
    ],
)
def test_argument_errors(image_dir: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_eval_samples(image_dir, **kwargs)


# ------------------------------------------------------------------------------------------------- evaluate


class _Oracle:
    """A stand-in pipeline that knows the answer, or fills the hole with a constant, or fails on one image."""

    def __init__(self, truth: dict[bytes, np.ndarray], fill: int | None = None, fail_on: int | None = None) -> None:
        self.truth, self.fill, self.fail_on, self.calls = truth, fill, fail_on, 0

    def __call__(self, image: Image.Image, mask: Image.Image, **kwargs) -> InpaintPipelineOutput:
        self.calls += 1
        if self.fail_on == self.calls:
            raise RuntimeError("out of memory")
        known = np.asarray(image)
        out = self.truth[known.tobytes()].copy()
        if self.fill is not None:
            out[np.asarray(mask) > 0] = self.fill
        return InpaintPipelineOutput(images=[Image.fromarray(out)])


def _samples() -> list[EvalSample]:
    samples = []
    for i, ratio_rows in enumerate([2, 10, 20, 30]):  # 5%, 25%, 50%, 75% of a 40-row image
        mask = np.zeros((40, 40), np.uint8)
        mask[:ratio_rows] = 1
        samples.append(EvalSample(f"s{i}.png", _textured(40, 40, i), mask))
    return samples


def _truth(samples: list[EvalSample]) -> dict[bytes, np.ndarray]:
    # The pipeline receives the image with the hole blanked; map that back to the ground truth.
    return {(s.image * (1 - s.mask[..., None])).tobytes(): s.image for s in samples}


def test_the_model_never_sees_the_hole() -> None:
    samples = _samples()
    seen = []

    def spy(image: Image.Image, mask: Image.Image, **kwargs) -> InpaintPipelineOutput:
        seen.append((np.asarray(image).copy(), np.asarray(mask) > 0))
        return InpaintPipelineOutput(images=[image])

    evaluate(spy, samples, model="spy", protocol="p", progress=False)
    for (image, hole), sample in zip(seen, samples):
        assert np.array_equal(hole, sample.mask.astype(bool))
        assert not image[hole].any() and np.array_equal(image[~hole], sample.image[~hole])


def test_perfect_model_scores_the_cap() -> None:
    samples = _samples()
    run = evaluate(_Oracle(_truth(samples)), samples, model="oracle", protocol="p", progress=False)
    assert [r.psnr for r in run.images] == [PSNR_CAP] * 4
    assert all(r.ssim == pytest.approx(1.0) and r.l1_hole == 0 for r in run.images)
    assert [r.bucket for r in run.images] == ["0-10%", "20-30%", "40-50%", "60-100%"]


def test_constant_fill_metrics_match_an_independent_computation() -> None:
    samples = _samples()
    run = evaluate(_Oracle(_truth(samples), fill=0), samples, model="black", protocol="p", progress=False)
    for sample, result in zip(samples, run.images):
        hole = sample.mask.astype(bool)
        diff = sample.image[hole].astype(np.float64)  # prediction is 0 in the hole
        assert result.l1_hole == pytest.approx(diff.mean() / 255)
        assert result.psnr_hole == pytest.approx(10 * math.log10(255**2 / np.mean(diff**2)))
        whole_mse = np.sum(diff**2) / sample.image.size
        assert result.psnr == pytest.approx(10 * math.log10(255**2 / whole_mse))
        assert result.seconds >= 0


def test_a_failing_image_is_recorded_and_left_out_of_the_means() -> None:
    samples = _samples()
    run = evaluate(_Oracle(_truth(samples), fill=0, fail_on=2), samples, model="m", protocol="p", progress=False)
    assert [r.error is not None for r in run.images] == [False, True, False, False]
    assert "out of memory" in run.images[1].error
    rows = summarize([run])
    overall = rows[-1]
    assert overall["bucket"] == "all" and overall["n"] == 3 and overall["failed"] == 1
    good = [r.l1_hole for r in run.images if r.error is None]
    assert overall["l1_hole"] == pytest.approx(np.mean(good))
    failed_bucket = next(r for r in rows if r["bucket"] == "20-30%")
    assert failed_bucket["n"] == 0 and math.isnan(failed_bucket["psnr"])
    assert "(1 failed)" in results_to_markdown(rows)


def test_summarize_buckets_add_up_and_markdown_lists_them() -> None:
    samples = _samples() * 2
    runs = [
        evaluate(_Oracle(_truth(samples), fill=v), samples, model=f"fill{v}", protocol="p", progress=False)
        for v in (0, 255)
    ]
    rows = summarize(runs)
    for model in ("fill0", "fill255"):
        mine = [r for r in rows if r["model"] == model]
        assert mine[-1]["bucket"] == "all" and mine[-1]["n"] == 8
        assert sum(r["n"] for r in mine[:-1]) == 8
        assert [r["bucket"] for r in mine[:-1]] == ["0-10%", "20-30%", "40-50%", "60-100%"]
    table = results_to_markdown(rows)
    assert table.count("\n") == 2 + len(rows)
    assert "| `fill0` | p | 0-10% | 2 |" in table
    assert len(results_to_markdown(rows, buckets=False).splitlines()) == 4


def test_several_samples_give_mean_best_and_diversity() -> None:
    from test_model_contract import widen_init

    from inpaint_hub.models.piigan import PiiGANConfig, PiiGANModel

    samples = _samples()[:2]
    pipe = InpaintPipeline(widen_init(PiiGANModel(PiiGANConfig.tiny()), gain=0.8).eval())
    run = evaluate(pipe, samples, model="piigan", protocol="p", seed=4, num_samples=3, progress=False)
    for sample, result in zip(samples, run.images):
        assert result.error is None and result.num_samples == 3
        # the same numbers computed by hand from the pipeline's three samples (seeds 4, 5, 6)
        known = sample.image * (1 - sample.mask[..., None])
        outputs = [np.asarray(pipe(known, sample.mask * 255, seed=4 + k).image, dtype=np.float64) for k in range(3)]
        hole = sample.mask.astype(bool)
        psnrs = [10 * math.log10(255**2 / np.mean((o[hole] - sample.image[hole]) ** 2)) for o in outputs]
        assert result.psnr_hole == pytest.approx(np.mean(psnrs)) and result.psnr_hole_best == pytest.approx(max(psnrs))
        pairs = [(0, 1), (0, 2), (1, 2)]
        expected = np.mean([np.abs(outputs[i][hole] - outputs[j][hole]).mean() / 255 for i, j in pairs])
        assert result.diversity == pytest.approx(expected) and result.diversity > 0.01
    # a deterministic model runs once: best = mean, no diversity
    telea = evaluate(
        InpaintPipeline.from_pretrained("cv2-telea"), samples, model="t", protocol="p", num_samples=3, progress=False
    )
    assert all(r.num_samples == 1 and r.psnr_hole_best == r.psnr_hole and r.diversity == 0 for r in telea.images)
    rows = summarize([run, telea])
    overall = [r for r in rows if r["bucket"] == "all"]
    assert [r["num_samples"] for r in overall] == [3, 1]
    assert overall[0]["psnr_hole_best"] >= overall[0]["psnr_hole"] and overall[0]["diversity"] > 0.01
    table = results_to_markdown(rows, buckets=False)
    assert "| samples | PSNR hole best-of-N | diversity |" in table
    assert f"| 3 | {overall[0]['psnr_hole_best']:.2f} | {overall[0]['diversity']:.4f} |" in table
    assert "diversity" not in results_to_markdown(summarize([telea]))  # single-sample tables keep their columns
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        evaluate(pipe, samples, model="piigan", protocol="p", num_samples=0, progress=False)


def test_real_baseline_through_the_pipeline(image_dir: Path) -> None:
    samples, _ = load_eval_samples(image_dir, protocol="lama-medium-256", resize=64, seed=1)
    telea = evaluate(InpaintPipeline.from_pretrained("cv2-telea"), samples, model="t", protocol="x", progress=False)
    zeros = evaluate(_Oracle(_truth(samples), fill=0), samples, model="z", protocol="x", progress=False)
    for good, bad in zip(telea.images, zeros.images):
        assert good.error is None and good.psnr_hole > bad.psnr_hole  # diffusion beats a black hole


# ------------------------------------------------------------------------------------------------- cards


def test_write_model_index_round_trip_and_replacement(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    card_path = tmp_path / "card.md"
    card_path.write_text("---\nlicense: apache-2.0\n---\n\n# My model\n\nText that must survive.\n")
    samples = _samples()
    run = evaluate(_Oracle(_truth(samples), fill=0), samples, model="m", protocol="lama-thin-256", progress=False)
    rows = summarize([run])
    write_model_index(card_path, rows, model_name="my-model", dataset_name="BSDS500 val", dataset_type="bsds500")
    card = ModelCard.load(card_path)
    assert "Text that must survive." in card.text and card.data.license == "apache-2.0"
    results = card.data.eval_results
    assert {r.metric_type for r in results} == {"psnr", "psnr_hole", "ssim", "l1_hole"}
    psnr = next(r for r in results if r.metric_type == "psnr")
    assert psnr.dataset_config == "lama-thin-256" and psnr.metric_value == pytest.approx(rows[-1]["psnr"], abs=1e-4)

    # Same protocol again: replaced, not duplicated; another protocol: added.
    write_model_index(card_path, rows, model_name="my-model", dataset_name="BSDS500 val", dataset_type="bsds500")
    assert len(ModelCard.load(card_path).data.eval_results) == 4
    for row in rows:
        row["protocol"] = "lama-thick-256"
    write_model_index(card_path, rows, model_name="my-model", dataset_name="BSDS500 val", dataset_type="bsds500")
    assert len(ModelCard.load(card_path).data.eval_results) == 8

    with pytest.raises(ValueError, match="one model"):
        write_model_index(card_path, rows + [dict(rows[0], model="other")], model_name="x", dataset_name="d",
                          dataset_type="d")  # fmt: skip


def test_write_model_index_labels_sampled_rows(tmp_path: Path) -> None:
    # A run with several samples per image: its metrics are means over the samples, and the card says so; the
    # best-of-N hole-PSNR and the diversity are added.
    from huggingface_hub import ModelCard
    from test_model_contract import widen_init

    from inpaint_hub.models.piigan import PiiGANConfig, PiiGANModel

    pipe = InpaintPipeline(widen_init(PiiGANModel(PiiGANConfig.tiny()), gain=0.8).eval())
    run = evaluate(pipe, _samples()[:2], model="piigan", protocol="p", seed=4, num_samples=3, progress=False)
    rows = summarize([run])
    card_path = tmp_path / "card.md"
    write_model_index(card_path, rows, model_name="m", dataset_name="BSDS500 val", dataset_type="bsds500")
    results = {r.metric_type: r for r in ModelCard.load(card_path).data.eval_results}
    assert set(results) == {"psnr", "psnr_hole", "ssim", "l1_hole", "psnr_hole_best", "diversity"}
    assert results["psnr_hole"].metric_name == "PSNR (hole), mean of 3 samples"
    assert results["psnr_hole_best"].metric_name == "PSNR (hole), best of 3 samples"
    assert results["diversity"].metric_name == "diversity (mean pairwise L1 in the hole of 3 samples)"
    overall = rows[-1]
    for metric in ("psnr_hole", "psnr_hole_best", "diversity"):
        assert results[metric].metric_value == pytest.approx(overall[metric], abs=1e-4), metric
    assert results["psnr_hole_best"].metric_value > results["psnr_hole"].metric_value
