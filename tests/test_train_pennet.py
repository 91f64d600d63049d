"""train/pennet.py under ``accelerate launch``: it trains, checkpoints, resumes exactly (learning-rate schedule
included), trains or leaves the discriminator alone as its weight says, and runs on 2 processes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from train_harness import launch, logged_scalars, write_scalar_printer

from inpaint_hub import AutoInpaintModel, PENNetConfig, PENNetModel


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "pennet.py"
CONFIG = REPO_ROOT / "train" / "configs" / "pennet-cpu-tiny.yaml"


@pytest.fixture(scope="module")
def scalar_printer(tmp_path_factory) -> Path:
    return write_scalar_printer(tmp_path_factory.mktemp("launcher"))


def _launch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch(SCRIPT, CONFIG, *args, **kwargs)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pennet_photos")
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
    """One uninterrupted run, shared by the tests that only read it.

    8 images, batch 2, 2 accumulation steps: 4 batches and 2 optimiser steps per epoch; checkpoint-2 is taken at an
    epoch end, checkpoint-3 in the middle of the second epoch. ``--lr-decay-every 2``: the learning rate is 1e-4 for
    step 1, 1e-5 for steps 2-3 and 1e-6 for steps 4-5 (the original counts the step before adjusting), so resuming
    from checkpoint-3 restarts after one decay and crosses another.
    """
    common = ["--train-data", str(photos["train"]), "--val-data", str(photos["val"]), "--jitter",
              "--gradient-accumulation-steps", "2", "--max-steps", "5", "--checkpointing-steps", "1",
              "--lr-decay-every", "2", "--lr-decay-until", "100"]  # fmt: skip
    out = tmp_path_factory.mktemp("pennet_runs") / "straight"
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


# ------------------------------------------------------------------------------------------------- one process


def test_train_checkpoint_and_exact_resume(straight_run: dict, scalar_printer: Path, tmp_path: Path) -> None:
    straight, common = straight_run["out"], straight_run["common"]
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == [f"checkpoint-{i}" for i in range(1, 6)]
    state = json.loads((straight / "checkpoint-3" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 2)
    state = json.loads((straight / "checkpoint-2" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 1, 0)
    assert isinstance(AutoInpaintModel.from_pretrained(straight / "checkpoint-2" / "generator"), PENNetModel)
    assert list((straight / "samples").glob("step-*.png"))

    # Interrupted after step 3 (mid-epoch, after the first decay) and resumed to step 5 (across the second): the
    # same generator, discriminator and logged losses and learning rates, bit for bit.
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


def test_learning_rate_schedule(straight_run: dict) -> None:
    # PEN-Net's step schedule lr * 0.1 ** (min(step, until) // every), for the generator and the discriminator.
    scalars = straight_run["scalars"]
    assert [scalars[s]["train/lr_generator"] for s in range(1, 6)] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-6, 1e-6])
    last = straight_run["out"] / "checkpoint-5"
    for name in ("optimizer.bin", "optimizer_1.bin"):  # generator, discriminator
        groups = torch.load(last / name, weights_only=True)["param_groups"]
        assert [g["lr"] for g in groups] == pytest.approx([1e-6] * len(groups)), name

    spec = importlib.util.spec_from_file_location("train_pennet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    factor = module.learning_rate_factor
    # places2.json: niter 1e5, niter_steady 1.5e5 -> one decay; celebahq.json: niter_steady < niter -> none.
    assert [factor(s, 100_000, 150_000) for s in (0, 99_999, 100_000, 150_000, 999_999)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.1]
    )
    assert factor(329_999, 100_000, 10_000) == 1
    assert factor(300_000, 100_000, 310_000) == pytest.approx(1e-3)  # dtd.json: decays at 100k, 200k and 300k


def test_losses_are_logged(straight_run: dict) -> None:
    scalars = straight_run["scalars"]
    assert sorted(scalars) == [1, 2, 3, 4, 5]  # logging_steps 1
    for row in scalars.values():
        parts = [row[f"train/g_{name}"] for name in ("hole", "valid", "pyramid", "adversarial")]
        assert all(math.isfinite(v) for v in parts), row
        assert row["train/g_pyramid"] > 0 and row["train/g_hole"] > 0, row
        assert row["train/g_total"] == pytest.approx(sum(parts), rel=1e-5), row
        assert math.isfinite(row["train/d_total"]), row
    assert any(k.startswith("val/") for k in scalars[2]), scalars[2]  # validation_steps 2 in the tiny config


def test_adversarial_training_updates_the_discriminator(straight_run: dict) -> None:
    out = straight_run["out"]
    for name in ("model.safetensors", "model_1.safetensors"):  # generator, discriminator
        assert _changed(load_file(out / "checkpoint-1" / name), load_file(out / "checkpoint-5" / name)), name


def test_reconstruction_only_fine_tuning(photos: dict[str, Path], scalar_printer: Path, tmp_path: Path) -> None:
    # --init-from a saved generator (a width no preset has, as a converted release would be) with adversarial
    # weight 0: the generator starts from those weights and trains; the discriminator is never run or updated.
    # The optional hole MSE term (our small recipes' option) joins the logged generator losses.
    config = PENNetConfig(base_channels=8, max_channels=16, discriminator_base_channels=8)
    PENNetModel(config).save_pretrained(tmp_path / "init")
    out = tmp_path / "run"
    result = _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--init-from",
                     str(tmp_path / "init"), "--weight-adversarial", "0", "--max-steps", "2", "--checkpointing-steps",
                     "1", "--weight-hole-mse", "2", "--crop", "fit", "--mask-size", "128",
                     printer=scalar_printer)  # fmt: skip
    assert AutoInpaintModel.load_config(out / "final").base_channels == 8
    # masks drawn at 128 px and pooled to the 64 px crops; the size joins the run's signature, so resuming checks it
    assert json.loads((out / "checkpoint-2" / "training_state.json").read_text())["run"]["mask_size"] == 128
    initial, first, last = (
        load_file(folder / "model.safetensors") for folder in (tmp_path / "init", out / "checkpoint-1", out / "final")
    )
    assert _changed(initial, first) and _changed(first, last)
    assert max((first[k] - initial[k]).abs().max().item() for k in initial) < 1e-3  # one Adam step of 1e-4 away
    d_first, d_last = (load_file(out / c / "model_1.safetensors") for c in ("checkpoint-1", "checkpoint-2"))
    _assert_same_weights(d_first, d_last, "discriminator")  # spectral-norm buffers included: D never ran
    for row in logged_scalars(result).values():
        assert "train/d_total" not in row and "train/g_adversarial" not in row and "train/g_pyramid" in row, row
        parts = [row[f"train/g_{name}"] for name in ("hole", "valid", "pyramid", "hole_mse")]
        assert row["train/g_hole_mse"] > 0 and row["train/g_total"] == pytest.approx(sum(parts), rel=1e-5), row


def test_resuming_with_other_settings_is_refused(straight_run: dict, tmp_path: Path) -> None:
    out = _resume_copy(straight_run["out"], "checkpoint-5", tmp_path / "run")
    result = _launch(*straight_run["common"], "--output-dir", str(out), "--max-steps", "6", "--train-batch-size", "4",
                     "--resume-from-checkpoint", "latest", check=False)  # fmt: skip
    assert result.returncode != 0 and "train_batch_size was 2 and is now 4" in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("resolution", ["96", "32"])
def test_resolution_must_be_a_multiple_of_64(resolution: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(CONFIG), "--train-data", "x", "--resolution", resolution],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"--resolution must be a multiple of 64 (PEN-Net's six stride-2 levels), got {resolution}" in result.stderr


def test_negative_loss_weights_are_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(CONFIG), "--train-data", "x", "--weight-hole-mse", "-1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--weight-hole-mse must be >= 0, got -1.0" in result.stderr


# ------------------------------------------------------------------------------------------------- two processes


def test_two_processes_share_the_work_and_agree(photos: dict[str, Path], tmp_path: Path) -> None:
    # 8 images over 2 processes with batch 2: 2 steps per epoch, 2 epochs. The adversarial loss is on, so the
    # spectral-norm discriminator runs under DDP too.
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

    for name in ("generator", "discriminator"):
        # PEN-Net has no batch statistics: every tensor, spectral-norm vectors included, is the same on both ranks.
        weights = [torch.load(out / f"rank{r}_{name}.pt", weights_only=True) for r in range(2)]
        _assert_same_weights(weights[0], weights[1], f"{name} across ranks")
