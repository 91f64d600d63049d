"""Measure how closely the converted LaMa reproduces the original code's outputs (the golden vectors).

    python benchmarks/lama_golden_parity.py [--golden ../shared/official/golden]

Rebuilds the original-format lama-fourier release from the golden fixture (both the bare ``best.ckpt`` and the
Lightning-style ``best_with_hparams.ckpt``), converts each with the documented converter, runs the converted model
with the library's own padding, and prints max / mean |difference| against what the original ``bin/predict.py``
computed, next to the fixture's tolerance. Takes about 15 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import torch

from inpaint_hub import AutoInpaintModel
from inpaint_hub.image_processing import pad_to_multiple, unpad
from inpaint_hub.models.lama.convert_lama_original import convert


MODEL = "lama_lama-fourier"


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"golden_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "official" / "golden"
    parser.add_argument("--golden", type=Path, default=default, help="the golden fixture folder")
    args = parser.parse_args()
    regen, check = _module(args.golden / "regen.py"), _module(args.golden / "check_parity.py")
    tolerance = check.manifest()["models"][MODEL]["tolerance"]

    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads; tolerance max {tolerance['max_abs']:g} / mean {tolerance['mean_abs']:g}\n"
    )
    print("| checkpoint | case | key | max abs | mean abs | pass |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        regen.regenerate(tmp, [MODEL], log=lambda *_: None)
        release = Path(tmp) / "lama-fourier"
        for name in ("best.ckpt", "best_with_hparams.ckpt"):
            out = Path(tmp) / f"converted-{name}"
            convert(release / "models" / name, release / "config.yaml", out)
            model = AutoInpaintModel.from_pretrained(out)
            for case in check.manifest()["models"][MODEL]["cases"]:
                image, mask, _ = check.load_case(MODEL, case)
                padded, size = pad_to_multiple(image, model.size_multiple, mode=model.pad_mode)
                padded_mask, _ = pad_to_multiple(mask, model.size_multiple, mode=model.pad_mode)
                with torch.no_grad():
                    output = model(padded, (padded_mask > 0).float())
                candidate = {
                    "inpainted": unpad(output.inpainted, size),
                    "predicted_image": unpad(output.predicted, size),
                }
                report = check.compare(MODEL, case, candidate)
                for key, r in report["keys"].items():
                    print(f"| {name} | {case} | {key} | {r['max_abs']:.2e} | {r['mean_abs']:.2e} | {r['pass']} |")


if __name__ == "__main__":
    main()
