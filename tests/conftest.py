"""Suite-wide fixtures and the offline environment every test runs in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
SAMPLES = ROOT / "samples" / "arnis"

# Never reach for the network: ultralytics reads these before it does anything.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata`` (third-party files); tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present beside the checkout")
    return REALDATA


@pytest.fixture(scope="session")
def samples_root() -> Path:
    """The committed synthetic Arnis sample set (``samples/arnis``)."""
    if not (SAMPLES / "data.yaml").exists():
        pytest.fail("samples/arnis is missing: regenerate it with `python -m samples.generate`")
    return SAMPLES
