from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout holds the golden vectors of the original implementations.
GOLDEN_DIR = REPO_ROOT.parent / "shared" / "official" / "golden"


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f"golden fixture folder {GOLDEN_DIR} is missing: the shared/ folder must sit beside the checkout")
    return GOLDEN_DIR


def load_golden_module(golden_dir: Path, name: str) -> ModuleType:
    """Import ``regen.py`` / ``check_parity.py`` of the golden fixture under a private module name."""
    spec = importlib.util.spec_from_file_location(f"golden_{name}", golden_dir / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def golden_check(golden_dir) -> ModuleType:
    """The golden fixture's ``check_parity`` helpers (load_case, compare, manifest)."""
    return load_golden_module(golden_dir, "check_parity")


@pytest.fixture(scope="session")
def lama_fourier_release(golden_dir, tmp_path_factory) -> Path:
    """An original-format lama-fourier release (config.yaml, models/best.ckpt, models/best_with_hparams.ckpt),
    rebuilt by the golden fixture's own regen.py, which checks every tensor's sha256."""
    out = tmp_path_factory.mktemp("golden_release")
    load_golden_module(golden_dir, "regen").regenerate(str(out), ["lama_lama-fourier"], log=lambda *_: None)
    return out / "lama-fourier"


@pytest.fixture(scope="session")
def pennet_release(golden_dir, tmp_path_factory) -> Path:
    """An original-format PEN-Net release folder (gen_00050.pth = {'netG': state_dict}, latest.ckpt naming 00050),
    rebuilt by the golden fixture's own regen.py, which checks every tensor's sha256."""
    out = tmp_path_factory.mktemp("golden_release")
    load_golden_module(golden_dir, "regen").regenerate(str(out), ["pennet"], log=lambda *_: None)
    return out / "pennet"
