"""The web demo: the editor-value -> (image, mask) conversion, model discovery and caching, and the running app
driven through ``gradio_client`` as a program would (the browser test is ``test_demo_browser.py``).

The app is launched in-process on 127.0.0.1 (a free port) with a temporary checkpoints folder holding a tiny LaMa
and a deliberately broken checkpoint, an empty Hub cache, and a low pixel limit, so that every request takes a
fraction of a second on a CPU.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_model_contract import widen_init

from inpaint_hub import LamaConfig, LamaModel, PiiGANConfig, PiiGANModel
from inpaint_hub.demo import (
    DemoInputError,
    InpaintSettings,
    ModelCache,
    ModelChoice,
    ModelLoadError,
    default_selection,
    discover_models,
    editor_to_image_and_mask,
    run_models,
)
from inpaint_hub.image_processing import dilate_mask


REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_MAX_PIXELS = 128 * 128


# ------------------------------------------------------------------------------------------------- helpers


def _photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _rgba(rgb: np.ndarray, alpha: int | np.ndarray = 255) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    return out


def _layer(height: int, width: int, boxes: list[tuple[int, int, int, int]], value: int = 255) -> np.ndarray:
    """A transparent RGBA layer with opaque strokes (white by default) in the boxes (top, bottom, left, right)."""
    layer = np.zeros((height, width, 4), dtype=np.uint8)
    for top, bottom, left, right in boxes:
        layer[top:bottom, left:right, :3] = value
        layer[top:bottom, left:right, 3] = 255
    return layer


def _box_mask(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for top, bottom, left, right in boxes:
        mask[top:bottom, left:right] = True
    return mask


def _save_tiny_lama(folder: Path) -> Path:
    LamaModel(LamaConfig.tiny()).eval().save_pretrained(folder)
    return folder


def _save_tiny_piigan(folder: Path) -> Path:
    """A tiny PiiGAN whose samples differ visibly (its own Glorot init gives fills too flat to tell apart)."""
    widen_init(PiiGANModel(PiiGANConfig.tiny()), gain=0.8).eval().save_pretrained(folder)
    return folder


def _save_broken_lama(folder: Path) -> Path:
    """A checkpoint that discovery lists (its config is valid) but that cannot be loaded (corrupt weights)."""
    _save_tiny_lama(folder)
    (folder / "model.safetensors").write_bytes(b"this is not a safetensors file")
    return folder


# ------------------------------------------------------------------------------------------------- editor -> inputs


def test_editor_opaque_rgba_photo_becomes_rgb_and_layer_alpha_is_the_hole():
    rgb = _photo()
    layer = _layer(48, 64, [(5, 15, 10, 30)])
    layer[30:35, 40:50, 3] = 1  # a nearly invisible stroke is still a hole
    layer[40:44, 0:8] = (0, 0, 0, 255)  # so is a black one: strokes are found by alpha, not colour
    image, hole = editor_to_image_and_mask({"background": _rgba(rgb), "layers": [layer], "composite": None})
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, rgb)
    expected = _box_mask(48, 64, [(5, 15, 10, 30), (30, 35, 40, 50), (40, 44, 0, 8)])
    np.testing.assert_array_equal(hole, expected)


def test_editor_keeps_real_transparency_and_grayscale():
    rgba = _rgba(_photo(), alpha=np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)))
    layers = [_layer(48, 64, [(0, 4, 0, 4)])]
    image, _ = editor_to_image_and_mask({"background": rgba, "layers": layers})
    np.testing.assert_array_equal(image, rgba)

    gray = _photo()[..., 0]
    image, _ = editor_to_image_and_mask({"background": gray[..., None], "layers": layers})
    np.testing.assert_array_equal(image, gray)


def test_editor_union_of_layers_and_uploaded_mask(tmp_path):
    layers = [_layer(48, 64, [(0, 10, 0, 10)]), None, _layer(48, 64, [(20, 30, 20, 30)])]
    upload = np.zeros((48, 64), dtype=np.uint8)
    upload[40:48, 50:64] = 7  # any non-zero pixel of an uploaded mask is a hole
    path = tmp_path / "mask.png"
    Image.fromarray(upload).save(path)
    _, hole = editor_to_image_and_mask({"background": _photo(), "layers": layers}, str(path))
    np.testing.assert_array_equal(hole, _box_mask(48, 64, [(0, 10, 0, 10), (20, 30, 20, 30), (40, 48, 50, 64)]))

    # the uploaded mask alone is enough (an editor with a photo and no strokes)
    _, hole = editor_to_image_and_mask({"background": _photo(), "layers": []}, upload)
    np.testing.assert_array_equal(hole, upload != 0)


def test_editor_opaque_or_alpha_less_layers_are_read_by_colour():
    black_opaque = np.zeros((48, 64, 4), dtype=np.uint8)
    black_opaque[..., 3] = 255
    black_opaque[0:5, 0:5, :3] = 255
    rgb_layer = np.zeros((48, 64, 3), dtype=np.uint8)
    rgb_layer[10:12, 10:12, 1] = 9
    _, hole = editor_to_image_and_mask({"background": _photo(), "layers": [black_opaque, rgb_layer]})
    np.testing.assert_array_equal(hole, _box_mask(48, 64, [(0, 5, 0, 5), (10, 12, 10, 12)]))


def test_editor_layer_and_mask_of_another_size_are_scaled_to_the_photo():
    # a layer twice the photo's size: max-pooled, so a one-pixel stroke still marks its pixel
    big = np.zeros((96, 128, 4), dtype=np.uint8)
    big[21, 41] = 255
    big[60:80, 100:120] = 255
    # a mask half the photo's size: nearest neighbour, each pixel becomes a 2x2 block
    small = np.zeros((24, 32), dtype=np.uint8)
    small[2, 3] = 255
    _, hole = editor_to_image_and_mask({"background": _photo(), "layers": [big]}, small)
    np.testing.assert_array_equal(hole, _box_mask(48, 64, [(10, 11, 20, 21), (30, 40, 50, 60), (4, 6, 6, 8)]))


@pytest.mark.parametrize(
    "value",
    [None, {}, {"background": None, "layers": [], "composite": None}, {"background": None, "layers": ["x"]}],
    ids=["no-value", "empty-dict", "no-background", "strokes-without-photo"],
)
def test_editor_without_a_photo_is_refused(value):
    with pytest.raises(DemoInputError, match="No image: upload a photo"):
        editor_to_image_and_mask(value)


@pytest.mark.parametrize(
    "layers",
    [[], [None], [np.zeros((48, 64, 4), dtype=np.uint8)], [_layer(48, 64, [(0, 4, 0, 4)]) * 0]],
    ids=["no-layer", "none-layer", "transparent-layer", "erased-layer"],
)
def test_editor_empty_mask_is_refused(layers):
    with pytest.raises(DemoInputError, match="The mask is empty: paint over"):
        editor_to_image_and_mask({"background": _photo(), "layers": layers, "composite": None})


def test_editor_pixel_limit_and_bad_inputs_name_the_problem(tmp_path):
    value = {"background": _photo(), "layers": [_layer(48, 64, [(0, 4, 0, 4)])]}
    with pytest.raises(DemoInputError, match=r"64x48 = 3,072 pixels, over this demo's limit of 3,000"):
        editor_to_image_and_mask(value, max_pixels=3000)
    assert editor_to_image_and_mask(value, max_pixels=0)[1].sum() == 16  # 0 = no limit

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DemoInputError, match="cannot use the uploaded mask"):
        editor_to_image_and_mask(value, str(corrupt))
    with pytest.raises(DemoInputError, match="cannot read the photo"):
        editor_to_image_and_mask({"background": str(corrupt), "layers": []})
    with pytest.raises(DemoInputError, match="must be a dict"):
        editor_to_image_and_mask(_photo())
    with pytest.raises(DemoInputError, match="must be HxW, HxWx3 or HxWx4"):
        editor_to_image_and_mask({"background": np.zeros((0, 5, 3), dtype=np.uint8)})


def test_editor_accepts_files_and_pil_images(tmp_path):
    rgb = _photo()
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(_layer(48, 64, [(1, 3, 1, 3)])).save(tmp_path / "layer.png")
    for background in (str(tmp_path / "photo.png"), Image.fromarray(rgb)):
        image, hole = editor_to_image_and_mask({"background": background, "layers": [str(tmp_path / "layer.png")]})
        np.testing.assert_array_equal(image, rgb)
        np.testing.assert_array_equal(hole, _box_mask(48, 64, [(1, 3, 1, 3)]))


# ------------------------------------------------------------------------------------------------- settings


def test_settings_accept_gradio_numbers_and_refuse_nonsense():
    settings = InpaintSettings.from_values(resize_limit=640.0, seed=3.0, num_samples=None, hd_strategy="crop")
    assert (settings.resize_limit, settings.seed, settings.num_samples, settings.hd_strategy) == (640, 3, 1, "crop")
    with pytest.raises(DemoInputError, match="unknown HD strategy 'zoom'"):
        InpaintSettings(hd_strategy="zoom")
    with pytest.raises(DemoInputError, match="seed must be an integer, got 1.5"):
        InpaintSettings(seed=1.5)
    with pytest.raises(DemoInputError, match="num_samples must be between 1 and 16, got 0"):
        InpaintSettings(num_samples=0)
    with pytest.raises(DemoInputError, match="mask_dilate must be between 0 and 1024, got -1"):
        InpaintSettings(mask_dilate=-1)


# ------------------------------------------------------------------------------------------------- models


def test_discover_models_and_default_selection(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    tiny = _save_tiny_lama(checkpoints / "tiny-lama")
    empty_cache = tmp_path / "hub"
    choices = discover_models(checkpoints, [str(tiny), "cv2-ns", "/no/such/model"], cache_dir=empty_cache)
    assert [(c.key, c.source) for c in choices] == [
        ("tiny-lama", "bundled"),  # --model naming it again adds nothing
        ("cv2-ns", "command-line"),  # a built-in named on the command line is ticked
        ("/no/such/model", "command-line"),  # listed as given; only checked when first used
        ("cv2-telea", "builtin"),
    ]
    assert choices[0].name == str(tiny)
    assert default_selection(choices) == ["tiny-lama", "cv2-ns", "/no/such/model", "cv2-telea"]

    # an empty checkpoints folder still gives a working demo: the baselines, cv2-telea ticked
    (tmp_path / "empty").mkdir()
    choices = discover_models(tmp_path / "empty", cache_dir=empty_cache)
    assert [c.key for c in choices] == ["cv2-telea", "cv2-ns"]
    assert default_selection(choices) == ["cv2-telea"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_models(tmp_path / "missing", cache_dir=empty_cache)


def test_model_cache_loads_once_across_threads_and_reports_broken_models(tmp_path, monkeypatch):
    from inpaint_hub import modeling_utils

    tiny = ModelChoice(key="tiny", name=str(_save_tiny_lama(tmp_path / "tiny")), source="bundled")
    calls = []
    original = modeling_utils.AutoInpaintModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(modeling_utils.AutoInpaintModel, "from_pretrained", classmethod(counting))
    cache = ModelCache("cpu")
    start = threading.Barrier(6)

    def get(_):
        start.wait()
        return cache.get(tiny)

    with ThreadPoolExecutor(6) as pool:
        pipelines = list(pool.map(get, range(6)))
    assert len(calls) == 1 and all(p is pipelines[0] for p in pipelines)

    broken = ModelChoice(key="broken", name=str(_save_broken_lama(tmp_path / "broken")), source="bundled")
    for _ in range(2):  # a failed load is not cached: it is retried (and fails again) on the next request
        with pytest.raises(ModelLoadError, match="cannot load model 'broken'"):
            cache.get(broken)
    assert broken not in cache and tiny in cache


def test_run_models_keeps_going_past_a_failing_model(tmp_path):
    rgb = _photo()
    hole = _box_mask(48, 64, [(10, 20, 10, 30)])
    choices = [
        ModelChoice(key="broken", name=str(_save_broken_lama(tmp_path / "broken")), source="bundled"),
        ModelChoice(key="cv2-telea", name="cv2-telea", source="builtin"),
    ]
    steps = []
    results = run_models(
        rgb, hole, choices, ModelCache("cpu"), InpaintSettings(num_samples=3), lambda *a: steps.append(a)
    )
    assert [r.ok for r in results] == [False, True]
    assert "ModelLoadError: cannot load model 'broken'" in results[0].error and results[0].images == []
    assert len(results[1].images) == 1  # a deterministic model gives one result whatever num_samples says
    out = np.asarray(results[1].images[0])
    np.testing.assert_array_equal(out[~hole], rgb[~hole])
    assert [s[:2] for s in steps] == [(0, 2), (1, 2), (2, 2)]


# ------------------------------------------------------------------------------------------------- the running app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(
    args: list[str], log_path: Path, *, timeout: float = 300.0, env: dict[str, str] | None = None
) -> Iterator[tuple[str, float]]:
    """Run ``python app.py ARGS --port <free>`` as a person would, offline; yield ``(url, seconds to serve)``.

    ``env`` is added to the environment (``HF_HUB_OFFLINE=1`` and ``GRADIO_ANALYTICS_ENABLED=False`` always are). The
    process is stopped (by its own pid) on exit; its output is in ``log_path``.
    """
    port = _free_port()
    env = dict(os.environ, **(env or {}), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "app.py"), *args, "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with code {process.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.perf_counter() - start > timeout:
                pytest.fail(f"app.py did not serve {url} within {timeout} s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.25)
        yield url, time.perf_counter() - start
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_python_app_py_serves_offline_on_localhost(tmp_path):
    """``python app.py`` starts, offline, on 127.0.0.1, offering the bundled checkpoints and the baselines."""
    pytest.importorskip("gradio")
    _save_tiny_lama(tmp_path / "checkpoints" / "tiny-lama")
    args = ["--checkpoints-dir", str(tmp_path / "checkpoints")]
    with serve_app(args, tmp_path / "app.log", env={"HF_HUB_CACHE": str(tmp_path / "hub")}) as (url, seconds):
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = json.loads(response.read())
    # The target is 15 s (about 7 s on a 2-core machine); not asserted, as a busy or niced test machine can be slower.
    print(f"python app.py served {url} after {seconds:.1f} s")
    boxes = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "models"]
    assert [choice[1] for choice in boxes[0]["choices"]] == ["tiny-lama", "cv2-telea", "cv2-ns"]
    assert boxes[0]["value"] == ["tiny-lama", "cv2-telea"]
    endpoints = {d.get("api_name") for d in config["dependencies"]}
    assert {"inpaint", "compare"} <= endpoints


def _load_app_module():
    spec = importlib.util.spec_from_file_location("inpaint_hub_app", REPO_ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo served in-process on 127.0.0.1 with tiny models; yields ``(client, folder of test files)``."""
    pytest.importorskip("gradio")
    from gradio_client import Client

    root = tmp_path_factory.mktemp("demo")
    checkpoints = root / "checkpoints"
    _save_tiny_lama(checkpoints / "tiny-lama")
    _save_tiny_piigan(checkpoints / "tiny-piigan")
    _save_broken_lama(checkpoints / "broken-lama")
    previous = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(root / "empty-hub-cache")  # nothing from this machine's real cache
    try:
        app = _load_app_module()
        demo = app.build_demo(
            checkpoints_dir=checkpoints,
            max_pixels=SERVER_MAX_PIXELS,
            device="cpu",
            queue_size=32,
            concurrency=2,
            output_dir=root / "outputs",
        )
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = previous
    demo.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        show_error=True,
        max_file_size="2mb",
        quiet=True,
    )
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(root / "downloads"))
        yield client, root
    finally:
        demo.close()


SETTINGS = ("original", 1280, 800, 128, 0, 0, 1)  # HD strategy, resize, crop trigger, crop margin, dilate, seed, n


def _editor_value(folder: Path, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]], name: str = "photo"):
    from gradio_client import handle_file

    photo, layer = folder / f"{name}.png", folder / f"{name}_layer.png"
    Image.fromarray(rgb).save(photo)
    Image.fromarray(_layer(*rgb.shape[:2], boxes)).save(layer)
    return {"background": handle_file(str(photo)), "layers": [handle_file(str(layer))], "composite": None}


def _inpaint(client, editor, models, *, mask=None, settings=SETTINGS):
    return client.predict(editor, mask, models, *settings, api_name="/inpaint")


def test_client_one_result_per_model_with_known_pixels_unchanged(served):
    client, folder = served
    rgb = _photo(40, 56, seed=1)
    boxes = [(8, 20, 10, 30), (30, 36, 40, 50)]
    hole = _box_mask(40, 56, boxes)
    models = ["tiny-lama", "cv2-telea", "cv2-ns"]
    gallery, mask, before_after, compare, files, status, *_ = _inpaint(
        client, _editor_value(folder, rgb, boxes), models
    )

    assert [item["caption"].split(" · ")[0] for item in gallery] == models
    assert all(item["caption"].endswith(" s") for item in gallery)  # "<model> · 0.12 s"
    for item in gallery:
        assert item["image"].endswith(".png")
        with Image.open(item["image"]) as result:
            assert result.format == "PNG" and result.mode == "RGB"
            out = np.asarray(result)
        np.testing.assert_array_equal(out[~hole], rgb[~hole])  # bit-identical outside the hole
        assert (out[hole] != rgb[hole]).any()
    np.testing.assert_array_equal(np.asarray(Image.open(mask)) > 0, hole)
    np.testing.assert_array_equal(np.asarray(Image.open(before_after[0])), rgb)
    assert compare["choices"] == [[m, m] for m in models] and compare["value"] == "tiny-lama"
    assert sorted(Path(f).name for f in files) == ["cv2-ns.png", "cv2-telea.png", "mask.png", "tiny-lama.png"]
    assert status.startswith("3 of 3 model(s) ran on a 56x40 photo, 300 hole pixels")

    after = client.predict("cv2-ns", api_name="/compare")
    np.testing.assert_array_equal(np.asarray(Image.open(after[1])), np.asarray(Image.open(gallery[2]["image"])))


def test_client_three_samples_for_piigan_one_for_each_other_model(served):
    client, folder = served
    rgb = _photo(40, 56, seed=4)
    boxes = [(8, 16, 24, 40)]
    hole = _box_mask(40, 56, boxes)
    settings = SETTINGS[:-2] + (21, 3)  # seed 21, 3 samples
    gallery, _, _, compare, files, status, *_ = _inpaint(
        client,
        _editor_value(folder, rgb, boxes, name="samples"),
        ["tiny-piigan", "tiny-lama", "cv2-telea"],
        settings=settings,
    )
    captions = [item["caption"] for item in gallery]
    assert [c.split(" · ")[0] for c in captions] == ["tiny-piigan"] * 3 + ["tiny-lama", "cv2-telea"]
    for k, caption in enumerate(captions[:3]):
        assert caption.endswith(f"sample {k + 1} (seed {21 + k})")
    assert "sample" not in captions[3] and "sample" not in captions[4]
    samples = [np.asarray(Image.open(item["image"])).astype(int) for item in gallery[:3]]
    for i, sample in enumerate(samples):
        np.testing.assert_array_equal(sample[~hole], rgb[~hole])
        for other in samples[i + 1 :]:
            assert np.abs(sample[hole] - other[hole]).mean() > 2
    assert [c[0] for c in compare["choices"]] == [
        "tiny-piigan #1",
        "tiny-piigan #2",
        "tiny-piigan #3",
        "tiny-lama",
        "cv2-telea",
    ]
    assert len(files) == 6 and status.startswith("3 of 3 model(s)")


def test_client_uploaded_mask_and_dilation(served):
    client, folder = served
    rgb = _photo(32, 32, seed=2)
    upload = np.zeros((16, 16), dtype=np.uint8)  # half size: scaled to the photo
    upload[4:6, 4:6] = 1
    Image.fromarray(upload).save(folder / "upload.png")
    from gradio_client import handle_file

    settings = ("original", 1280, 800, 128, 2, 0, 1)
    gallery, mask, *_ = _inpaint(
        client,
        _editor_value(folder, rgb, [(20, 24, 20, 24)], name="dilate"),
        ["cv2-telea"],
        mask=handle_file(str(folder / "upload.png")),
        settings=settings,
    )
    hole = dilate_mask(_box_mask(32, 32, [(20, 24, 20, 24), (8, 12, 8, 12)]), 2)
    np.testing.assert_array_equal(np.asarray(Image.open(mask)) > 0, hole)
    out = np.asarray(Image.open(gallery[0]["image"]))
    np.testing.assert_array_equal(out[~hole], rgb[~hole])


def test_client_errors_name_the_problem(served):
    from gradio_client.exceptions import AppError

    client, folder = served
    rgb = _photo(24, 24, seed=3)
    good = _editor_value(folder, rgb, [(2, 8, 2, 8)], name="errors")
    cases = [
        ({"background": None, "layers": [], "composite": None}, ["cv2-telea"], "No image: upload a photo"),
        (_editor_value(folder, rgb, [], name="no-strokes"), ["cv2-telea"], "The mask is empty: paint over"),
        (
            _editor_value(folder, _photo(100, 200), [(0, 5, 0, 5)], name="big"),
            ["cv2-telea"],
            "The image is 200x100 = 20,000 pixels, over this demo's limit of 16,384 pixels",
        ),
        (good, [], "No model selected"),
        (good, ["broken-lama"], "Every selected model failed: broken-lama: ModelLoadError: cannot load model"),
    ]
    for editor, models, message in cases:
        with pytest.raises(AppError, match=message):
            _inpaint(client, editor, models)


def test_client_failing_model_does_not_hide_the_others(served):
    client, folder = served
    rgb = _photo(24, 24, seed=4)
    gallery, *_, status = _inpaint(
        client, _editor_value(folder, rgb, [(2, 8, 2, 8)], name="partial"), ["broken-lama", "cv2-telea"]
    )
    assert [item["caption"].split(" · ")[0] for item in gallery] == ["cv2-telea"]
    assert status.startswith("1 of 2 model(s) ran")
    assert "**broken-lama failed**: ModelLoadError: cannot load model 'broken-lama'" in status


def test_client_ten_concurrent_requests_all_complete(served):
    client, folder = served
    photos = [_photo(24, 32, seed=100 + i) for i in range(10)]
    box = [(4, 12, 6, 20)]
    hole = _box_mask(24, 32, box)
    jobs = [
        client.submit(
            _editor_value(folder, rgb, box, name=f"concurrent{i}"), None, ["cv2-telea"], *SETTINGS, api_name="/inpaint"
        )
        for i, rgb in enumerate(photos)
    ]
    for rgb, job in zip(photos, jobs):
        gallery = job.result(timeout=300)[0]
        assert len(gallery) == 1
        out = np.asarray(Image.open(gallery[0]["image"]))
        np.testing.assert_array_equal(out[~hole], rgb[~hole])  # each answer belongs to its own request


def test_client_server_survives_a_corrupt_image(served):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, folder = served
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    layer = folder / "corrupt_layer.png"
    Image.fromarray(_layer(24, 24, [(0, 4, 0, 4)])).save(layer)
    with pytest.raises(AppError):
        _inpaint(client, {"background": handle_file(str(corrupt)), "layers": [handle_file(str(layer))]}, ["cv2-telea"])
    with pytest.raises(AppError):  # a corrupt layer fails in Gradio's own decoding, before the demo sees it
        _inpaint(
            client,
            {"background": handle_file(str(layer)), "layers": [handle_file(str(corrupt))]},
            ["cv2-telea"],
        )
    rgb = _photo(24, 24, seed=5)
    gallery = _inpaint(client, _editor_value(folder, rgb, [(2, 8, 2, 8)], name="after-corrupt"), ["cv2-telea"])[0]
    assert len(gallery) == 1
