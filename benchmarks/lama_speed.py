#!/usr/bin/env python
"""CPU speed and memory of inpaint-hub's LaMa presets, next to the original implementation's numbers.

    python benchmarks/lama_speed.py                                  # big-lama + lama-fourier at 256² and 512²
    python benchmarks/lama_speed.py --sizes 256 512 1024 --repeats 5 --threads 2
    python benchmarks/lama_speed.py --models lama-fourier --sizes 512

Each (model, size) cell runs in its own fresh Python process, so that its peak RSS (``ru_maxrss``, the high-water mark
of the whole process: interpreter, torch, weights and activations) belongs to that cell alone. In the child: build the
preset with random weights (float32, ``eval()``), then under ``torch.inference_mode()`` one warm-up forward pass and
``--repeats`` timed ones on a batch of 1 (random image, rectangular hole); the table gives the median seconds per
image. The model's ``forward`` is timed (the tensor contract: generator + compositing), not image decoding or padding.

The "original" columns are the numbers measured for advimman/lama's own code, in the same way (fp32, batch 1,
inference_mode, median of 3), on a 2-core AVX-512 CPU: ``shared/MODELS.md`` section 7, "Speed and memory of the
originals". They come from a different machine, so compare ratios with care (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


PRESETS = ("big-lama", "lama-fourier")

# shared/MODELS.md §7: seconds per image by side length, and peak RSS in GiB by side length where it was recorded.
ORIGINAL_SECONDS = {
    "big-lama": {256: 0.38, 512: 2.00, 1024: 8.22, 2048: 59.2},
    "lama-fourier": {256: 0.26, 512: 1.28, 1024: 5.81, 2048: 38.0},
}
ORIGINAL_PEAK_RSS_GIB = {
    "big-lama": {512: 0.78, 1024: 1.60, 2048: 4.40},
    "lama-fourier": {512: 0.66, 2048: 4.15},
}


def _peak_rss_bytes() -> int:
    """The process's peak resident set size (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _current_rss_bytes() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


# ------------------------------------------------------------------------------------------------- one cell (child)


def measure(model_name: str, size: int, repeats: int, threads: int) -> dict:
    """Build ``model_name`` with random weights and time ``repeats`` forward passes at ``size`` x ``size``."""
    import torch

    from inpaint_hub import LamaConfig, LamaModel

    torch.set_num_threads(threads)
    config = {"big-lama": LamaConfig.big_lama, "lama-fourier": LamaConfig.lama_fourier}[model_name]()
    torch.manual_seed(0)
    model = LamaModel(config).eval()
    rss_loaded = _current_rss_bytes()

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 1.0

    times = []
    with torch.inference_mode():
        for index in range(repeats + 1):  # the first pass is the warm-up
            start = time.perf_counter()
            output = model(image, mask)
            elapsed = time.perf_counter() - start
            if index:
                times.append(elapsed)
    if not torch.isfinite(output.inpainted).all():
        raise RuntimeError(f"{model_name} at {size}x{size} produced non-finite values")
    return {
        "model": model_name,
        "size": size,
        "params": model.num_parameters(),
        "times": times,
        "median": statistics.median(times),
        "peak_rss": _peak_rss_bytes(),
        "rss_loaded": rss_loaded,
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------- table (parent)


def _run_child(model_name: str, size: int, repeats: int, threads: int) -> dict:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--_worker",
        "--models", model_name, "--sizes", str(size), "--repeats", str(repeats), "--threads", str(threads),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{model_name} at {size}² failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _gib(n_bytes: float | None) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 2**30:.2f} GiB"


def machine_line(threads: int) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs, {threads} torch threads, "
        f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def table(rows: list[dict], repeats: int) -> str:
    lines = [
        f"| size | model | parameters | median s/image (of {repeats}) | min s | peak RSS | original s/image "
        "[MODELS.md §7] | original peak RSS [§7] | ours / original time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        original = ORIGINAL_SECONDS.get(row["model"], {}).get(row["size"])
        original_rss = ORIGINAL_PEAK_RSS_GIB.get(row["model"], {}).get(row["size"])
        cells = [
            f"{row['size']}²",
            row["model"],
            f"{row['params']:,}",
            f"{row['median']:.3f}",
            f"{min(row['times']):.3f}",
            _gib(row["peak_rss"]),
            "–" if original is None else f"{original:.2f}",
            "–" if original_rss is None else f"{original_rss:.2f} GiB",
            "–" if original is None else f"{row['median'] / original:.2f}×",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[256, 512], help="square side lengths (default 256 512)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell, after 1 warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--models", nargs="+", choices=PRESETS, default=list(PRESETS), help="presets to compare")
    parser.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if any(size < 16 or size % 8 for size in args.sizes):
        parser.error("--sizes must be multiples of 8, at least 16 (LaMa's size constraint)")

    if args._worker:
        print(json.dumps(measure(args.models[0], args.sizes[0], args.repeats, args.threads)))
        return 0

    if args.threads is None:
        import torch

        args.threads = torch.get_num_threads()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"Machine: {machine_line(args.threads)}\n", flush=True)
    rows = []
    for size in args.sizes:
        for model_name in args.models:
            row = _run_child(model_name, size, args.repeats, args.threads)
            rows.append(row)
            times = ", ".join(f"{t:.3f}" for t in row["times"])
            print(
                f"  {model_name} @ {size}²: {times} s; RSS after building the model {_gib(row['rss_loaded'])}, "
                f"peak {_gib(row['peak_rss'])}",
                file=sys.stderr,
                flush=True,
            )
    print(table(rows, args.repeats))
    if hasattr(os, "getloadavg"):
        # other processes on the machine show up as spread between repeats: report how busy it was
        print(f"\nLoad average (1 min) at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f}")
    print(
        "\nPeak RSS is the whole process's high-water mark (ru_maxrss; interpreter, torch, weights, activations), "
        "one fresh process per row. Original numbers: shared/MODELS.md section 7 (advimman/lama on a 2-core AVX-512 "
        "CPU, fp32, batch 1, inference_mode, median of 3)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
