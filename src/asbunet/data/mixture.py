"""One training mixture of every data source, sampled by per-source weights, with held-out validation of each kind.

Four kinds of source (`KINDS`): labelled *photos* (pfcn, ccp), *camvid* street frames (small people labelled by hand,
cyclists `IGNORE`d: neither person nor background, no loss and no score), *person_free* frames (every pixel
background) and synthetic copy-paste *canvases* (`asbunet.data.canvases`: people of every labelled source pasted
onto the person-free frames). Each source has a weight in the config (`data.mixture.sources`); every sample of an
epoch first draws its source by weight, then an item of it, from generators seeded by `(seed, epoch, index)`, so a
resumed run sees the data an uninterrupted one sees.

Validation holds out part of every source: a seeded share of each photo set, whole CamVid drives (consecutive
frames of a drive are alike), listed person-free frames and a seeded share of the cut-outs; its canvases paste only
held-out people onto held-out frames.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from asbunet.data.augment import AugmentConfig, crop_box, photometric
from asbunet.data.canvases import CanvasConfig, Cutout, component_cutouts, cutout_from_alpha, rgba_cutout, synth_canvas
from asbunet.data.dataset import SamplePool, TrainDataset
from asbunet.data.io import DataError, list_images, read_image, read_mask
from asbunet.data.sources import Sample, open_source, split_indices

KINDS = ("photos", "camvid", "person_free", "canvases")
IGNORE = 2  # label value of pixels that are neither person nor background (no loss, no score)


class CamvidSource:
    """`camvid_pedestrian/`: frames of the given drives (name prefixes), masks 1 = pedestrian, `IGNORE` = cyclist."""

    def __init__(self, root: str | Path, drives: list[str] | None = None, exclude: list[str] = ()):
        root = Path(root)
        index = root / "index.csv"
        if not index.is_file():
            raise DataError(f"{root}: no index.csv (expected the camvid_pedestrian layout)")
        names = [row["name"] for row in csv.DictReader(index.open())]
        names = [n for n in names if (drives is None or drive(n) in drives) and drive(n) not in exclude]
        self.root, self.name = root, str(root)
        self.samples = [Sample(root / "images" / f"{n}.jpg", root / "masks" / f"{n}.png") for n in names]
        if not self.samples:
            raise DataError(f"{root}: no frames of drives {drives} (excluding {list(exclude)})")

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[i]
        image, person = read_image(sample.image), read_mask(sample.mask)
        ignore = read_mask(self.root / "ignore" / sample.mask.name)
        return image, np.where((ignore == 1) & (person == 0), IGNORE, person).astype(np.uint8)


def drive(name: str) -> str:
    """The CamVid drive of a frame name (`0016E5_08190` -> `0016E5`)."""
    return Path(name).stem.split("_")[0]


@dataclass
class MixtureSource:
    """One entry of `data.mixture.sources`."""

    name: str
    kind: str
    weight: float
    train: str | dict | None = None  # photos and person_free: an `open_source` spec
    val: str | dict | None = None  # person_free: the held-out frames
    root: str | None = None  # camvid: the camvid_pedestrian folder
    val_drives: list = field(default_factory=list)  # camvid: drives held out for validation

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"mixture source {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.weight >= 0:
            raise ValueError(f"mixture source {self.name}: weight must be >= 0, got {self.weight}")
        if self.kind in ("photos", "person_free") and self.train is None:
            raise ValueError(f"mixture source {self.name}: a {self.kind} source needs 'train'")
        if self.kind == "camvid" and (self.root is None or not self.val_drives):
            raise ValueError(f"mixture source {self.name}: a camvid source needs 'root' and 'val_drives'")


@dataclass
class MixtureConfig:
    """`data.mixture`: the sources and their weights, the cut-outs, the canvases and the validation sizes."""

    sources: list
    epoch_size: int = 2000  # samples drawn per epoch
    val_fraction: float = 0.08  # held-out share of each photo set
    cutouts: dict | None = None  # {root: folder of RGBA people, val_fraction: held-out share}
    camvid_cutout_height: int = 48  # CamVid people at least this many pixels tall are pasted onto canvases too
    camvid_crop_scale: tuple = (0.35, 1.0)  # area of the window cropped from a CamVid frame (`crop_box`)
    canvas: dict = field(default_factory=dict)  # `CanvasConfig`
    people_weights: dict = field(default_factory=dict)  # pasted people: weight of each source's group ("cutouts")
    val_canvases: int = 120
    val_camvid_every: int = 2  # every k-th frame of the held-out drives is validated

    def __post_init__(self):
        self.sources = [s if isinstance(s, MixtureSource) else MixtureSource(**s) for s in self.sources]
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"mixture source names must be unique, got {names}")
        if not sum(s.weight for s in self.sources) > 0:
            raise ValueError("mixture weights are all zero: give at least one source a positive weight")
        CanvasConfig.from_dict(self.canvas)

    def weights(self) -> np.ndarray:
        """Sampling probability of each source, `(S,)`, summing to 1."""
        w = np.array([s.weight for s in self.sources], dtype=float)
        return w / w.sum()


def cutout_split(root: str | Path, val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """The RGBA cut-out files of `root`, split into (training, validation) by a seeded permutation."""
    files = list_images(Path(root))
    if not files:
        raise DataError(f"{root}: no cut-out images")
    train, val = split_indices(len(files), val_fraction, seed)
    return [files[i] for i in train], [files[i] for i in val]


def read_rgba(path: Path) -> np.ndarray:
    """An image with its alpha channel as RGBA uint8 `(H, W, 4)`."""
    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise DataError(f"{path}: not an image with an alpha channel")
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)


class PersonBank:
    """People to paste, in groups (one per source): ready cut-outs, and the people of photo pools cut out when drawn
    (to spare memory).

    A person who fills its photo's frame (cut at the top and bottom, or left and right: a portrait) is pasted at
    least as large as the canvas, so `draw` takes at most one such person per canvas, and pastes it last (nearest).
    """

    def __init__(self):
        self.items: list = []  # a Cutout, or (pool, index)
        self.groups: dict[str, list[int]] = {}
        self.fills: list[bool] = []

    def __len__(self) -> int:
        return len(self.items)

    def _add(self, group: str, item, fills: bool) -> None:
        self.groups.setdefault(group, []).append(len(self.items))
        self.items.append(item)
        self.fills.append(fills)

    def add_cutouts(self, cutouts: list[Cutout], group: str) -> None:
        for c in cutouts:
            self._add(group, c, (c.cut[0] and c.cut[1]) or (c.cut[2] and c.cut[3]))

    def add_pool(self, pool: SamplePool, indices, group: str) -> None:
        for i in indices:
            rows, cols = (pool.masks[i] == 1).any(1), (pool.masks[i] == 1).any(0)  # (H,), (W,)
            if rows.any():
                self._add(group, (pool, i), bool((rows[0] and rows[-1]) or (cols[0] and cols[-1])))

    def get(self, k: int) -> Cutout:
        item = self.items[k]
        if isinstance(item, Cutout):
            return item
        pool, i = item
        return cutout_from_alpha(pool.images[i], (pool.masks[i] == 1).astype(np.float32), pool.names[i])

    def draw(self, rng: np.random.Generator, count: int, weights: dict[str, float] | None = None) -> list[Cutout]:
        """`count` people, each of a group drawn by `weights` (group name -> weight; missing groups weigh 1, as
        all do without `weights`), then a person of it uniformly; at most one frame-filling person, placed last."""
        names = list(self.groups)
        w = np.array([(weights or {}).get(n, 1.0) for n in names], dtype=float)
        if not w.sum() > 0:
            raise DataError(f"the people's group weights are all zero ({dict(zip(names, w, strict=True))})")
        chosen, filling = [], None
        for _ in range(count):
            group = self.groups[names[int(rng.choice(len(names), p=w / w.sum()))]]
            k = group[int(rng.integers(len(group)))]
            if not self.fills[k]:
                chosen.append(k)
            elif filling is None:
                filling = k
        return [self.get(k) for k in chosen + ([filling] if filling is not None else [])]


@dataclass
class LoadedSource:
    """A source's samples in memory: the pool and its training and validation indices."""

    spec: MixtureSource
    pool: SamplePool | None = None
    train: list = field(default_factory=list)
    val_pool: SamplePool | None = None
    val: list = field(default_factory=list)


class Mixture:
    """Every source of a `MixtureConfig` loaded, with the canvases' backgrounds and people, training and held out."""

    def __init__(self, cfg: MixtureConfig, max_side: int | None = 512, seed: int = 0, progress=None):
        self.cfg, self.seed = cfg, seed
        self.sources: list[LoadedSource] = []
        self.people, self.val_people = PersonBank(), PersonBank()
        self.backgrounds: list[SamplePool] = []
        self.val_backgrounds: list[SamplePool] = []
        for spec in cfg.sources:
            src = LoadedSource(spec)
            if spec.kind == "photos":
                src.pool = SamplePool([open_source(spec.train)], max_side, progress=progress)
                src.train, src.val = split_indices(len(src.pool), cfg.val_fraction, seed)
                src.val_pool = src.pool
                self.people.add_pool(src.pool, src.train, spec.name)
                self.val_people.add_pool(src.pool, src.val, spec.name)
            elif spec.kind == "camvid":  # 480x360 frames: kept at full size (a resize would blur the ignore label)
                src.pool = SamplePool([CamvidSource(spec.root, exclude=spec.val_drives)], None, progress=progress)
                src.val_pool = SamplePool([CamvidSource(spec.root, drives=spec.val_drives)], None)
                src.train = list(range(len(src.pool)))
                src.val = list(range(0, len(src.val_pool), cfg.val_camvid_every))
                for pool, bank in ((src.pool, self.people), (src.val_pool, self.val_people)):
                    for image, mask, name in zip(pool.images, pool.masks, pool.names, strict=True):
                        bank.add_cutouts(component_cutouts(image, mask, cfg.camvid_cutout_height, name), spec.name)
            elif spec.kind == "person_free":
                src.pool = SamplePool([open_source(spec.train)], max_side, progress=progress)
                src.train = list(range(len(src.pool)))
                self.backgrounds.append(src.pool)
                if spec.val is not None:
                    src.val_pool = SamplePool([open_source(spec.val)], max_side)
                    src.val = list(range(len(src.val_pool)))
                    self.val_backgrounds.append(src.val_pool)
            self.sources.append(src)
        if cfg.cutouts:
            train, val = cutout_split(cfg.cutouts["root"], cfg.cutouts.get("val_fraction", 0.1), seed)
            for files, bank in ((train, self.people), (val, self.val_people)):
                cutouts = [c for f in files if (c := rgba_cutout(read_rgba(f), str(f))) is not None]
                bank.add_cutouts(cutouts, "cutouts")
        if any(s.kind == "canvases" and s.weight > 0 for s in cfg.sources) and not (self.people and self.backgrounds):
            raise DataError("canvases need people (photos, camvid or cutouts) and person_free frames to paste onto")

    def positive_fraction(self) -> float:
        """Share of person pixels over the labelled training samples (for `pos_weight: auto`)."""
        masks = [s.pool.masks[i] for s in self.sources if s.spec.kind in ("photos", "camvid") for i in s.train]
        if not masks:
            return 0.5
        return sum(int((m == 1).sum()) for m in masks) / sum(m.size for m in masks)

    def validation(self) -> tuple[SamplePool, list[str]]:
        """The held-out samples of every kind as one pool (CamVid masks keep `IGNORE`), and each sample's kind.

        Canvases are made once, at their background's own size, from a generator seeded by the seed alone; they are
        named "scene N: ..." as other validation composites are (`asbunet.train.calibrate.validation_kind`)."""
        images, masks, names, kinds = [], [], [], []
        for src in self.sources:
            for i in src.val:
                images.append(src.val_pool.images[i])
                masks.append(src.val_pool.masks[i])
                names.append(src.val_pool.names[i])
                kinds.append(src.spec.kind)
        frames = [(pool, i) for pool in self.val_backgrounds for i in range(len(pool))]
        if self.cfg.val_canvases and frames and len(self.val_people):
            rng = np.random.default_rng((self.seed, 99))
            canvas = CanvasConfig.from_dict({**self.cfg.canvas, "crop_scale": (1.0, 1.0)})
            for n in range(self.cfg.val_canvases):
                pool, b = frames[int(rng.integers(len(frames)))]
                count = int(rng.integers(canvas.people[0], canvas.people[1] + 1))
                people = self.val_people.draw(rng, count, self.cfg.people_weights)
                image, mask = synth_canvas(pool.images[b], people, pool.masks[b].shape, rng, canvas)
                images.append(image)
                masks.append(mask)
                names.append(f"scene {n}: {pool.names[b]} + {len(people)} people")
                kinds.append("canvases")
        return SamplePool.from_arrays(images, masks, names), kinds


class MixtureDataset(Dataset):
    """`epoch_size` samples per epoch, each from a source drawn by weight; keys are `(index, height, width, epoch)`
    as for `TrainDataset`. Targets are `(1, H, W)` float in {0, 1, `IGNORE`}."""

    def __init__(self, mixture: Mixture, augment: AugmentConfig, seed: int = 0):
        self.mixture, self.cfg, self.seed = mixture, augment, seed
        self.canvas = CanvasConfig.from_dict(mixture.cfg.canvas)
        self.weights = mixture.cfg.weights()
        self.photometric = photometric(augment)
        backgrounds = SamplePool.from_arrays([], [], [])
        for pool in mixture.backgrounds:
            backgrounds.extend(pool)
        self.bg = [(pool, i) for pool in mixture.backgrounds for i in range(len(pool))]
        # photos and person-free frames: the scenes of `TrainDataset` (auto crop, optional composites)
        self.plain = {
            k: TrainDataset(s.pool, s.train, augment, seed, backgrounds)
            for k, s in enumerate(mixture.sources)
            if s.spec.kind in ("photos", "person_free")
        }
        self._assignment: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.mixture.cfg.epoch_size

    def assignment(self, epoch: int) -> np.ndarray:
        """The source of every sample of `epoch`, `(epoch_size,)`, drawn by weight."""
        if self._assignment is None or self._assignment[0] != epoch:
            self._assignment = (epoch, source_draws(self.weights, len(self), self.seed, epoch))
        return self._assignment[1]

    def __getitem__(self, key: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, h, w, epoch = key
        rng = np.random.default_rng((self.seed, epoch, index))
        image, mask = self.scene(int(self.assignment(epoch)[index]), (h, w), rng)
        self.photometric.set_random_seed(int(rng.integers(2**31)))
        out = self.photometric(image=image, mask=mask)
        x = torch.from_numpy(out["image"].transpose(2, 0, 1).copy())  # (3, h, w) normalized
        y = torch.from_numpy(out["mask"][None].astype(np.float32))  # (1, h, w) in {0, 1, IGNORE}
        return x, y

    def scene(self, s: int, hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The geometric part of a sample of source `s` at `hw`: `(image (H, W, 3), label (H, W))`."""
        src = self.mixture.sources[s]
        if src.spec.kind == "canvases":
            pool, b = self.bg[int(rng.integers(len(self.bg)))]
            count = int(rng.integers(self.canvas.people[0], self.canvas.people[1] + 1))
            cutouts = self.mixture.people.draw(rng, count, self.mixture.cfg.people_weights)
            return synth_canvas(pool.images[b], cutouts, hw, rng, self.canvas)
        i = src.train[int(rng.integers(len(src.train)))]
        if src.spec.kind == "camvid":
            return crop_with_ignore(src.pool.images[i], src.pool.masks[i], hw, rng, self.mixture.cfg.camvid_crop_scale)
        return self.plain[s].scene(i, hw, rng)


def source_draws(weights: np.ndarray, size: int, seed: int, epoch: int) -> np.ndarray:
    """The source of each of `size` samples `(size,)`, drawn with probabilities `weights` `(S,)` from a generator
    seeded by `(seed, epoch)`: the same in every worker and after a resume."""
    return np.random.default_rng((seed, epoch, 5)).choice(len(weights), size=size, p=weights)


def crop_with_ignore(
    image: np.ndarray, mask: np.ndarray, hw: tuple[int, int], rng: np.random.Generator, scale=(0.35, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """`auto_crop` of a frame whose label holds 0, 1 and `IGNORE`: person and ignored pixels are resized apart."""
    y0, y1, x0, x1 = crop_box(mask == 1, hw, rng, scale)
    size = (hw[1], hw[0])
    window = image[y0:y1, x0:x1]
    image = cv2.resize(window, size, interpolation=cv2.INTER_AREA if window.shape[0] > hw[0] else cv2.INTER_LINEAR)
    parts = [cv2.resize((mask[y0:y1, x0:x1] == v).astype(np.float32), size) > 0.5 for v in (1, IGNORE)]
    label = np.where(parts[1] & ~parts[0], IGNORE, parts[0]).astype(np.uint8)  # (H, W)
    return image, label
