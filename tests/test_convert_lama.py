"""The LaMa converter against the golden vectors of the original code (shared/official/golden).

The golden fixture rebuilds, from a seed, an original-format lama-fourier release (config.yaml, a bare best.ckpt and a
Lightning-style best_with_hparams.ckpt carrying a pickled custom object) and stores what the original
``bin/predict.py`` computed on one 256x256 input. Converting those files with our command and running the result must
reproduce the stored outputs within the fixture's tolerance (1e-4 max-abs, 1e-5 mean-abs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from inpaint_hub import AutoInpaintModel, LamaConfig, LamaModel
from inpaint_hub.image_processing import pad_to_multiple, unpad
from inpaint_hub.models.lama import convert_lama_original as convert


REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "lama_lama-fourier"


@pytest.fixture(scope="session")
def release(lama_fourier_release) -> Path:
    return lama_fourier_release


def _original_generator(release: Path) -> dict[str, torch.Tensor]:
    """The original generator tensors, original names, without the ``generator.`` prefix."""
    state = torch.load(release / "models" / "best.ckpt", weights_only=True)["state_dict"]
    return {k[len("generator.") :]: v for k, v in state.items() if k.startswith("generator.")}


@pytest.fixture(scope="session")
def converted(release, tmp_path_factory) -> Path:
    """Converted with the documented command line, in a fresh interpreter."""
    out = tmp_path_factory.mktemp("converted") / "lama-fourier"
    cmd = [
        sys.executable, "-m", "inpaint_hub.models.lama.convert_lama_original",
        "--checkpoint", str(release / "models" / "best.ckpt"),
        "--config", str(release / "config.yaml"),
        "--output", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "parity max |diff|" in result.stdout
    return out


def _run_like_predict_py(model: LamaModel, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our library's own padding (symmetric, bottom/right) + model + crop, as the original predict script does."""
    padded, size = pad_to_multiple(image, model.size_multiple, mode=model.pad_mode)
    padded_mask, _ = pad_to_multiple(mask, model.size_multiple, mode=model.pad_mode)
    with torch.no_grad():
        out = model(padded, (padded_mask > 0).float())
    return {"inpainted": unpad(out.inpainted, size), "predicted_image": unpad(out.predicted, size)}


def test_converted_model_reproduces_the_original_outputs(converted, golden_check):
    check = golden_check
    model = AutoInpaintModel.from_pretrained(converted)
    assert isinstance(model, LamaModel) and model.config == LamaConfig.lama_fourier()
    for case in check.manifest()["models"][MODEL]["cases"]:
        image, mask, _ = check.load_case(MODEL, case)
        report = check.compare(MODEL, case, _run_like_predict_py(model, image, mask))
        assert report["pass"], report
        assert set(report["keys"]) == {"inpainted", "predicted_image"}


def test_checkpoint_with_pickled_hyperparameters_converts_to_identical_weights(release, converted, tmp_path):
    """The Lightning-style file (refused by torch.load(weights_only=True)) gives the same tensors, and the custom
    class is never imported: regen is not importable here, and no code from the file runs."""
    assert "regen" not in sys.modules
    out = tmp_path / "from-hparams"
    code = convert.main(
        [
            "--checkpoint", str(release / "models" / "best_with_hparams.ckpt"),
            "--config", str(release / "config.yaml"),
            "--output", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    assert "regen" not in sys.modules
    a = LamaModel.from_pretrained(converted).state_dict()
    b = LamaModel.from_pretrained(out).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_output_folder_carries_the_model_card(converted):
    card = (converted / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: inpaint-hub")
    assert "lama-fourier" in card and "27,048,835" in card
    assert "## Conversion record" in card and "sha256" in card


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_whose_pickle_runs_code_is_refused(release, tmp_path, capsys):
    marker = tmp_path / "pwned"
    state = torch.load(release / "models" / "best.ckpt", weights_only=True)
    state["hyper_parameters"] = _RunsCode(str(marker))
    bad = tmp_path / "evil.ckpt"
    torch.save(state, bad)
    code = convert.main(
        ["--checkpoint", str(bad), "--config", str(release / "config.yaml"), "--output", str(tmp_path)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "posix.system" in err or "os.system" in err
    assert "refus" in err.lower()
    assert not marker.exists()
    assert not (tmp_path / "model.safetensors").exists()


def test_any_size_matches_the_original_forward_pass(converted, release):
    """Beyond the single golden size: odd, portrait and small sizes against the functional re-implementation of the
    original (original tensor names, numpy symmetric padding), through the library's pipeline padding."""
    model = LamaModel.from_pretrained(converted)
    original = _original_generator(release)
    rng = np.random.default_rng(0)
    for h, w in [(16, 16), (17, 33), (61, 20), (8 * 9 + 3, 8 * 5 + 7)]:
        image = rng.random((3, h, w), dtype=np.float32)
        mask = (rng.random((1, h, w)) < 0.3).astype(np.float32) * rng.random((1, h, w), dtype=np.float32)
        ours = _run_like_predict_py(model, torch.from_numpy(image)[None], torch.from_numpy(mask)[None])
        ref_inpainted, ref_predicted = convert.original_lama_forward(original, model.config, image, mask)
        assert ours["inpainted"].shape[-2:] == (h, w)
        np.testing.assert_allclose(ours["inpainted"][0].numpy(), ref_inpainted, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours["predicted_image"][0].numpy(), ref_predicted, atol=1e-4, rtol=0)


def test_functional_reference_catches_a_wrong_mapping(release):
    """The converter's self-check is not vacuous: swapping two same-shaped tensors makes it fail."""
    config = LamaConfig.lama_fourier()
    original = _original_generator(release)
    swapped = convert.convert_state_dict(original, config)
    a, b = "blocks.0.conv1.conv_l2l.weight", "blocks.0.conv2.conv_l2l.weight"
    swapped[a], swapped[b] = swapped[b], swapped[a]
    model = LamaModel(config)
    model.load_weights(swapped)
    model.eval()
    with pytest.raises(ValueError, match="differs from the original forward pass"):
        convert.verify_parity(model, original, sizes=((32, 32),))


def test_mapping_errors_name_the_tensors(release):
    config = LamaConfig.lama_fourier()
    original = _original_generator(release)
    broken = dict(original)
    del broken["model.7.conv2.ffc.convg2g.fu.conv_layer.weight"]
    broken["model.30.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        convert.convert_state_dict(broken, config)
    message = str(info.value)
    assert "blocks.2.conv2.spectral_g2g.fourier.conv.weight" in message
    assert "model.30.weight" in message
    # a big-lama config with lama-fourier weights: the block count is wrong, and the converter says so
    with pytest.raises(ValueError, match="does not match the config"):
        convert.convert_state_dict(original, LamaConfig.big_lama())


def test_config_from_the_released_yaml(release):
    from inpaint_hub.conversion_utils import load_yaml_config

    raw = load_yaml_config(release / "config.yaml")
    assert convert.config_from_original(raw) == LamaConfig.lama_fourier()
    big = {**raw, "generator": {**raw["generator"], "n_blocks": 18}}
    assert convert.config_from_original(big) == LamaConfig.big_lama()
    lfu = yaml.safe_load(yaml.safe_dump(raw))
    lfu["generator"]["resnet_conv_kwargs"]["enable_lfu"] = True
    with pytest.raises(ValueError, match="enable_lfu"):
        convert.config_from_original(lfu)
    odd = {**raw, "generator": {**raw["generator"], "kind": "pix2pixhd_global"}}
    with pytest.raises(ValueError, match="kind"):
        convert.config_from_original(odd)
    with pytest.raises(ValueError, match="no 'generator:' block"):
        convert.config_from_original({"run_title": "x"})


def test_missing_files_are_reported(tmp_path, capsys):
    code = convert.main(
        ["--checkpoint", str(tmp_path / "nope.ckpt"), "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path)]
    )
    assert code == 1
    assert "nope.ckpt not found" in capsys.readouterr().err
