from __future__ import annotations

import os
from pathlib import Path

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
