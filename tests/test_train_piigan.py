"""train/piigan.py under ``accelerate launch``: it trains the generator, the style extractor and the two WGAN-GP
critics (critic steps on their own batches), checkpoints all three and resumes exactly, leaves the critics alone when
the adversarial weight is 0, refuses bad arguments and changed settings, and runs on 2 processes."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed
from PIL import Image
from safetensors.torch import load_file
from train_harness import launch, load_script, logged_scalars, write_scalar_printer

from inpaint_hub import AutoInpaintModel, PENNetConfig, PENNetModel
from inpaint_hub.models.piigan import PiiGANConfig, PiiGANDiscriminator, PiiGANModel, PiiGANStyleExtractor


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "piigan.py"
CONFIG = REPO_ROOT / "train" / "configs" / "piigan-cpu-tiny.yaml"
SEED = 0  # the script's default
# The tiny config: batch 2, 2 critic steps per generator step (3 batches a step), 4 steps, checkpoints every 2.
BATCHES_PER_STEP = 3
NETWORKS = ("generator", "discriminator", "extractor")  # --dump-rank-state's names
LOSSES = ("known", "consistency_known", "consistency", "regress", "kl", "adversarial")


@pytest.fixture(scope="module")
def scalar_printer(tmp_path_factory) -> Path:
    return write_scalar_printer(tmp_path_factory.mktemp("launcher"))


@pytest.fixture(scope="module")
def script():
    """train/piigan.py imported as a module, for its argument checks and helpers."""
    return load_script(SCRIPT, "train_piigan")


def _launch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch(SCRIPT, CONFIG, *args, **kwargs)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("piigan_photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            y, x = np.mgrid[0:48, 0:56]
            base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1) + rng.normal(0, 20, (48, 56, 3))
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return {"train": root / "train", "val": root / "val"}


@pytest.fixture(scope="module")
def straight_run(photos: dict[str, Path], scalar_printer: Path, tmp_path_factory) -> dict:
    """One uninterrupted run of the tiny config (adversarial on), shared by the tests that only read it.

    8 images, batch 2: 4 batches per epoch, 3 batches per generator step (2 critic steps + 1), so 12 batches over
    3 epochs in 4 steps; checkpoint-2 is taken in the middle of the second epoch. ``--dump-rank-state`` records the
    sample indices, batch by batch, and the final weights of the three networks.
    """
    common = ["--train-data", str(photos["train"]), "--val-data", str(photos["val"]), "--dump-rank-state"]
    out = tmp_path_factory.mktemp("piigan_runs") / "straight"
    result = _launch(*common, "--output-dir", str(out), printer=scalar_printer)
    return {"out": out, "common": common, "scalars": logged_scalars(result)}


@pytest.fixture(scope="module")
def initial_states(script) -> dict[str, dict[str, torch.Tensor]]:
    """The three networks' weights before the first step: built as the script builds them (seeded, then the
    generator, the critics and the extractor, in that order)."""
    args = script.parse_args(["--config", str(CONFIG), "--train-data", "photos"])
    set_seed(SEED)
    generator = script.build_generator(args)
    critics = PiiGANDiscriminator(generator.config)
    extractor = PiiGANStyleExtractor(generator.config)
    return {name: net.state_dict() for name, net in zip(NETWORKS, (generator, critics, extractor))}


def _checkpoint_states(checkpoint: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The three networks' weights in a checkpoint folder: the prepared generator's ``model.safetensors`` and the
    ``register_for_checkpointing`` objects in the order registered (critics, extractor)."""
    return {
        "generator": load_file(checkpoint / "model.safetensors"),
        "discriminator": torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=True),
        "extractor": torch.load(checkpoint / "custom_checkpoint_1.pkl", weights_only=True),
    }


def _rank_states(out: Path, rank: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    return {name: torch.load(out / f"rank{rank}_{name}.pt", weights_only=True) for name in NETWORKS}


def _resume_copy(source: Path, checkpoint: str, target: Path) -> Path:
    """A fresh output folder holding only ``checkpoint`` of ``source``: a run interrupted right after it."""
    target.mkdir()
    shutil.copytree(source / checkpoint, target / checkpoint)
    return target


def _assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], what: str) -> None:
    assert first.keys() == second.keys(), what
    for key in first:
        assert torch.equal(first[key], second[key]), f"{what}: {key} differs"


def _changed(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    assert first.keys() == second.keys()
    return any(not torch.equal(first[k], second[k]) for k in first)


def _max_change(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    return max((first[k] - second[k]).abs().max().item() for k in first)


def _without_timing(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "train/seconds_per_step"}


# ------------------------------------------------------------------------------------------------- one process


def test_train_checkpoint_and_exact_resume(straight_run: dict, scalar_printer: Path, tmp_path: Path) -> None:
    straight, common = straight_run["out"], straight_run["common"]
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    state = json.loads((straight / "checkpoint-2" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 1, 2)  # 6 batches done, 4 per epoch
    assert (state["run"]["critic_steps"], state["run"]["mask_per_batch"]) == (2, True)
    for checkpoint in ("checkpoint-2", "checkpoint-4"):  # the critics and the extractor, beside the generator
        files = {p.name for p in (straight / checkpoint).iterdir()}
        assert {"model.safetensors", "custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl"} <= files, files
    assert isinstance(AutoInpaintModel.from_pretrained(straight / "checkpoint-2" / "generator"), PiiGANModel)
    assert isinstance(AutoInpaintModel.from_pretrained(straight / "final"), PiiGANModel)
    assert list((straight / "samples").glob("step-*.png"))
    # Every generator step takes critic_steps + 1 fresh batches; each epoch visits every image once.
    indices = json.loads((straight / "rank0_indices.json").read_text())
    assert len(indices) == 4 * BATCHES_PER_STEP
    for epoch in range(3):
        assert sorted(i for batch in indices[4 * epoch : 4 * epoch + 4] for i in batch) == list(range(8)), indices

    # Interrupted after step 2 (mid-epoch) and resumed to step 4: the same generator, critics, extractor, data
    # stream and logged losses, bit for bit.
    resumed = _resume_copy(straight, "checkpoint-2", tmp_path / "from-checkpoint-2")
    result = _launch(
        *common, "--output-dir", str(resumed), "--resume-from-checkpoint", "latest", printer=scalar_printer
    )
    assert json.loads((resumed / "rank0_indices.json").read_text()) == indices[2 * BATCHES_PER_STEP :]
    _assert_same_weights(load_file(straight / "final" / "model.safetensors"),
                         load_file(resumed / "final" / "model.safetensors"), "final generator")  # fmt: skip
    for where, read in (("checkpoint-4", lambda out: _checkpoint_states(out / "checkpoint-4")),
                        ("--dump-rank-state", _rank_states)):  # fmt: skip
        first, second = read(straight), read(resumed)
        for name in NETWORKS:
            _assert_same_weights(first[name], second[name], f"{name} ({where})")
    logged = logged_scalars(result)
    assert sorted(logged) == [3, 4]
    for step in (3, 4):
        assert _without_timing(logged[step]) == _without_timing(straight_run["scalars"][step]), step


def test_losses_are_logged(straight_run: dict) -> None:
    scalars = straight_run["scalars"]
    assert sorted(scalars) == [1, 2, 3, 4]  # logging_steps 1
    for row in scalars.values():
        parts = [row[f"train/g_{name}"] for name in LOSSES]
        assert all(math.isfinite(v) for v in [*parts, row["train/g_total"], row["train/d_total"]]), row
        assert row["train/g_known"] > 0 and row["train/g_consistency"] > 0 and row["train/g_regress"] > 0, row
        assert row["train/g_kl"] >= 0, row  # a KL divergence
        assert "train/g_sample_hole" not in row, row  # off by default, as the paper
        assert row["train/g_total"] == pytest.approx(sum(parts), rel=1e-5), row
    assert any(k.startswith("val/") for k in scalars[2]), scalars[2]  # validation_steps 2 in the tiny config


def test_training_updates_generator_extractor_and_critics(straight_run: dict, initial_states: dict) -> None:
    out = straight_run["out"]
    second, fourth = _checkpoint_states(out / "checkpoint-2"), _checkpoint_states(out / "checkpoint-4")
    for name in NETWORKS:
        assert _changed(initial_states[name], second[name]), name
        assert _changed(second[name], fourth[name]), name
        # A few Adam steps of lr 1e-4 from the reconstructed start: it is the script's initial state.
        assert _max_change(initial_states[name], second[name]) < 2e-3, name
    _assert_same_weights(fourth["extractor"], _rank_states(out)["extractor"], "extractor at the end")


def test_no_adversarial_weight_leaves_the_critics_alone(
    photos: dict[str, Path], scalar_printer: Path, initial_states: dict, tmp_path: Path
) -> None:
    # --weight-adversarial 0: no critic steps (every batch is a generator step) and no critic update, ever; the
    # generator and the extractor still train (here with the optional L1 on the random-code fill, logged on its own).
    out = tmp_path / "run"
    result = _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--weight-adversarial", "0",
                     "--weight-sample-hole", "1.2", "--dump-rank-state", printer=scalar_printer)  # fmt: skip
    assert len(json.loads((out / "rank0_indices.json").read_text())) == 4  # one batch a step
    state = json.loads((out / "checkpoint-2" / "training_state.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"], state["run"]["critic_steps"]) == (0, 2, 0)
    second, fourth = _checkpoint_states(out / "checkpoint-2"), _checkpoint_states(out / "checkpoint-4")
    final = _rank_states(out)
    for states, when in ((second, "checkpoint-2"), (fourth, "checkpoint-4"), (final, "end")):
        _assert_same_weights(initial_states["discriminator"], states["discriminator"], f"critics at {when}")
    for name in ("generator", "extractor"):
        assert _changed(initial_states[name], second[name]) and _changed(second[name], fourth[name]), name
    logged = logged_scalars(result)
    assert sorted(logged) == [1, 2, 3, 4]
    for row in logged.values():
        assert "train/d_total" not in row and "train/g_adversarial" not in row, row
        assert all(math.isfinite(row[f"train/g_{name}"]) for name in LOSSES[:-1]), row
        assert row["train/g_sample_hole"] > 0, row


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--critic-steps", "3"], "critic_steps was 2 and is now 3"),
        (["--train-batch-size", "4"], "train_batch_size was 2 and is now 4"),
    ],
)
def test_resuming_with_other_settings_is_refused(
    straight_run: dict, tmp_path: Path, flags: list[str], message: str
) -> None:
    out = _resume_copy(straight_run["out"], "checkpoint-4", tmp_path / "run")
    result = _launch(*straight_run["common"], "--output-dir", str(out), "--max-steps", "6", *flags,
                     "--resume-from-checkpoint", "latest", check=False)  # fmt: skip
    assert result.returncode != 0, result.stderr[-3000:]
    assert f"cannot resume {out / 'checkpoint-4'} exactly: {message}" in result.stderr, result.stderr[-3000:]
    assert not (out / "checkpoint-6").exists()


# ------------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--resolution", "40"], "--resolution must be a positive multiple of 16"),
        (["--resolution", "0"], "--resolution must be a positive multiple of 16"),
        (["--critic-steps", "-1"], "--critic-steps must be >= 0, got -1"),
        (["--critic-steps", "0"], "--critic-steps 0 would train against critics that never learn"),
        (["--weight-kl", "-0.1"], "--weight-kl must be >= 0, got -0.1"),
        (["--weight-consistency-known", "-1"], "--weight-consistency-known must be >= 0"),
        (["--gp-weight", "-10"], "--gp-weight must be >= 0"),
        (["--resolution", "64"], "--resolution 64 differs from the global critic's input size 32"),
        (["--resolution", "64"], "--model-overrides '{\"global_size\": 64}'"),
        (["--model-overrides", "[32]"], "--model-overrides must be a JSON object"),
        (["--model-overrides", "{base_channels: 8}"], "argument --model-overrides: invalid loads value"),
        (["--model-overrides", '{"style_size": 20}'], "style_size must be a multiple of 16"),
        (["--model", "deepfill"], "argument --model: invalid choice: 'deepfill'"),
    ],
)
def test_bad_arguments_are_refused(script, capsys, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--config", str(CONFIG), "--train-data", "photos", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_matching_global_size_is_accepted(script) -> None:
    args = script.parse_args(["--config", str(CONFIG), "--train-data", "photos", "--resolution", "64",
                              "--model-overrides", '{"global_size": 64}'])  # fmt: skip
    assert script.build_generator(args).config.global_size == 64


PAPER = {
    "resolution": 128, "train_batch_size": 13, "critic_steps": 5, "lr_generator": 1e-4, "lr_discriminator": 1e-4,
    "adam_betas": (0.5, 0.9), "weight_adversarial": 0.001, "weight_kl": 0.1, "weight_consistency": 1.44,
    "weight_consistency_known": 1.2, "weight_known": 1.2, "weight_regress": 1.44, "coarse_alpha": 1.2,
    "weight_global": 1.0, "gp_weight": 10.0, "max_grad_norm": 0.0, "max_steps": 1_000_000,
    "mask_protocol": "piigan-center", "mask_per_batch": True, "crop": "random", "jitter": False, "model": "celeba",
    "kl_reduction": "sum", "weight_sample_hole": 0.0,  # the paper has no L1 on the random-code fill
}  # fmt: skip


def _paper_values(args) -> dict:
    return {k: tuple(v) if k == "adam_betas" else v for k, v in vars(args).items() if k in PAPER}


def test_defaults_are_the_papers(script) -> None:
    assert _paper_values(script.build_parser().parse_args([])) == PAPER
    args = script.parse_args(["--train-data", "photos"])
    assert _paper_values(args) == PAPER
    assert script.build_generator(args).num_parameters() == 3_603_942
    # The CelebA recipe spells out the same values.
    celeba = REPO_ROOT / "train" / "configs" / "piigan-celeba.yaml"
    assert _paper_values(script.parse_args(["--config", str(celeba), "--train-data", "photos"])) == PAPER


@pytest.mark.parametrize(
    ("name", "parameters", "resolution", "batch", "critic_steps", "max_steps"),
    [
        ("piigan-celeba", 3_603_942, 128, 13, 5, 1_000_000),  # the paper's recipe
        ("piigan-cpu-tiny", 228_798, 32, 2, 2, 4),
    ],
)
def test_configs(
    script, name: str, parameters: int, resolution: int, batch: int, critic_steps: int, max_steps: int
) -> None:
    config = REPO_ROOT / "train" / "configs" / f"{name}.yaml"
    args = script.parse_args(["--config", str(config), "--train-data", "photos"])
    assert (args.resolution, args.train_batch_size, args.critic_steps, args.max_steps) == (
        resolution, batch, critic_steps, max_steps
    )  # fmt: skip
    assert (args.mask_protocol, args.mask_per_batch, args.weight_adversarial) == ("piigan-center", True, 0.001)
    generator = script.build_generator(args)
    assert generator.num_parameters() == parameters and generator.config.global_size == resolution


def test_cpu_small_config(script) -> None:
    args = script.parse_args(["--config", str(REPO_ROOT / "train/configs/piigan-cpu-small.yaml"), "--train-data", "x"])
    assert (args.resolution, args.crop, args.train_batch_size, args.mask_protocol, args.mask_per_batch) == (
        128, "fit", 4, "lama-train", False
    )  # fmt: skip
    assert (args.weight_adversarial, args.kl_reduction, args.lr_generator) == (0.0, "mean", 3e-4)
    generator = script.build_generator(args)
    assert generator.num_parameters() == 2_030_766  # 8.1 MB in float32, within the 10 MB of a bundled checkpoint
    assert (generator.config.style_size, generator.config.global_size) == (32, 128)


def test_init_from_another_model_or_size_is_refused(script, tmp_path: Path) -> None:
    PENNetModel(PENNetConfig.tiny()).save_pretrained(tmp_path / "pennet")
    args = script.parse_args(["--train-data", "photos", "--init-from", str(tmp_path / "pennet")])
    with pytest.raises(ValueError, match="is a PENNetModel, not a PiiGAN model"):
        script.build_generator(args)
    PiiGANModel(PiiGANConfig.tiny()).save_pretrained(tmp_path / "piigan-32")
    args = script.parse_args(["--train-data", "photos", "--init-from", str(tmp_path / "piigan-32")])  # 128 px
    with pytest.raises(ValueError, match="has global_size 32; train it at --resolution 32"):
        script.build_generator(args)


# ------------------------------------------------------------------------------------------------- helpers


def test_hole_boxes(script) -> None:
    mask = torch.zeros(3, 1, 12, 10)
    mask[0, 0, 2:7, 3:9] = 1  # a box: rows 2-6, columns 3-8
    mask[1, 0, 4, 1] = mask[1, 0, 9, 5] = 1  # two pixels: their bounding box
    assert script.hole_boxes(mask) == [(2, 3, 5, 6), (4, 1, 6, 5), (0, 0, 12, 10)]  # no hole: the whole image


def test_crop_and_paste_patches(script) -> None:
    x = torch.rand(2, 3, 32, 32)
    boxes = [(8, 8, 16, 16), (3, 10, 16, 16)]  # exactly the style size: plain crops, pasted back exactly
    patches = script.crop_patches(x, boxes, 16)
    assert torch.equal(patches[0], x[0, :, 8:24, 8:24]) and torch.equal(patches[1], x[1, :, 3:19, 10:26])
    pasted = script.paste_patches(patches, boxes, 32, 32)
    for i, (top, left, h, w) in enumerate(boxes):
        inside = torch.zeros(32, 32, dtype=torch.bool)
        inside[top : top + h, left : left + w] = True
        assert torch.equal(pasted[i][:, inside], x[i][:, inside]) and not pasted[i][:, ~inside].any()

    # Other box sizes are resized (bilinear): a constant stays constant, a ramp stays monotonic and in range.
    ramp = torch.linspace(0, 1, 24).expand(1, 3, 20, 24).clone()
    boxes = [(2, 4, 14, 20)]
    patch = script.crop_patches(ramp, boxes, 16)
    assert patch.shape == (1, 3, 16, 16)
    assert (patch[..., 1:] >= patch[..., :-1]).all() and ramp[0, 0, 0, 4] <= patch.min() <= patch.max() <= 1
    constant = torch.full((1, 1, 16, 16), 0.5)
    pasted = script.paste_patches(constant, boxes, 20, 24)
    assert pasted.shape == (1, 1, 20, 24)
    assert torch.allclose(pasted[..., 2:16, 4:24], torch.tensor(0.5))
    assert pasted.sum().item() == pytest.approx(0.5 * 14 * 20)  # nothing outside the box


def test_kl_divergence(script) -> None:
    zeros = torch.zeros(2, 1, 4, 4)
    assert script.kl_divergence(zeros, zeros).item() == 0
    assert script.kl_divergence(zeros + 0.5, zeros).item() == pytest.approx(0.5 * 0.25 * 32)  # mu^2 / 2 each
    logvar = torch.full_like(zeros, math.log(2.0))  # variance 2: (2 - 1 - log 2) / 2 each
    assert script.kl_divergence(zeros, logvar).item() == pytest.approx(0.5 * (1 - math.log(2)) * 32)
    mu, logvar = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    assert script.kl_divergence(mu, logvar).item() > 0
    # "mean" (an option; the paper sums over the batch and the map): the same per value, averaged.
    assert script.kl_divergence(mu, logvar, "mean").item() == pytest.approx(script.kl_divergence(mu, logvar) / 32)


def test_known_l1(script) -> None:
    real = torch.zeros(1, 3, 2, 2)
    coarse, refined = torch.full_like(real, 1.0), torch.full_like(real, 2.0)
    coarse[..., 0, 0] = refined[..., 0, 0] = 100.0  # in the hole: ignored
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, 0] = 1
    # Over the 3 known pixels: alpha * 1 + 2 per value; the means over all 4 pixels divided by the known share 3/4.
    assert script.known_l1(real, coarse, refined, mask, 1.2).item() == pytest.approx(1.2 * 1 + 2)
    assert script.known_l1(real, real, real, mask, 1.2).item() == 0


def test_region_l1_counts_only_the_region(script) -> None:
    # The --weight-sample-hole term: region_l1 over the hole (the known pixels' values do not matter).
    real = torch.zeros(2, 3, 4, 4)
    coarse, refined = torch.full_like(real, 5.0), torch.full_like(real, 7.0)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2, :2] = 1  # 4 hole pixels in the first image, 0 in the second
    coarse[mask.expand_as(real) > 0], refined[mask.expand_as(real) > 0] = 1.0, 2.0
    assert script.region_l1(real, coarse, refined, mask, 1.2).item() == pytest.approx(1.2 * 1 + 2)
    assert script.region_l1(real, real, real, mask, 1.2).item() == 0
    assert script.region_l1(real, coarse, refined, torch.zeros_like(mask), 1.2).item() == 0  # no region: 0, no NaN


def test_batch_mask(script) -> None:
    masks = (torch.rand(3, 1, 8, 8) > 0.5).float()
    shared = script.batch_mask(masks, per_batch=True)
    assert shared.shape == masks.shape and all(torch.equal(m, masks[0]) for m in shared)
    assert script.batch_mask(masks, per_batch=False) is masks


# ------------------------------------------------------------------------------------------------- two processes


def test_two_processes_share_the_work_and_agree(photos: dict[str, Path], tmp_path: Path) -> None:
    # 8 images over 2 processes with batch 2: 2 batches per epoch and process, 3 batches a step, so 4 steps are
    # 6 epochs. The generator runs under DDP; the critics' and the extractor's gradients are averaged by hand.
    out = tmp_path / "ddp"
    _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--dump-rank-state", processes=2)
    seen = [json.loads((out / f"rank{r}_indices.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 4 * BATCHES_PER_STEP
    for first, second in zip(*seen):
        assert len(set(first)) == len(set(second)) == 2 and not set(first) & set(second), seen
    for epoch in range(6):
        indices = [i for rank in seen for batch in rank[2 * epoch : 2 * epoch + 2] for i in batch]
        assert sorted(indices) == list(range(8)), seen  # every image exactly once per epoch
    assert seen[0][:2] != seen[0][2:4]  # a new order in the next epoch

    ranks = [_rank_states(out, rank) for rank in range(2)]
    for name in NETWORKS:
        _assert_same_weights(ranks[0][name], ranks[1][name], f"{name} across ranks")
    saved = _checkpoint_states(out / "checkpoint-4")  # rank 0's
    for name in NETWORKS:
        _assert_same_weights(ranks[0][name], saved[name], f"{name} in checkpoint-4")
