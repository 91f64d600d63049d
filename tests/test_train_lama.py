"""train/lama.py under ``accelerate launch``: it trains, checkpoints, resumes exactly, and runs on 2 processes."""

from __future__ import annotations

import json
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
from train_harness import launch

from inpaint_hub import AutoInpaintModel, LamaModel
from inpaint_hub.models.lama import LamaDiscriminator


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "lama.py"
CONFIG = REPO_ROOT / "train" / "configs" / "cpu-tiny.yaml"


def _launch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch(SCRIPT, CONFIG, *args, **{"timeout": 300, **kwargs})


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train_photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            y, x = np.mgrid[0:48, 0:56]
            base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.normal(0, 20, (48, 56, 3))
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return {"train": root / "train", "val": root / "val"}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _resume_copy(source: Path, checkpoint: str, target: Path) -> Path:
    """A fresh output folder holding only ``checkpoint`` of ``source``: a run interrupted right after it."""
    target.mkdir()
    shutil.copytree(source / checkpoint, target / checkpoint)
    return target


def _assert_same_final(a: Path, b: Path) -> None:
    first, second = _weights(a / "final"), _weights(b / "final")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{key} differs after resuming"


def test_train_checkpoint_and_exact_resume(photos: dict[str, Path], tmp_path: Path) -> None:
    # 8 images, batch 2, 2 accumulation steps: 4 batches and 2 optimiser steps per epoch. checkpoint-2 is taken at
    # an epoch end, checkpoint-3 in the middle of the second epoch.
    common = ["--train-data", str(photos["train"]), "--val-data", str(photos["val"]), "--jitter",
              "--gradient-accumulation-steps", "2", "--max-steps", "5", "--checkpointing-steps", "1"]  # fmt: skip
    straight = tmp_path / "straight"
    _launch(*common, "--output-dir", str(straight))
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == [f"checkpoint-{i}" for i in range(1, 6)]
    state = json.loads((straight / "checkpoint-3" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 2)
    state = json.loads((straight / "checkpoint-2" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 1, 0)
    assert isinstance(AutoInpaintModel.from_pretrained(straight / "checkpoint-2" / "generator"), LamaModel)

    for checkpoint in ("checkpoint-3", "checkpoint-2"):
        resumed = _resume_copy(straight, checkpoint, tmp_path / f"from-{checkpoint}")
        _launch(*common, "--output-dir", str(resumed), "--resume-from-checkpoint", "latest")
        _assert_same_final(straight, resumed)

    # Training moved the weights, and the validation grid was written.
    first, last = _weights(straight / "checkpoint-1" / "generator"), _weights(straight / "final")
    assert any(not torch.equal(first[k], last[k]) for k in last)
    assert list((straight / "samples").glob("step-*.png"))


def test_resuming_with_other_settings_is_refused(photos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--max-steps", "1")
    result = _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--max-steps", "2",
                     "--train-batch-size", "4", "--resume-from-checkpoint", "latest", check=False)  # fmt: skip
    assert result.returncode != 0 and "train_batch_size was 2 and is now 4" in result.stderr


def test_reconstruction_only_training_leaves_the_discriminator_alone(photos: dict[str, Path], tmp_path: Path) -> None:
    # Both GAN weights 0 (the bundled cpu-small recipe): the generator trains on L1 alone, the discriminator is
    # never run, and the run still checkpoints and resumes exactly.
    common = ["--train-data", str(photos["train"]), "--max-steps", "3", "--checkpointing-steps", "1",
              "--weight-adversarial", "0", "--weight-feature-matching", "0", "--weight-l1-hole", "10"]  # fmt: skip
    out = tmp_path / "l1"
    result = _launch(*common, "--output-dir", str(out))
    d_first, d_last = (load_file(out / c / "model_1.safetensors") for c in ("checkpoint-1", "checkpoint-3"))
    assert all(torch.equal(d_first[k], d_last[k]) for k in d_first)
    g_first, g_last = _weights(out / "checkpoint-1" / "generator"), _weights(out / "final")
    assert any(not torch.equal(g_first[k], g_last[k]) for k in g_last)
    assert "d_total" not in result.stderr

    resumed = _resume_copy(out, "checkpoint-2", tmp_path / "l1-resumed")
    _launch(*common, "--output-dir", str(resumed), "--resume-from-checkpoint", "latest")
    _assert_same_final(out, resumed)


def test_checkpoint_rotation(photos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--max-steps", "4",
            "--checkpointing-steps", "1", "--checkpoints-total-limit", "2")  # fmt: skip
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]


def test_two_processes_share_the_work_agree_and_resume(photos: dict[str, Path], tmp_path: Path) -> None:
    # 8 images over 2 processes with batch 2: 2 steps per epoch; checkpoint-3 is in the middle of the second epoch.
    common = ["--train-data", str(photos["train"]), "--max-steps", "4", "--checkpointing-steps", "1"]
    out = tmp_path / "ddp"
    _launch(*common, "--output-dir", str(out), "--dump-rank-state", processes=2)
    seen = [json.loads((out / f"rank{r}_indices.json").read_text()) for r in range(2)]
    for step in range(4):
        first, second = set(seen[0][step]), set(seen[1][step])
        assert len(first) == len(second) == 2 and not first & second, seen
    for epoch in range(2):
        indices = [i for rank in seen for batch in rank[2 * epoch : 2 * epoch + 2] for i in batch]
        assert sorted(indices) == list(range(8)), seen  # every image exactly once per epoch
    assert seen[0][:2] != seen[0][2:]  # a new order in the second epoch

    for name in ("generator", "discriminator"):
        weights = [torch.load(out / f"rank{r}_{name}.pt", weights_only=True) for r in range(2)]
        model = LamaModel if name == "generator" else LamaDiscriminator
        config = AutoInpaintModel.load_config(out / "final")
        for key, _ in model(config).named_parameters():  # all-reduced; BatchNorm buffers are per process
            assert torch.equal(weights[0][key], weights[1][key]), (name, key)

    resumed = _resume_copy(out, "checkpoint-3", tmp_path / "ddp-resumed")
    _launch(*common, "--output-dir", str(resumed), "--resume-from-checkpoint", "latest", processes=2)
    _assert_same_final(out, resumed)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("modle: tiny\n", "unknown option(s) modle"),
        ("mask_protocol: lama-huge-512\n", "mask_protocol: 'lama-huge-512' is not one of"),
        ("max_steps: many\n", "max_steps: invalid literal"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, yaml_text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config), "--train-data", "x"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr
