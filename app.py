"""inpaint-hub web demo: upload a photo, paint over what should disappear, compare models side by side.

Run::

    python app.py                                   # http://127.0.0.1:7860, bundled checkpoints + OpenCV baselines
    python app.py --model converted/big-lama        # add any folder / cached Hub repo id to the model list
    python app.py --host 0.0.0.0 --port 8080        # serve on the network; --share for a temporary public link

Everything runs offline: models come from ``checkpoints/`` (bundled), the local Hugging Face Hub cache and
``--model`` arguments, and are loaded the first time they are used, then kept. Every action is also an API
endpoint; with ``gradio_client``::

    from gradio_client import Client, handle_file

    client = Client("http://127.0.0.1:7860/")
    gallery, mask, before_after, compare, files, status = client.predict(
        {"background": handle_file("photo.jpg"), "layers": [handle_file("strokes.png")], "composite": None},
        None,                      # optional mask file (any non-zero pixel = hole)
        ["cv2-telea", "cv2-ns"],   # models
        "original", 1280, 800, 128,   # HD strategy, resize limit, crop trigger, crop margin
        0, 0, 1,                      # mask dilation, seed, samples per model
        api_name="/inpaint",
    )

The mask is the union of the painted layers (their alpha: any stroke, whatever its colour) and the uploaded mask
(any non-zero pixel); giving both adds them up, so a mask file can be touched up with the brush.
"""

from __future__ import annotations

import os


# Before gradio is imported: no usage statistics, no version check, and huggingface_hub never goes online.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import atexit  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from inpaint_hub.demo import (  # noqa: E402
    DEFAULT_DEMO_MAX_PIXELS,
    MAX_NUM_SAMPLES,
    DemoInputError,
    InpaintSettings,
    ModelCache,
    ModelChoice,
    default_selection,
    discover_models,
    editor_to_image_and_mask,
    effective_mask,
    run_models,
)
from inpaint_hub.modeling_utils import BUILTIN_MODELS  # noqa: E402
from inpaint_hub.pipeline import HD_STRATEGIES  # noqa: E402


logger = logging.getLogger("inpaint_hub.app")

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples" / "demo"
EXAMPLES = (  # (photo, pre-drawn mask layer, label); all 768x512, credits in examples/demo/ATTRIBUTION.md
    ("washington_monument.jpg", "washington_monument_mask.png", "Remove the monument and its reflection"),
    ("navy_boats.jpg", "navy_boats_mask.png", "Remove the patrol boat"),
    ("orange_branch.jpg", "orange_branch_mask.png", "Remove the fruit"),
)
EXAMPLE_SIZE = (768, 512)
"""The examples' size, given to the editor as its ``canvas_size``: Gradio 6.31 places a layer loaded from a value
(an example's mask) centred on a canvas of that size, so any other size shows the strokes shifted in the editor
(what the server receives is right either way)."""
RESULTS_MAX_AGE_S = 3600
"""Result files of a request are deleted (at the next request) once they are this old."""


DESCRIPTION = """\
# inpaint-hub: compare inpainting models side by side

1. Upload a photo into the editor. 2. Paint with the white brush over what should disappear (or upload a mask:
white / any non-zero pixel = hole; strokes and mask file add up). 3. Tick the models and click **Inpaint**.
Every model's result appears below with its wall time; pick one to compare before/after.
"""


class DemoApp:
    """The demo's state (model list, model cache, result files) and its event handlers.

    Args:
        choices: the models offered (:func:`~inpaint_hub.demo.discover_models`).
        max_pixels: photos with more pixels are refused (0 = no limit).
        device: where models run (``None``: CUDA when available, else CPU).
        output_dir: where result PNGs are written (one sub-folder per request; old ones are pruned). ``None``: a
            fresh temporary folder.
    """

    def __init__(
        self,
        choices: Sequence[ModelChoice],
        *,
        max_pixels: int = DEFAULT_DEMO_MAX_PIXELS,
        device: str | None = None,
        output_dir: str | os.PathLike | None = None,
    ) -> None:
        self.choices = {choice.key: choice for choice in choices}
        self.max_pixels = max_pixels
        self.cache = ModelCache(device)
        if output_dir is None:
            output_dir = tempfile.mkdtemp(prefix="inpaint-hub-demo-")
            atexit.register(shutil.rmtree, output_dir, ignore_errors=True)
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._prune_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- handlers

    def inpaint(
        self,
        editor: dict[str, Any] | None,
        mask_upload: str | None,
        models: list[str] | None,
        hd_strategy: str,
        resize_limit: float,
        crop_trigger_size: float,
        crop_margin: float,
        mask_dilate: float,
        seed: float,
        num_samples: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects the tracker through this default
    ) -> tuple[Any, ...]:
        """Run every selected model on the photo. Returns the gallery, the mask, the before/after pair, the
        compare-dropdown update, the files to download, a status line and the session's results."""
        try:
            image, hole = editor_to_image_and_mask(editor, mask_upload, max_pixels=self.max_pixels)
            settings = InpaintSettings.from_values(
                hd_strategy=hd_strategy,
                resize_limit=resize_limit,
                crop_trigger_size=crop_trigger_size,
                crop_margin=crop_margin,
                mask_dilate=mask_dilate,
                seed=seed,
                num_samples=num_samples,
            )
        except DemoInputError as err:
            raise gr.Error(str(err), print_exception=False) from err
        selected = self._selected(models)

        def report(index: int, total: int, message: str) -> None:
            desc = "Done" if index == total else f"Model {index + 1}/{total}: {message}"
            progress((index, total), desc=desc, unit="models")

        results = run_models(image, hole, selected, self.cache, settings, progress=report)
        failed = [r for r in results if not r.ok]
        if len(failed) == len(results):
            raise gr.Error(
                "Every selected model failed: " + "; ".join(f"{r.choice.key}: {r.error}" for r in failed),
                print_exception=False,
            )
        for result in failed:
            gr.Warning(f"{result.choice.key} failed: {result.error}")

        folder = self._request_folder()
        before = folder / "input.png"
        Image.fromarray(image).save(before)
        mask_path = folder / "mask.png"
        effective_mask(hole, settings.mask_dilate).save(mask_path)
        gallery, files, compare = [], [], {}
        used_names = {"input", "mask"}
        for result in results:
            for index, (result_image, sample_seed) in enumerate(zip(result.images, result.seeds)):
                several = len(result.images) > 1
                label = f"{result.choice.key} #{index + 1}" if several else result.choice.key
                path = folder / f"{_unique(_slug(label), used_names)}.png"
                result_image.save(path)
                caption = f"{result.choice.key} · {result.seconds:.2f} s"
                if several:
                    caption += f" · sample {index + 1} (seed {sample_seed})"
                gallery.append((str(path), caption))
                files.append(str(path))
                compare[label] = str(path)
        files.append(str(mask_path))

        ok = [r for r in results if r.ok]
        status = f"{len(ok)} of {len(results)} model(s) ran on a {image.shape[1]}x{image.shape[0]} photo, "
        status += f"{int(hole.sum()):,} hole pixels: " + ", ".join(f"{r.choice.key} {r.seconds:.2f} s" for r in ok)
        status += "".join(f"\n\n**{r.choice.key} failed**: {r.error}" for r in failed)
        first = next(iter(compare))
        state = {"before": str(before), "results": compare}
        return (
            gallery,
            str(mask_path),
            (str(before), compare[first]),
            gr.Dropdown(choices=list(compare), value=first),
            files,
            status,
            state,
        )

    def compare(self, label: str | None, state: dict[str, Any] | None) -> tuple[str, str]:
        """The (before, after) pair for the result called ``label`` of this session's last run."""
        if not state or not state.get("results"):
            raise gr.Error("Nothing to compare yet: click Inpaint first.", print_exception=False)
        results = state["results"]
        if label not in results:
            raise gr.Error(f"No result called {label!r}; choose one of {', '.join(results)}.", print_exception=False)
        return state["before"], results[label]

    # ------------------------------------------------------------------------------------------- helpers

    def _selected(self, models: list[str] | None) -> list[ModelChoice]:
        if isinstance(models, str):
            models = [models]
        if not models:
            raise gr.Error("No model selected: tick at least one model.", print_exception=False)
        unknown = [key for key in models if key not in self.choices]
        if unknown:
            raise gr.Error(
                f"Unknown model(s) {', '.join(map(repr, unknown))}; available: {', '.join(self.choices)}.",
                print_exception=False,
            )
        return [self.choices[key] for key in dict.fromkeys(models)]

    def _request_folder(self) -> Path:
        """A new folder for this request's files, after deleting the folders of requests older than an hour."""
        with self._prune_lock:
            limit = time.time() - RESULTS_MAX_AGE_S
            for old in self.output_dir.iterdir():
                try:
                    if old.is_dir() and old.stat().st_mtime < limit:
                        shutil.rmtree(old, ignore_errors=True)
                except OSError:
                    pass
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.output_dir))


def _label(choice: ModelChoice) -> str:
    """What the model list shows: the key, and where the model comes from when that is not obvious."""
    if choice.source == "hub-cache":
        return f"{choice.key} (Hub cache)"
    if BUILTIN_MODELS.get(choice.name, ("",))[0] == "opencv" and not Path(choice.name).is_dir():
        return f"{choice.key} (OpenCV baseline)"
    return choice.key


def _slug(text: str) -> str:
    """A file-name-safe version of a model key (``org/lama-big #2`` -> ``org--lama-big_2``)."""
    text = text.replace("/", "--").replace(" #", "_")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "result"


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... if taken; the result is added to ``used``."""
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{name}-{number}"
    used.add(candidate)
    return candidate


def build_demo(
    *,
    checkpoints_dir: str | os.PathLike | None = None,
    models: Sequence[str] = (),
    max_pixels: int = DEFAULT_DEMO_MAX_PIXELS,
    device: str | None = None,
    queue_size: int = 16,
    concurrency: int = 1,
    output_dir: str | os.PathLike | None = None,
) -> gr.Blocks:
    """Build the Gradio app (queue configured, not launched).

    Args:
        checkpoints_dir: bundled checkpoints folder (``None``: ``./checkpoints`` and the checkout's ``checkpoints/``,
            either may be missing or empty).
        models: extra models (folders, cached Hub repo ids, built-in names), as ``--model`` gives them.
        max_pixels: photos with more pixels are refused (0 = no limit).
        device: where models run (``None``: CUDA when available, else CPU).
        queue_size: requests that may wait in the queue; more are turned away with a "queue is full" message.
        concurrency: requests processed at the same time.
        output_dir: where result files go (``None``: a temporary folder).

    Returns:
        The ``gr.Blocks`` app; ``demo.launch(...)`` serves it.
    """
    choices = discover_models(checkpoints_dir, models)
    app = DemoApp(choices, max_pixels=max_pixels, device=device, output_dir=output_dir)
    selection = default_selection(choices)
    logger.info("models offered: %s (ticked: %s)", ", ".join(app.choices), ", ".join(selection))

    with gr.Blocks(title="inpaint-hub demo", delete_cache=(RESULTS_MAX_AGE_S, RESULTS_MAX_AGE_S)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):  # the editor alone in its column, or its canvas gets the wrong size
                editor = gr.ImageEditor(
                    label="Photo: paint over what should disappear",
                    type="numpy",
                    image_mode="RGBA",
                    sources=("upload", "clipboard"),
                    transforms=(),
                    brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed"),
                    eraser=gr.Eraser(),
                    layers=gr.LayerOptions(allow_additional_layers=True),
                    format="png",
                    elem_id="editor",
                    canvas_size=EXAMPLE_SIZE,
                )
            with gr.Column(scale=2):
                mask_upload = gr.Image(
                    label="Mask (optional): any image, non-zero = hole; added to the strokes",
                    type="filepath",
                    image_mode=None,
                    sources=("upload", "clipboard"),
                    format="png",
                    height=200,
                    elem_id="mask-upload",
                )
                model_box = gr.CheckboxGroup(
                    choices=[(_label(c), c.key) for c in choices],
                    value=selection,
                    label="Models",
                    elem_id="models",
                )
                with gr.Accordion("Settings", open=False):
                    hd_strategy = gr.Radio(
                        list(HD_STRATEGIES),
                        value="original",
                        label="HD strategy",
                        info="original: whole photo; resize: downscale if the longer side exceeds the limit; "
                        "crop: one crop per hole region if the longer side exceeds the trigger",
                    )
                    with gr.Row():
                        resize_limit = gr.Number(1280, label="Resize limit (px)", precision=0, minimum=1)
                        crop_trigger = gr.Number(800, label="Crop trigger (px)", precision=0, minimum=1)
                        crop_margin = gr.Number(128, label="Crop margin (px)", precision=0, minimum=0)
                    mask_dilate = gr.Slider(0, 64, value=0, step=1, label="Mask dilation (px)")
                    with gr.Row():
                        seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                        num_samples = gr.Slider(
                            1,
                            MAX_NUM_SAMPLES,
                            value=1,
                            step=1,
                            label="Samples per model",
                            info="for models that give several results (PiiGAN); others give one",
                        )
                run = gr.Button("Inpaint", variant="primary", elem_id="inpaint")
                status = gr.Markdown(label="Status", elem_id="status")
        if all((EXAMPLES_DIR / photo).is_file() and (EXAMPLES_DIR / mask).is_file() for photo, mask, _ in EXAMPLES):
            gr.Examples(
                examples=[
                    [{"background": str(EXAMPLES_DIR / p), "layers": [str(EXAMPLES_DIR / m)], "composite": None}]
                    for p, m, _ in EXAMPLES
                ],
                inputs=[editor],
                example_labels=[label for _, _, label in EXAMPLES],
                label="Examples (mask already painted)",
            )
        gallery = gr.Gallery(
            label="Results", columns=4, height="auto", object_fit="contain", format="png", elem_id="results"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                compare = gr.Dropdown(
                    choices=[], label="Compare before / after", allow_custom_value=True, elem_id="compare"
                )
                slider = gr.ImageSlider(label="Before / after", type="filepath", format="png", elem_id="slider")
            with gr.Column(scale=2):
                mask_view = gr.Image(label="Mask used (white = hole)", format="png", elem_id="mask-used")
                files = gr.File(label="Download (PNG)", file_count="multiple", elem_id="downloads")
        session = gr.State({})

        run.click(
            app.inpaint,
            inputs=[
                editor,
                mask_upload,
                model_box,
                hd_strategy,
                resize_limit,
                crop_trigger,
                crop_margin,
                mask_dilate,
                seed,
                num_samples,
            ],
            outputs=[gallery, mask_view, slider, compare, files, status, session],
            api_name="inpaint",
        )
        compare.input(app.compare, inputs=[compare, session], outputs=[slider], api_name="compare")
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="inpaint-hub web demo: paint a mask, compare inpainting models side by side (offline)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s; 0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also create a temporary public gradio.live link")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="add a model: a save_pretrained folder, a Hub repo id already in the local cache, or a built-in "
        "(repeatable); ticked at start",
    )
    parser.add_argument(
        "--checkpoints-dir",
        default=None,
        help="folder of bundled checkpoints (default: ./checkpoints and the checkout's checkpoints/)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_DEMO_MAX_PIXELS,
        help="refuse photos with more pixels than this (default: %(default)s = 4096x4096; 0 = no limit)",
    )
    parser.add_argument("--max-file-size", default="50mb", help="largest upload accepted (default: %(default)s)")
    parser.add_argument("--queue-size", type=int, default=16, help="requests that may wait (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests run at once (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when available)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_pixels < 0 or args.queue_size < 1 or args.concurrency < 1:
        build_parser().error("--max-pixels must be >= 0, --queue-size and --concurrency >= 1")
    try:
        demo = build_demo(
            checkpoints_dir=args.checkpoints_dir,
            models=args.model,
            max_pixels=args.max_pixels,
            device=args.device,
            queue_size=args.queue_size,
            concurrency=args.concurrency,
        )
    except FileNotFoundError as err:
        build_parser().error(str(err))
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
        show_error=True,
    )


if __name__ == "__main__":
    main()
