"""The ``inpaint-hub`` command: list (model types and local checkpoints), run (batch; local folder, offline Hub
cache, two processes under ``accelerate launch``), convert. Batch behaviour in detail is in ``test_batch.py``.

Most tests call :func:`inpaint_hub.cli.main` in-process (fast); a few start ``python -m inpaint_hub`` in a fresh
interpreter to check the real entry point, exit codes and stderr end to end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_model_contract import widen_init

from inpaint_hub import (
    AutoInpaintModel,
    LamaConfig,
    LamaModel,
    OpenCVInpaintConfig,
    OpenCVInpaintModel,
    PiiGANConfig,
    PiiGANModel,
)
from inpaint_hub.checkpoints import LocalCheckpoint, find_local_checkpoints
from inpaint_hub.cli import main


REPO_ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 30, 41  # odd sizes: the pipeline pads to the model's multiple and crops back
HOLE = (slice(6, 18), slice(9, 25))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m inpaint_hub ARGS`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "inpaint_hub", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny LaMa saved with save_pretrained, a 41x30 RGB photo, an RGBA photo and a mask with one rectangle."""
    root = tmp_path_factory.mktemp("cli_inputs")
    model = LamaModel(LamaConfig.tiny())
    model.save_pretrained(root / "lama-tiny")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(root / "x.png")
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8), "RGBA").save(root / "rgba.png")
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[HOLE] = 255
    Image.fromarray(mask).save(root / "m.png")
    Image.fromarray(np.full((20, 20), 255, dtype=np.uint8)).save(root / "m_small.png")
    return {
        "model": root / "lama-tiny",
        "image": root / "x.png",
        "rgba": root / "rgba.png",
        "mask": root / "m.png",
        "mask_small": root / "m_small.png",
    }


def _run_args(files: dict[str, Path], output: Path, *extra: str, model: str | None = None) -> list[str]:
    return [
        "run", "--model", model or str(files["model"]), "--images", str(files["image"]), "--masks", str(files["mask"]),
        "--output", str(output), *extra,
    ]  # fmt: skip


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _assert_inpainted(output: Path, source: Path) -> None:
    """Same size as the source; bit-identical outside the hole; the hole itself was filled by the model."""
    out, src = _pixels(output), _pixels(source)
    assert out.shape == src.shape == (HEIGHT, WIDTH, 3)
    keep = np.ones((HEIGHT, WIDTH), dtype=bool)
    keep[HOLE] = False
    np.testing.assert_array_equal(out[keep], src[keep])
    assert not np.array_equal(out[HOLE], src[HOLE]), "the hole came back unchanged"


def _assert_clean_error(code: int, err: str, *needles: str, command: str = "run") -> None:
    assert code == 1
    assert err.startswith(f"inpaint-hub {command}: error: ") or err.startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def _fake_hub_cache(cache: Path, repo_id: str, source: Path, *, ref: str | None = "main") -> Path:
    """The Hub cache layout huggingface_hub itself reads: models--org--name/{refs/main, snapshots/<commit>/...}."""
    sha = (repo_id.encode().hex() * 8)[:40]
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    if ref is not None:
        (repo / "refs").mkdir()
        (repo / "refs" / ref).write_text(sha)
    for name in ("config.json", "model.safetensors"):
        if (source / name).is_file():
            shutil.copy(source / name, snapshot / name)
    return snapshot


# ------------------------------------------------------------------------------------------------- list


def _listed(stdout: str) -> dict[str, tuple[str, str]]:
    """``name -> (type, source)`` from the checkpoint table of ``inpaint-hub list``."""
    table = stdout.split("checkpoints (", 1)[1].splitlines()[2:]
    return {line.split()[0]: (line.split()[-3], line.split()[-2]) for line in table if line.strip()}


def test_list_prints_the_model_types_from_the_entry_point(tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path / "no-cache")}
    result = _cli("list", "--checkpoints-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    types = result.stdout.split("model types:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in types] == ["deepfill_v2", "dgi", "lama", "opencv", "pennet", "piigan"]
    # every registered type prints its config's one-line summary
    assert "Fast Fourier" in result.stdout and "Telea" in result.stdout and "attention transfer" in result.stdout
    assert "gated convolutions" in result.stdout and "pluralistic" in result.stdout
    assert "distilled from a teacher" in result.stdout
    listed = _listed(result.stdout)
    assert listed == {"cv2-telea": ("opencv", "builtin"), "cv2-ns": ("opencv", "builtin")}


def test_list_shows_bundled_and_hub_cache_checkpoints(files, tmp_path):
    bundled = tmp_path / "checkpoints"
    shutil.copytree(files["model"], bundled / "lama-tiny")
    shutil.copytree(files["model"], bundled / "org" / "nested-lama")
    (bundled / "broken").mkdir()
    (bundled / "broken" / "config.json").write_text("{not json")
    (bundled / "broken" / "model.safetensors").write_bytes(b"")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/lama-cached", files["model"])
    foreign = tmp_path / "bert"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (foreign / "model.safetensors").write_bytes(b"")
    _fake_hub_cache(cache, "google/bert-tiny", foreign)

    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = _cli("-v", "list", "--checkpoints-dir", str(bundled), env=env)
    assert result.returncode == 0, result.stderr
    listed = _listed(result.stdout)
    assert listed[str(bundled / "lama-tiny")] == ("lama", "bundled")
    assert listed[str(bundled / "org" / "nested-lama")] == ("lama", "bundled")
    assert listed["org/lama-cached"] == ("lama", "hub-cache")
    assert listed["cv2-telea"] == ("opencv", "builtin")
    assert "google/bert-tiny" not in result.stdout, "only inpaint-hub model types are listed"
    assert "broken" not in result.stdout.split("checkpoints (", 1)[1]
    assert "skipping" in result.stderr and "config.json: cannot read it as JSON" in result.stderr
    # the cache location can come from HF_HOME too
    shutil.move(str(cache), str(tmp_path / "home" / "hub"))
    env = {"HF_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": "", "HUGGINGFACE_HUB_CACHE": ""}
    result = _cli("list", "--checkpoints-dir", str(bundled), env=env)
    assert _listed(result.stdout)["org/lama-cached"] == ("lama", "hub-cache")


def test_list_in_process(files, tmp_path, capsys):
    (tmp_path / "ckpts").mkdir()
    assert main(["list", "--checkpoints-dir", str(tmp_path / "ckpts"), "--cache-dir", str(tmp_path / "none")]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("model types:\n  deepfill_v2 ")
    assert set(_listed(stdout)) == {"cv2-telea", "cv2-ns"}, "a missing Hub cache is simply empty"
    code = main(["list", "--checkpoints-dir", str(tmp_path / "nope")])
    _assert_clean_error(code, capsys.readouterr().err, "nope does not exist", command="list")


def test_find_local_checkpoints(files, tmp_path, caplog, monkeypatch):
    bundled = tmp_path / "checkpoints"
    shutil.copytree(files["model"], bundled / "b-lama")
    OpenCVInpaintModel(OpenCVInpaintConfig(method="ns")).save_pretrained(bundled / "a-opencv")
    (bundled / "no-weights").mkdir()
    shutil.copy(files["model"] / "config.json", bundled / "no-weights" / "config.json")
    (bundled / "invalid").mkdir()
    (bundled / "invalid" / "config.json").write_text(json.dumps({"model_type": "lama", "no_such_field": 1}))
    (bundled / "invalid" / "model.safetensors").write_bytes(b"")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/lama-main", files["model"])
    pinned = _fake_hub_cache(cache, "org/lama-pinned", files["model"], ref=None)  # a snapshot without refs/main
    (cache / "datasets--org--data" / "snapshots").mkdir(parents=True)  # not a model repository
    (cache / "not-a-repo").mkdir()

    with caplog.at_level(logging.WARNING, logger="inpaint_hub"):
        found = find_local_checkpoints(bundled, cache)
    assert [(c.name, c.model_type, c.source) for c in found] == [
        (str(bundled / "a-opencv"), "opencv", "bundled"),
        (str(bundled / "b-lama"), "lama", "bundled"),
        ("org/lama-main", "lama", "hub-cache"),
        ("org/lama-pinned", "lama", "hub-cache"),
        ("cv2-telea", "opencv", "builtin"),
        ("cv2-ns", "opencv", "builtin"),
    ]
    assert all(isinstance(c, LocalCheckpoint) for c in found)
    assert found[3].revision == pinned.name and found[2].revision is None and found[3].path == pinned
    assert "no model.safetensors" in caplog.text and "invalid lama config" in caplog.text
    # every entry loads with what it says
    for checkpoint in found:
        model = AutoInpaintModel.from_pretrained(
            checkpoint.name, revision=checkpoint.revision, cache_dir=cache, local_files_only=True
        )
        assert model.config.model_type == checkpoint.model_type
    # the environment is read at call time
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    names = [c.name for c in find_local_checkpoints(bundled, include_builtin=False)]
    assert names[2:] == ["org/lama-main", "org/lama-pinned"]
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert not [c for c in find_local_checkpoints(bundled) if c.source == "hub-cache"], "$HF_HOME/hub is empty"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_local_checkpoints(tmp_path / "missing")


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- run


def test_run_writes_the_inpainted_image(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_run_args(files, out)) == 0
    _assert_inpainted(out / "x.png", files["image"])
    with Image.open(out / "x.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
    stdout = capsys.readouterr().out
    assert f"wrote {out / 'x.png'}" in stdout and "1 written, 0 skipped, 0 failed" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["x.png"], "no temporary file may be left behind"


def test_the_old_single_image_spelling_still_works(files, tmp_path):
    """``--image`` / ``--mask`` are aliases of ``--images`` / ``--masks``."""
    out = tmp_path / "out"
    args = ["run", "--model", str(files["model"]), "--image", str(files["image"]), "--mask", str(files["mask"])]
    assert main([*args, "--output", str(out)]) == 0
    _assert_inpainted(out / "x.png", files["image"])


def test_run_writes_jpeg(files, tmp_path):
    out = tmp_path / "sub" / "out"  # the output folder is created
    assert main(_run_args(files, out, "--format", "jpg")) == 0
    with Image.open(out / "x.jpg") as image:
        assert image.format == "JPEG" and image.size == (WIDTH, HEIGHT)
    # quality 95, no chroma subsampling: the kept pixels are close to the input, not equal
    keep = np.ones((HEIGHT, WIDTH), dtype=bool)
    keep[HOLE] = False
    diff = np.abs(_pixels(out / "x.jpg").astype(int) - _pixels(files["image"]).astype(int))[keep]
    assert diff.mean() < 6


def test_run_rgba_to_jpeg_drops_the_alpha_channel(files, tmp_path, capsys):
    args = _run_args(files, tmp_path / "jpg", "--format", "jpg")
    args[args.index("--images") + 1] = str(files["rgba"])
    assert main(args) == 0
    with Image.open(tmp_path / "jpg" / "rgba.jpg") as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (WIDTH, HEIGHT)
    args = _run_args(files, tmp_path / "png")  # PNG keeps the alpha channel, bit-identical
    args[args.index("--images") + 1] = str(files["rgba"])
    assert main(args) == 0
    with Image.open(tmp_path / "png" / "rgba.png") as image, Image.open(files["rgba"]) as source:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image)[..., 3], np.asarray(source)[..., 3])


def test_num_samples_writes_numbered_files(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_run_args(files, out, "--num-samples", "2", "--seed", "3")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x_0.png", "x_1.png"]
    for path in (out / "x_0.png", out / "x_1.png"):
        _assert_inpainted(path, files["image"])
    # LaMa is deterministic: both samples are the same image
    np.testing.assert_array_equal(_pixels(out / "x_0.png"), _pixels(out / "x_1.png"))
    stdout = capsys.readouterr().out
    assert "wrote " + str(out / "x_0.png") in stdout and "wrote " + str(out / "x_1.png") in stdout


def test_num_samples_of_a_sampling_model_differ_in_the_hole_and_reproduce(files, tmp_path):
    # wider than its Glorot init, so that a tiny model's samples differ visibly
    model = widen_init(PiiGANModel(PiiGANConfig.tiny()), gain=0.8)
    model.save_pretrained(tmp_path / "piigan-tiny")
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = _run_args(files, out, "--num-samples", "3", "--seed", "5", model=str(tmp_path / "piigan-tiny"))
        assert main(args) == 0
        assert sorted(p.name for p in out.iterdir()) == ["x_0.png", "x_1.png", "x_2.png"]
        runs.append([_pixels(out / f"x_{k}.png").astype(int) for k in range(3)])
        for k in range(3):
            _assert_inpainted(out / f"x_{k}.png", files["image"])
    first, second = runs
    for k in range(3):
        np.testing.assert_array_equal(first[k], second[k])  # the same seed, the same samples
        for j in range(k + 1, 3):
            assert np.abs(first[k][HOLE] - first[j][HOLE]).mean() > 2, (k, j)


def test_dilate_grows_the_hole(files, tmp_path):
    out = tmp_path / "out"
    assert main(_run_args(files, out, "--dilate", "2")) == 0
    out_pixels, src = _pixels(out / "x.png"), _pixels(files["image"])
    grown = np.zeros((HEIGHT, WIDTH), dtype=bool)
    grown[HOLE[0].start - 2 : HOLE[0].stop + 2, HOLE[1].start - 2 : HOLE[1].stop + 2] = True
    np.testing.assert_array_equal(out_pixels[~grown], src[~grown])
    ring = grown.copy()
    ring[HOLE] = False
    assert not np.array_equal(out_pixels[ring], src[ring]), "--dilate 2 must repaint the ring around the hole"


def test_an_output_file_name_is_refused_before_the_model_is_loaded(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(_run_args(files, out)) == 1
    _assert_clean_error(1, capsys.readouterr().err, "--output", "out.png", "looks like a file name", "folder")
    assert not list(tmp_path.iterdir())
    # checked first: a model that does not exist is not even looked at
    code = main(_run_args(files, out, model=str(tmp_path / "no-such-model")))
    _assert_clean_error(code, capsys.readouterr().err, "looks like a file name")
    # an existing file
    (tmp_path / "taken").write_text("")
    code = main(_run_args(files, tmp_path / "taken"))
    _assert_clean_error(code, capsys.readouterr().err, "is a file")
    # an unknown format is argparse's business
    with pytest.raises(SystemExit) as info:
        main(_run_args(files, tmp_path / "out", "--format", "webp"))
    assert info.value.code == 2 and "invalid choice: 'webp'" in capsys.readouterr().err


def test_missing_images(files, tmp_path, capsys):
    args = _run_args(files, tmp_path / "out")
    args[args.index("--images") + 1] = str(tmp_path / "missing.png")
    _assert_clean_error(main(args), capsys.readouterr().err, "missing.png", "does not exist")
    assert not (tmp_path / "out").exists()
    args = _run_args(files, tmp_path / "out")
    args[args.index("--masks") + 1] = str(tmp_path / "missing-masks")
    _assert_clean_error(main(args), capsys.readouterr().err, "missing-masks", "does not exist")
    (tmp_path / "empty").mkdir()
    args = _run_args(files, tmp_path / "out")
    args[args.index("--images") + 1] = str(tmp_path / "empty")
    _assert_clean_error(main(args), capsys.readouterr().err, "no images found in", "empty")


def test_mask_of_another_size_is_resized(files, tmp_path, capsys):
    args = _run_args(files, tmp_path / "out")
    args[args.index("--masks") + 1] = str(files["mask_small"])  # 20x20, all white: the whole image is a hole
    assert main(args) == 0
    assert not np.array_equal(_pixels(tmp_path / "out" / "x.png"), _pixels(files["image"]))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--num-samples", "0"), "num_samples must be >= 1"),
        (("--dilate", "-1"), "mask_dilate must be >= 0"),
        (("--feather", "-1"), "mask_feather must be >= 0"),
        (("--jpeg-quality", "0"), "jpeg_quality must be >= 1"),
        (("--seed", "-3"), "seed must be >= 0"),
        (("--device", "toaster"), "unknown --device 'toaster'"),
    ],
)
def test_bad_options(files, tmp_path, capsys, extra, needle):
    _assert_clean_error(main(_run_args(files, tmp_path / "out", *extra)), capsys.readouterr().err, needle)
    assert not (tmp_path / "out").exists()


def test_missing_model(files, tmp_path, capsys):
    code = main(_run_args(files, tmp_path / "out", model=str(tmp_path / "no-such-model")))
    _assert_clean_error(code, capsys.readouterr().err, "no-such-model", "does not exist")
    # a folder that is not a saved model
    (tmp_path / "empty").mkdir()
    code = main(_run_args(files, tmp_path / "out", model=str(tmp_path / "empty")))
    _assert_clean_error(code, capsys.readouterr().err, "config.json not found", str(tmp_path / "empty"))
    # one bad model among good ones: nothing is done
    code = main([*_run_args(files, tmp_path / "out", model="cv2-telea"), "--model", str(tmp_path / "empty")])
    _assert_clean_error(code, capsys.readouterr().err, "config.json not found")
    assert not (tmp_path / "out").exists()
    code = main([*_run_args(files, tmp_path / "out", model="cv2-telea"), "--model", "cv2-telea"])
    _assert_clean_error(code, capsys.readouterr().err, "'cv2-telea' is given twice")


def test_errors_from_the_entry_point_have_no_traceback(files, tmp_path):
    """Exit code 1 and one line on stderr from the real command."""
    args = _run_args(files, tmp_path / "out")
    args[args.index("--images") + 1] = str(tmp_path / "missing.png")
    result = _cli(*args)
    assert result.returncode == 1
    expected = f"inpaint-hub run: error: image folder or file {tmp_path / 'missing.png'} does not exist"
    assert result.stderr.strip().splitlines() == [expected]
    assert result.stdout == ""


def test_run_from_the_hub_cache_offline(files, tmp_path):
    """``--model org/lama-tiny --local-files-only`` resolves through huggingface_hub's real cache code."""
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/lama-tiny", files["model"])

    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    result = _cli(*_run_args(files, out, "--local-files-only", model="org/lama-tiny"), env=env)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / 'x.png'}" in result.stdout
    _assert_inpainted(out / "x.png", files["image"])
    # the same weights as the local folder give the same image
    local = tmp_path / "local"
    assert main(_run_args(files, local)) == 0
    np.testing.assert_array_equal(_pixels(out / "x.png"), _pixels(local / "x.png"))

    # a repository that is not in the cache fails cleanly and names it
    result = _cli(*_run_args(files, tmp_path / "x", "--local-files-only", model="org/not-cached"), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "'org/not-cached'" in result.stderr


# ------------------------------------------------------------------------------------------------- accelerate


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_under_accelerate_launch_splits_the_images_between_two_processes(files, tmp_path):
    """``accelerate launch --num_processes 2`` on CPU: every image written exactly once, by one of two processes
    that both worked; the summary counts both processes' files and a failure on either makes the exit code 1."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for index in range(6):
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(images / f"p{index}.png")
    out = tmp_path / "out"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), "-m", "inpaint_hub", "-v", "run", "--model", "cv2-telea",
        "--images", str(images), "--masks", str(files["mask"]), "--output", str(out), "--seed", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr

    wrote = re.findall(r"^\[process (\d)/2\] wrote (\S+)$", result.stdout, flags=re.MULTILINE)
    assert sorted(path for _, path in wrote) == [str(out / f"p{i}.png") for i in range(6)], "each image once"
    assert {rank for rank, _ in wrote} == {"0", "1"}, "both processes worked"
    assert re.search(r"process 0/2 handles 3 of 6 image\(s\)", result.stderr), result.stderr
    assert re.search(r"process 1/2 handles 3 of 6 image\(s\)", result.stderr), result.stderr
    assert result.stdout.count("6 written, 0 skipped, 0 failed") == 1, "the main process prints the total once"
    for index in range(6):
        _assert_inpainted(out / f"p{index}.png", images / f"p{index}.png")

    # one bad file, handled by the second process: the total counts it and every process exits with 1
    (images / "p9.png").write_bytes(b"broken")
    shutil.rmtree(out)
    result = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[process 1/2] " + str(images / "p9.png") + ": cannot read image" in result.stderr
    assert "6 written, 0 skipped, 1 failed" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.png" for i in range(6)]


# ------------------------------------------------------------------------------------------------- convert


@pytest.fixture(scope="module")
def release(golden_dir, tmp_path_factory) -> Path:
    """The golden original-format lama-fourier release, rebuilt by the fixture's regen.py (checks every sha256)."""
    out = tmp_path_factory.mktemp("cli_release")
    cmd = [sys.executable, str(golden_dir / "regen.py"), "--out", str(out), "--models", "lama_lama-fourier"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out / "lama-fourier"


def test_convert_lama_writes_a_loadable_folder(release, files, tmp_path, capsys):
    out = tmp_path / "lama-fourier"
    code = main(
        [
            "convert", "lama",
            "--checkpoint", str(release / "models" / "best.ckpt"),
            "--config", str(release / "config.yaml"),
            "--output", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "parity max |diff|" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    model = AutoInpaintModel.from_pretrained(out)
    assert isinstance(model, LamaModel) and model.config == LamaConfig.lama_fourier()
    # and the converted folder runs through the command
    assert main(_run_args(files, tmp_path / "out", model=str(out))) == 0
    _assert_inpainted(tmp_path / "out" / "x.png", files["image"])


def test_convert_missing_checkpoint(release, tmp_path, capsys):
    code = main(
        [
            "convert", "lama",
            "--checkpoint", str(tmp_path / "nope.ckpt"),
            "--config", str(release / "config.yaml"),
            "--output", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "nope.ckpt not found" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_convert_needs_its_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "lama"])
    assert info.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_convert_pennet_writes_a_loadable_folder(pennet_release, files, tmp_path, capsys):
    from inpaint_hub.models.pennet import PENNetModel

    out = tmp_path / "pennet"
    code = main(["convert", "pennet", "--checkpoint", str(pennet_release / "gen_00050.pth"), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert isinstance(AutoInpaintModel.from_pretrained(out), PENNetModel)
    assert main(_run_args(files, tmp_path / "out", model=str(out))) == 0
    _assert_inpainted(tmp_path / "out" / "x.png", files["image"])


def test_convert_unknown_model_type(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "deepfill-v9"])
    assert info.value.code == 2
    assert "lama" in capsys.readouterr().err
