"""The PEN-Net converter against the golden vectors of the original code (shared/official/golden).

The golden fixture rebuilds, from a seed, an original-format PEN-Net release folder (``gen_00050.pth`` holding
``{'netG': state_dict}`` and ``latest.ckpt`` naming iteration 00050) and stores what the original ``test.py`` +
``InpaintGenerator`` computed on one 256x256 input (``output``, ``comp`` and the five pyramid images, all in [-1, 1]).
Converting that release with our command and running the result must reproduce every stored output within the
fixture's tolerance (5e-4 max-abs, 5e-5 mean-abs).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inpaint_hub import AutoInpaintModel, PENNetConfig, PENNetDiscriminator, PENNetModel
from inpaint_hub.models.pennet import convert_pennet_original as convert


REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "pennet"
CARD = REPO_ROOT / "model_cards" / "pennet-places2.md"


@pytest.fixture(scope="session")
def release(pennet_release) -> Path:
    return pennet_release


def _original_generator(release: Path) -> dict[str, torch.Tensor]:
    """The original generator tensors under their original names."""
    return torch.load(release / "gen_00050.pth", weights_only=True)["netG"]


def _state_dict(folder: Path) -> dict[str, torch.Tensor]:
    return PENNetModel.from_pretrained(folder).state_dict()


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


@pytest.fixture(scope="session")
def converted_run(release, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Converted with the documented command line, in a fresh interpreter."""
    out = tmp_path_factory.mktemp("converted") / "pennet-places2"
    cmd = [
        sys.executable, "-m", "inpaint_hub.models.pennet.convert_pennet_original",
        "--checkpoint", str(release / "gen_00050.pth"),
        "--output", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.fixture(scope="session")
def converted(converted_run) -> Path:
    return converted_run[0]


def _run_ours(model: PENNetModel, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our model on [0, 1] inputs, its [0, 1] outputs mapped to the original's [-1, 1] keys."""
    with torch.no_grad():
        out = model(image, mask)
    result = {"output": out.predicted * 2 - 1, "comp": out.inpainted * 2 - 1}
    result.update({f"pyramid_{k}": level * 2 - 1 for k, level in enumerate(out.pyramid)})
    return result


# ------------------------------------------------------------------------------------------------- golden parity


def test_command_line_reports_the_parity(converted_run):
    out, result = converted_run
    match = re.search(r"parity max \|diff\| ([0-9.eE+-]+)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) <= convert.PARITY_TOLERANCE
    assert str(out) in result.stdout


def test_converted_model_reproduces_the_original_outputs(converted, golden_check):
    check = golden_check
    model = AutoInpaintModel.from_pretrained(converted)
    assert isinstance(model, PENNetModel) and model.config == PENNetConfig.places2()
    assert sum(p.numel() for p in model.parameters()) == check.manifest()["models"][MODEL]["n_params_total"]
    compare_keys = set(check.manifest()["models"][MODEL]["compare_keys"])
    assert compare_keys == {"output", "comp"} | {f"pyramid_{k}" for k in range(5)}
    cases = check.manifest()["models"][MODEL]["cases"]
    assert "256x256" in cases
    for case in cases:
        image, mask, _ = check.load_case(MODEL, case)
        report = check.compare(MODEL, case, _run_ours(model, image, mask))
        assert report["pass"], report
        assert set(report["keys"]) == compare_keys


def test_functional_reference_reproduces_the_original_outputs(release, golden_check):
    """The converter's own parity check runs against ``original_pennet_forward``; anchor that reference to what the
    original code computed, so that a shared mistake in it and in our model cannot go unnoticed."""
    original = _original_generator(release)
    for case in golden_check.manifest()["models"][MODEL]["cases"]:
        image, mask, _ = golden_check.load_case(MODEL, case)
        report = golden_check.compare(MODEL, case, convert.original_pennet_forward(original, image, mask))
        assert report["pass"], report
        assert len(report["keys"]) == 7


def test_release_folder_converts_to_identical_weights(release, converted, tmp_path):
    """``--checkpoint`` may be the folder: latest.ckpt names gen_00050.pth."""
    out = tmp_path / "from-folder"
    assert convert.main(["--checkpoint", str(release), "--output", str(out)]) == 0
    _assert_same_weights(_state_dict(converted), _state_dict(out))
    # the record names the same source file and hash
    record = (out / "README.md").read_text().split("## Conversion record", 1)[1]
    assert "gen_00050.pth" in record


def test_output_folder_carries_the_model_card_and_conversion_record(release, converted):
    assert {p.name for p in converted.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    readme = (converted / "README.md").read_text()
    assert CARD.is_file(), f"{CARD} is missing: the released width must ship with its model card"
    assert readme.startswith(CARD.read_text().rstrip())
    assert "## Conversion record" in readme
    sha = hashlib.sha256((release / "gen_00050.pth").read_bytes()).hexdigest()
    record = readme.split("## Conversion record", 1)[1]
    assert sha in record and "gen_00050.pth" in record
    assert "max |diff|" in record


def test_card_of_another_released_dataset_carries_a_warning():
    card = convert.model_card(PENNetConfig.places2(), Path("release_model/pennet_celebahq/gen_00050.pth"), "0" * 64, 0)
    assert card.startswith(CARD.read_text().rstrip())
    assert "`celebahq` release, not Places2" in card
    places2 = convert.model_card(PENNetConfig.places2(), Path("release_model/pennet_places2/gen_00050.pth"), "0", 0)
    assert "not Places2" not in places2


# ------------------------------------------------------------------------------------------------ unsafe / wrong files


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_whose_pickle_runs_code_is_refused(release, tmp_path, capsys):
    marker = tmp_path / "pwned"
    state = torch.load(release / "gen_00050.pth", weights_only=True)
    state["extra"] = _RunsCode(str(marker))
    bad = tmp_path / "gen_00050.pth"
    torch.save(state, bad)
    out = tmp_path / "out"
    code = convert.main(["--checkpoint", str(bad), "--output", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "posix.system" in err or "os.system" in err
    assert "refus" in err.lower()
    assert not marker.exists()
    assert not out.exists()


def test_missing_checkpoint_is_reported(tmp_path, capsys):
    missing = tmp_path / "release_model" / "gen_00050.pth"
    assert convert.main(["--checkpoint", str(missing), "--output", str(tmp_path / "out")]) == 1
    assert f"{missing} not found" in capsys.readouterr().err
    # a folder without latest.ckpt, and one whose latest.ckpt is not an iteration number
    assert convert.main(["--checkpoint", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert "latest.ckpt" in capsys.readouterr().err
    (tmp_path / "latest.ckpt").write_text("gen_00050.pth\n")
    assert convert.main(["--checkpoint", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert "iteration number" in capsys.readouterr().err
    # latest.ckpt naming an iteration whose file is absent
    (tmp_path / "latest.ckpt").write_text("00070\n")
    assert convert.main(["--checkpoint", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert "gen_00070.pth not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_discriminator_checkpoint_is_refused_with_a_pointer(tmp_path, capsys):
    dis = tmp_path / "dis_00050.pth"
    torch.save({"netD": PENNetDiscriminator(PENNetConfig.tiny()).state_dict()}, dis)
    assert convert.main(["--checkpoint", str(dis), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "discriminator" in err and "gen_XXXXX.pth" in err
    assert not (tmp_path / "out").exists()


def test_non_tensor_contents_are_refused(tmp_path, capsys):
    opt = tmp_path / "opt_00050.pth"
    torch.save({"epoch": 3, "iteration": 50, "optimG": {"state": {}, "param_groups": []}}, opt)
    assert convert.main(["--checkpoint", str(opt), "--output", str(tmp_path / "out")]) == 1
    assert "not a state dict of tensors" in capsys.readouterr().err
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    assert convert.main(["--checkpoint", str(listed), "--output", str(tmp_path / "out")]) == 1
    assert "holds a list" in capsys.readouterr().err


def _mapping_error(original: dict[str, torch.Tensor]) -> str:
    with pytest.raises(ValueError, match="does not match PEN-Net's generator") as info:
        convert.convert_state_dict(original, PENNetConfig.places2())
    return str(info.value)


def test_mapping_errors_name_the_tensors(release):
    original = _original_generator(release)
    assert len(original) == 68
    assert convert.config_from_state_dict(original) == PENNetConfig.places2()

    renamed = dict(original)
    renamed["up_conv3.0.weight"] = renamed.pop("up_conv03.0.weight")
    message = _mapping_error(renamed)
    assert "'up_conv3.0.weight'" in message  # the unknown original name
    assert "decoder.2.0.weight" in message  # the model tensor it leaves empty

    removed = dict(original)
    del removed["torgb2.0.bias"]
    message = _mapping_error(removed)
    assert "to_rgb.1.0.bias" in message and "no original tensor" in message

    extra = dict(original)
    extra["at_conv04.conv04.0.weight"] = torch.zeros(64, 256, 3, 3)  # a fifth fuse branch
    message = _mapping_error(extra)
    assert "at_conv04.conv04.0.weight" in message and "no place in the model" in message
    deepest = {**original, "at_conv05.conv00.0.weight": torch.zeros(128, 512, 3, 3)}  # level 5 has no fuse convs
    assert "'at_conv05.conv00.0.weight'" in _mapping_error(deepest)

    unknown = {**original, "dw_conv07.0.weight": torch.zeros(1)}
    assert "'dw_conv07.0.weight'" in _mapping_error(unknown)

    misshaped = dict(original)
    misshaped["at_conv02.conv01.0.weight"] = torch.zeros(16, 32, 3, 3)
    message = _mapping_error(misshaped)
    assert "at_conv02.conv01.0.weight has shape (16, 32, 3, 3), expected (16, 64, 3, 3)" in message

    # every problem at once, each named
    message = _mapping_error({**removed, "dw_conv07.0.weight": torch.zeros(1)})
    assert "to_rgb.1.0.bias" in message and "dw_conv07.0.weight" in message

    # not a PEN-Net generator at all
    with pytest.raises(ValueError, match="'dw_conv01.0.weight' is missing"):
        convert.config_from_state_dict({k: v for k, v in original.items() if not k.startswith("dw_conv01")})
    three_channel = {**original, "dw_conv01.0.weight": original["dw_conv01.0.weight"][:, :3]}
    with pytest.raises(ValueError, match="takes 3 input channels"):
        convert.config_from_state_dict(three_channel)


def test_data_parallel_prefix_and_bare_state_dict_are_accepted(release, converted, tmp_path):
    original = _original_generator(release)
    expected = _state_dict(converted)
    for name, content in (
        ("wrapped", {"netG": {f"module.{k}": v for k, v in original.items()}}),
        ("bare", {f"module.{k}": v for k, v in original.items()}),
    ):
        checkpoint = tmp_path / name / "gen_00050.pth"
        checkpoint.parent.mkdir()
        torch.save(content, checkpoint)
        state, path = convert.load_generator_state_dict(checkpoint)
        assert path == checkpoint and state.keys() == original.keys()
        config = convert.config_from_state_dict(state)
        assert config == PENNetConfig.places2()
        model = PENNetModel(config)
        model.load_weights(convert.convert_state_dict(state, config), strict=True)
        _assert_same_weights(model.state_dict(), expected)


def test_functional_reference_catches_a_wrong_mapping(release):
    """The converter's self-check is not vacuous: swapping two same-shaped tensors makes it fail."""
    config = PENNetConfig.places2()
    original = _original_generator(release)
    right = convert.convert_state_dict(original, config)
    model = PENNetModel(config)
    model.load_weights(right)
    model.eval()
    assert convert.verify_parity(model, original, sizes=((64, 128),)) <= convert.PARITY_TOLERANCE

    a, b = "attention.3.fuse.0.0.weight", "attention.3.fuse.1.0.weight"  # at_conv04.conv00 / conv01
    assert right[a].shape == right[b].shape and not torch.equal(right[a], right[b])
    swapped = dict(right)
    swapped[a], swapped[b] = right[b], right[a]
    model.load_weights(swapped)
    with pytest.raises(ValueError, match="differs from the original forward pass"):
        convert.verify_parity(model, original, sizes=((64, 128),))


# ------------------------------------------------------------------------------------------------- other widths


def _original_name(ours: str) -> str:
    """Our tensor name -> the original's, written independently of ``rename_key``."""
    rules = (
        (r"encoder\.(\d)\.0\.(weight|bias)", lambda m: f"dw_conv0{int(m[1]) + 1}.0.{m[2]}"),
        (r"attention\.(\d)\.fuse\.(\d)\.0\.(weight|bias)", lambda m: f"at_conv0{int(m[1]) + 1}.conv0{m[2]}.0.{m[3]}"),
        (r"decoder\.(\d)\.0\.(weight|bias)", lambda m: f"up_conv0{int(m[1]) + 1}.0.{m[2]}"),
        (r"to_rgb\.(\d)\.0\.(weight|bias)", lambda m: f"torgb{int(m[1]) + 1}.0.{m[2]}"),
        (r"head\.([02])\.(weight|bias)", lambda m: f"decoder.{m[1]}.{m[2]}"),
    )
    for pattern, build in rules:
        if match := re.fullmatch(pattern, ours):
            return build(match)
    raise AssertionError(f"no original name for {ours}")


def test_narrower_checkpoint_converts_with_the_inferred_width(tmp_path):
    config = PENNetConfig(base_channels=8, max_channels=64)
    assert config.level_channels == (8, 16, 32, 64, 64, 64)
    rng = torch.Generator().manual_seed(1)
    original = {}
    for name, tensor in PENNetModel(config).state_dict().items():
        if name.endswith("weight"):  # well-scaled random weights, so that every tensor shapes the output
            fan_in = tensor[0].numel()
            value = torch.randn(tensor.shape, generator=rng) * (2.0 / fan_in) ** 0.5
        else:
            value = torch.randn(tensor.shape, generator=rng) * 0.1
        original[_original_name(name)] = value
    assert all(convert.rename_key(_original_name(k)) == k for k in PENNetModel(config).state_dict())

    inferred = convert.config_from_state_dict(original)
    assert inferred == config
    assert (inferred.base_channels, inferred.max_channels, inferred.fuse_dilations) == (8, 64, (1, 2, 4, 8))

    checkpoint = tmp_path / "pennet_small" / "gen_00010.pth"
    checkpoint.parent.mkdir()
    torch.save({"netG": original}, checkpoint)
    (checkpoint.parent / "latest.ckpt").write_text("00010\n")
    out = tmp_path / "out"
    model, parity = convert.convert(checkpoint.parent, out)
    assert parity <= convert.PARITY_TOLERANCE
    loaded = AutoInpaintModel.from_pretrained(out)
    assert isinstance(loaded, PENNetModel) and loaded.config == config
    expected = convert.convert_state_dict(original, config)
    _assert_same_weights(loaded.state_dict(), expected)

    # the outputs are not degenerate (the parity above compared something), and match the reference
    image = torch.rand(1, 3, 128, 64, generator=rng)
    mask = torch.zeros(1, 1, 128, 64)
    mask[..., 32:96, 16:48] = 1
    ours = _run_ours(loaded, image, mask)
    reference = convert.original_pennet_forward(original, image, mask)
    assert float(ours["output"].std()) > 0.05
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, atol=convert.PARITY_TOLERANCE, rtol=0)

    readme = (out / "README.md").read_text()
    assert "# PEN-Net (8 base channels)" in readme and "## Conversion record" in readme
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() in readme
    if CARD.is_file():
        assert not readme.startswith(CARD.read_text().rstrip())


def test_card_note_reads_the_release_folder_name_only():
    card = convert.model_card(PENNetConfig.places2(), Path("/home/dtd/release_model/gen_00050.pth"), "0", 0.0)
    assert "not Places2" not in card
    card = convert.model_card(
        PENNetConfig.places2(), Path("/data/places2_runs/pennet_celebahq/gen_00050.pth"), "0", 0.0
    )
    assert "`celebahq` release, not Places2" in card
