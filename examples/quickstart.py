"""Run the library end to end on the bundled example photo: load a model, inpaint, save a side-by-side picture.

    python examples/quickstart.py                          # untrained LaMa: shows the plumbing, not the quality
    python examples/quickstart.py --model converted/big-lama   # a converted checkpoint (README: "Original weights")
    python examples/quickstart.py --model ORG/lama-big         # or any Hub repository

Without ``--model`` there are no trained weights to use (nothing is downloaded), so the script builds a LaMa with
random weights and says so: the hole is filled with noise, but every step a real run takes (file loading, mask
handling, padding, the model, compositing, saving) runs for real. Writes ``outputs/quickstart.png``:
photo | mask | result.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image, ImageOps

from inpaint_hub import AutoInpaintModel, InpaintPipeline, LamaConfig, LamaModel


HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="folder written by save_pretrained or a Hub repo id (default: untrained LaMa)")
    parser.add_argument("--image", default=str(HERE / "images" / "tiger.jpg"))
    parser.add_argument("--mask", default=str(HERE / "images" / "tiger_mask.png"))
    parser.add_argument("--output", default="outputs/quickstart.png")
    args = parser.parse_args()

    if args.model:
        model = AutoInpaintModel.from_pretrained(args.model)
        print(f"weights: {args.model} ({type(model).__name__}, {model.num_parameters():,} parameters)")
    else:
        torch.manual_seed(0)
        model = LamaModel(LamaConfig.lama_fourier()).eval()
        print(
            "weights: NONE -- an untrained lama-fourier LaMa with random weights (27,048,835 parameters).\n"
            "         The fill will be noise. For real results convert the authors' big-lama checkpoint\n"
            "         (README, 'Original weights') and pass --model converted/big-lama."
        )

    pipe = InpaintPipeline(model)
    start = time.perf_counter()
    result = pipe(image=args.image, mask_image=args.mask).image
    print(f"inpainted {result.size[0]}x{result.size[1]} in {time.perf_counter() - start:.2f} s")

    photo = ImageOps.exif_transpose(Image.open(args.image)).convert("RGB")
    mask = Image.open(args.mask).convert("RGB")
    sheet = Image.new("RGB", (photo.width * 3, photo.height), "white")
    for i, panel in enumerate([photo, mask, result.convert("RGB")]):
        sheet.paste(panel, (i * photo.width, 0))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    result.save(output.with_name(output.stem + "_result.png"))
    print(f"wrote {output} (photo | mask | result) and {output.with_name(output.stem + '_result.png')}")


if __name__ == "__main__":
    main()
