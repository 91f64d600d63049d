"""The training scripts' shared helpers (``inpaint_hub.training``), on their own: no launcher, no processes. The
multi-process behaviour is exercised end to end by the ``tests/test_train_*.py`` two-process tests; here a stub
accelerator records what each process would send to the all-reduce."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from inpaint_hub import OpenCVInpaintConfig, OpenCVInpaintModel
from inpaint_hub.data import InpaintDataset
from inpaint_hub.training import (
    add_mask_size_argument,
    average_gradients,
    checkpoint_dirs,
    checkpoint_position,
    parse_args_with_config,
    validate,
)


class _StubAccelerator:
    """One process of a 2-process run: ``reduce`` averages with what the other process holds (``other``)."""

    def __init__(self, num_processes: int = 2, other: float = 1.0) -> None:
        self.num_processes = num_processes
        self.other = other
        self.sent: list[torch.Tensor] = []

    def reduce(self, tensor: torch.Tensor, reduction: str) -> torch.Tensor:
        assert reduction == "mean"
        self.sent.append(tensor.clone())
        return (tensor + self.other) / 2


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def test_average_gradients_averages_every_trainable_parameter_in_order() -> None:
    a, b = _net(), _net()
    b[0].bias.requires_grad_(False)  # frozen: left out, on every process alike
    for net in (a, b):
        net(torch.ones(1, 3)).sum().backward()
    a[1].weight.grad = None  # a branch this process's batch did not reach: it still takes part, with zeros
    expected = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in a.parameters()]
    expected += [p.grad.clone() for p in b.parameters() if p.requires_grad]
    accelerator = _StubAccelerator(other=1.0)
    average_gradients(accelerator, a, b)
    # the same number of reductions, in the same order, whatever this process's batch reached
    assert len(accelerator.sent) == len(expected) == 7
    for sent, want in zip(accelerator.sent, expected):
        torch.testing.assert_close(sent, want)
    torch.testing.assert_close(a[1].weight.grad, torch.full_like(a[1].weight, 0.5))  # (0 + 1) / 2
    torch.testing.assert_close(a[0].weight.grad, (expected[0] + 1) / 2)
    assert b[0].bias.grad is None


def test_average_gradients_does_nothing_on_one_process() -> None:
    net = _net()
    net(torch.ones(1, 3)).sum().backward()
    net[1].weight.grad = None
    before = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    accelerator = _StubAccelerator(num_processes=1)
    average_gradients(accelerator, net)
    assert accelerator.sent == [] and net[1].weight.grad is None
    for p, old in zip(net.parameters(), before):
        assert (p.grad is None) == (old is None) and (old is None or torch.equal(p.grad, old))


def test_checkpoint_position_moves_to_the_next_epoch_at_its_end() -> None:
    assert checkpoint_position(3, 5, 10) == {"epoch": 3, "batch_in_epoch": 5}
    assert checkpoint_position(3, 10, 10) == {"epoch": 4, "batch_in_epoch": 0}


def test_checkpoint_dirs_lists_complete_checkpoints_by_step(tmp_path: Path) -> None:
    for step in (1000, 250, 5000):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "training_state.json").write_text("{}")
    (tmp_path / "checkpoint-6000").mkdir()  # interrupted while saving: no training_state.json
    (tmp_path / "checkpoint-x").mkdir()
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["checkpoint-250", "checkpoint-1000", "checkpoint-5000"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--train-data", nargs="+")
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--crop", choices=["random", "fit"], default="random")
    return p


def test_config_sets_defaults_and_the_command_line_wins(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("lr: '3e-4'\ncrop: fit\ntrain_data: [a, b]\n")
    args = parse_args_with_config(_parser(), ["--config", str(config)])
    assert (args.lr, args.crop, args.train_data) == (3e-4, "fit", ["a", "b"])
    args = parse_args_with_config(_parser(), ["--config", str(config), "--lr", "0.5", "--train-data", "c"])
    assert (args.lr, args.crop, args.train_data) == (0.5, "fit", ["c"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: 1\nlearning_rate: 2\n", "unknown option(s) learning_rate"),
        ("lr: fast\n", "lr: could not convert string to float"),
        ("crop: square\n", "crop: 'square' is not one of random, fit"),
        ("lr: 1\n", "--train-data is required"),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path: Path, capsys, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(SystemExit):
        parse_args_with_config(_parser(), ["--config", str(config)])
    err = capsys.readouterr().err
    assert message in err
    if "train-data" not in message:
        assert str(config) in err


def test_mask_size_option(tmp_path: Path, capsys) -> None:
    # Every training script has --mask-size; it is optional (None: masks drawn at --resolution), a YAML key sets it,
    # and a size that is not a positive number of pixels is refused when the arguments are parsed.
    parser = _parser()
    add_mask_size_argument(parser.add_argument_group("data"))
    assert parse_args_with_config(parser, ["--train-data", "a"]).mask_size is None
    config = tmp_path / "c.yaml"
    config.write_text("train_data: [a]\nmask_size: 256\n")
    assert parse_args_with_config(parser, ["--config", str(config)]).mask_size == 256
    with pytest.raises(SystemExit):
        parse_args_with_config(parser, ["--config", str(config), "--mask-size", "0"])
    assert "--mask-size must be a positive number of pixels, got 0" in capsys.readouterr().err


class _OneProcess:
    device = torch.device("cpu")

    @staticmethod
    def unwrap_model(model):
        return model


def test_validation_reports_telea_on_the_same_crops(tmp_path: Path) -> None:
    # val/telea_psnr_hole is OpenCV's Telea on exactly the crops and masks the model is validated on: validating Telea
    # itself gives its own score to the last digit, and another method (Navier-Stokes) a different one.
    rng = np.random.default_rng(0)
    for i in range(3):
        y, x = np.mgrid[0:48, 0:56]
        base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1) + rng.normal(0, 25, (48, 56, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    dataset = InpaintDataset(tmp_path, size=32, mask_protocol="lama-medium-256", crop="center", flip=False, seed=0)
    args = argparse.Namespace(num_validation_images=3, output_dir=str(tmp_path / "run"))
    telea = validate(_OneProcess(), OpenCVInpaintModel(OpenCVInpaintConfig(method="telea")), dataset, args, step=5)
    assert telea["val/telea_psnr_hole"] == telea["val/psnr_hole"] and 5 < telea["val/psnr_hole"] < 60, telea
    ns = validate(_OneProcess(), OpenCVInpaintModel(OpenCVInpaintConfig(method="ns")), dataset, args, step=6)
    assert ns["val/telea_psnr_hole"] == telea["val/telea_psnr_hole"]  # the reference does not depend on the model
    assert ns["val/psnr_hole"] != ns["val/telea_psnr_hole"]
    assert (tmp_path / "run" / "samples" / "step-0000005.png").is_file()
