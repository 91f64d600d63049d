"""Run the library end to end on the bundled example photo: load a model, inpaint, save a side-by-side picture.

    python examples/quickstart.py                              # the bundled checkpoints/lama-small-bsds
    python examples/quickstart.py --model converted/big-lama   # a converted checkpoint (README: "Original weights")
    python examples/quickstart.py --model ORG/lama-big         # or any Hub repository
    python examples/quickstart.py --model cv2-telea            # OpenCV's classical inpainting, for comparison

Without ``--model`` the script uses the small LaMa that ships with the repository (``checkpoints/lama-small-bsds``,
2.3 M parameters trained on a CPU; its card is ``checkpoints/lama-small-bsds/README.md``). Nothing is downloaded.
Should that folder be missing (a partial copy of the repository), it falls back to a LaMa with random weights and
says so: the hole is then filled with noise, but every step a real run takes still runs. Writes
``outputs/quickstart.png``: photo | mask | result.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image, ImageOps

from inpaint_hub import AutoInpaintModel, InpaintPipeline, LamaConfig, LamaModel


HERE = Path(__file__).resolve().parent
BUNDLED = HERE.parent / "checkpoints" / "lama-small-bsds"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", help="folder written by save_pretrained, a Hub repo id or cv2-telea (default: the bundled LaMa)"
    )
    parser.add_argument("--image", default=str(HERE / "images" / "tiger.jpg"))
    parser.add_argument("--mask", default=str(HERE / "images" / "tiger_mask.png"))
    parser.add_argument("--output", default="outputs/quickstart.png")
    args = parser.parse_args()

    source = args.model or (str(BUNDLED) if (BUNDLED / "config.json").is_file() else None)
    if source:
        model = AutoInpaintModel.from_pretrained(source)
        print(f"weights: {source} ({type(model).__name__}, {model.num_parameters():,} parameters)")
    else:
        torch.manual_seed(0)
        model = LamaModel(LamaConfig.lama_fourier()).eval()
        print(
            f"weights: NONE -- {BUNDLED} is missing, so this is an untrained lama-fourier LaMa with random\n"
            "         weights (27,048,835 parameters) and the fill will be noise. Restore that folder from the\n"
            "         repository, or convert the authors' big-lama checkpoint (README, 'Original weights')."
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
