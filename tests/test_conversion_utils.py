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
import tracemalloc
import typing
import warnings
import zipfile
from collections import Counter, OrderedDict, defaultdict
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
def test_plain_checkpoint_loads_without_placeholders(tmp_path, caplog, zip_format):
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


@pytest.mark.parametrize("protocol", [1, 2, 4, 5])
def test_allow_listed_values_survive_the_fallback(tmp_path, protocol):
    """Values Lightning/OmegaConf checkpoints carry (protocols < 4 pickle most of them via REDUCE), through the
    argument-checking constructors."""
    path = tmp_path / "values.ckpt"
    values = {
        "defaultdict": defaultdict(list, {"a": [1]}),
        "defaultdict_none": defaultdict(None, {"a": 1}),
        "ordered": OrderedDict(b=2),
        "counter": Counter(a=2, b=1),
        "set": {1, 2},
        "frozenset": frozenset({"x"}),
        "bytes": b"\x00\xffab",
        "empty_bytes": b"",
        "bytearray": bytearray(b"xy"),
        "empty_bytearray": bytearray(),
        "str": "text \u00e9",
        "tuple": (1, "a", (2,)),
        "list": [1, [2.5]],
        "complex": 1 + 2j,
        "slice": slice(1, 5, 2),
        "size": torch.Size([2, 3]),
        "device": torch.device("cpu"),
        "dtype": torch.bfloat16,
        "layout": torch.sparse_coo,
        "big_int": 2**70,
    }
    torch.save({**values, "hp": RecordingHParams(0), "any": typing.Any}, path, pickle_protocol=protocol)
    loaded = load_original_checkpoint(path)
    for key, value in values.items():
        assert loaded[key] == value and type(loaded[key]) is type(value), key
    assert loaded["defaultdict"].default_factory is list  # the real type, not the loader's wrapper
    assert loaded["defaultdict_none"].default_factory is None
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


def _zip_checkpoint(path: Path, data_pkl: bytes) -> None:
    """A torch.save zip archive whose data.pkl record is ``data_pkl`` (a handcrafted pickle)."""
    buffer = io.BytesIO()
    torch.save({}, buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            target.writestr(name, data_pkl if name.endswith("/data.pkl") else source.read(name))


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _int(n: int) -> bytes:
    return b"J" + n.to_bytes(4, "little")  # BININT


N = 10**6
P2 = b"\x80\x02"
TUPLE1, TUPLE2, REDUCE, STOP = b"\x85", b"\x86", b"R", b"."
# Each pickle asks an allow-listed constructor for N elements or bytes it does not hold.
MEMORY_BOMBS = {
    "bytearray": (P2 + _global("builtins", "bytearray") + _int(N) + TUPLE1 + REDUCE + STOP, "builtins.bytearray"),
    "bytes": (P2 + _global("builtins", "bytes") + _int(N) + TUPLE1 + REDUCE + STOP, "builtins.bytes"),
    "py2_bytearray": (P2 + _global("__builtin__", "bytearray") + _int(N) + TUPLE1 + REDUCE + STOP, "bytearray"),
    "tensor": (P2 + _global("torch", "Tensor") + _int(N) + TUPLE1 + REDUCE + STOP, "torch.Tensor"),
    "tensor_2d": (P2 + _global("torch._tensor", "Tensor") + _int(N) + _int(N) + TUPLE2 + REDUCE + STOP, "Tensor"),
    "list_range": (
        P2 + _global("builtins", "list") + _global("builtins", "range") + _int(N) + TUPLE1 + REDUCE + TUPLE1 + REDUCE
        + STOP,
        "builtins.list",
    ),
    "size_range": (
        P2 + _global("torch", "Size") + _global("builtins", "range") + _int(N) + TUPLE1 + REDUCE + TUPLE1 + REDUCE
        + STOP,
        "torch.Size",
    ),
    "newobj_bytes": (
        P2 + _global("copyreg", "__newobj__") + _global("builtins", "bytes") + _int(N) + TUPLE2 + REDUCE + STOP,
        "builtins.bytes",
    ),
    # str(x) of a list holding N references to one long string would be N times that string
    "str_repr": (
        P2 + _global("builtins", "str") + b"X\x03\x00\x00\x00abcq\x000" + b"](" + b"h\x00" * 50 + b"e" + TUPLE1
        + REDUCE + STOP,
        "builtins.str",
    ),
}  # fmt: skip


@pytest.mark.parametrize("bomb", list(MEMORY_BOMBS))
def test_constructor_with_a_size_is_refused(tmp_path, bomb):
    data, target = MEMORY_BOMBS[bomb]
    path = tmp_path / "bomb.ckpt"
    _zip_checkpoint(path, data)
    with pytest.raises(UnsafeCheckpointError, match="unbounded memory") as info:
        load_original_checkpoint(path)
    assert target in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("container", ["zip", "bare_pickle"])
def test_tiny_pickle_does_not_allocate_its_size(tmp_path, container):
    """A 30-byte pickle calling bytearray(50_000_000): nothing near that size is allocated, on either route (a bare
    pickle is read as the legacy format, whose magic number torch unpickles first)."""
    size = 50_000_000
    data = P2 + _global("builtins", "bytearray") + _int(size) + TUPLE1 + REDUCE + STOP
    path = tmp_path / "bomb.ckpt"
    if container == "zip":
        _zip_checkpoint(path, data)
    else:
        path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeCheckpointError, match=r"bytearray\(50000000\)"):
            load_original_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size // 10


def test_newobj_on_a_checked_type_is_refused(tmp_path):
    # NEWOBJ would call bytes.__new__(bytes, N) directly; the checked stand-in is not a type, so pickle refuses it.
    path = tmp_path / "newobj.ckpt"
    _zip_checkpoint(path, P2 + _global("builtins", "bytes") + _int(N) + TUPLE1 + b"\x81" + STOP)
    with pytest.raises(ValueError, match="expected a file written by torch.save"):
        load_original_checkpoint(path)


@pytest.mark.parametrize("force_weights_only", [False, True], ids=["restricted", "forced_weights_only"])
def test_dict_with_instance_attributes_is_refused(tmp_path, monkeypatch, force_weights_only):
    """BUILD can give an OrderedDict instance attributes: here ``items`` returns an empty OrderedDict, which would
    hide every tensor. torch's own weights-only unpickler allows that BUILD too."""
    spoofed = OrderedDict(_tensors())
    spoofed.items = OrderedDict
    assert list(spoofed.items()) == []
    path = tmp_path / "spoofed.ckpt"
    torch.save({"state_dict": spoofed, "epoch": 1}, path)
    if force_weights_only:
        monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoint\['state_dict'\].*OrderedDict.*'items'") as info:
        load_original_checkpoint(path)
    assert str(path) in str(info.value)


def test_defaultdict_factory_set_by_build_is_refused(tmp_path):
    # BUILD's slot state sets default_factory (a slot, not an instance attribute) to an allow-listed helper.
    path = tmp_path / "factory.ckpt"
    slot_state = b"N}X\x0f\x00\x00\x00default_factory" + _global("_codecs", "encode") + b"s" + TUPLE2
    _zip_checkpoint(path, P2 + _global("collections", "defaultdict") + b")" + REDUCE + slot_state + b"b" + STOP)
    with pytest.raises(UnsafeCheckpointError, match="default_factory"):
        load_original_checkpoint(path)


@pytest.mark.parametrize("with_hparams", [False, True])
def test_state_dict_metadata_is_kept(tmp_path, with_hparams):
    """nn.Module.state_dict() attaches ``_metadata`` to its OrderedDict: the one instance attribute accepted."""
    state = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).state_dict()
    path = tmp_path / "module.ckpt"
    torch.save({"state_dict": state, **({"hp": RecordingHParams(0)} if with_hparams else {})}, path)
    loaded = load_original_checkpoint(path)["state_dict"]
    assert loaded._metadata == state._metadata
    expected = [key.removeprefix("1.") for key in state if key.startswith("1.")]
    assert list(extract_state_dict({"state_dict": loaded}, "1.")) == expected


@pytest.mark.parametrize("value", ["1", "true"])
def test_forced_weights_only_environment(tmp_path, monkeypatch, value):
    """torch reads TORCH_FORCE_WEIGHTS_ONLY_LOAD on every torch.load call and then refuses a custom pickle module."""
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": _tensors()}, plain)
    with_hparams = tmp_path / "with_hparams.ckpt"
    torch.save({"state_dict": _tensors(), "hyper_parameters": RecordingHParams(1)}, with_hparams)
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", value)
    SIDE_EFFECTS.clear()
    loaded = load_original_checkpoint(plain)
    assert all(torch.equal(loaded["state_dict"][k], t) for k, t in _tensors().items())
    with pytest.raises(ValueError, match="Unset TORCH_FORCE_WEIGHTS_ONLY_LOAD") as info:
        load_original_checkpoint(with_hparams)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert str(with_hparams) in str(info.value)
    assert SIDE_EFFECTS == []
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    assert isinstance(load_original_checkpoint(with_hparams)["hyper_parameters"], UnpickledPlaceholder)


def test_sparse_tensor_is_not_supported(tmp_path):
    path = tmp_path / "sparse.ckpt"
    torch.save({"s": torch.eye(3).to_sparse()}, path)
    with pytest.raises(ValueError, match="sparse.*plain dense tensors") as info:
        load_original_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_golden_lama_checkpoints_give_identical_generator_tensors(lama_fourier_release, caplog):
    # conftest imports regen.py as "golden_regen"; regen.py puts a "regen" shim in sys.modules only while it saves
    # best_with_hparams.ckpt and removes it afterwards, so "regen" is absent here, and loading must not import it.
    assert "regen" not in sys.modules
    plain = load_original_checkpoint(lama_fourier_release / "models" / "best.ckpt")
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        with_hparams = load_original_checkpoint(lama_fourier_release / "models" / "best_with_hparams.ckpt")
    assert "skipped non-tensor objects: regen.LightningHParamsMimic" in _fallback_records(caplog)[0]
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


def test_golden_lama_config(lama_fourier_release):
    config = load_yaml_config(lama_fourier_release / "config.yaml")
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


def test_extract_state_dict_refuses_reference_cycles(tmp_path):
    looped = {"w": torch.ones(1)}
    looped["self"] = looped
    with pytest.raises(ValueError, match=r"Reference cycle in the checkpoint: .*'self' is the checkpoint"):
        extract_state_dict(looped, "")
    inner = {"w": torch.ones(1)}
    inner["back"] = {"up": inner}
    with pytest.raises(
        ValueError, match=r"cycle in checkpoint\[\"state_dict\"\]: .*'a\.back\.up' is the one at key 'a'"
    ):
        extract_state_dict({"state_dict": {"a": inner}}, "")
    # through a file: pickle keeps the cycle, and the loader hands it over
    path = tmp_path / "cycle.ckpt"
    torch.save({"state_dict": {"generator": inner}, "hp": RecordingHParams(0)}, path)
    with pytest.raises(ValueError, match="Reference cycle"):
        extract_state_dict(load_original_checkpoint(path), "generator.")


def test_extract_state_dict_shared_and_deep_mappings():
    shared = {"w": torch.ones(1)}
    assert list(extract_state_dict({"a": shared, "b": shared}, "")) == ["a.w", "b.w"]  # shared is not a cycle
    deep: dict = {"w": torch.zeros(1)}
    for _ in range(99):
        deep = {"n": deep}
    assert list(extract_state_dict(deep, "")) == ["n." * 99 + "w"]
    for _ in range(5000):  # deeper than the interpreter's recursion limit, and than any state dict
        deep = {"n": deep}
    with pytest.raises(ValueError, match="more than 100 levels deep"):
        extract_state_dict(deep, "")


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
