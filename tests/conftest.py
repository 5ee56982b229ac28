"""Shared fixtures: the real person data in ../shared/data (skipped when absent) and tiny synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asbunet.models import create_model
from asbunet.train.checkpoint import FORMAT, atomic_save

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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


def synthetic_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB background with one bright elliptic 'person' and its 0/1 mask."""
    image = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    center = (int(rng.integers(width // 3, 2 * width // 3)), int(rng.integers(height // 3, 2 * height // 3)))
    axes = (max(2, width // 5), max(2, height // 3))
    cv2.ellipse(mask, center, axes, 0, 0, 360, 1, -1)
    image[mask.astype(bool)] = rng.integers(150, 255, 3, dtype=np.uint8)
    return image, mask


def write_folder_dataset(root: Path, n: int = 6, size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """Writes `n` JPEG images and 0/255 PNG masks as `root/images/NNNN.jpg`, `root/masks/NNNN.png`."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, mask = synthetic_pair(rng, *size)
        cv2.imwrite(str(root / "images" / f"{i:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{i:04d}.png"), mask * 255)
    return root


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
