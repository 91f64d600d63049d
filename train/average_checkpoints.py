#!/usr/bin/env python
"""Average the generator weights of several checkpoints of one run into a new model folder.

    python train/average_checkpoints.py runs/lama-small-bsds --from-step 3000 --output averaged/lama-small-bsds
    python train/average_checkpoints.py runs/x/checkpoint-800 runs/x/checkpoint-1000 --output averaged/x

A uniform average of the weights a run passes through late in training (Izmailov et al., "Averaging Weights Leads
to Wider Optima and Better Generalization", UAI 2018; timm's ``avg_checkpoints.py`` does the same for classifiers)
smooths out the step-to-step noise of small-batch training, much like a final learning-rate decay, at no training
cost. Every floating-point tensor is averaged, BatchNorm running statistics included; integer buffers
(``num_batches_tracked``) are taken from the newest checkpoint. The checkpoints must share one config.

Each argument is a ``checkpoint-<step>`` folder written by a training script (its ``generator/`` is used), a model
folder written by ``save_pretrained``, or a run's output folder, of which the checkpoints in
``[--from-step, --to-step]`` are used. Keep enough checkpoints for this with ``--checkpoints-total-limit``.
The result is written with ``save_pretrained`` (``config.json`` + ``model.safetensors`` + ``README.md``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from inpaint_hub import AutoInpaintModel


def _step(path: Path) -> int | None:
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else None


def resolve_model_folders(paths: list[str], from_step: int | None = None, to_step: int | None = None) -> list[Path]:
    """The generator folders named by ``paths`` (see the module docstring), oldest checkpoint first.

    Raises:
        FileNotFoundError: a path that is none of the three kinds, or a run folder with no checkpoint in range.
    """
    folders: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "generator" / "config.json").is_file():
            folders.append(path / "generator")
        elif (path / "config.json").is_file():
            folders.append(path)
        elif path.is_dir() and any(_step(p) is not None for p in path.iterdir()):
            found = sorted(
                (p for p in path.iterdir() if _step(p) is not None and (p / "generator" / "config.json").is_file()),
                key=_step,
            )
            found = [
                p
                for p in found
                if (from_step is None or _step(p) >= from_step) and (to_step is None or _step(p) <= to_step)
            ]
            if not found:
                raise FileNotFoundError(
                    f"{path}: no checkpoint-<step>/generator between steps {from_step} and {to_step}"
                )
            folders.extend(p / "generator" for p in found)
        else:
            raise FileNotFoundError(
                f"{path}: not a checkpoint folder (with generator/), a model folder (with config.json) or a run "
                "folder (with checkpoint-<step>/ folders)"
            )
    return folders


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the floating-point tensors (computed in float64); other tensors from the last state.

    Raises:
        ValueError: no states, or states whose keys or shapes differ.
    """
    if not states:
        raise ValueError("nothing to average")
    keys = set(states[0])
    for index, state in enumerate(states[1:], start=1):
        if set(state) != keys:
            raise ValueError(f"state {index} has other tensors: {sorted(set(state) ^ keys)[:5]}")
    averaged = {}
    for key, first in states[0].items():
        if any(state[key].shape != first.shape for state in states):
            raise ValueError(f"{key}: shapes differ between the states")
        if first.is_floating_point():
            averaged[key] = (sum(state[key].double() for state in states) / len(states)).to(first.dtype)
        else:
            averaged[key] = states[-1][key].clone()
    return averaged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="checkpoint folders, model folders or a run's output folder")
    parser.add_argument("--output", required=True, help="folder for the averaged model (save_pretrained)")
    parser.add_argument("--from-step", type=int, default=None, help="run folders: first checkpoint step to use")
    parser.add_argument("--to-step", type=int, default=None, help="run folders: last checkpoint step to use")
    parser.add_argument("--model-card", default=None, help="Markdown card written as the output's README.md")
    args = parser.parse_args(argv)
    try:
        folders = resolve_model_folders(args.paths, args.from_step, args.to_step)
        models = [AutoInpaintModel.from_pretrained(folder) for folder in folders]
        for folder, model in zip(folders[1:], models[1:]):
            if model.config != models[0].config:
                raise ValueError(f"{folder} has another config than {folders[0]}: they cannot be averaged")
        averaged = average_state_dicts([model.state_dict() for model in models])
    except (FileNotFoundError, ValueError) as error:
        parser.exit(1, f"average_checkpoints: error: {error}\n")
    model = models[-1]
    model.load_state_dict(averaged)
    model.save_pretrained(args.output, model_card=args.model_card)
    print(f"averaged {len(folders)} generators ({folders[0]} ... {folders[-1]}) into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
