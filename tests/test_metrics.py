"""Tests of inpaint_hub.metrics: pixel metrics against closed forms and independent implementations, LPIPS against a
functional re-implementation on random weights saved in the released key layouts, FID/KID against closed forms and
a tiny TorchScript detector. Nothing is downloaded."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from inpaint_hub.metrics import (
    LPIPS,
    SSIM_SETTINGS,
    FIDKIDAccumulator,
    InceptionFeatures,
    MissingWeightsError,
    compute_image_metrics,
    frechet_distance,
    kernel_inception_distance,
    l1_hole,
    lpips_distance,
    psnr,
    ssim,
)
from inpaint_hub.modeling_utils import WeightsMismatchError


RNG = np.random.default_rng(0)


def random_uint8(*shape: int, rng: np.random.Generator = RNG) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def checkerboard_signs(height: int, width: int, channels: int = 3) -> np.ndarray:
    """+1 / -1 pattern, so that ``target + d * signs`` has squared error exactly ``d^2`` at every value."""
    grid = np.indices((height, width, channels)).sum(axis=0)
    return np.where(grid % 2 == 0, 1, -1)


def noisy(image: np.ndarray, level: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, level, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("d", [1, 4, 25])
def test_psnr_of_a_known_noise_level(d):
    target = np.full((16, 20, 3), 128, dtype=np.uint8)
    prediction = (target.astype(int) + d * checkerboard_signs(16, 20)).astype(np.uint8)
    expected = 10 * math.log10(255**2 / d**2)
    assert psnr(prediction, target) == pytest.approx(expected, abs=1e-12)
    mask = np.zeros((16, 20), dtype=bool)
    mask[3:9, 2:7] = True
    assert psnr(prediction, target, mask) == pytest.approx(expected, abs=1e-12)


def test_psnr_whole_image_is_the_textbook_formula():
    prediction, target = random_uint8(24, 30, 3), random_uint8(24, 30, 3)
    mse = np.mean((prediction.astype(np.float64) - target.astype(np.float64)) ** 2)
    assert psnr(prediction, target) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)
    assert psnr(prediction, target) == psnr(target, prediction)


def test_psnr_hole_uses_only_hole_pixels():
    target = random_uint8(24, 30, 3)
    prediction = noisy(target, 10, seed=1)
    mask = np.zeros((24, 30), dtype=np.uint8)
    mask[5:15, 8:20] = 1
    hole = mask.astype(bool)
    mse_hole = np.mean((prediction[hole].astype(float) - target[hole].astype(float)) ** 2)
    assert psnr(prediction, target, mask) == pytest.approx(10 * np.log10(255**2 / mse_hole), abs=1e-10)

    changed = prediction.copy()
    changed[~hole] = 255 - changed[~hole]  # only pixels outside the hole change
    assert psnr(changed, target, mask) == psnr(prediction, target, mask)
    assert psnr(changed, target) != psnr(prediction, target)


def test_psnr_identical_is_inf():
    image = random_uint8(12, 12, 3)
    assert psnr(image, image.copy()) == math.inf
    mask = np.zeros((12, 12), dtype=bool)
    mask[:4, :4] = True
    other = image.copy()
    other[~mask] = 0  # different outside the hole only
    assert psnr(other, image, mask) == math.inf
    assert math.isfinite(psnr(other, image))


def test_mask_conventions_give_the_same_result():
    prediction, target = random_uint8(10, 12, 3), random_uint8(10, 12, 3)
    hole = np.zeros((10, 12), dtype=bool)
    hole[2:6, 3:9] = True
    reference = psnr(prediction, target, hole)
    for mask in (hole.astype(np.uint8), hole.astype(np.uint8) * 255, hole.astype(np.float32)):
        assert psnr(prediction, target, mask) == reference
    assert psnr(prediction, target, Image.fromarray(hole.astype(np.uint8) * 255)) == reference


def test_grayscale_and_pil_images_are_accepted():
    prediction, target = random_uint8(14, 16), random_uint8(14, 16)
    mse = np.mean((prediction.astype(float) - target.astype(float)) ** 2)
    assert psnr(prediction, target) == pytest.approx(10 * np.log10(255**2 / mse))
    rgb_prediction, rgb_target = random_uint8(14, 16, 3), random_uint8(14, 16, 3)
    assert psnr(Image.fromarray(rgb_prediction), Image.fromarray(rgb_target)) == psnr(rgb_prediction, rgb_target)
    assert psnr(Image.fromarray(prediction), Image.fromarray(target)) == psnr(prediction, target)


@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), "same shape"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8), "to_uint8"),
        (np.zeros((8, 8, 3), np.uint16), np.zeros((8, 8, 3), np.uint16), "must be uint8"),
        (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8), r"\[H, W, 3\]"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), "to_uint8"),
        (Image.new("RGBA", (8, 8)), Image.new("RGBA", (8, 8)), "convert"),
    ],
)
def test_bad_images_are_refused(prediction, target, message):
    with pytest.raises(ValueError, match=message):
        psnr(prediction, target)


def test_bad_masks_are_refused():
    image = random_uint8(8, 8, 3)
    with pytest.raises(ValueError, match="no hole pixels"):
        psnr(image, image, np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="no hole pixels"):
        l1_hole(image, image, np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"mask must be \[H, W\]"):
        psnr(image, image, np.ones((8, 9), dtype=bool))
    with pytest.raises(ValueError, match=r"mask must be \[H, W\]"):
        psnr(image, image, np.ones((8, 8, 1), dtype=bool))


# ------------------------------------------------------------------------------------------------- SSIM


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Gaussian-window SSIM of Wang et al. 2004 written from the paper: 11-tap Gaussian (sigma 1.5, radius 5),
    mirrored borders, population statistics, K1 = 0.01, K2 = 0.03, L = 255, mean over the map minus a 5-pixel
    border, mean over channels."""
    radius, sigma = 5, 1.5
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()

    def blur(image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        padded = np.pad(image, radius, mode="symmetric")
        rows = sum(taps[i] * padded[:, i : i + width] for i in range(2 * radius + 1))
        return sum(taps[i] * rows[i : i + height, :] for i in range(2 * radius + 1))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    scores = []
    for channel in range(x.shape[-1]):
        a, b = x[..., channel], y[..., channel]
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        scores.append(ssim_map[radius:-radius, radius:-radius].mean())
    return float(np.mean(scores))


def test_ssim_settings_are_wang_et_al():
    assert SSIM_SETTINGS == {
        "gaussian_weights": True,
        "sigma": 1.5,
        "use_sample_covariance": False,
        "data_range": 255,
        "K1": 0.01,
        "K2": 0.03,
    }


@pytest.mark.parametrize("shape", [(24, 30, 3), (17, 21)])
def test_ssim_matches_an_independent_implementation(shape):
    target = random_uint8(*shape)
    prediction = noisy(target, 30, seed=2)
    assert ssim(prediction, target) == pytest.approx(reference_ssim(prediction, target), abs=1e-6)
    smooth = np.clip(np.cumsum(random_uint8(*shape).astype(int) // 32, axis=0), 0, 255).astype(np.uint8)
    assert ssim(smooth, target) == pytest.approx(reference_ssim(smooth, target), abs=1e-6)


def test_ssim_of_constant_images_is_the_luminance_term():
    # Constant images have zero (co)variances, so SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1) exactly.
    mu1, mu2, c1 = 100.0, 130.0, (0.01 * 255) ** 2
    expected = (2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1)
    first, second = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 130, np.uint8)
    assert ssim(first, second) == pytest.approx(expected, abs=1e-12)


def test_ssim_identical_symmetric_and_decreasing_with_noise():
    target = random_uint8(32, 32, 3)
    assert ssim(target, target.copy()) == pytest.approx(1.0, abs=1e-12)
    prediction = noisy(target, 20, seed=3)
    assert ssim(prediction, target) == pytest.approx(ssim(target, prediction), abs=1e-12)
    scores = [ssim(noisy(target, level, seed=4), target) for level in (2, 10, 40, 80)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert scores[0] < 1.0


def test_ssim_refuses_images_smaller_than_its_window():
    assert math.isfinite(ssim(random_uint8(11, 11, 3), random_uint8(11, 11, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(random_uint8(10, 40, 3), random_uint8(10, 40, 3))


# ------------------------------------------------------------------------------------------------- L1 / all


def test_l1_hole_counts_the_hole_only():
    target = random_uint8(12, 14, 3)
    mask = np.zeros((12, 14), dtype=bool)
    mask[2:7, 3:10] = True
    prediction = target.astype(int)
    prediction[mask, 0] += np.where(target[mask, 0] < 128, 7, -7)  # |difference| = 7 in the red channel of the hole
    prediction[~mask] = 255 - prediction[~mask]  # anything outside the hole
    prediction = prediction.astype(np.uint8)
    assert l1_hole(prediction, target, mask) == pytest.approx(7 / 3 / 255, abs=1e-15)
    assert l1_hole(target, target, mask) == 0.0


def test_compute_image_metrics_returns_the_four_metrics():
    target = random_uint8(20, 24, 3)
    prediction = noisy(target, 15, seed=5)
    mask = np.zeros((20, 24), dtype=np.uint8)
    mask[4:12, 6:18] = 255
    metrics = compute_image_metrics(prediction, target, mask)
    assert list(metrics) == ["psnr", "psnr_hole", "ssim", "l1_hole"]
    assert metrics == {
        "psnr": psnr(prediction, target),
        "psnr_hole": psnr(prediction, target, mask),
        "ssim": ssim(prediction, target),
        "l1_hole": l1_hole(prediction, target, mask),
    }
    assert all(isinstance(value, float) for value in metrics.values())


# ------------------------------------------------------------------------------------------------- LPIPS

ALEXNET_SHAPES = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
}
LIN_CHANNELS = (64, 192, 384, 256, 256)


@pytest.fixture(scope="module")
def lpips_weights() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Random weights in the key layout of torchvision's ``alexnet-owt-7be5be79.pth`` and LPIPS's ``alex.pth``."""
    generator = torch.Generator().manual_seed(1234)
    backbone = {}
    for key, shape in ALEXNET_SHAPES.items():
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        scale = math.sqrt(2 / fan_in) if len(shape) > 1 else 0.01
        backbone[key] = torch.randn(shape, generator=generator) * scale
    # The classifier of the real file is ignored; small stand-in shapes keep the test light.
    backbone["classifier.1.weight"] = torch.randn(8, 16, generator=generator)
    backbone["classifier.1.bias"] = torch.randn(8, generator=generator)
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for k, c in enumerate(LIN_CHANNELS)}
    return backbone, lin


@pytest.fixture
def lpips_files(tmp_path, lpips_weights):
    backbone, lin = lpips_weights
    torch.save(backbone, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(lin, tmp_path / "alex.pth")
    return tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth"


def reference_lpips(weights: dict[str, torch.Tensor], first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 (AlexNet) written directly with torch.nn.functional, in float64."""
    w = {key: value.double() for key, value in weights.items()}
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def relus(x: torch.Tensor) -> list[torch.Tensor]:
        x = (2 * x.double() - 1 - shift) / scale
        relu1 = F.relu(F.conv2d(x, w["features.0.weight"], w["features.0.bias"], stride=4, padding=2))
        relu2 = F.relu(F.conv2d(F.max_pool2d(relu1, 3, 2), w["features.3.weight"], w["features.3.bias"], padding=2))
        relu3 = F.relu(F.conv2d(F.max_pool2d(relu2, 3, 2), w["features.6.weight"], w["features.6.bias"], padding=1))
        relu4 = F.relu(F.conv2d(relu3, w["features.8.weight"], w["features.8.bias"], padding=1))
        relu5 = F.relu(F.conv2d(relu4, w["features.10.weight"], w["features.10.bias"], padding=1))
        return [relu1, relu2, relu3, relu4, relu5]

    total = torch.zeros(first.shape[0], dtype=torch.float64)
    for k, (a, b) in enumerate(zip(relus(first), relus(second))):
        a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        total += F.conv2d((a - b) ** 2, w[f"lin{k}.model.1.weight"]).mean(dim=(1, 2, 3))
    return total


def test_lpips_two_file_and_one_file_loads_agree(tmp_path, lpips_files, lpips_weights):
    backbone, lin = lpips_weights
    model = LPIPS.from_files(*lpips_files)
    state = model.state_dict()
    assert set(state) == set(ALEXNET_SHAPES) | set(lin)
    for key, value in {**backbone, **lin}.items():
        if not key.startswith("classifier."):
            assert torch.equal(state[key], value), key
    combined = tmp_path / "lpips_alex_combined.pth"
    torch.save(state, combined)
    one_file = LPIPS.from_files(combined)
    for key, value in one_file.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not model.training
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_lpips_matches_a_functional_reimplementation(lpips_files, lpips_weights):
    model = LPIPS.from_files(*lpips_files)
    first, second = torch.rand(3, 3, 64, 80), torch.rand(3, 3, 64, 80)
    distances = model(first, second)
    assert distances.shape == (3,)
    expected = reference_lpips({**lpips_weights[0], **lpips_weights[1]}, first, second)
    torch.testing.assert_close(distances.double(), expected, rtol=1e-5, atol=1e-6)
    # each batch element is independent of the others
    torch.testing.assert_close(model(first[1:2], second[1:2]), distances[1:2], rtol=1e-5, atol=1e-6)


def test_lpips_is_zero_for_identical_images_positive_and_symmetric(lpips_files):
    model = LPIPS.from_files(*lpips_files)
    first, second = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    assert torch.equal(model(first, first.clone()), torch.zeros(2))
    forward, backward = model(first, second), model(second, first)
    assert (forward > 0).all()
    torch.testing.assert_close(forward, backward, rtol=1e-6, atol=1e-7)


def test_lpips_distance_on_uint8_images(lpips_files, lpips_weights):
    model = LPIPS.from_files(*lpips_files)
    first, second = random_uint8(40, 36, 3), random_uint8(40, 36, 3)
    as_tensor = [torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255 for image in (first, second)]
    expected = float(reference_lpips({**lpips_weights[0], **lpips_weights[1]}, *as_tensor)[0])
    assert lpips_distance(model, first, second) == pytest.approx(expected, rel=1e-5)
    assert lpips_distance(model, first, first) == 0.0
    with pytest.raises(ValueError, match="uint8"):
        lpips_distance(model, first.astype(np.float32), second)


def test_lpips_refuses_bad_inputs(lpips_files):
    model = LPIPS.from_files(*lpips_files)
    with pytest.raises(ValueError, match="at least 31x31"):
        model(torch.rand(1, 3, 30, 64), torch.rand(1, 3, 30, 64))
    assert model(torch.rand(1, 3, 31, 31), torch.rand(1, 3, 31, 31)).shape == (1,)
    with pytest.raises(ValueError, match="same shape"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 33))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_lpips_without_lin_weights_explains_both_files(lpips_files):
    backbone_path, _ = lpips_files
    with pytest.raises(MissingWeightsError) as caught:
        LPIPS.from_files(backbone_path)
    message = str(caught.value)
    assert "alexnet-owt-7be5be79.pth" in message and "alex.pth" in message and "v0.1" in message
    with pytest.raises(MissingWeightsError, match="alex.pth"):
        LPIPS.from_files(backbone_path, backbone_path.parent / "missing.pth")
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        LPIPS.from_files(backbone_path.parent / "nowhere.pth", lpips_files[1])


def test_lpips_strict_key_errors_name_the_keys(tmp_path, lpips_weights):
    backbone, lin = lpips_weights
    cases = {
        "wrong shape: features.3.weight": {**backbone, "features.3.weight": torch.zeros(192, 64, 3, 3)},
        "missing: features.8.bias": {k: v for k, v in backbone.items() if k != "features.8.bias"},
        "unexpected: features.1.weight": {**backbone, "features.1.weight": torch.zeros(1)},
        "unexpected: running_mean": {**backbone, "running_mean": torch.zeros(1)},
    }
    torch.save(lin, tmp_path / "alex.pth")
    for expected, state in cases.items():
        torch.save(state, tmp_path / "backbone.pth")
        with pytest.raises(WeightsMismatchError, match=expected):
            LPIPS.from_files(tmp_path / "backbone.pth", tmp_path / "alex.pth")
    partial_lin = {k: v for k, v in lin.items() if not k.startswith("lin4")}
    torch.save(partial_lin, tmp_path / "partial.pth")
    with pytest.raises(WeightsMismatchError, match=r"missing: lin4\.model\.1\.weight"):
        LPIPS.from_files(tmp_path / "backbone.pth", tmp_path / "partial.pth")


class _NotATensor:
    pass


def test_lpips_refuses_files_that_are_not_state_dicts(tmp_path, lpips_files):
    _, lin_path = lpips_files
    (tmp_path / "junk.pth").write_bytes(b"definitely not a checkpoint")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    torch.save({"features.0.weight": _NotATensor()}, tmp_path / "pickled_object.pth")  # refused by weights_only
    for name, message in (
        ("junk.pth", "could not be read"),
        ("list.pth", "not a state dict"),
        ("pickled_object.pth", "weights_only"),
    ):
        with pytest.raises(ValueError, match=message) as caught:
            LPIPS.from_files(tmp_path / name, lin_path)
        assert not isinstance(caught.value, MissingWeightsError)


# ------------------------------------------------------------------------------------------------- FID / KID


def reference_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), the latter symmetric PSD: computed with eigh only."""
    values, vectors = np.linalg.eigh(sigma1)
    root1 = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    difference = np.asarray(mu1) - np.asarray(mu2)
    return float(
        difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum()
    )


def reference_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, pair by pair."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1) ** 3

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return within / (m * (m - 1)) - 2 * across / m**2


def random_covariance(dim: int, rng: np.random.Generator) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_closed_forms():
    dim = 6
    rng = np.random.default_rng(7)
    sigma = random_covariance(dim, rng)
    mu = rng.normal(size=dim)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    shift = rng.normal(size=dim)
    assert frechet_distance(np.zeros(dim), np.eye(dim), shift, np.eye(dim)) == pytest.approx(shift @ shift, abs=1e-10)
    a, b = rng.uniform(0.5, 2, dim), rng.uniform(0.5, 2, dim)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + shift @ shift
    assert frechet_distance(np.zeros(dim), np.diag(a), shift, np.diag(b)) == pytest.approx(expected, abs=1e-10)


def test_frechet_distance_matches_an_eigh_implementation_and_is_symmetric():
    rng = np.random.default_rng(8)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    sigma1, sigma2 = random_covariance(10, rng), random_covariance(10, rng)
    expected = reference_frechet(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_with_singular_covariances_is_finite():
    rng = np.random.default_rng(9)
    few1, few2 = rng.normal(size=(5, 12)), rng.normal(size=(5, 12))  # rank 4 covariances in 12 dimensions
    sigma1, sigma2 = np.cov(few1, rowvar=False), np.cov(few2, rowvar=False)
    value = frechet_distance(few1.mean(0), sigma1, few2.mean(0), sigma2)
    assert math.isfinite(value)
    assert value == pytest.approx(reference_frechet(few1.mean(0), sigma1, few2.mean(0), sigma2), rel=1e-3)


def test_frechet_distance_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="vectors"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(3))


def test_kid_with_whole_sets_is_the_unbiased_mmd():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1, size=(12, 5))
    # subset size >= n: every subset is the whole set in some order, so every subset gives the same MMD
    mean, std = kernel_inception_distance(x, y, subset_size=100, subsets=4, rng=1)
    assert mean == pytest.approx(reference_mmd(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-10)
    assert kernel_inception_distance(y, x, subset_size=100, subsets=4, rng=2)[0] == pytest.approx(mean, rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_seeded():
    rng = np.random.default_rng(11)
    first, second = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    shifted = rng.normal(0.7, 1, size=(300, 8))
    same, same_std = kernel_inception_distance(
        first, second, subset_size=100, subsets=50, rng=np.random.default_rng(0)
    )
    different, _ = kernel_inception_distance(first, shifted, subset_size=100, subsets=50, rng=np.random.default_rng(0))
    assert abs(same) < 3 * same_std
    assert different > 20 * abs(same)
    again = kernel_inception_distance(first, second, subset_size=100, subsets=50, rng=np.random.default_rng(0))
    assert again == (same, same_std)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(first[:1], second, subset_size=100, subsets=2, rng=0)


class TinyDetector(torch.nn.Module):
    """Stand-in for inception-2015-12-05.pt: per-channel mean and mean square of the [0, 1] image as features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = x.to(torch.float32) / 255
        if not return_features:
            return torch.zeros(x.shape[0], 1008)  # "logits": a caller forgetting return_features gets no features
        return torch.cat([x.mean(dim=(2, 3)), (x * x).mean(dim=(2, 3))], dim=1)


def tiny_features(image: np.ndarray) -> np.ndarray:
    pixels = image.reshape(-1, 3).astype(np.float64) / 255
    return np.concatenate([pixels.mean(axis=0), (pixels**2).mean(axis=0)])


@pytest.fixture
def detector_path(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated in recent torch
        scripted = torch.jit.script(TinyDetector())
        path = tmp_path / "inception-2015-12-05.pt"
        scripted.save(str(path))
    return path


def test_inception_features_runs_the_detector_with_return_features(detector_path):
    features = InceptionFeatures.from_file(detector_path, batch_size=2)
    sizes = [(20, 24), (20, 24), (20, 24), (16, 12), (20, 24)]
    images = [random_uint8(h, w, 3) for h, w in sizes]
    result = features(images)
    assert result.dtype == np.float64 and result.shape == (5, 6)
    np.testing.assert_allclose(result, np.stack([tiny_features(image) for image in images]), rtol=1e-5, atol=1e-6)
    batch = torch.from_numpy(np.stack(images[:3])).permute(0, 3, 1, 2)
    np.testing.assert_allclose(features(batch), result[:3], rtol=1e-6)
    np.testing.assert_allclose(features(np.stack(images[:3])), result[:3], rtol=1e-6)
    gray = random_uint8(10, 10)
    np.testing.assert_allclose(features([gray])[0], tiny_features(np.repeat(gray[..., None], 3, -1)), rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        features(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        features([np.zeros((8, 8, 3), np.float32)])


def test_fid_kid_accumulator_round_trip(detector_path):
    rng = np.random.default_rng(12)
    real = [rng.integers(0, 256, size=(18 + i % 3, 22, 3), dtype=np.uint8) for i in range(12)]
    fake = [np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8) for image in real[:10]]
    accumulator = FIDKIDAccumulator(
        InceptionFeatures.from_file(detector_path), kid_subset_size=1000, kid_subsets=5, seed=3
    )
    accumulator.update_real(real[:5])
    accumulator.update_real(real[5:])
    accumulator.update_fake(torch.from_numpy(np.stack([image[:18] for image in fake[:4]])).permute(0, 3, 1, 2))
    accumulator.update_fake(fake[4:])
    result = accumulator.compute()
    assert set(result) == {"fid", "kid", "kid_std", "n"}
    assert result["n"] == 10

    real_features = np.stack([tiny_features(image) for image in real])
    fake_features = np.stack([tiny_features(image[:18]) for image in fake[:4]] + [tiny_features(i) for i in fake[4:]])
    expected_fid = reference_frechet(
        real_features.mean(0),
        np.cov(real_features, rowvar=False),
        fake_features.mean(0),
        np.cov(fake_features, rowvar=False),
    )
    assert result["fid"] == pytest.approx(expected_fid, rel=1e-4)
    expected_kid = kernel_inception_distance(real_features, fake_features, 1000, 5, np.random.default_rng(3))
    assert result["kid"] == pytest.approx(expected_kid[0], rel=1e-4)
    assert result["kid_std"] == pytest.approx(expected_kid[1], rel=1e-3, abs=1e-9)
    assert accumulator.compute() == result  # the KID subsets are drawn from a fresh seeded generator each time

    equal = FIDKIDAccumulator(InceptionFeatures.from_file(detector_path), kid_subset_size=1000, kid_subsets=3)
    equal.update_real(real[:10])
    equal.update_fake(real[:10])
    same = equal.compute()
    assert same["fid"] == pytest.approx(0.0, abs=1e-8)
    # m = n = 10 and both sets identical: every subset is the whole set, the MMD of a set with itself
    assert same["kid"] == pytest.approx(reference_mmd(real_features[:10], real_features[:10]), rel=1e-6, abs=1e-12)


def test_fid_kid_accumulator_needs_two_images(detector_path):
    accumulator = FIDKIDAccumulator(InceptionFeatures.from_file(detector_path))
    accumulator.update_real([random_uint8(8, 8, 3), random_uint8(8, 8, 3)])
    accumulator.update_fake([random_uint8(8, 8, 3)])
    with pytest.raises(ValueError, match="at least 2"):
        accumulator.compute()


def test_inception_file_errors(tmp_path):
    with pytest.raises(MissingWeightsError) as caught:
        InceptionFeatures.from_file(tmp_path / "inception-2015-12-05.pt")
    assert "inception-2015-12-05.pt (TorchScript, as used by StyleGAN2-ADA's metrics and clean-fid)" in str(
        caught.value
    )
    torch.save({"weight": torch.zeros(2)}, tmp_path / "state_dict.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip archive")
    for name in ("state_dict.pt", "junk.pt"):
        with pytest.raises(ValueError, match="not a TorchScript file") as caught:
            InceptionFeatures.from_file(tmp_path / name)
        assert not isinstance(caught.value, MissingWeightsError)
