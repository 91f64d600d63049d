"""train/lama.py under ``accelerate launch``: it trains, checkpoints, resumes exactly, and runs on 2 processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from inpaint_hub import AutoInpaintModel, LamaModel


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "lama.py"
CONFIG = REPO_ROOT / "train" / "configs" / "cpu-tiny.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(*args: str, processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", str(_free_port())]  # fmt: skip
    launcher += ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else ["--num_processes", "1"]
    result = subprocess.run(
        [*launcher, str(SCRIPT), "--config", str(CONFIG), *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


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


def test_train_checkpoint_and_exact_resume(photos: dict[str, Path], tmp_path: Path) -> None:
    common = ["--train-data", str(photos["train"]), "--val-data", str(photos["val"])]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _launch(*common, "--output-dir", str(straight), "--max-steps", "5", "--checkpointing-steps", "2")
    # 8 images, batch 2: 4 batches per epoch, so step 5 is in the second epoch and the resume crosses an epoch.
    _launch(*common, "--output-dir", str(resumed), "--max-steps", "3", "--checkpointing-steps", "3")
    _launch(*common, "--output-dir", str(resumed), "--max-steps", "5", "--checkpointing-steps", "3",
            "--resume-from-checkpoint", "latest")  # fmt: skip

    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]
    state = json.loads((straight / "checkpoint-2" / "training_state.json").read_text())
    assert state == {"step": 2, "epoch": 0, "batch_in_epoch": 2}
    model = AutoInpaintModel.from_pretrained(straight / "checkpoint-2" / "generator")
    assert isinstance(model, LamaModel)

    a, b = _weights(straight / "final"), _weights(resumed / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"
    # Training moved the weights, and the validation grid was written.
    first = _weights(straight / "checkpoint-2" / "generator")
    assert any(not torch.equal(first[k], a[k]) for k in a)
    assert list((straight / "samples").glob("step-*.png"))


def test_checkpoint_rotation(photos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--max-steps", "4",
            "--checkpointing-steps", "1", "--checkpoints-total-limit", "2")  # fmt: skip
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]


def test_two_processes_share_the_work_and_agree(photos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--max-steps", "2",
            "--checkpointing-steps", "2", "--dump-rank-state", processes=2)  # fmt: skip
    seen = [json.loads((out / f"rank{r}_indices.json").read_text()) for r in range(2)]
    for step in range(2):
        first, second = set(seen[0][step]), set(seen[1][step])
        assert len(first) == len(second) == 2 and not first & second, seen
    all_seen = [i for rank in seen for batch in rank for i in batch]
    assert len(all_seen) == len(set(all_seen)) == 8  # 2 steps x 2 ranks x batch 2: one epoch, no image twice

    weights = [torch.load(out / f"rank{r}_generator.pt", weights_only=True) for r in range(2)]
    parameters = dict(LamaModel(AutoInpaintModel.load_config(out / "final")).named_parameters())
    for key in parameters:  # parameters are all-reduced; BatchNorm running stats are per process between broadcasts
        assert torch.equal(weights[0][key], weights[1][key]), key
    assert _weights(out / "final").keys() == weights[0].keys()


def test_bad_config_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("modle: tiny\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config), "--train-data", "x"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "unknown option(s) modle" in result.stderr
