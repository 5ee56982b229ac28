"""Shared fixtures: the real person data in ../shared/data (skipped when absent) and tiny synthetic datasets.

Every test that reads ../shared/data takes the `shared_data` fixture (or `ccp_samples`, built on it), and is marked
`data` here, so that `pytest -m "not slow and not data"` (`make test-fast`) runs without it (docs/development.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import write_folder_dataset

from asbunet.models import create_model
from asbunet.train.checkpoint import FORMAT, atomic_save

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


DATA_FIXTURE = "shared_data"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks `data` every test that needs ../shared/data: those using `shared_data`, directly or through a fixture."""
    for item in items:
        if DATA_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data relative to the repository root (real photos with hand-made person masks)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real person data not available: {SHARED_DATA} is absent (it is not shipped with the package)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ccp_samples(shared_data: Path) -> Path:
    """The eight Clothing Co-Parsing test photos with their person masks (images/ and masks/)."""
    path = shared_data / "ccp_samples"
    if not (path / "images").is_dir() or not (path / "masks").is_dir():
        pytest.skip(f"real person data not available: {path} has no images/ and masks/")
    return path


@pytest.fixture(autouse=True)
def restore_threads():
    """Commands under test set torch's thread count; put it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised asbunet_025 saved in the format `asbunet train` writes (what `--model` loads)."""
    torch.manual_seed(0)
    model = create_model("asbunet_025")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    atomic_save(
        {
            "format": FORMAT,
            "model": "asbunet_025",
            "model_options": {},
            "state_dict": model.state_dict(),
            "input_size": 64,
        },
        path,
    )
    return path


@pytest.fixture
def make_dataset(tmp_path: Path):
    """Factory: `make_dataset(name, n=6, size=(H, W), seed=0)` -> a folder with images/ and masks/ in tmp_path."""

    def make(name: str = "data", n: int = 6, size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
        return write_folder_dataset(tmp_path / name, n, size, seed)

    return make


@pytest.fixture
def bad_dataset(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A folder dataset of 4 good samples and one of each bad kind; returns (root, {problem: offending file})."""
    root = write_folder_dataset(tmp_path / "bad", n=8, size=(40, 32))
    images, masks = root / "images", root / "masks"
    (images / "0004.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")  # unreadable image
    cv2.imwrite(str(masks / "0005.png"), np.zeros((20, 20), np.uint8))  # mask size differs from its image
    (masks / "0006.png").write_bytes(b"")  # empty mask file
    (masks / "0007.png").unlink()  # missing mask
    bad = {
        "unreadable": images / "0004.jpg",
        "size": masks / "0005.png",
        "empty": masks / "0006.png",
        "missing": images / "0007.jpg",
    }
    return root, bad
