"""save_pretrained / from_pretrained / AutoInpaintModel: round trips, strict loading, the Hub cache offline."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from inpaint_hub import (
    AutoInpaintModel,
    InpaintModel,
    LamaConfig,
    LamaModel,
    WeightsMismatchError,
    get_model_class,
    list_model_types,
)


REPO_ROOT = Path(__file__).resolve().parents[1]


def _inputs(h: int = 32, w: int = 48):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, h, w, generator=g)
    mask = (torch.rand(1, 1, h, w, generator=g) > 0.6).float()
    return image, mask


def _randomised_tiny() -> LamaModel:
    """A tiny model whose BatchNorm statistics are not the defaults, so a lost buffer would show."""
    model = LamaModel(LamaConfig.tiny())
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def saved(tmp_path) -> tuple[LamaModel, Path]:
    model = _randomised_tiny()
    model.save_pretrained(tmp_path / "lama-tiny")
    return model, tmp_path / "lama-tiny"


def test_save_writes_config_weights_and_card(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config == model.config.to_dict() and config["model_type"] == "lama"
    assert set(load_file(folder / "model.safetensors")) == set(model.state_dict())
    assert not list(folder.glob(".*.tmp")), "atomic writes must not leave temporary files"


def test_round_trip_is_bit_identical(saved):
    model, folder = saved
    loaded = LamaModel.from_pretrained(folder)
    assert loaded.config == model.config and not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    image, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(model(image, mask).inpainted, loaded(image, mask).inpainted)


def test_auto_model_dispatches_on_model_type(saved):
    model, folder = saved
    loaded = AutoInpaintModel.from_pretrained(folder)
    assert type(loaded) is LamaModel and loaded.config == model.config
    assert AutoInpaintModel.load_config(folder) == model.config
    assert "lama" in list_model_types() and get_model_class("lama") is LamaModel
    assert type(AutoInpaintModel.from_config(LamaConfig.tiny())) is LamaModel


def test_device_and_dtype_arguments(saved):
    _, folder = saved
    loaded = AutoInpaintModel.from_pretrained(folder, device="cpu", dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16 and loaded.device.type == "cpu"
    assert LamaModel.from_pretrained(folder, dtype="float64").dtype == torch.float64
    for bad in ("int8", torch.int8, "float99"):
        with pytest.raises(ValueError, match="dtype"):
            LamaModel.from_pretrained(folder, dtype=bad)


def test_base_class_from_pretrained_dispatches_too(saved):
    model, folder = saved
    loaded = InpaintModel.from_pretrained(folder)
    assert type(loaded) is LamaModel and loaded.config == model.config


def test_missing_tensor_fails_loudly(saved):
    _, folder = saved
    weights = load_file(folder / "model.safetensors")
    del weights["blocks.0.conv1.spectral_g2g.fourier.conv.weight"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"missing tensor.*blocks\.0\.conv1\.spectral_g2g\.fourier\.conv"):
        AutoInpaintModel.from_pretrained(folder)


def test_non_strict_loading_is_explicit_and_says_what_it_skipped(saved, caplog):
    _, folder = saved
    weights = load_file(folder / "model.safetensors")
    del weights["head.bias"]
    save_file(weights, folder / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="inpaint_hub.modeling_utils"):
        partial = LamaModel.from_pretrained(folder, strict=False)
    assert isinstance(partial, LamaModel)
    assert "non-strict load" in caplog.text and "head.bias" in caplog.text


def test_unexpected_and_misshaped_tensors_fail_loudly(saved):
    _, folder = saved
    weights = load_file(folder / "model.safetensors")
    weights["head.extra"] = torch.zeros(1)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"unexpected tensor.*head\.extra"):
        LamaModel.from_pretrained(folder)
    del weights["head.extra"]
    weights["head.weight"] = torch.zeros(3, 8, 5, 5)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"mis-shaped.*head\.weight: file \(3, 8, 5, 5\)"):
        LamaModel.from_pretrained(folder, strict=False)  # shape errors are never silent


def test_bad_config_files_are_named(saved, tmp_path):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_blokcs": 3}))
    with pytest.raises(ValueError, match="num_blokcs"):
        AutoInpaintModel.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "nope"}))
    with pytest.raises(ValueError, match="unknown model_type 'nope'; known model types: .*lama"):
        AutoInpaintModel.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        AutoInpaintModel.from_pretrained(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        AutoInpaintModel.from_pretrained(empty)


def test_model_card_is_written_from_model_cards(tmp_path):
    card = tmp_path / "card.md"
    card.write_text("---\nlicense: apache-2.0\n---\n# my card\n")
    model = LamaModel(LamaConfig.tiny())
    model.save_pretrained(tmp_path / "out", model_card=card)
    assert (tmp_path / "out" / "README.md").read_text() == card.read_text()
    with pytest.raises(FileNotFoundError, match="model card"):
        model.save_pretrained(tmp_path / "out2", model_card=tmp_path / "missing.md")


def _fabricate_hub_cache(cache: Path, repo_id: str, folder: Path, sha: str) -> None:
    """The layout huggingface_hub itself writes: models--org--name/{refs/main, snapshots/<sha>/...}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, snapshot / name)


def test_from_pretrained_reads_the_hub_cache_offline(saved, tmp_path):
    """HF_HUB_OFFLINE=1 in a fresh interpreter: the repo id resolves through the real Hub cache code."""
    model, folder = saved
    cache = tmp_path / "hub"
    sha = "0123456789abcdef0123456789abcdef01234567"
    _fabricate_hub_cache(cache, "org/lama-tiny", folder, sha)
    image, mask = _inputs()
    with torch.no_grad():
        torch.save(model(image, mask).inpainted, tmp_path / "expected.pt")
    torch.save((image, mask), tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import torch
        from inpaint_hub import AutoInpaintModel, LamaModel
        model = AutoInpaintModel.from_pretrained("org/lama-tiny")
        assert type(model) is LamaModel
        image, mask = torch.load({str(tmp_path / "inputs.pt")!r}, weights_only=True)
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        with torch.no_grad():
            assert torch.equal(model(image, mask).inpainted, expected)
        pinned = AutoInpaintModel.from_pretrained("org/lama-tiny", revision={sha!r}, local_files_only=True)
        assert pinned.config == model.config
        for cls in (AutoInpaintModel, LamaModel):
            try:
                cls.from_pretrained("org/not-cached")
            except Exception as err:
                print("MISSING-REPO-ERROR", type(err).__name__)
        print("OK")
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    # an uncached repo fails offline with the Hub's own error (not hanging, not a misleading "not a model folder")
    assert result.stdout.count("MISSING-REPO-ERROR LocalEntryNotFoundError") == 2, result.stdout


def test_cache_dir_argument(saved, tmp_path, monkeypatch):
    _, folder = saved
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    sha = "fedcba9876543210fedcba9876543210fedcba98"
    _fabricate_hub_cache(tmp_path / "elsewhere", "org/lama-tiny", folder, sha)
    loaded = AutoInpaintModel.from_pretrained("org/lama-tiny", cache_dir=tmp_path / "elsewhere")
    assert isinstance(loaded, LamaModel)


class _FakeHfApi:
    """Stands in for huggingface_hub.HfApi: records the calls and what the uploaded folder held."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        self.calls.append(("upload_folder", repo_id, files, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/abc"


@pytest.fixture
def fake_hub(monkeypatch):
    import inpaint_hub.modeling_utils as modeling_utils

    _FakeHfApi.calls = []
    monkeypatch.setattr(modeling_utils, "HfApi", _FakeHfApi)
    return _FakeHfApi.calls


def test_push_to_hub_uploads_config_weights_and_the_card(fake_hub, tmp_path):
    model = _randomised_tiny()
    card = "---\nlicense: apache-2.0\n---\n# tiny\n"
    url = model.push_to_hub("me/lama-tiny", model_card=card, private=True, branch="dev")
    assert url.startswith("https://huggingface.co/me/lama-tiny")
    (_, repo, private), (_, repo2, files, kwargs) = fake_hub
    assert repo == repo2 == "me/lama-tiny" and private is True and kwargs["revision"] == "dev"
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert files["README.md"].decode() == card
    assert json.loads(files["config.json"]) == model.config.to_dict()
    (tmp_path / "model.safetensors").write_bytes(files["model.safetensors"])
    uploaded = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(uploaded[k], v) for k, v in model.state_dict().items())


def test_save_pretrained_can_push_with_the_same_card(fake_hub, tmp_path):
    model = _randomised_tiny()
    card = tmp_path / "card.md"
    card.write_text("# my card\n")
    model.save_pretrained(tmp_path / "out", model_card=card, push_to_hub=True, repo_id="me/x")
    uploads = [c for c in fake_hub if c[0] == "upload_folder"]
    assert len(uploads) == 1 and uploads[0][2]["README.md"] == b"# my card\n"


@pytest.mark.parametrize("name", ["runs/x/checkpoint-5/generator", "./missing-model", "a/b/c"])
def test_a_missing_local_folder_is_named_not_a_hub_error(name, tmp_path, monkeypatch):
    # Neither a folder nor a possible Hub id: say so instead of huggingface_hub's repo-id validation message.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder .* and not a valid Hub repository id"):
        AutoInpaintModel.from_pretrained(name)
