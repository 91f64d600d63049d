"""What the ``train/*.py`` tests share: launching a script under ``accelerate launch`` on CPU (one process or
several on gloo), reading the losses it logged, and importing a script as a module."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType


REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs the training script with ``Accelerator.log`` also printing what it hands to the trackers (tensorboard,
# wandb, ...) as ``SCALARS {json}`` lines: the tests read the logged losses without a tracker.
SCALAR_PRINTER = """
import json, runpy, sys
from accelerate import Accelerator

_log = Accelerator.log

def log(self, values, *args, **kwargs):
    if self.is_main_process:
        print("SCALARS " + json.dumps({"step": kwargs.get("step", args[0] if args else None), **values}), flush=True)
    return _log(self, values, *args, **kwargs)

Accelerator.log = log
sys.argv.pop(0)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_scalar_printer(folder: Path) -> Path:
    """Write :data:`SCALAR_PRINTER` into ``folder``; pass the path as ``printer`` to :func:`launch`."""
    path = Path(folder) / "print_scalars.py"
    path.write_text(SCALAR_PRINTER)
    return path


def launch(
    script: Path,
    config: Path,
    *args: str,
    processes: int = 1,
    timeout: int = 600,
    check: bool = True,
    printer: Path | None = None,
) -> subprocess.CompletedProcess:
    """``accelerate launch script --config config *args`` on CPU (``processes`` > 1: DDP on gloo), one thread each."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", str(free_port())]  # fmt: skip
    launcher += ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else ["--num_processes", "1"]
    command = [str(printer), str(script)] if printer else [str(script)]
    result = subprocess.run(
        [*launcher, *command, "--config", str(config), *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO_ROOT,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def logged_scalars(result: subprocess.CompletedProcess) -> dict[int, dict[str, float]]:
    """``{step: {name: value}}`` from the ``SCALARS`` lines of a run launched with the printer."""
    rows = [json.loads(line[len("SCALARS ") :]) for line in result.stdout.splitlines() if line.startswith("SCALARS ")]
    merged: dict[int, dict[str, float]] = {}
    for row in rows:
        merged.setdefault(row.pop("step"), {}).update(row)
    return merged


def load_script(path: Path, name: str) -> ModuleType:
    """A ``train/*.py`` script imported as a module (for its argument checks and helpers)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
