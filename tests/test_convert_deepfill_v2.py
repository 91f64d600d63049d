"""The DeepFill v2 converter against the golden vectors of the PyTorch port of the official weights
(shared/official/golden, ``deepfillv2_tf``).

The golden fixture rebuilds, from a seed, a checkpoint in the layout of nipponjo's ``states_tf_places2.pth``
(``{'G': state_dict}``, 84 tensors for ``model/networks_tf.py``) and stores what his ``test.py`` + ``Generator``
computed on one 256x256 input: ``x_stage1``, ``x_stage2`` and ``inpainted`` (in [-1, 1]) on the RGB image, and the
same three on the channel-reversed image (``*_bgrin``, outputs left in the network's channel order). Converting that
checkpoint with our command and running the result must reproduce them within the fixture's tolerance (3e-3 max-abs,
2e-4 mean-abs): the RGB keys with the default conversion, the ``_bgrin`` keys with ``--channel-order bgr``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_golden_module

from inpaint_hub import AutoInpaintModel
from inpaint_hub.models.deepfill_v2 import DeepFillV2Config, DeepFillV2Discriminator, DeepFillV2Model
from inpaint_hub.models.deepfill_v2 import convert_deepfill_v2_original as convert


REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "deepfillv2_tf"
CASE = "256x256"
CARD = REPO_ROOT / "model_cards" / "deepfill-v2-places2.md"
CHECKPOINT_NAME = "states_tf_places2.pth"
KEYS_FILE = "keys_deepfillv2_tf.json"
PORT = {"channel_order": "rgb", "fuse": False, "attention_mask_resize": "one_step"}
TF_ORIGINAL = {"channel_order": "bgr", "fuse": True, "attention_mask_resize": "two_step"}


@pytest.fixture(scope="module")
def release(golden_dir, tmp_path_factory) -> Path:
    """``deepfillv2/states_tf_places2.pth`` (``{'G': state_dict}``) rebuilt by the golden fixture's own regen.py,
    which checks every tensor's sha256."""
    out = tmp_path_factory.mktemp("golden_release")
    load_golden_module(golden_dir, "regen").regenerate(str(out), [MODEL], log=lambda *_: None)
    return out / "deepfillv2"


@pytest.fixture(scope="module")
def original(release) -> dict[str, torch.Tensor]:
    """The original generator tensors under their original names."""
    return torch.load(release / CHECKPOINT_NAME, weights_only=True)["G"]


def _run_command(release: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    """The documented command line, in a fresh interpreter."""
    cmd = [
        sys.executable, "-m", "inpaint_hub.models.deepfill_v2.convert_deepfill_v2_original",
        "--checkpoint", str(release / CHECKPOINT_NAME),
        "--output", str(out),
        *flags,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def converted_run(release, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("converted") / "deepfill-v2-places2"
    return out, _run_command(release, out)


@pytest.fixture(scope="module")
def converted(converted_run) -> Path:
    return converted_run[0]


@pytest.fixture(scope="module")
def converted_bgr(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "deepfill-v2-places2-bgr"
    _run_command(release, out, "--channel-order", "bgr")
    return out


def _state_dict(folder: Path) -> dict[str, torch.Tensor]:
    return DeepFillV2Model.from_pretrained(folder).state_dict()


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def _run_ours(model: DeepFillV2Model, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our model's public forward on RGB [0, 1] inputs, mapped to the golden [-1, 1] keys. A BGR model returns RGB;
    the golden ``_bgrin`` outputs are in the network's (BGR) order, so those are reversed back."""
    with torch.no_grad():
        out = model(image, mask)
    result = {"x_stage1": out.coarse * 2 - 1, "x_stage2": out.predicted * 2 - 1, "inpainted": out.inpainted * 2 - 1}
    if model.config.channel_order == "bgr":
        result = {f"{k}_bgrin": v.flip(1) for k, v in result.items()}
    return result


# ------------------------------------------------------------------------------------------------- golden parity


def test_command_line_reports_the_parity(converted_run):
    out, result = converted_run
    match = re.search(r"parity max \|diff\| ([0-9.eE+-]+)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) <= convert.PARITY_TOLERANCE
    assert str(out) in result.stdout


def test_converted_model_reproduces_the_original_outputs(converted, golden_check):
    """The bare generator on the port's own input tensor (``generate``), every golden RGB key."""
    check = golden_check
    entry = check.manifest()["models"][MODEL]
    model = AutoInpaintModel.from_pretrained(converted)
    assert isinstance(model, DeepFillV2Model)
    assert model.config == DeepFillV2Config(**PORT)
    assert sum(p.numel() for p in model.parameters()) == entry["n_params_total"]
    assert set(entry["compare_keys"]) == {"x_stage1", "x_stage2", "inpainted"}
    assert CASE in entry["cases"]
    for case in entry["cases"]:
        image, mask, _ = check.load_case(MODEL, case)
        x = check.generator_input(MODEL, image, mask)
        hole = x[:, 4:5]  # the port's binarised mask (> 0.5), as its Generator(x, mask) receives it
        with torch.no_grad():
            stage1, stage2 = model.generate(x, hole)
        img = image[..., : x.shape[-2], : x.shape[-1]] * 2 - 1
        outputs = {"x_stage1": stage1, "x_stage2": stage2, "inpainted": img * (1 - hole) + stage2 * hole}
        report = check.compare(MODEL, case, outputs)
        assert report["pass"], report
        assert set(report["keys"]) == set(entry["compare_keys"])


def test_bgr_conversion_reproduces_the_channel_reversed_outputs(converted_bgr, golden_check):
    """``--channel-order bgr`` through the public forward (RGB in, RGB out) gives the port's outputs on the
    channel-reversed image -- what the TF original, which read images with OpenCV, computes."""
    check = golden_check
    model = AutoInpaintModel.from_pretrained(converted_bgr)
    assert model.config == DeepFillV2Config(**{**PORT, "channel_order": "bgr"})
    image, mask, reference = check.load_case(MODEL, CASE)
    bgr_keys = [f"{k}_bgrin" for k in check.manifest()["models"][MODEL]["compare_keys"]]
    assert set(bgr_keys) <= set(reference)
    report = check.compare(MODEL, CASE, _run_ours(model, image, mask), keys=bgr_keys)
    assert report["pass"], report
    # the two orders really differ on this input, so the comparison above tells them apart
    assert float((reference["x_stage2_bgrin"].flip(1) - reference["x_stage2"]).abs().max()) > 0.1


def test_functional_reference_reproduces_the_original_outputs(original, golden_check):
    """The converter's parity check runs against ``original_deepfill_forward``; anchor that reference to what the
    port's code computed, so that a shared mistake in it and in our model cannot go unnoticed."""
    image, mask, _ = golden_check.load_case(MODEL, CASE)
    report = golden_check.compare(MODEL, CASE, convert.original_deepfill_forward(original, image, mask))
    assert report["pass"], report
    assert len(report["keys"]) == 3


def test_output_folder_carries_the_model_card_and_conversion_record(release, converted):
    assert {p.name for p in converted.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    readme = (converted / "README.md").read_text()
    assert CARD.is_file(), f"{CARD} is missing: the released width must ship with its model card"
    assert readme.startswith(CARD.read_text().rstrip())
    record = readme.split("## Conversion record", 1)[1]
    sha = hashlib.sha256((release / CHECKPOINT_NAME).read_bytes()).hexdigest()
    assert sha in record and CHECKPOINT_NAME in record
    assert "channel_order=rgb, fuse=False, attention_mask_resize=one_step" in record
    assert "the PyTorch port's settings" in record
    assert "max |diff|" in record


def test_card_states_the_licence_and_the_channel_order_check():
    card = CARD.read_text()
    front = card.split("---")[1]
    assert "license: cc-by-nc-4.0" in front and "library_name: inpaint-hub" in front
    assert "non-commercial" in card.lower() and "no licence file" in card
    assert "--channel-order bgr" in card and "case1_out.png" in card and "case1_mask.png" in card
    assert "python -m inpaint_hub.models.deepfill_v2.convert_deepfill_v2_original" in card


def test_card_of_the_celebahq_release_carries_a_warning():
    config = DeepFillV2Config(**PORT)
    card = convert.model_card(config, Path("pretrained/states_tf_celebahq.pth"), "0" * 64, {"port": 0.0})
    assert card.startswith(CARD.read_text().rstrip())
    assert "`celebahq` release, not Places2" in card
    places2 = convert.model_card(config, Path("pretrained/states_tf_places2.pth"), "0", {"port": 0.0})
    assert "not Places2" not in places2


# ------------------------------------------------------------------------------------------------- key mapping


def test_every_original_key_maps_once_onto_the_model(original, golden_dir):
    """The renaming is a bijection from the 84 original tensors onto our state dict, shapes included, and agrees
    with the key list of the port's checkpoint."""
    listed = json.loads((golden_dir.parent / KEYS_FILE).read_text())["keys"]
    assert set(listed) == set(original) and len(original) == 84
    assert {k: list(v.shape) for k, v in original.items()} == {k: v["shape"] for k, v in listed.items()}
    ours = DeepFillV2Model(DeepFillV2Config(**PORT)).state_dict()
    renamed = {convert.rename_key(k): k for k in original}
    assert len(renamed) == len(original) == len(ours)
    assert set(renamed) == set(ours)
    assert all(ours[k].shape == original[renamed[k]].shape for k in ours)
    # the upsampling layers carry the extra `.conv` of GDeConv; the groups follow the prefixes
    assert renamed["stage1.conv13_upsample.conv.weight"] == "conv13_upsample.conv.conv.weight"
    assert renamed["stage2_merge.allconv15_upsample.conv.bias"] == "allconv15_upsample.conv.conv.bias"
    assert renamed["stage2_conv.xconv7_atrous.conv.weight"] == "xconv7_atrous.conv.weight"
    assert renamed["stage2_attention.pmconv6.conv.weight"] == "pmconv6.conv.weight"
    assert renamed["stage1.conv6.conv.bias"] == "conv6.conv.bias"


def test_converted_weights_are_the_original_tensors(original, converted):
    weights = _state_dict(converted)
    for key, tensor in original.items():
        assert torch.equal(weights[convert.rename_key(key)], tensor), key


def _mapping_error(original: dict[str, torch.Tensor]) -> str:
    with pytest.raises(ValueError, match="does not match DeepFill v2's generator") as info:
        convert.convert_state_dict(original, DeepFillV2Config(**PORT))
    return str(info.value)


def test_mapping_errors_name_the_tensors(original):
    assert convert.config_from_state_dict(original) == DeepFillV2Config(**PORT)

    removed = dict(original)
    del removed["pmconv9.conv.bias"], removed["allconv13_upsample.conv.conv.weight"]
    message = _mapping_error(removed)
    assert "no original tensor for 2 model tensor(s)" in message
    assert "stage2_attention.pmconv9.conv.bias" in message and "stage2_merge.allconv13_upsample.conv.weight" in message

    extra = {**original, "conv18.conv.weight": torch.zeros(3, 12, 3, 3), "xconv11.conv.bias": torch.zeros(1)}
    message = _mapping_error(extra)
    assert "2 original tensor(s) have no place in the model" in message
    assert "conv18.conv.weight" in message and "xconv11.conv.bias" in message

    unknown = {**original, "contextual_attention.fuse_weight": torch.eye(3)}
    assert "unexpected original tensor 'contextual_attention.fuse_weight'" in _mapping_error(unknown)
    # an upsampling layer must carry GDeConv's extra `.conv`, the others must not
    flat = dict(original)
    flat["conv15_upsample.conv.weight"] = flat.pop("conv15_upsample.conv.conv.weight")
    message = _mapping_error(flat)
    assert "'conv15_upsample.conv.weight'" in message and "stage1.conv15_upsample.conv.weight" in message
    nested = dict(original)
    nested["conv14.conv.conv.bias"] = nested.pop("conv14.conv.bias")
    assert "'conv14.conv.conv.bias'" in _mapping_error(nested)

    misshaped = dict(original)
    misshaped["xconv3.conv.weight"] = torch.zeros(96, 48, 3, 3)
    message = _mapping_error(misshaped)
    assert "xconv3.conv.weight has shape (96, 48, 3, 3), expected (96, 24, 3, 3)" in message

    # every problem at once, each named
    message = _mapping_error({**removed, "conv18.conv.weight": torch.zeros(1), "xconv3.conv.weight": torch.zeros(1)})
    assert "pmconv9.conv.bias" in message and "conv18.conv.weight" in message and "xconv3.conv.weight" in message

    # not a DeepFill v2 generator at all, or a wrong input layer
    with pytest.raises(ValueError, match="'conv1.conv.weight' is missing"):
        convert.config_from_state_dict({k: v for k, v in original.items() if not k.startswith("conv1.")})
    with pytest.raises(ValueError, match=r"shape \(48, 4, 5, 5\)"):
        convert.config_from_state_dict({**original, "conv1.conv.weight": original["conv1.conv.weight"][:, :4]})
    with pytest.raises(ValueError, match="multiple of 4"):
        convert.config_from_state_dict({**original, "conv1.conv.weight": torch.zeros(18, 5, 5, 5)})


def test_the_command_names_the_offenders(original, tmp_path, capsys):
    broken = dict(original)
    del broken["allconv17.conv.bias"]
    broken["allconv17.conv.weights"] = torch.zeros(1)
    checkpoint = tmp_path / CHECKPOINT_NAME
    torch.save({"G": broken}, checkpoint)
    out = tmp_path / "out"
    assert convert.main(["--checkpoint", str(checkpoint), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "stage2_merge.allconv17.conv.bias" in err and "'allconv17.conv.weights'" in err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------- file formats


def test_training_state_bare_and_data_parallel_files_are_accepted(release, original, converted, tmp_path):
    """nipponjo's train.py saves {'G', 'D', 'G_optim', 'D_optim', 'n_iter'}; bare and `module.` dicts load too."""
    expected = _state_dict(converted)
    tiny = DeepFillV2Config.tiny()
    discriminator = DeepFillV2Discriminator(tiny)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    discriminator(torch.zeros(1, 4, 64, 64)).mean().backward()
    optimizer.step()  # a real optimizer state: step counts, exp_avg tensors, param_groups with tuples
    variants = {
        "training_state": {
            "G": original,
            "D": discriminator.state_dict(),
            "G_optim": optimizer.state_dict(),
            "D_optim": optimizer.state_dict(),
            "n_iter": 1000,
        },
        "wrapped_data_parallel": {"G": {f"module.{k}": v for k, v in original.items()}},
        "bare": dict(original),
    }
    for name, content in variants.items():
        checkpoint = tmp_path / name / CHECKPOINT_NAME
        checkpoint.parent.mkdir()
        torch.save(content, checkpoint)
        state, path = convert.load_generator_state_dict(checkpoint)
        assert path == checkpoint and state.keys() == original.keys(), name
        assert all(torch.equal(state[k], original[k]) for k in original), name
    # and the training-state file converts to the same weights as {'G': ...}
    training_state, out = tmp_path / "training_state" / CHECKPOINT_NAME, tmp_path / "from-training-state"
    assert convert.main(["--checkpoint", str(training_state), "--output", str(out)]) == 0
    _assert_same_weights(_state_dict(out), expected)


def test_release_folder_with_one_checkpoint_converts_to_identical_weights(release, converted, tmp_path, capsys):
    out = tmp_path / "from-folder"
    assert convert.main(["--checkpoint", str(release), "--output", str(out)]) == 0
    _assert_same_weights(_state_dict(converted), _state_dict(out))
    # a folder with both releases is ambiguous
    both = tmp_path / "pretrained"
    both.mkdir()
    for dataset in ("places2", "celebahq"):
        (both / f"states_tf_{dataset}.pth").write_bytes(b"")
    assert convert.main(["--checkpoint", str(both), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "states_tf_celebahq.pth" in err and "states_tf_places2.pth" in err
    assert not (tmp_path / "out").exists()


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_whose_pickle_runs_code_is_refused(original, tmp_path, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / CHECKPOINT_NAME
    torch.save({"G": original, "n_iter": _RunsCode(str(marker))}, bad)
    out = tmp_path / "out"
    assert convert.main(["--checkpoint", str(bad), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "posix.system" in err or "os.system" in err
    assert "refus" in err.lower()
    assert not marker.exists()
    assert not out.exists()


def test_wrong_files_are_refused_with_a_pointer(original, tmp_path, capsys):
    def run(content, name=CHECKPOINT_NAME) -> str:
        checkpoint = tmp_path / name
        torch.save(content, checkpoint)
        assert convert.main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out")]) == 1
        return capsys.readouterr().err

    # nipponjo's networks.py ("pt") weights: stage1.* / stage2.* names and a fuse_weight buffer
    pt = {
        "stage1.conv1.conv.weight": torch.zeros(48, 5, 5, 5),
        "stage2.contextual_attention.fuse_weight": torch.eye(3),
    }
    err = run({"G": pt}, "states_pt_places2.pth")
    assert "networks.py" in err and "states_tf_places2.pth" in err
    err = run({"D": DeepFillV2Discriminator(DeepFillV2Config.tiny()).state_dict()})
    assert "discriminator" in err and "no generator" in err
    err = run({"G": {"conv1.conv.weight": [1, 2]}})
    assert "not a state dict of tensors" in err
    err = run([torch.zeros(1)])
    assert "holds a list" in err
    missing = tmp_path / "nowhere" / CHECKPOINT_NAME
    assert convert.main(["--checkpoint", str(missing), "--output", str(tmp_path / "out")]) == 1
    assert f"{missing} not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------- settings


def test_written_config_has_the_port_settings_by_default(converted):
    config = json.loads((converted / "config.json").read_text())
    assert {k: config[k] for k in PORT} == PORT
    assert config["base_channels"] == 48 and config["model_type"] == "deepfill_v2"


def test_flags_change_the_written_settings(converted_bgr, small_checkpoint, tmp_path):
    config = json.loads((converted_bgr / "config.json").read_text())
    assert {k: config[k] for k in PORT} == {**PORT, "channel_order": "bgr"}
    record = (converted_bgr / "README.md").read_text().split("## Conversion record", 1)[1]
    assert "channel_order=bgr" in record
    assert "port settings (rgb, fuse False, one_step)" in record and "written settings" in record

    out = tmp_path / "tf-original"
    flags = ["--channel-order", "bgr", "--fuse", "--attention-mask-resize", "two_step"]
    assert convert.main(["--checkpoint", str(small_checkpoint), "--output", str(out), *flags]) == 0
    model = AutoInpaintModel.from_pretrained(out)
    assert (model.config.channel_order, model.config.fuse, model.config.attention_mask_resize) == (
        "bgr",
        True,
        "two_step",
    )
    assert "the TF original's settings" in (out / "README.md").read_text()

    out = tmp_path / "no-fuse"
    assert convert.main(["--checkpoint", str(small_checkpoint), "--output", str(out), "--no-fuse"]) == 0
    assert AutoInpaintModel.from_pretrained(out).config.fuse is False


def test_written_settings_are_checked_against_the_reference_too(original):
    """The TF original's attention variant (fuse, two-step mask) and BGR, in the reference and in our model."""
    model = DeepFillV2Model(DeepFillV2Config(**TF_ORIGINAL))
    config = model.config
    model.load_weights(convert.convert_state_dict(original, config))
    model.eval()
    assert convert.verify_parity(model, original, TF_ORIGINAL, sizes=((64, 64),)) <= convert.PARITY_TOLERANCE
    # and the settings matter on these inputs: the port's reference is not the TF original's
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 20:52] = 1
    port = convert.original_deepfill_forward(original, image, mask)
    tf = convert.original_deepfill_forward(original, image, mask, fuse=True, mask_resize="two_step")
    assert float((port["x_stage2"] - tf["x_stage2"]).abs().max()) > 10 * convert.PARITY_TOLERANCE


# ------------------------------------------------------------------------------------------------- parity check


def test_parity_check_fails_when_a_weight_is_wrong(original):
    """The converter's self-check is not vacuous: a swapped pair of same-shaped tensors, or one corrupted tensor,
    makes it fail with a clear error."""
    config = DeepFillV2Config(**PORT)
    right = convert.convert_state_dict(original, config)
    model = DeepFillV2Model(config)
    model.load_weights(right)
    model.eval()
    assert convert.verify_parity(model, original, sizes=((64, 64),)) <= convert.PARITY_TOLERANCE

    a, b = "stage2_attention.pmconv9.conv.weight", "stage2_attention.pmconv10.conv.weight"
    assert right[a].shape == right[b].shape and not torch.equal(right[a], right[b])
    model.load_weights({**right, a: right[b], b: right[a]})
    with pytest.raises(ValueError, match="differs from the original forward pass"):
        convert.verify_parity(model, original, sizes=((64, 64),))

    key = "stage1.conv9_atrous.conv.weight"
    model.load_weights({**right, key: right[key] * 1.05})
    with pytest.raises(ValueError, match=r"differs from the original forward pass \(channel_order=rgb"):
        convert.verify_parity(model, original, sizes=((64, 64),))


def test_a_wrong_mapping_stops_the_command_before_writing(release, monkeypatch, tmp_path, capsys):
    renamer = convert.convert_state_dict

    def corrupting(original, config):
        converted = renamer(original, config)
        converted["stage2_merge.allconv16.conv.bias"] = converted["stage2_merge.allconv16.conv.bias"] + 0.5
        return converted

    monkeypatch.setattr(convert, "convert_state_dict", corrupting)
    out = tmp_path / "out"
    assert convert.main(["--checkpoint", str(release / CHECKPOINT_NAME), "--output", str(out)]) == 1
    assert "differs from the original forward pass" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------- other widths


def _original_name(ours: str) -> str:
    """Our tensor name -> the original's, written independently of ``rename_key``."""
    group, layer, _, kind = ours.split(".")
    prefix = {"stage1": "", "stage2_conv": "x", "stage2_attention": "pm", "stage2_merge": "all"}[group]
    assert layer.startswith(prefix + "conv"), ours
    return f"{layer}.conv.conv.{kind}" if layer.endswith("_upsample") else f"{layer}.conv.{kind}"


def _small_original(cnum: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random, well-scaled tensors in the original key layout for a generator with ``cnum`` filters in conv1."""
    rng = torch.Generator().manual_seed(seed)
    original = {}
    for name, tensor in DeepFillV2Model(DeepFillV2Config(base_channels=cnum)).state_dict().items():
        if name.endswith("weight"):
            fan_in = tensor[0].numel()
            value = torch.randn(tensor.shape, generator=rng) * (2.0 / fan_in) ** 0.5
        else:
            value = torch.randn(tensor.shape, generator=rng) * 0.1
        original[_original_name(name)] = value
    return original


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    checkpoint = tmp_path_factory.mktemp("small") / "states_tf_small.pth"
    torch.save({"G": _small_original(16)}, checkpoint)
    return checkpoint


def test_narrower_checkpoint_converts_with_the_inferred_width(small_checkpoint, tmp_path):
    original = torch.load(small_checkpoint, weights_only=True)["G"]
    assert all(convert.rename_key(_original_name(k)) == k for k in _state_dict_keys(16))
    assert original["conv1.conv.weight"].shape == (16, 5, 5, 5)

    inferred = convert.config_from_state_dict(original)
    assert inferred == DeepFillV2Config(base_channels=16, **PORT)

    out = tmp_path / "out"
    model, parity = convert.convert(small_checkpoint, out)
    assert parity <= convert.PARITY_TOLERANCE
    loaded = AutoInpaintModel.from_pretrained(out)
    assert isinstance(loaded, DeepFillV2Model) and loaded.config == inferred
    _assert_same_weights(loaded.state_dict(), convert.convert_state_dict(original, inferred))

    # the outputs are not degenerate (the parity above compared something), and match the reference
    rng = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 64, 96, generator=rng)
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 16:48, 24:72] = 1
    ours = _run_ours(loaded, image, mask)
    reference = convert.original_deepfill_forward(original, image, mask)
    assert float(ours["x_stage2"].std()) > 0.05
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, atol=convert.PARITY_TOLERANCE, rtol=0)

    readme = (out / "README.md").read_text()
    assert "# DeepFill v2 (16 base channels)" in readme and "## Conversion record" in readme
    assert "license: cc-by-nc-4.0" in readme
    assert hashlib.sha256(small_checkpoint.read_bytes()).hexdigest() in readme
    if CARD.is_file():
        assert not readme.startswith(CARD.read_text().rstrip())


def _state_dict_keys(cnum: int) -> list[str]:
    return list(DeepFillV2Model(DeepFillV2Config(base_channels=cnum)).state_dict())


def test_inpaint_hub_convert_deepfill_v2(release, converted, tmp_path, capsys):
    from inpaint_hub.cli import main

    out = tmp_path / "cli"
    checkpoint = release / "states_tf_places2.pth"
    assert main(["convert", "deepfill_v2", "--checkpoint", str(checkpoint), "--output", str(out)]) == 0
    _assert_same_weights(_state_dict(out), _state_dict(converted))
