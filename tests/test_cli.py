"""The ``inpaint-hub`` command: list, run (local folder and offline Hub cache), convert.

Most tests call :func:`inpaint_hub.cli.main` in-process (fast); a few start ``python -m inpaint_hub`` in a fresh
interpreter to check the real entry point, exit codes and stderr end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint_hub import AutoInpaintModel, LamaConfig, LamaModel
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
        "run", "--model", model or str(files["model"]), "--image", str(files["image"]), "--mask", str(files["mask"]),
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


def _assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    assert err.startswith("inpaint-hub run: error: ") or err.startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------------------------------------------- list


def test_list_prints_the_model_types_from_the_entry_point():
    result = _cli("list")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["lama"]
    assert "Fast Fourier" in result.stdout


def test_list_in_process(capsys):
    assert main(["list"]) == 0
    assert capsys.readouterr().out.split()[0] == "lama"


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- run


def test_run_writes_the_inpainted_image(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(_run_args(files, out)) == 0
    _assert_inpainted(out, files["image"])
    with Image.open(out) as image:
        assert image.format == "PNG" and image.mode == "RGB"
    stdout = capsys.readouterr().out
    assert f"wrote {out}" in stdout and "LamaModel (lama) took" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"], "no temporary file may be left behind"


@pytest.mark.parametrize(("name", "fmt"), [("out.jpg", "JPEG"), ("out.JPEG", "JPEG"), ("out.webp", "WEBP")])
def test_run_writes_jpeg_and_webp(files, tmp_path, name, fmt):
    out = tmp_path / "sub" / name  # the output folder is created
    assert main(_run_args(files, out)) == 0
    with Image.open(out) as image:
        assert image.format == fmt and image.size == (WIDTH, HEIGHT)
    # lossy formats: the kept pixels are close to the input, not equal
    keep = np.ones((HEIGHT, WIDTH), dtype=bool)
    keep[HOLE] = False
    diff = np.abs(_pixels(out).astype(int) - _pixels(files["image"]).astype(int))[keep]
    assert diff.mean() < 60


def test_run_rgba_to_jpeg_drops_the_alpha_channel(files, tmp_path, capsys):
    out = tmp_path / "out.jpg"
    args = _run_args(files, out)
    args[args.index("--image") + 1] = str(files["rgba"])
    assert main(args) == 0
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (WIDTH, HEIGHT)
    png = tmp_path / "out.png"  # PNG keeps the alpha channel, bit-identical
    args[args.index("--output") + 1] = str(png)
    assert main(args) == 0
    with Image.open(png) as image, Image.open(files["rgba"]) as source:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image)[..., 3], np.asarray(source)[..., 3])


def test_num_samples_writes_numbered_files(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(_run_args(files, out, "--num-samples", "2", "--seed", "3")) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_0.png", "out_1.png"]
    for path in (tmp_path / "out_0.png", tmp_path / "out_1.png"):
        _assert_inpainted(path, files["image"])
    # LaMa is deterministic: both samples are the same image
    np.testing.assert_array_equal(_pixels(tmp_path / "out_0.png"), _pixels(tmp_path / "out_1.png"))
    stdout = capsys.readouterr().out
    assert "wrote " + str(tmp_path / "out_0.png") in stdout and "wrote " + str(tmp_path / "out_1.png") in stdout


def test_dilate_grows_the_hole(files, tmp_path):
    out = tmp_path / "out.png"
    assert main(_run_args(files, out, "--dilate", "2")) == 0
    out_pixels, src = _pixels(out), _pixels(files["image"])
    grown = np.zeros((HEIGHT, WIDTH), dtype=bool)
    grown[HOLE[0].start - 2 : HOLE[0].stop + 2, HOLE[1].start - 2 : HOLE[1].stop + 2] = True
    np.testing.assert_array_equal(out_pixels[~grown], src[~grown])
    ring = grown.copy()
    ring[HOLE] = False
    assert not np.array_equal(out_pixels[ring], src[ring]), "--dilate 2 must repaint the ring around the hole"


def test_unknown_extension_is_refused_before_the_model_is_loaded(files, tmp_path, capsys):
    out = tmp_path / "out.xyz"
    assert main(_run_args(files, out)) == 1
    _assert_clean_error(1, capsys.readouterr().err, "'out.xyz'", ".png")
    assert not list(tmp_path.iterdir())
    # checked first: a model that does not exist is not even looked at
    code = main(_run_args(files, out, model=str(tmp_path / "no-such-model")))
    _assert_clean_error(code, capsys.readouterr().err, "'out.xyz'")


def test_missing_image(files, tmp_path, capsys):
    args = _run_args(files, tmp_path / "out.png")
    args[args.index("--image") + 1] = str(tmp_path / "missing.png")
    _assert_clean_error(main(args), capsys.readouterr().err, "missing.png", "does not exist")
    assert not (tmp_path / "out.png").exists()


def test_mask_of_another_size(files, tmp_path, capsys):
    args = _run_args(files, tmp_path / "out.png")
    args[args.index("--mask") + 1] = str(files["mask_small"])
    _assert_clean_error(main(args), capsys.readouterr().err, "mask size 20x20", f"image size {WIDTH}x{HEIGHT}")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--num-samples", "0"), "num_samples must be >= 1"),
        (("--dilate", "-1"), "mask_dilate must be >= 0"),
        (("--device", "toaster"), "unknown --device 'toaster'"),
    ],
)
def test_bad_options(files, tmp_path, capsys, extra, needle):
    _assert_clean_error(main(_run_args(files, tmp_path / "out.png", *extra)), capsys.readouterr().err, needle)


def test_missing_model(files, tmp_path, capsys):
    code = main(_run_args(files, tmp_path / "out.png", model=str(tmp_path / "no-such-model")))
    _assert_clean_error(code, capsys.readouterr().err, "no-such-model", "does not exist")
    # a folder that is not a saved model
    code = main(_run_args(files, tmp_path / "out.png", model=str(tmp_path)))
    _assert_clean_error(code, capsys.readouterr().err, "config.json not found", str(tmp_path))


def test_errors_from_the_entry_point_have_no_traceback(files, tmp_path):
    """Exit code 1 and one line on stderr from the real command."""
    args = _run_args(files, tmp_path / "out.png")
    args[args.index("--image") + 1] = str(tmp_path / "missing.png")
    result = _cli(*args)
    assert result.returncode == 1
    expected = f"inpaint-hub run: error: image file {tmp_path / 'missing.png'} does not exist"
    assert result.stderr.strip().splitlines() == [expected]
    assert result.stdout == ""


def test_run_from_the_hub_cache_offline(files, tmp_path):
    """``--model org/lama-tiny --local-files-only`` resolves through huggingface_hub's real cache code."""
    cache = tmp_path / "hub"
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--org--lama-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(files["model"] / name, snapshot / name)

    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out.png"
    result = _cli(*_run_args(files, out, "--local-files-only", model="org/lama-tiny"), env=env)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    _assert_inpainted(out, files["image"])
    # the same weights as the local folder give the same image
    local = tmp_path / "local.png"
    assert main(_run_args(files, local)) == 0
    np.testing.assert_array_equal(_pixels(out), _pixels(local))

    # a repository that is not in the cache fails cleanly and names it
    result = _cli(*_run_args(files, tmp_path / "x.png", "--local-files-only", model="org/not-cached"), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "'org/not-cached'" in result.stderr


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
    assert main(_run_args(files, tmp_path / "out.png", model=str(out))) == 0
    _assert_inpainted(tmp_path / "out.png", files["image"])


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
