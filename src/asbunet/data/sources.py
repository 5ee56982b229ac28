"""Dataset layouts: a folder of images with a parallel folder of masks, or a COCO-style JSON file.

A *source* is a list of samples that can each be loaded as `(image RGB uint8 (H, W, 3), mask uint8 (H, W) in {0, 1})`.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asbunet.data.io import DataError, check_pair, list_images, read_image, read_mask


@dataclass(frozen=True)
class Sample:
    """One image of a source and where its label comes from."""

    image: Path
    mask: Path | None = None  # folder layout
    coco_id: int | None = None  # COCO layout


class FolderSource:
    """`images/` and `masks/` folders paired by file stem (masks as PNG: 0/255, 0/1, palette or alpha).

    `names` (a list file, one image file name or stem per line) keeps only the images it lists. With `masks=None` the
    images are person-free frames (hard negatives): every mask is all zero.
    """

    def __init__(self, images: str | Path, masks: str | Path | None, names: str | Path | None = None):
        self.images_dir = Path(images)
        self.masks_dir = None if masks is None else Path(masks)
        for folder in (self.images_dir, self.masks_dir):
            if folder is not None and not folder.is_dir():
                raise DataError(f"{folder}: folder not found")
        images_found = list_images(self.images_dir)
        if names is not None:
            images_found = _filter_by_list(images_found, Path(names))
        masks_by_stem = {} if self.masks_dir is None else {p.stem: p for p in list_images(self.masks_dir)}
        self.samples = [Sample(p, masks_by_stem.get(p.stem)) for p in images_found]
        if not self.samples:
            raise DataError(f"{self.images_dir}: no images found")
        self.name = str(self.images_dir.parent if self.images_dir.name == "images" else self.images_dir)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[i]
        if self.masks_dir is None:
            image = read_image(sample.image)
            return image, np.zeros(image.shape[:2], np.uint8)
        if sample.mask is None:
            raise DataError(f"{sample.image}: no mask with the same stem in {self.masks_dir}")
        image, mask = read_image(sample.image), read_mask(sample.mask)
        check_pair(image, mask, sample.image, sample.mask)
        return image, mask


class CocoSource:
    """COCO-style JSON with polygon or RLE annotations; the union of the chosen category's objects is the mask."""

    def __init__(self, annotations: str | Path, images: str | Path | None = None, category: str = "person"):
        from pycocotools.coco import COCO

        self.annotations = Path(annotations)
        if not self.annotations.is_file():
            raise DataError(f"{self.annotations}: annotation file not found")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(str(self.annotations))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{self.annotations}: not a COCO annotation file ({err})") from None
        self.images_dir = Path(images) if images is not None else self.annotations.parent / "images"
        self.cat_ids = self.coco.getCatIds(catNms=[category])
        if not self.cat_ids:
            names = sorted(c["name"] for c in self.coco.loadCats(self.coco.getCatIds()))
            raise DataError(f"{self.annotations}: no category {category!r}; categories: {', '.join(names)}")
        ids = sorted(self.coco.getImgIds())
        self.samples = [Sample(self.images_dir / self.coco.imgs[i]["file_name"], coco_id=i) for i in ids]
        if not self.samples:
            raise DataError(f"{self.annotations}: no images listed")
        self.name = str(self.annotations)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[i]
        info = self.coco.imgs[sample.coco_id]
        image = read_image(sample.image)
        if (info.get("height"), info.get("width")) != image.shape[:2]:
            raise DataError(
                f"{sample.image}: image is {image.shape[1]}x{image.shape[0]} but {self.annotations} says "
                f"{info.get('width')}x{info.get('height')}"
            )
        mask = np.zeros(image.shape[:2], np.uint8)
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=sample.coco_id, catIds=self.cat_ids, iscrowd=None)):
            mask |= self.coco.annToMask(ann).astype(np.uint8)
        return image, mask


def _filter_by_list(images: list[Path], list_file: Path) -> list[Path]:
    """The images named in `list_file` (file names or stems, one per line; `#` starts a comment), in list order."""
    if not list_file.is_file():
        raise DataError(f"{list_file}: list file not found")
    wanted = [line.split("#", 1)[0].strip() for line in list_file.read_text().splitlines()]
    wanted = [w for w in wanted if w]
    by_name = {p.name: p for p in images} | {p.stem: p for p in images}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise DataError(f"{list_file}: {len(missing)} listed images not found, e.g. {missing[0]}")
    return [by_name[w] for w in wanted]


Source = FolderSource | CocoSource


def open_source(spec: str | Path | dict) -> Source:
    """Opens a dataset from a path or a config mapping.

    A path is either a folder holding `images/` and `masks/`, a COCO `.json` file (images in `images/` beside
    it), or a `.txt` list of person-free frames (the listed images of the `images/` folder beside it, all-zero
    masks). A mapping gives `images` and `masks` (and optionally `list`, a file naming the images to keep), or `images`
    and `person_free: true` (frames that show no person: all-zero masks), or `coco`, `images` and optionally
    `category`.
    """
    if isinstance(spec, dict):
        if "coco" in spec:
            return CocoSource(spec["coco"], spec.get("images"), spec.get("category", "person"))
        if "images" in spec and "masks" in spec:
            return FolderSource(spec["images"], spec["masks"], spec.get("list"))
        if "images" in spec and spec.get("person_free"):
            return FolderSource(spec["images"], None, spec.get("list"))
        raise DataError(
            f"dataset entry {spec} needs 'images' and 'masks', 'images' and 'person_free: true', or 'coco' "
            "(and 'images')"
        )
    path = Path(spec)
    if path.suffix.lower() == ".json":
        return CocoSource(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(f"{path}: list file not found")
        if not (path.parent / "images").is_dir():
            raise DataError(f"{path}: a list of person-free frames needs their images/ folder beside it")
        return FolderSource(path.parent / "images", None, path)
    if path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir():
        return FolderSource(path / "images", path / "masks")
    if not path.exists():
        raise DataError(f"{path}: dataset not found")
    raise DataError(
        f"{path}: expected a folder with images/ and masks/ inside, a COCO .json file or a .txt list of person-free "
        "frames"
    )


def split_indices(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic seeded train/validation split (Section IV-A uses 80/20)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
