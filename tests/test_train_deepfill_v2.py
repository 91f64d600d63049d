"""train/deepfill_v2.py under ``accelerate launch``: it trains, checkpoints, resumes exactly, trains or leaves the
SN-PatchGAN alone as its weight says, shares one mask per batch (or not) as asked, refuses bad arguments, and runs on
2 processes."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from train_harness import launch, load_script, logged_scalars, write_scalar_printer

from inpaint_hub import AutoInpaintModel, PENNetConfig, PENNetModel
from inpaint_hub.data import InpaintDataset
from inpaint_hub.models.deepfill_v2 import DeepFillV2Config, DeepFillV2Model


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "deepfill_v2.py"
CONFIG = REPO_ROOT / "train" / "configs" / "deepfill-v2-cpu-tiny.yaml"
RESOLUTION = 64  # the tiny config's
SEED = 0  # the script's default


@pytest.fixture(scope="module")
def scalar_printer(tmp_path_factory) -> Path:
    return write_scalar_printer(tmp_path_factory.mktemp("launcher"))


@pytest.fixture(scope="module")
def script():
    """train/deepfill_v2.py imported as a module, for its argument checks and helpers."""
    return load_script(SCRIPT, "train_deepfill_v2")


def _launch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch(SCRIPT, CONFIG, *args, **kwargs)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deepfill_photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            y, x = np.mgrid[0:72, 0:80]
            base = np.stack([x * 3, y * 3, (x + y) * 2], axis=-1) + rng.normal(0, 20, (72, 80, 3))
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return {"train": root / "train", "val": root / "val"}


@pytest.fixture(scope="module")
def straight_run(photos: dict[str, Path], scalar_printer: Path, tmp_path_factory) -> dict:
    """One uninterrupted run with the paper's losses (adversarial on) and one mask per batch, shared by the tests
    that only read it.

    8 images, batch 2, 2 accumulation steps: 4 batches and 2 optimiser steps per epoch; checkpoint-2 is taken at an
    epoch end, checkpoint-3 in the middle of the second epoch. ``--dump-rank-state`` records the sample indices and
    the masks the generator was given, batch by batch.
    """
    common = ["--train-data", str(photos["train"]), "--val-data", str(photos["val"]), "--jitter",
              "--gradient-accumulation-steps", "2", "--max-steps", "5", "--checkpointing-steps", "1",
              "--dump-rank-state"]  # fmt: skip
    out = tmp_path_factory.mktemp("deepfill_runs") / "straight"
    result = _launch(*common, "--output-dir", str(out), printer=scalar_printer)
    return {"out": out, "common": common, "scalars": logged_scalars(result)}


def _resume_copy(source: Path, checkpoint: str, target: Path) -> Path:
    """A fresh output folder holding only ``checkpoint`` of ``source``: a run interrupted right after it."""
    target.mkdir()
    shutil.copytree(source / checkpoint, target / checkpoint)
    return target


def _assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], what: str) -> None:
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{what}: {key} differs"


def _changed(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(first[k], second[k]) for k in first)


def _without_timing(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "train/seconds_per_step"}


def _own_masks(train: Path, indices: list[int], epoch: int, *, jitter: bool) -> list[torch.Tensor]:
    """The masks the dataset gives items ``indices`` at ``epoch`` (as the script builds it)."""
    dataset = InpaintDataset(train, size=RESOLUTION, mask_protocol="deepfill-freeform", jitter=jitter, seed=SEED)
    dataset.set_epoch(epoch)
    return [dataset[i]["mask"] for i in indices]


# ------------------------------------------------------------------------------------------------- one process


def test_train_checkpoint_and_exact_resume(straight_run: dict, scalar_printer: Path, tmp_path: Path) -> None:
    straight, common = straight_run["out"], straight_run["common"]
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == [f"checkpoint-{i}" for i in range(1, 6)]
    state = json.loads((straight / "checkpoint-3" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 2)
    assert state["run"]["mask_per_batch"] is True
    state = json.loads((straight / "checkpoint-2" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 1, 0)
    assert isinstance(AutoInpaintModel.from_pretrained(straight / "checkpoint-2" / "generator"), DeepFillV2Model)
    assert isinstance(AutoInpaintModel.from_pretrained(straight / "final"), DeepFillV2Model)
    assert list((straight / "samples").glob("step-*.png"))

    # Interrupted after step 3 (mid-epoch) and resumed to step 5: the same generator, discriminator (spectral-norm
    # vectors included) and logged losses, bit for bit.
    resumed = _resume_copy(straight, "checkpoint-3", tmp_path / "from-checkpoint-3")
    result = _launch(
        *common, "--output-dir", str(resumed), "--resume-from-checkpoint", "latest", printer=scalar_printer
    )
    _assert_same_weights(load_file(straight / "final" / "model.safetensors"),
                         load_file(resumed / "final" / "model.safetensors"), "generator")  # fmt: skip
    _assert_same_weights(load_file(straight / "checkpoint-5" / "model_1.safetensors"),
                         load_file(resumed / "checkpoint-5" / "model_1.safetensors"), "discriminator")  # fmt: skip
    logged = logged_scalars(result)
    assert sorted(logged) == [4, 5]
    for step in (4, 5):
        assert _without_timing(logged[step]) == _without_timing(straight_run["scalars"][step]), step


def test_losses_are_logged(straight_run: dict) -> None:
    scalars = straight_run["scalars"]
    assert sorted(scalars) == [1, 2, 3, 4, 5]  # logging_steps 1
    for row in scalars.values():
        parts = [row[f"train/g_{name}"] for name in ("l1_coarse", "l1_refined", "adversarial")]
        assert all(math.isfinite(v) for v in parts), row
        assert row["train/g_l1_coarse"] > 0 and row["train/g_l1_refined"] > 0, row
        assert row["train/g_total"] == pytest.approx(sum(parts), rel=1e-5), row
        assert 0 <= row["train/d_total"] < 10, row  # hinge: 0.5 * relu(1 - real) + 0.5 * relu(1 + fake)
    assert any(k.startswith("val/") for k in scalars[2]), scalars[2]  # validation_steps 2 in the tiny config


def test_adversarial_training_updates_both_networks(straight_run: dict) -> None:
    out = straight_run["out"]
    for name in ("model.safetensors", "model_1.safetensors"):  # generator, discriminator
        assert _changed(load_file(out / "checkpoint-1" / name), load_file(out / "checkpoint-5" / name)), name


def test_one_mask_per_batch_is_the_first_items(straight_run: dict, photos: dict[str, Path]) -> None:
    # --mask-per-batch (the default, as the original): every image of a batch gets the first item's mask.
    out = straight_run["out"]
    indices = json.loads((out / "rank0_indices.json").read_text())
    masks = torch.load(out / "rank0_masks.pt", weights_only=True)
    assert len(indices) == len(masks) == 10  # 5 steps x 2 accumulated batches
    own_masks_differ = False
    for number, (batch, used) in enumerate(zip(indices, masks)):
        own = _own_masks(photos["train"], batch, epoch=number // 4, jitter=True)  # 4 batches per epoch
        assert used.shape == (2, 1, RESOLUTION, RESOLUTION)
        for image_mask in used:
            assert torch.equal(image_mask, own[0]), (number, batch)
        own_masks_differ |= not torch.equal(own[0], own[1])
    assert own_masks_differ  # the dataset's items do carry their own masks: the sharing is the script's


def test_reconstruction_only_fine_tuning_with_own_masks(
    photos: dict[str, Path], scalar_printer: Path, tmp_path: Path
) -> None:
    # --init-from a saved generator (a width no preset has, RGB channel order) with adversarial weight 0 and
    # --no-mask-per-batch: the generator starts from those weights and trains on every item's own mask; the
    # discriminator is never run or updated.
    config = DeepFillV2Config(base_channels=12, channel_order="rgb", discriminator_base_channels=4)
    DeepFillV2Model(config).save_pretrained(tmp_path / "init")
    out = tmp_path / "run"
    result = _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--init-from",
                     str(tmp_path / "init"), "--weight-adversarial", "0", "--no-mask-per-batch", "--max-steps", "2",
                     "--checkpointing-steps", "1", "--dump-rank-state", printer=scalar_printer)  # fmt: skip
    saved = AutoInpaintModel.load_config(out / "final")
    assert (saved.base_channels, saved.channel_order) == (12, "rgb")
    initial, first, last = (
        load_file(folder / "model.safetensors") for folder in (tmp_path / "init", out / "checkpoint-1", out / "final")
    )
    assert _changed(initial, first) and _changed(first, last)
    assert max((first[k] - initial[k]).abs().max().item() for k in initial) < 1e-3  # one Adam step of 1e-4 away
    d_first, d_last = (load_file(out / c / "model_1.safetensors") for c in ("checkpoint-1", "checkpoint-2"))
    _assert_same_weights(d_first, d_last, "discriminator")  # spectral-norm buffers included: D never ran
    for row in logged_scalars(result).values():
        assert "train/d_total" not in row and "train/g_adversarial" not in row and "train/g_l1_refined" in row, row

    indices = json.loads((out / "rank0_indices.json").read_text())
    masks = torch.load(out / "rank0_masks.pt", weights_only=True)
    assert len(indices) == len(masks) == 2
    differ = False
    for batch, used in zip(indices, masks):
        own = _own_masks(photos["train"], batch, epoch=0, jitter=False)
        for image_mask, own_mask in zip(used, own):
            assert torch.equal(image_mask, own_mask), batch
        differ |= not torch.equal(used[0], used[1])
    assert differ


def test_resuming_with_other_settings_is_refused(straight_run: dict, tmp_path: Path) -> None:
    out = _resume_copy(straight_run["out"], "checkpoint-5", tmp_path / "run")
    result = _launch(*straight_run["common"], "--output-dir", str(out), "--max-steps", "6", "--no-mask-per-batch",
                     "--resume-from-checkpoint", "latest", check=False)  # fmt: skip
    assert result.returncode != 0, result.stderr[-3000:]
    assert "mask_per_batch was True and is now False" in result.stderr, result.stderr[-3000:]


# ------------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--resolution", "100"], "--resolution must be a positive multiple of 8"),
        (["--resolution", "0"], "--resolution must be a positive multiple of 8"),
        (["--model", "pennet"], "argument --model: invalid choice: 'pennet'"),
        (["--model-overrides", '{"base_channels": 10}'], "base_channels must be a multiple of 4"),
        (["--model-overrides", '{"cnum": 32}'], "--model-overrides"),
        (["--model-overrides", "[32]"], "--model-overrides must be a JSON object"),
        (["--weight-adversarial", "-1"], "--weight-adversarial must be >= 0"),
        (["--mask-protocol", "squares"], "argument --mask-protocol: invalid choice"),
    ],
)
def test_bad_arguments_are_refused(script, capsys, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--config", str(CONFIG), "--train-data", "photos", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_are_the_papers(script) -> None:
    args = script.parse_args(["--train-data", "photos"])
    assert (args.resolution, args.train_batch_size, args.mask_protocol, args.mask_per_batch) == (
        256, 16, "deepfill-freeform", True
    )  # fmt: skip
    assert (args.lr_generator, args.lr_discriminator, tuple(args.adam_betas)) == (1e-4, 1e-4, (0.5, 0.999))
    assert (args.weight_l1_coarse, args.weight_l1_refined, args.weight_adversarial, args.max_grad_norm) == (1, 1, 1, 0)
    assert script.build_generator(args).num_parameters() == 4_052_478


@pytest.mark.parametrize(
    ("name", "parameters", "resolution", "mask_per_batch", "adversarial"),
    [
        ("deepfill-v2-places2", 4_052_478, 256, True, 1.0),  # the paper's recipe
        ("deepfill-v2-cpu-small", 1_805_398, 192, False, 0.0),  # <= ~2.5M parameters for a CPU budget
        ("deepfill-v2-cpu-tiny", 115_258, 64, True, 1.0),
    ],
)
def test_configs(
    script, name: str, parameters: int, resolution: int, mask_per_batch: bool, adversarial: float
) -> None:
    config = REPO_ROOT / "train" / "configs" / f"{name}.yaml"
    args = script.parse_args(["--config", str(config), "--train-data", "photos"])
    assert (args.resolution, args.mask_per_batch, args.weight_adversarial) == (resolution, mask_per_batch, adversarial)
    assert script.build_generator(args).num_parameters() == parameters


def test_init_from_another_model_is_refused(script, tmp_path: Path) -> None:
    PENNetModel(PENNetConfig.tiny()).save_pretrained(tmp_path / "pennet")
    args = script.parse_args(["--train-data", "photos", "--init-from", str(tmp_path / "pennet")])
    with pytest.raises(ValueError, match="is a PENNetModel, not a DeepFill v2 model"):
        script.build_generator(args)


def test_gated_kaiming_init_keeps_the_signal_alive(script) -> None:
    # Under the original's Glorot init the coarse network's output barely depends on its input (the gated layers
    # shrink the signal ~10x each); the variance-preserving init keeps it within an order of magnitude.
    torch.manual_seed(0)
    config = DeepFillV2Config(base_channels=16, channel_order="rgb", fuse=False)
    image, mask = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:40, 20:48] = 1
    stds = {}
    for init in ("original", "gated-kaiming"):
        torch.manual_seed(0)
        args = script.parse_args(["--train-data", "photos", "--model-overrides", config.model_dump_json(),
                                  "--weight-init", init])  # fmt: skip
        model = script.build_generator(args)
        with torch.no_grad():
            stds[init] = model(image, mask).coarse.std().item()
    assert stds["original"] < 1e-4
    assert 0.01 < stds["gated-kaiming"] < 0.5
    layer = next(m for m in model.modules() if isinstance(m, script.GatedConv2d) and m.gated)
    fan_in = layer.conv.weight[0].numel()
    assert layer.conv.weight.std().item() == pytest.approx(script.GATED_INIT_GAIN / math.sqrt(fan_in), rel=0.1)
    assert torch.count_nonzero(layer.conv.bias) == 0


def test_mask_and_channel_helpers(script) -> None:
    masks = (torch.rand(3, 1, 8, 8) > 0.5).float()
    shared = script.batch_mask(masks, per_batch=True)
    assert shared.shape == masks.shape and all(torch.equal(m, masks[0]) for m in shared)
    assert script.batch_mask(masks, per_batch=False) is masks
    pair = torch.rand(2, 4, 8, 8)  # [image RGB, mask]
    bgr = script.to_network_order(pair, DeepFillV2Config.tiny())
    assert torch.equal(bgr[:, :3], pair[:, [2, 1, 0]]) and torch.equal(bgr[:, 3:], pair[:, 3:])
    assert script.to_network_order(pair, DeepFillV2Config.tiny().replace(channel_order="rgb")) is pair


# ------------------------------------------------------------------------------------------------- two processes


def test_two_processes_share_the_work_and_agree(photos: dict[str, Path], tmp_path: Path) -> None:
    # 8 images over 2 processes with batch 2: 2 steps per epoch, 2 epochs. The adversarial loss is on, so the
    # spectral-norm discriminator runs under DDP too; each process shares its own first item's mask.
    out = tmp_path / "ddp"
    _launch("--train-data", str(photos["train"]), "--max-steps", "4", "--checkpointing-steps", "4",
            "--output-dir", str(out), "--dump-rank-state", processes=2)  # fmt: skip
    seen = [json.loads((out / f"rank{r}_indices.json").read_text()) for r in range(2)]
    for step in range(4):
        first, second = set(seen[0][step]), set(seen[1][step])
        assert len(first) == len(second) == 2 and not first & second, seen
    for epoch in range(2):
        indices = [i for rank in seen for batch in rank[2 * epoch : 2 * epoch + 2] for i in batch]
        assert sorted(indices) == list(range(8)), seen  # every image exactly once per epoch
    assert seen[0][:2] != seen[0][2:]  # a new order in the second epoch

    for rank in range(2):
        masks = torch.load(out / f"rank{rank}_masks.pt", weights_only=True)
        for step, (batch, used) in enumerate(zip(seen[rank], masks)):
            first_mask = _own_masks(photos["train"], batch[:1], epoch=step // 2, jitter=False)[0]
            assert all(torch.equal(m, first_mask) for m in used), (rank, step)

    for name in ("generator", "discriminator"):
        # No batch statistics: every tensor, spectral-norm vectors included, is the same on both ranks.
        weights = [torch.load(out / f"rank{r}_{name}.pt", weights_only=True) for r in range(2)]
        _assert_same_weights(weights[0], weights[1], f"{name} across ranks")
