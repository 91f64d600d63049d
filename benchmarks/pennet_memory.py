#!/usr/bin/env python
"""Peak memory and time of PEN-Net's attention transfer, chunked (ours) against unchunked (the original's behaviour).

    python benchmarks/pennet_memory.py                                # 256² 512² 1024², chunked and unchunked
    python benchmarks/pennet_memory.py --sizes 512 --repeats 3
    python benchmarks/pennet_memory.py --include-2048                 # add 2048² (chunked only under the budget)
    python benchmarks/pennet_memory.py --json out.json --markdown out.md

The model is the released architecture (``PENNetConfig()``: 10,231,538 parameters) with random weights, float32,
``eval()``, batch 1, under ``torch.inference_mode()``, on a random image with a centre box covering 25 % of it as the
hole. Every measurement runs in a fresh Python process, because its peak RSS (``ru_maxrss``, the high-water mark of
the whole process) never goes down: one *baseline* child that only imports inpaint_hub and builds the model, then one
child per (size, attention) cell that also runs the forward passes. The table gives both the cell's peak RSS and that
minus the baseline's (what the forward pass itself added).

"chunked" is the default ``attention_chunk_elements`` (2**24 scores, 64 MiB in float32, per block of target rows);
"unchunked" sets it so high that every level computes its whole ``(h*w)**2`` score matrix at once, as the original
``AtnConv`` does. The largest matrix is the first transfer's (level 2, ``H/4 x W/4`` patches, into level 1):
``(H/4 * W/4)**2 * 4`` bytes, 1 GiB at 512² and 16 GiB at 1024². Unchunked cells whose largest score matrix alone
would exceed ``--max-unchunked-gib`` are not run; the table prints that predicted size instead.
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
import tempfile
import time


MODES = ("chunked", "unchunked")
UNCHUNKED = 2**62  # "huge": every block is the whole score matrix
FLOAT32_BYTES = 4


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


def _config(mode: str):
    from inpaint_hub import PENNetConfig

    return PENNetConfig() if mode in ("chunked", "baseline") else PENNetConfig(attention_chunk_elements=UNCHUNKED)


# ------------------------------------------------------------------------------------------------- score-block sizes


def attention_levels(size: int, chunk_elements: int | None) -> list[dict]:
    """The score blocks of every attention transfer at ``size`` x ``size``, as ``attention_transfer`` computes them.

    Transfer k (k = 1..5) rebuilds encoder level k (``size / 2**k``) from level k + 1 (``h = w = size / 2**(k+1)``,
    ``L = h * w`` source patches): ``L`` scores for each of the ``h * w`` target positions, in blocks of
    ``rows`` target rows (``max(1, min(h, chunk_elements // (L * w)))``; ``None``: all ``h`` rows at once).
    """
    from inpaint_hub.models.pennet.configuration_pennet import NUM_LEVELS

    levels = []
    for level in range(1, NUM_LEVELS):
        h = w = size // 2 ** (level + 1)
        patches = h * w
        rows = h if chunk_elements is None else max(1, min(h, chunk_elements // max(1, patches * w)))
        levels.append(
            {
                "level": level,
                "high": h,
                "sources": patches,
                "rows_per_block": rows,
                "block_elements": rows * w * patches,
                "matrix_elements": patches * patches,
            }
        )
    return levels


def largest_block(size: int, chunk_elements: int | None) -> dict:
    return max(attention_levels(size, chunk_elements), key=lambda level: level["block_elements"])


# ------------------------------------------------------------------------------------------------- one cell (child)


def measure(mode: str, size: int, repeats: int, threads: int | None, save: str | None) -> dict:
    """Build the model; for a cell (not ``baseline``), run ``repeats`` forward passes at ``size`` x ``size``."""
    import torch

    from inpaint_hub import PENNetModel

    if threads is not None:
        torch.set_num_threads(threads)
    config = _config(mode)
    torch.manual_seed(0)
    model = PENNetModel(config).eval()
    result = {
        "mode": mode,
        "size": size,
        "params": model.num_parameters(),
        "attention_chunk_elements": config.attention_chunk_elements,
        "threads": torch.get_num_threads(),
        "rss_loaded": _current_rss_bytes(),
    }
    if mode == "baseline":
        result["peak_rss"] = _peak_rss_bytes()
        return result

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0  # centre box, 25 % of the image

    wall, cpu = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            output = model(image, mask)
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
    if not torch.isfinite(output.predicted).all():
        raise RuntimeError(f"{mode} at {size}x{size} produced non-finite values")
    result.update(
        peak_rss=_peak_rss_bytes(),
        wall=wall,
        cpu=cpu,
        median_wall=statistics.median(wall),
        median_cpu=statistics.median(cpu),
        hole_fraction=float(mask.mean()),
    )
    if save:
        torch.save(output.predicted, save)
    return result


# ------------------------------------------------------------------------------------------------- table (parent)


def _run_child(mode: str, size: int, repeats: int, threads: int | None, save: str | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", mode, "--sizes", str(size)]
    cmd += ["--repeats", str(repeats)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if save:
        cmd += ["--_save", save]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} at {size}² failed (exit {result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _bytes(n_bytes: float | None) -> str:
    if n_bytes is None:
        return "–"
    if abs(n_bytes) < 2**30:
        return f"{n_bytes / 2**20:.0f} MiB"
    return f"{n_bytes / 2**30:.2f} GiB"


def _block_cell(size: int, chunk_elements: int | None) -> str:
    block = largest_block(size, chunk_elements)
    shape = f"{block['rows_per_block']}×{block['high']} targets × {block['sources']:,} sources"
    return f"{_bytes(block['block_elements'] * FLOAT32_BYTES)} (level {block['level'] + 1}→{block['level']}: {shape})"


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


def table(rows: list[dict], baseline: dict, repeats: int) -> str:
    lines = [
        f"| size | attention | largest score block (theoretical, fp32) | peak RSS | peak − baseline "
        f"| wall s (median of {repeats}) | CPU s (median) | max abs diff vs unchunked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        chunk = None if row["mode"] == "unchunked" else row["attention_chunk_elements"]
        cells = [f"{row['size']}²", row["mode"], _block_cell(row["size"], chunk)]
        if row.get("skipped"):
            cells += [
                f"not run: score matrix alone {_bytes(row['predicted_matrix_bytes'])} > {row['budget_gib']:g} GiB "
                "budget",
                "–",
                "–",
                "–",
                "–",
            ]
        else:
            diff = row.get("max_abs_diff")
            cells += [
                _bytes(row["peak_rss"]),
                _bytes(row["peak_rss"] - baseline["peak_rss"]),
                f"{row['median_wall']:.2f}",
                f"{row['median_cpu']:.2f}",
                "–" if diff is None else ("0 (reference)" if row["mode"] == "unchunked" else f"{diff:.1e}"),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="square side lengths")
    parser.add_argument("--include-2048", action="store_true", help="also measure 2048² (minutes; chunked only)")
    parser.add_argument("--repeats", type=int, default=1, help="timed forward passes per cell (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="attention variants")
    parser.add_argument(
        "--max-unchunked-gib",
        type=float,
        default=8.0,
        help="skip unchunked cells whose largest score matrix alone would exceed this many GiB (default 8)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--markdown", help="also write the table (and machine line) to this Markdown file")
    parser.add_argument("--_worker", choices=("baseline", *MODES), help=argparse.SUPPRESS)
    parser.add_argument("--_save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    sizes = sorted(set(args.sizes + ([2048] if args.include_2048 else [])))
    if any(size < 64 or size % 64 for size in sizes):
        parser.error("--sizes must be multiples of 64 (PEN-Net's six stride-2 levels)")

    if args._worker:
        print(json.dumps(measure(args._worker, sizes[0], args.repeats, args.threads, args._save)))
        return 0

    import torch

    from inpaint_hub import PENNetConfig

    threads = args.threads or torch.get_num_threads()
    chunk_elements = PENNetConfig().attention_chunk_elements
    budget_bytes = args.max_unchunked_gib * 2**30
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = machine_line(threads)
    print(f"Machine: {machine}\n", flush=True)

    started = time.perf_counter()
    baseline = _run_child("baseline", sizes[0], 1, args.threads, None)
    print(
        f"  baseline (import + build, no forward): peak RSS {_bytes(baseline['peak_rss'])}, "
        f"RSS after building {_bytes(baseline['rss_loaded'])}",
        file=sys.stderr,
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            outputs = {}
            for mode in args.modes:
                matrix_bytes = largest_block(size, None)["matrix_elements"] * FLOAT32_BYTES
                if mode == "unchunked" and matrix_bytes > budget_bytes:
                    row = {
                        "mode": mode,
                        "size": size,
                        "skipped": True,
                        "attention_chunk_elements": UNCHUNKED,
                        "predicted_matrix_bytes": matrix_bytes,
                        "budget_gib": args.max_unchunked_gib,
                    }
                    print(f"  {mode} @ {size}²: skipped ({_bytes(matrix_bytes)} score matrix)", file=sys.stderr)
                else:
                    outputs[mode] = os.path.join(tmp, f"{mode}_{size}.pt")
                    row = _run_child(mode, size, args.repeats, args.threads, outputs[mode])
                    print(
                        f"  {mode} @ {size}²: wall {', '.join(f'{t:.2f}' for t in row['wall'])} s, CPU "
                        f"{', '.join(f'{t:.2f}' for t in row['cpu'])} s; peak RSS {_bytes(row['peak_rss'])}",
                        file=sys.stderr,
                        flush=True,
                    )
                row["largest_block"] = largest_block(size, None if mode == "unchunked" else chunk_elements)
                rows.append(row)
            if "unchunked" in outputs:
                reference = torch.load(outputs["unchunked"], weights_only=True)
                for row in rows:
                    if row["size"] == size and row["mode"] in outputs:
                        output = torch.load(outputs[row["mode"]], weights_only=True)
                        row["max_abs_diff"] = float((output - reference).abs().max())
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    text = table(rows, baseline, args.repeats)
    notes = [
        f"Baseline child (imports inpaint_hub, builds `PENNetModel(PENNetConfig())`, "
        f"{baseline['params']:,} parameters, no forward pass): peak RSS {_bytes(baseline['peak_rss'])}.",
        f"Chunk bound: `attention_chunk_elements` = {chunk_elements:,} scores "
        f"({_bytes(chunk_elements * FLOAT32_BYTES)}); a block is never smaller than one target row, so a single row "
        "larger than the bound (from 2048² on) is computed whole.",
    ]
    if load_start is not None:
        notes.append(
            f"Load average (1 min) at start / end: {load_start:.2f} / {load_end:.2f}; total "
            f"{time.perf_counter() - started:.0f} s wall clock."
        )
    print(text)
    print("\n" + "\n".join(notes))
    print(
        "\nPeak RSS is the whole process's high-water mark (ru_maxrss), one fresh process per row; 'peak − baseline' "
        "subtracts the baseline child's. Max abs diff compares `predicted` (in [0, 1]) with the unchunked run's."
    )

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Machine: {machine}\n\n{text}\n\n" + "\n".join(f"* {note}" for note in notes) + "\n")
    if args.json:
        import inpaint_hub

        payload = {
            "inpaint_hub_version": getattr(inpaint_hub, "__version__", None),
            "settings": {
                "sizes": sizes,
                "modes": args.modes,
                "repeats": args.repeats,
                "threads": threads,
                "max_unchunked_gib": args.max_unchunked_gib,
                "attention_chunk_elements": chunk_elements,
                "hole": "centre box, 25 %",
            },
            "machine": machine,
            "load_average_1min": [load_start, load_end],
            "baseline": baseline,
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
