"""train/dgi.py under ``accelerate launch``: it trains the student, the teacher (which evolves with it), the
distiller's adapters (with the student) and meta-networks (by the meta step) and the critic; checkpoints all four and
resumes exactly; the ablation switches and ``--no-meta`` leave out what they name; the final student loads on its own
and records its loss weights; bad arguments are refused; the helpers; and 2 processes agree."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from PIL import Image
from safetensors.torch import load_file
from train_harness import launch, load_script, logged_scalars, write_scalar_printer

from inpaint_hub import AutoInpaintModel
from inpaint_hub.losses import PerceptualLoss
from inpaint_hub.models.dgi import DGIConfig, DGIDiscriminator, DGIDistiller, DGIModel, DGITeacher


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train" / "dgi.py"
CONFIG = REPO_ROOT / "train" / "configs" / "dgi-cpu-tiny.yaml"
SEED = 0  # the script's default
# The tiny config: batch 2, 4 steps (one batch a step), checkpoints every 2, teacher warm-up 1 step (distillation and
# meta steps from step 2 on), logging every step, validation every 2 steps.
NETWORKS = ("student", "teacher", "distiller", "critic")  # --dump-rank-state's names, in the checkpoint's order
INNER = ("cross_adapters", "self_adapters")  # the distiller's parts trained with the student
META = ("cross_weights", "self_weights", "attention_weights")  # the meta-networks, trained by the meta step
DISTILLATIONS = ("cross", "self", "attention")


@pytest.fixture(scope="module")
def scalar_printer(tmp_path_factory) -> Path:
    return write_scalar_printer(tmp_path_factory.mktemp("launcher"))


@pytest.fixture(scope="module")
def script():
    """train/dgi.py imported as a module, for its argument checks and helpers."""
    return load_script(SCRIPT, "train_dgi")


def _launch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return launch(SCRIPT, CONFIG, *args, **kwargs)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dgi_photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            y, x = np.mgrid[0:40, 0:48]
            base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.normal(0, 20, (40, 48, 3))
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return {"train": root / "train", "val": root / "val"}


@pytest.fixture(scope="module")
def straight_run(photos: dict[str, Path], scalar_printer: Path, tmp_path_factory) -> dict:
    """One uninterrupted run of the tiny config (every part of the objective on), shared by the tests that only read
    it. 8 images, batch 2: 4 batches, one epoch, in 4 steps; checkpoint-2 is in the middle of it. ``--dump-rank-state``
    records the sample indices, batch by batch, and the final weights of the four networks."""
    common = ["--train-data", str(photos["train"]), "--val-data", str(photos["val"]), "--dump-rank-state"]
    out = tmp_path_factory.mktemp("dgi_runs") / "straight"
    result = _launch(*common, "--output-dir", str(out), printer=scalar_printer)
    return {"out": out, "common": common, "scalars": logged_scalars(result)}


@pytest.fixture(scope="module")
def initial_states(script) -> dict[str, dict[str, torch.Tensor]]:
    """The four networks' weights before the first step: built as the script builds them (seeded, then the student,
    the teacher, the distiller and the critic, in that order; no VGG loss in the tiny config)."""
    args = script.parse_args(["--config", str(CONFIG), "--train-data", "photos"])
    set_seed(SEED)
    student = script.build_student(args)
    config = student.config
    networks = (student, DGITeacher(config), DGIDistiller(config), DGIDiscriminator(config))
    return {
        name: {k: v.detach().clone() for k, v in net.state_dict().items()} for name, net in zip(NETWORKS, networks)
    }


def _checkpoint_states(checkpoint: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The four networks' weights in a checkpoint folder: nothing is ``prepare``d, so all four are
    ``register_for_checkpointing`` objects, in the order registered (student, teacher, distiller, critic)."""
    return {
        name: torch.load(checkpoint / f"custom_checkpoint_{i}.pkl", weights_only=True)
        for i, name in enumerate(NETWORKS)
    }


def _rank_states(out: Path, rank: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    return {name: torch.load(out / f"rank{rank}_{name}.pt", weights_only=True) for name in NETWORKS}


def _resume_copy(source: Path, checkpoint: str, target: Path) -> Path:
    """A fresh output folder holding only ``checkpoint`` of ``source``: a run interrupted right after it."""
    target.mkdir()
    shutil.copytree(source / checkpoint, target / checkpoint)
    return target


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a state dict under ``prefix`` (a submodule), never empty."""
    part = {k: v for k, v in state.items() if k.startswith(prefix + ".")}
    assert part, f"no {prefix}.* in {sorted(state)}"
    return part


def _assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], what: str) -> None:
    assert first.keys() == second.keys(), what
    for key in first:
        assert torch.equal(first[key], second[key]), f"{what}: {key} differs"


def _changed(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    assert first.keys() == second.keys()
    return any(not torch.equal(first[k], second[k]) for k in first)


def _max_change(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    """Over the weights, not the critic's spectral-norm power-iteration vectors (``_u``, ``_v``: they move freely)."""
    keys = [k for k in first if not k.endswith(("._u", "._v"))]
    return max((first[k] - second[k]).abs().max().item() for k in keys)


def _without_timing(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "train/seconds_per_step"}


def _losses(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k.startswith("train/g_") and k != "train/g_total"}


# ------------------------------------------------------------------------------------------------- one process


def test_train_checkpoint_and_exact_resume(straight_run: dict, scalar_printer: Path, tmp_path: Path) -> None:
    straight, common = straight_run["out"], straight_run["common"]
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    state = json.loads((straight / "checkpoint-2" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 0, 2)  # mid-epoch
    for checkpoint in ("checkpoint-2", "checkpoint-4"):
        # the four networks and the meta optimiser (registered), the three prepared optimisers
        files = {p.name for p in (straight / checkpoint).iterdir()}
        expected = {f"custom_checkpoint_{i}.pkl" for i in range(5)} | {"optimizer.bin", "optimizer_2.bin"}
        assert expected <= files, files
    generator = AutoInpaintModel.from_pretrained(straight / "checkpoint-2" / "generator")
    assert isinstance(generator, DGIModel)
    second = _checkpoint_states(straight / "checkpoint-2")
    _assert_same_weights(second["student"], generator.state_dict(), "checkpoint-2's generator/ and its student")
    assert list((straight / "samples").glob("step-*.png"))
    indices = json.loads((straight / "rank0_indices.json").read_text())
    assert len(indices) == 4 and sorted(i for batch in indices for i in batch) == list(range(8)), indices

    # Interrupted after step 2 (mid-epoch) and resumed to step 4: the same student, teacher, distiller (adapters and
    # meta-networks), critic, data stream and logged losses, bit for bit.
    resumed = _resume_copy(straight, "checkpoint-2", tmp_path / "from-checkpoint-2")
    result = _launch(
        *common, "--output-dir", str(resumed), "--resume-from-checkpoint", "latest", printer=scalar_printer
    )
    assert json.loads((resumed / "rank0_indices.json").read_text()) == indices[2:]
    _assert_same_weights(load_file(straight / "final" / "model.safetensors"),
                         load_file(resumed / "final" / "model.safetensors"), "final student")  # fmt: skip
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
    for step, row in scalars.items():
        # Step 1 is the teacher's warm-up (teacher_warmup_steps 1): no distillation and no meta step yet.
        distilling = step >= 2
        for name in DISTILLATIONS:
            assert (f"train/g_{name}" in row) == distilling, (step, row)
        assert ("train/meta_task" in row) == distilling, (step, row)
        assert "train/g_perceptual" not in row and "train/g_style" not in row, row  # weights 0, no VGG
        parts = _losses(row)
        assert set(parts) == {
            "train/g_l1",
            "train/g_adversarial",
            *(f"train/g_{n}" for n in DISTILLATIONS if distilling),
        }
        values = [*parts.values(), row["train/g_total"], row["train/teacher_l1"], row["train/d_total"]]
        if distilling:
            values.append(row["train/meta_task"])
        assert all(math.isfinite(v) for v in values), row
        assert all(v > 0 for v in parts.values()), row
        assert row["train/teacher_l1"] > 0 and row["train/d_total"] > 0, row
        assert row["train/g_total"] == pytest.approx(sum(parts.values()), rel=1e-5), row
    for step in (2, 4):  # validation_steps 2
        assert any(k.startswith("val/") for k in scalars[step]), scalars[step]


def test_training_updates_every_network(straight_run: dict, initial_states: dict) -> None:
    # The teacher evolves with the student (initial -> checkpoint-2 -> end), as do the critic, the distiller's
    # adapters (with the student) and its meta-networks (the meta step of steps 2-4).
    out = straight_run["out"]
    second, fourth = _checkpoint_states(out / "checkpoint-2"), _checkpoint_states(out / "checkpoint-4")
    final = _rank_states(out)
    for name in NETWORKS:
        _assert_same_weights(fourth[name], final[name], f"{name}: checkpoint-4 and the end")
        assert _changed(initial_states[name], second[name]), name
        assert _changed(second[name], final[name]), name
        # A few Adam steps of lr <= 1e-4 from the reconstructed start: it is the script's initial state.
        assert _max_change(initial_states[name], second[name]) < 2e-3, name
    for part in (*INNER, *META):
        start, middle, end = (_part(s["distiller"], part) for s in (initial_states, second, final))
        assert _changed(start, middle) and _changed(middle, end), part
    for k in range(len(DGIConfig.tiny().level_channels)):  # every level's cross-distillation channel weights rho_l
        start, end = (_part(s["distiller"], f"cross_weights.{k}") for s in (initial_states, final))
        assert _changed(start, end), k
    # The student's saved model is what trained (the final folder and the last state agree).
    _assert_same_weights(load_file(out / "final" / "model.safetensors"), final["student"], "final student")


def test_final_student_loads_alone_and_records_its_loss_weights(straight_run: dict) -> None:
    final = straight_run["out"] / "final"
    model = AutoInpaintModel.from_pretrained(final)
    assert isinstance(model, DGIModel)
    keys = set(load_file(final / "model.safetensors"))
    assert keys == set(DGIModel(DGIConfig.tiny()).state_dict())  # the student's weights, nothing else
    assert all(k.startswith("network.") for k in keys), sorted(keys)
    parts = ("teacher", "distiller", "cross_adapters", "self_adapters", *META, "critic")
    assert not [k for k in keys if any(part in k for part in parts)]
    config = json.loads((final / "config.json").read_text())
    assert config["model_type"] == "dgi"
    # The tiny config's weights (perceptual and style 0: no VGG), the others the model config's defaults.
    defaults = DGIConfig()
    expected = {"weight_perceptual": 0.0, "weight_style": 0.0}
    for name in ("l1", "adversarial", "cross", "self", "attention"):
        expected[f"weight_{name}"] = getattr(defaults, f"weight_{name}")
    assert {k: config[k] for k in expected} == expected
    assert model.config.weight_perceptual == 0.0 and model.config.weight_style == 0.0


def test_no_meta_keeps_the_meta_networks_at_their_start(
    straight_run: dict, photos: dict[str, Path], scalar_printer: Path, initial_states: dict, tmp_path: Path
) -> None:
    # --no-meta: rho, phi and t stay at their initialisation, bit for bit, while the adapters, the student and the
    # teacher still train. With --weight-cross 0.5, recorded in the final config.
    out = tmp_path / "run"
    result = _launch(*straight_run["common"], "--output-dir", str(out), "--no-meta", "--weight-cross", "0.5",
                     printer=scalar_printer)  # fmt: skip
    second, fourth = _checkpoint_states(out / "checkpoint-2"), _checkpoint_states(out / "checkpoint-4")
    final = _rank_states(out)
    for states, when in ((second, "checkpoint-2"), (fourth, "checkpoint-4"), (final, "end")):
        for part in META:
            _assert_same_weights(_part(initial_states["distiller"], part), _part(states["distiller"], part),
                                 f"{part} at {when}")  # fmt: skip
    for part in INNER:
        start, middle, end = (_part(s["distiller"], part) for s in (initial_states, second, final))
        assert _changed(start, middle) and _changed(middle, end), part
    for name in ("student", "teacher", "critic"):
        assert _changed(initial_states[name], second[name]) and _changed(second[name], final[name]), name

    logged, straight = logged_scalars(result), straight_run["scalars"]
    assert sorted(logged) == [1, 2, 3, 4]
    assert not [step for step, row in logged.items() if "train/meta_task" in row]
    # Step 1 (warm-up: no distillation, no meta step) is the straight run's; at step 2 the network is still the
    # same (nothing differed before), so every term is the straight run's but the cross term, at half the weight.
    assert _without_timing(logged[1]) == _without_timing(straight[1])
    for name, value in _losses(logged[2]).items():
        expected = straight[2][name] * (0.5 if name == "train/g_cross" else 1)
        assert value == pytest.approx(expected, rel=1e-6), name
    assert logged[2].keys() - {"train/meta_task"} == straight[2].keys() - {"train/meta_task"}

    config = json.loads((out / "final" / "config.json").read_text())
    assert (config["weight_cross"], config["weight_perceptual"], config["weight_self"]) == (0.5, 0.0, 1.0)
    assert AutoInpaintModel.from_pretrained(out / "final").config.weight_cross == 0.5


def test_ablation_switches_leave_the_distillation_out(
    straight_run: dict, photos: dict[str, Path], scalar_printer: Path, initial_states: dict, tmp_path: Path
) -> None:
    # All three distillations off: none is computed or logged, there is no meta step, the distiller is never
    # touched, and the teacher is not run at all (nothing reads it: the ablation costs what the student alone
    # costs); the student and the critic train as before.
    out = tmp_path / "run"
    result = _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--dump-rank-state",
                     "--no-cross-distill", "--no-self-distill", "--no-attention-distill",
                     printer=scalar_printer)  # fmt: skip
    logged = logged_scalars(result)
    assert sorted(logged) == [1, 2, 3, 4]
    for row in logged.values():
        assert set(_losses(row)) == {"train/g_l1", "train/g_adversarial"}, row
        assert "train/meta_task" not in row and "train/teacher_l1" not in row, row
        assert row["train/g_total"] == pytest.approx(row["train/g_l1"] + row["train/g_adversarial"], rel=1e-5), row
        assert all(math.isfinite(row[k]) for k in ("train/g_total", "train/d_total")), row
    # The warm-up step is the same as with the distillations on, less the teacher's loss.
    with_teacher = {k: v for k, v in _without_timing(straight_run["scalars"][1]).items() if k != "train/teacher_l1"}
    assert _without_timing(logged[1]) == with_teacher
    final = _rank_states(out)
    _assert_same_weights(initial_states["distiller"], final["distiller"], "distiller with every distillation off")
    _assert_same_weights(initial_states["teacher"], final["teacher"], "teacher with every distillation off")
    for name in ("student", "critic"):
        assert _changed(initial_states[name], final[name]), name


def test_bf16_mixed_precision_trains(photos: dict[str, Path], tmp_path: Path) -> None:
    # --mixed-precision bf16 (autocast on the CPU too): the meta step runs in float32, outside autocast.
    out = tmp_path / "bf16"
    result = _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--mixed-precision", "bf16",
                     check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert isinstance(AutoInpaintModel.from_pretrained(out / "final"), DGIModel)


# ------------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--meta-every", "0"], "--meta-every must be >= 1, got 0"),
        (["--meta-inner-steps", "0"], "--meta-inner-steps must be >= 1, got 0"),
        (["--teacher-warmup-steps", "-1"], "--teacher-warmup-steps must be >= 0, got -1"),
        (["--weight-l1", "-1"], "--weight-l1 must be >= 0, got -1.0"),
        (["--weight-l1-hole", "-1"], "--weight-l1-hole must be >= 0, got -1.0"),
        (["--weight-attention", "-0.5"], "--weight-attention must be >= 0, got -0.5"),
        (["--resolution", "30"], "--resolution must be a multiple of 4 and at least 16 for this model, got 30"),
        (["--resolution", "12"], "--resolution must be a multiple of 4 and at least 16 for this model, got 12"),
        (["--resolution", "36", "--model-overrides", '{"num_downsamples": 3}'], "a multiple of 8 and at least 32"),
        (["--model-overrides", "[1]"], "--model-overrides must be a JSON object, got [1]"),
        (["--model-overrides", "{base_channels: 8}"], "argument --model-overrides: invalid loads value"),
        (["--model-overrides", '{"completion_groups": 3}'], "must divide into completion_groups=3"),
        (["--model", "huge"], "argument --model: invalid choice: 'huge'"),
    ],
)
def test_bad_arguments_are_refused(script, capsys, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--config", str(CONFIG), "--train-data", "photos", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def fresh_accelerator_state():
    """``script.main`` builds an ``Accelerator`` in this process: forget its state afterwards."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_perceptual_weight_without_vgg_weights_is_refused(
    script, photos: dict[str, Path], tmp_path: Path, fresh_accelerator_state
) -> None:
    common = ["--config", str(CONFIG), "--train-data", str(photos["train"]), "--output-dir", str(tmp_path / "run")]
    with pytest.raises(ValueError, match=r"--vgg-weights") as error:
        script.main([*common, "--weight-perceptual", "0.1"])
    assert "perceptual (0.1)" in str(error.value)
    with pytest.raises(ValueError, match=r"give --vgg-weights"):
        script.main([*common, "--weight-style", "250"])
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_defaults_and_tiny_config(script) -> None:
    defaults = script.parse_args(["--train-data", "photos"])
    assert (defaults.resolution, defaults.train_batch_size, defaults.teacher_warmup_steps) == (256, 8, 10_000)
    assert (defaults.meta, defaults.meta_every, defaults.meta_inner_steps) == (True, 1, 2)
    assert all(getattr(defaults, f"{name}_distill") for name in DISTILLATIONS)
    # No weight flag: the model config's weights (the spec's proposals).
    assert script.build_student(defaults).config == DGIConfig.paper()
    tiny = script.parse_args(["--config", str(CONFIG), "--train-data", "photos"])
    assert (tiny.resolution, tiny.train_batch_size, tiny.max_steps, tiny.teacher_warmup_steps) == (32, 2, 4, 1)
    student = script.build_student(tiny)
    assert student.config == DGIConfig.tiny().replace(weight_perceptual=0.0, weight_style=0.0)
    flags = script.parse_args(["--config", str(CONFIG), "--train-data", "photos", "--weight-cross", "0.5"])
    assert script.build_student(flags).config.weight_cross == 0.5
    flags = script.parse_args(["--config", str(CONFIG), "--train-data", "photos", "--weight-l1-hole", "6"])
    assert script.build_student(flags).config.weight_l1_hole == 6.0


# ------------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def vgg() -> PerceptualLoss:
    """The VGG19 perceptual loss with random weights (no weights file)."""
    return PerceptualLoss(kind="vgg19", weight=1.0)


def _gram_style_reference(vgg: PerceptualLoss, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """EdgeConnect's style loss written out: mean |G(prediction) - G(target)| summed over relu2_2, relu3_4, relu4_4,
    relu5_1, with ``G = F F^T / (C H W)``."""
    total = torch.zeros(())
    for layer in (3, 7, 11, 12):
        grams = []
        for images in (prediction, target):
            f = vgg.features(images)[layer]
            grams.append(torch.einsum("bchw,bdhw->bcd", f, f) / f[0].numel())
        total = total + (grams[0] - grams[1]).abs().mean()
    return total


def test_gram_style_loss(script, vgg: PerceptualLoss) -> None:
    assert script.STYLE_LAYERS == (3, 7, 11, 12)
    image = torch.rand(2, 3, 32, 32)
    assert script.gram_style_loss(vgg, image, image.clone()).item() == 0
    prediction = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss = script.gram_style_loss(vgg, prediction, image)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(_gram_style_reference(vgg, prediction.detach(), image).item(), rel=1e-4)
    loss.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


def test_task_loss(script, vgg: PerceptualLoss) -> None:
    image = torch.full((2, 3, 32, 32), 0.5)
    mask = torch.zeros(2, 1, 32, 32)
    predicted = torch.full_like(image, 0.75)  # |y - x| = 0.5 in [-1, 1]
    config = DGIConfig.tiny().replace(weight_l1=2.0, weight_perceptual=0.5)
    assert script.task_loss(predicted, image, mask, config, None).item() == pytest.approx(2.0 * 0.5)
    assert script.task_loss(image, image, mask, config, vgg).item() == 0
    noisy = torch.rand_like(image)
    expected = 2.0 * ((noisy - image) * 2).abs().mean() + 0.5 * vgg(noisy, image)
    assert script.task_loss(noisy, image, mask, config, vgg).item() == pytest.approx(expected.item(), rel=1e-6)
    # A perceptual weight of 0: the L1 alone, with or without the VGG loss.
    config = config.replace(weight_perceptual=0.0)
    assert script.task_loss(noisy, image, mask, config, vgg).item() == pytest.approx(
        2.0 * ((noisy - image) * 2).abs().mean()
    )


def test_l1_loss_hole_split(script) -> None:
    image = torch.zeros(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :2, :] = 1  # a quarter of the pixels
    predicted = torch.where(mask.bool(), 0.25, 0.125).expand_as(image)  # error 0.5 in the hole, 0.25 outside
    plain = DGIConfig.tiny().replace(weight_l1=2.0)
    assert plain.weight_l1_hole is None
    assert script.l1_loss(predicted, image, mask, plain).item() == pytest.approx(2.0 * (0.25 * 0.5 + 0.75 * 0.25))
    # PConv's split: both parts are means over every pixel, so equal weights give the plain L1 back.
    split = plain.replace(weight_l1_hole=6.0)
    assert script.l1_loss(predicted, image, mask, split).item() == pytest.approx(2.0 * 0.75 * 0.25 + 6.0 * 0.25 * 0.5)
    same = plain.replace(weight_l1_hole=2.0)
    assert script.l1_loss(predicted, image, mask, same).item() == pytest.approx(
        script.l1_loss(predicted, image, mask, plain).item()
    )
    # Only the hole's error counts in the hole term.
    hole_only = plain.replace(weight_l1=0.0, weight_l1_hole=1.0)
    outside = torch.where(mask.bool(), 0.0, 0.9).expand_as(image)
    assert script.l1_loss(outside, image, mask, hole_only).item() == 0


def _meta_inputs(config: DGIConfig):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 32, 32, generator=g)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 8:20, 10:24] = 1
    mask[1, :, 16:30, 2:14] = 1
    teacher = DGITeacher(config)
    with torch.no_grad():
        _, features, _ = teacher(image)
    return image, mask, tuple(f.detach() for f in features), teacher


@pytest.mark.parametrize(
    "switches", [dict.fromkeys(DISTILLATIONS, True), {"cross": True, "self": False, "attention": False}]
)
def test_meta_step_moves_only_the_meta_gradients(script, switches: dict[str, bool]) -> None:
    config = DGIConfig.tiny().replace(weight_perceptual=0.0, weight_style=0.0)
    student, distiller = DGIModel(config), DGIDistiller(config)
    image, mask, features, teacher = _meta_inputs(config)
    objective = script.StudentObjective(student, distiller)
    before = {k: v.detach().clone() for k, v in objective.state_dict().items()}
    args = argparse.Namespace(meta_inner_steps=2, meta_lookahead_lr=1e-3)
    meta_loss = script.meta_step(objective, teacher.network.attention, image, mask, features, args, switches, None)
    assert meta_loss.ndim == 0 and not meta_loss.requires_grad and math.isfinite(meta_loss.item())
    # The look-ahead is functional: the student and the distiller are left as they were, bit for bit, and only the
    # meta-networks get gradients.
    _assert_same_weights(before, objective.state_dict(), "student and distiller after the meta step")
    assert all(p.grad is None for p in student.parameters())
    assert all(p.grad is None for p in distiller.inner_parameters())
    for k, weights in enumerate(distiller.cross_weights):  # rho_l of every level
        grads = [p.grad for p in weights.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), k
        assert any(g.abs().sum() > 0 for g in grads), k
    for part, on in (("self_weights", switches["self"]), ("attention_weights", switches["attention"])):
        grads = [p.grad for p in getattr(distiller, part).parameters()]
        if on:
            assert all(g is not None and torch.isfinite(g).all() for g in grads), part
            assert any(g.abs().sum() > 0 for g in grads), part
        else:  # a switched-off distillation is not computed: its meta-network gets no gradient
            assert all(g is None for g in grads), part
    # The meta loss is the task loss of the look-ahead student, not of the current one.
    with torch.no_grad():
        current = script.task_loss(student(image, mask).predicted, image, mask, config, None)
    assert meta_loss.item() != current.item()


# ------------------------------------------------------------------------------------------------- two processes


def test_two_processes_share_the_work_and_agree(photos: dict[str, Path], tmp_path: Path) -> None:
    # 8 images over 2 processes with batch 2: 2 batches per epoch and process, so 4 steps are 2 epochs. Nothing is
    # DDP-wrapped: every network's gradients (the meta-networks' too) are averaged by hand.
    out = tmp_path / "ddp"
    _launch("--train-data", str(photos["train"]), "--output-dir", str(out), "--dump-rank-state", processes=2)
    seen = [json.loads((out / f"rank{r}_indices.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 4
    for first, second in zip(*seen):
        assert len(set(first)) == len(set(second)) == 2 and not set(first) & set(second), seen
    for epoch in range(2):
        indices = [i for rank in seen for batch in rank[2 * epoch : 2 * epoch + 2] for i in batch]
        assert sorted(indices) == list(range(8)), seen  # every image exactly once per epoch
    assert seen[0][:2] != seen[0][2:]  # a new order in the second epoch

    ranks = [_rank_states(out, rank) for rank in range(2)]
    for name in NETWORKS:
        _assert_same_weights(ranks[0][name], ranks[1][name], f"{name} across ranks")
    saved = _checkpoint_states(out / "checkpoint-4")  # rank 0's
    for name in NETWORKS:
        _assert_same_weights(ranks[0][name], saved[name], f"{name} in checkpoint-4")
    _assert_same_weights(load_file(out / "final" / "model.safetensors"), ranks[0]["student"], "final student")
