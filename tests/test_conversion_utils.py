"""Tests for inpaint_hub.conversion_utils: loading checkpoints without running pickled code, YAML interpolation,
state-dict extraction."""

from __future__ import annotations

import builtins
import copy
import io
import logging
import os
import pickle
import shlex
import subprocess
import sys
import typing
import warnings
import zipfile
from collections import OrderedDict, defaultdict
from pathlib import Path

import pytest
import torch

from inpaint_hub.conversion_utils import (
    UnpickledPlaceholder,
    UnsafeCheckpointError,
    extract_state_dict,
    load_original_checkpoint,
    load_yaml_config,
    resolve_interpolations,
)


pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")

GOLDEN_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "official" / "golden"
LOGGER_NAME = "inpaint_hub.conversion_utils"

# Every hook of RecordingHParams appends here; the restricted loader must not trigger any of them.
SIDE_EFFECTS: list[str] = []


class RecordingHParams:
    """Plays the Lightning hyper-parameters object; this module is importable, so only the loader can keep it out."""

    def __new__(cls, *args, **kwargs):
        SIDE_EFFECTS.append("__new__")
        return super().__new__(cls)

    def __init__(self, content):
        SIDE_EFFECTS.append("__init__")
        self.content = content

    def __setstate__(self, state):
        SIDE_EFFECTS.append("__setstate__")
        self.__dict__.update(state)


class Payload:
    """Pickles as ``func(*args)``: what a malicious checkpoint's ``__reduce__`` does."""

    def __init__(self, func, args):
        self.func = func
        self.args = args

    def __reduce__(self):
        return (self.func, self.args)


def _tensors() -> OrderedDict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return OrderedDict(
        [
            ("generator.conv.weight", torch.randn(4, 3, 3, 3, generator=g)),
            ("generator.conv.bias", torch.randn(4, generator=g)),
            ("generator.norm.num_batches_tracked", torch.tensor(7)),
            ("discriminator.fc.weight", torch.randn(2, 5, generator=g).to(torch.float16)),
        ]
    )


def _fallback_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    return [m for m in messages if "restricted unpickler" in m]


# ---------------------------------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_plain_checkpoint_loads_with_weights_only(tmp_path, caplog, zip_format):
    path = tmp_path / "plain.ckpt"
    expected = _tensors()
    torch.save({"state_dict": expected, "epoch": 3}, path, _use_new_zipfile_serialization=zip_format)
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        ckpt = load_original_checkpoint(path)
    assert ckpt["epoch"] == 3
    assert list(ckpt["state_dict"]) == list(expected)
    for key, tensor in expected.items():
        assert torch.equal(ckpt["state_dict"][key], tensor)
        assert ckpt["state_dict"][key].dtype == tensor.dtype
    assert _fallback_records(caplog) == []


@pytest.mark.parametrize("protocol", [2, 1, 4])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_custom_class_loads_as_inert_placeholder(tmp_path, caplog, zip_format, protocol):
    path = tmp_path / "with_hparams.ckpt"
    expected = _tensors()
    hparams = RecordingHParams({"generator": {"n_blocks": 9}})
    torch.save(
        {"state_dict": expected, "hyper_parameters": hparams, "epoch": 0},
        path,
        _use_new_zipfile_serialization=zip_format,
        pickle_protocol=protocol,
    )
    with pytest.raises(pickle.UnpicklingError):  # the premise: weights_only refuses this file
        torch.load(path, weights_only=True)
    SIDE_EFFECTS.clear()
    assert sys.modules[RecordingHParams.__module__].RecordingHParams is RecordingHParams  # importable, yet not used

    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        ckpt = load_original_checkpoint(path)

    assert SIDE_EFFECTS == []
    assert list(ckpt["state_dict"]) == list(expected)
    for key, tensor in expected.items():
        assert torch.equal(ckpt["state_dict"][key], tensor)
        assert ckpt["state_dict"][key].dtype == tensor.dtype
    placeholder = ckpt["hyper_parameters"]
    name = f"{RecordingHParams.__module__}.RecordingHParams"
    assert isinstance(placeholder, UnpickledPlaceholder)
    assert not isinstance(placeholder, RecordingHParams)
    assert placeholder.placeholder_name == name
    assert placeholder.state == {"content": {"generator": {"n_blocks": 9}}}
    assert name in repr(placeholder)
    records = _fallback_records(caplog)
    assert len(records) == 1 and f"skipped non-tensor objects: {name}" in records[0]
    # placeholders behave as plain data
    assert copy.deepcopy(placeholder).state == placeholder.state
    with pytest.raises(TypeError, match="placeholder"):
        pickle.dumps(placeholder)
    with pytest.raises(UnsafeCheckpointError):
        type(placeholder)({"content": 1})
    assert SIDE_EFFECTS == []


def test_tensor_with_python_attributes_and_parameter(tmp_path):
    path = tmp_path / "attrs.ckpt"
    tensor = torch.arange(6.0).reshape(2, 3)
    tensor.tag = "kept"
    param = torch.nn.Parameter(torch.ones(2))
    torch.save({"t": tensor, "p": param, "hp": RecordingHParams(1)}, path)
    ckpt = load_original_checkpoint(path)
    assert torch.equal(ckpt["t"], tensor) and ckpt["t"].tag == "kept"
    assert isinstance(ckpt["p"], torch.nn.Parameter) and torch.equal(ckpt["p"], param)


def test_allow_listed_values_survive_the_fallback(tmp_path):
    """Values Lightning/OmegaConf checkpoints carry (protocol 2 pickles most of them via REDUCE)."""
    path = tmp_path / "values.ckpt"
    values = {
        "defaultdict": defaultdict(list, {"a": [1]}),
        "ordered": OrderedDict(b=2),
        "set": {1, 2},
        "frozenset": frozenset({"x"}),
        "bytes": b"\x00\xffab",
        "empty_bytes": b"",
        "bytearray": bytearray(b"xy"),
        "complex": 1 + 2j,
        "slice": slice(1, 5, 2),
        "size": torch.Size([2, 3]),
        "device": torch.device("cpu"),
        "dtype": torch.bfloat16,
        "layout": torch.sparse_coo,
        "big_int": 2**70,
    }
    torch.save({**values, "hp": RecordingHParams(0), "any": typing.Any}, path)
    loaded = load_original_checkpoint(path)
    for key, value in values.items():
        assert loaded[key] == value and type(loaded[key]) is type(value), key
    assert loaded["defaultdict"].default_factory is list
    assert loaded["any"].placeholder_name == "typing.Any"


def _malicious_payloads(pwned: Path):
    return {
        "os.system": (Payload(os.system, (f"touch {shlex.quote(str(pwned))}",)), f"{os.system.__module__}.system"),
        "builtins.eval": (Payload(builtins.eval, (f"open({str(pwned)!r}, 'w').close()",)), "builtins.eval"),
        "builtins.exec": (Payload(builtins.exec, (f"open({str(pwned)!r}, 'w').close()",)), "builtins.exec"),
        "subprocess.Popen": (Payload(subprocess.Popen, (["touch", str(pwned)],)), "subprocess.Popen"),
    }


def _write(path: Path, obj, writer: str) -> None:
    if writer == "torch_zip":
        torch.save({"state_dict": _tensors(), "hyper_parameters": obj}, path)
    elif writer == "torch_legacy":
        torch.save({"state_dict": _tensors(), "hyper_parameters": obj}, path, _use_new_zipfile_serialization=False)
    elif writer.startswith("pickle_p"):
        path.write_bytes(pickle.dumps({"hyper_parameters": obj}, protocol=int(writer.removeprefix("pickle_p"))))
    else:
        raise AssertionError(writer)


def test_payload_control_really_runs_code_under_plain_pickle(tmp_path):
    """The payloads below are live: an unrestricted unpickler executes them (here: a harmless file creation)."""
    marker = tmp_path / "control"
    data = pickle.dumps(Payload(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)))
    pickle.Unpickler(io.BytesIO(data)).load()
    assert marker.exists()


@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "pickle_p5", "pickle_p2", "pickle_p0"])
@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_malicious_checkpoint_is_refused(tmp_path, payload, writer):
    pwned = tmp_path / "pwned"
    obj, target = _malicious_payloads(pwned)[payload]
    path = tmp_path / "evil.ckpt"
    _write(path, obj, writer)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_original_checkpoint(path)
    message = str(info.value)
    assert target in message
    assert "run code at load time" in message and "sandbox" in message and str(path) in message
    assert isinstance(info.value, ValueError)
    assert not pwned.exists()


def test_handcrafted_opcodes_are_refused(tmp_path):
    pwned = tmp_path / "pwned"
    # protocol 0 INST: instantiate os.system with an argument, without any REDUCE opcode
    inst = tmp_path / "inst.pkl"
    inst.write_bytes(b"(S'touch " + str(pwned).encode() + b"'\nios\nsystem\n.")
    with pytest.raises(UnsafeCheckpointError, match=r"system"):
        load_original_checkpoint(inst)
    # BUILD aimed at an allow-listed function (would set attributes on torch's real helper)
    build = tmp_path / "build.pkl"
    build.write_bytes(b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x03\x00\x00\x00fooK\x01s\x86b.")
    with pytest.raises(UnsafeCheckpointError, match="modify"):
        load_original_checkpoint(build)
    assert not hasattr(torch._utils._rebuild_tensor_v2, "foo")
    assert not pwned.exists()


def test_referenced_but_uncalled_global_stays_inert(tmp_path, caplog):
    path = tmp_path / "ref.ckpt"
    torch.save({"w": torch.ones(3), "callback": os.system}, path)
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        ckpt = load_original_checkpoint(path)
    assert torch.equal(ckpt["w"], torch.ones(3))
    stand_in = ckpt["callback"]
    assert stand_in is not os.system and issubclass(stand_in, UnpickledPlaceholder)
    with pytest.raises(UnsafeCheckpointError, match="run code"):
        stand_in("true")
    assert f"{os.system.__module__}.system" in _fallback_records(caplog)[0]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_original_checkpoint(path)
    with pytest.raises(ValueError, match="not a file"):
        load_original_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        b"",
        b"hello world\nthis is a text file\n",
        b"a: 1\nb: ${a}\n",
        pickle.dumps({"a": 1}),  # a pickle, but not a torch.save file
        pickle.dumps([1, 2, 3], protocol=2),
    ],
    ids=["random", "empty", "text", "yaml", "plain_pickle", "plain_pickle_p2"],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "garbage.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="expected a file written by torch.save") as info:
        load_original_checkpoint(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_torchscript_archive_is_not_loaded(tmp_path):
    # torch.load(weights_only=False) would hand an archive with a constants.pkl record to torch.jit.load
    path = tmp_path / "scripted.pt"
    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(archive.namelist()[0].split("/")[0] + "/constants.pkl", b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="TorchScript"):
            load_original_checkpoint(path)


@pytest.fixture(scope="module")
def golden_lama(tmp_path_factory) -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"golden fixture folder {GOLDEN_DIR} not present in this checkout")
    out = tmp_path_factory.mktemp("golden")
    proc = subprocess.run(
        [sys.executable, str(GOLDEN_DIR / "regen.py"), "--out", str(out), "--models", "lama_lama-fourier"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"regen.py failed:\n{proc.stdout}\n{proc.stderr}")
    return out / "lama-fourier"


def test_golden_lama_checkpoints_give_identical_generator_tensors(golden_lama, caplog):
    regen_was_imported = "regen" in sys.modules
    plain = load_original_checkpoint(golden_lama / "models" / "best.ckpt")
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        with_hparams = load_original_checkpoint(golden_lama / "models" / "best_with_hparams.ckpt")
    assert "skipped non-tensor objects: regen.LightningHParamsMimic" in _fallback_records(caplog)[0]
    if not regen_was_imported:
        assert "regen" not in sys.modules
    hparams = with_hparams["hyper_parameters"]
    assert hparams.placeholder_name == "regen.LightningHParamsMimic"
    assert hparams.state["content"]["generator"]["n_blocks"] == 9

    a = extract_state_dict(plain, "generator.")
    b = extract_state_dict(with_hparams, "generator.")
    assert len(a) == 521
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    assert not any(k.startswith("generator.") for k in a)


def test_golden_lama_config(golden_lama):
    config = load_yaml_config(golden_lama / "config.yaml")
    gen = config["generator"]
    assert gen["n_blocks"] == 9
    down = gen["downsample_conv_kwargs"]
    assert down["ratio_gin"] == 0 and type(down["ratio_gin"]) is int  # chain: -> init_conv_kwargs.ratio_gout
    assert down["ratio_gout"] == 0 and type(down["ratio_gout"]) is int  # chain: -> ratio_gin -> ...
    assert gen["resnet_conv_kwargs"]["ratio_gout"] == 0.75
    assert config["data"]["train"]["indir"] == "/data/inpainting_data_root_large/train"
    assert config["location"]["out_root_dir"] == "/data/${env:USER}/inpainting/experiments"
    assert config["trainer"]["kwargs"]["val_check_interval"] == 25000


# ---------------------------------------------------------------------------------------------------------------------
# extract_state_dict


def test_extract_state_dict_from_lightning_and_flat_and_nested():
    tensors = _tensors()
    lightning = {"state_dict": tensors, "epoch": 1}
    gen = extract_state_dict(lightning, "generator.")
    assert list(gen) == ["conv.weight", "conv.bias", "norm.num_batches_tracked"]
    assert gen["conv.weight"] is tensors["generator.conv.weight"]
    assert list(extract_state_dict(tensors, "discriminator.")) == ["fc.weight"]
    assert len(extract_state_dict(tensors, "")) == 4
    nested = {"netG": {"enc.weight": torch.ones(1)}, "epoch": 5}  # PEN-Net / DeepFill layout
    assert list(extract_state_dict(nested, "netG.")) == ["enc.weight"]


def test_extract_state_dict_errors():
    with pytest.raises(ValueError, match=r"'discriminator\.' \(1 tensors\).*'generator\.' \(3 tensors\)"):
        extract_state_dict({"state_dict": _tensors()}, "gen_ema.")
    with pytest.raises(ValueError, match="No tensors"):
        extract_state_dict({"epoch": 1}, "")
    with pytest.raises(ValueError, match="checkpoint dict"):
        extract_state_dict([torch.ones(1)], "")


# ---------------------------------------------------------------------------------------------------------------------
# YAML configs

YAML_TEXT = r"""
a:
  x: 0
  y: ${a.x}
  z: ${b.w}
b:
  w: ${a.y}
  f: 0.5
  g: ${b.f}
  flag: true
  h: ${b.flag}
  s: prefix/${b.f}/${a.x}-${b.flag}
  env: /data/${env:USER}/x
  oc: ${oc.env:HOME}
  rel: ${.f}
  up: ${..a.x}
  lst: [10, 20]
  li: ${b.lst.1}
  esc: \${a.x}
  copy: ${a}
"""


def test_yaml_interpolation(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(YAML_TEXT)
    c = load_yaml_config(path)
    assert c["a"] == {"x": 0, "y": 0, "z": 0}
    assert type(c["a"]["z"]) is int and type(c["b"]["w"]) is int
    assert c["b"]["g"] == 0.5 and type(c["b"]["g"]) is float
    assert c["b"]["h"] is True
    assert c["b"]["s"] == "prefix/0.5/0-True"
    assert c["b"]["env"] == "/data/${env:USER}/x"
    assert c["b"]["oc"] == "${oc.env:HOME}"
    assert c["b"]["rel"] == 0.5
    assert c["b"]["up"] == 0
    assert c["b"]["li"] == 20
    assert c["b"]["esc"] == "${a.x}"
    assert c["b"]["copy"] == {"x": 0, "y": 0, "z": 0} and c["b"]["copy"] is not c["a"]


def test_resolve_interpolations_does_not_modify_input():
    raw = {"a": 1, "b": "${a}", "c": {"d": "${b}"}}
    assert resolve_interpolations(raw) == {"a": 1, "b": 1, "c": {"d": 1}}
    assert raw == {"a": 1, "b": "${a}", "c": {"d": "${b}"}}


@pytest.mark.parametrize(
    "text",
    ["a: ${b}\nb: ${c}\nc: ${a}\n", "a: ${a}\n", "a:\n  b: ${a}\n", "a: x${b}\nb: y${a}\n"],
    ids=["three", "self", "container", "embedded"],
)
def test_yaml_interpolation_cycle(tmp_path, text):
    path = tmp_path / "cycle.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="cycle"):
        load_yaml_config(path)


def test_yaml_errors(tmp_path):
    missing_key = tmp_path / "missing_key.yaml"
    missing_key.write_text("a:\n  b: ${a.nope}\n")
    with pytest.raises(ValueError, match="'nope' not found"):
        load_yaml_config(missing_key)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_yaml_config(not_mapping)
    with pytest.raises(FileNotFoundError, match="absent.yaml"):
        load_yaml_config(tmp_path / "absent.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml_config(empty) == {}
