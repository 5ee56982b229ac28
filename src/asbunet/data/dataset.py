"""PyTorch datasets and the batch sampler that gives every batch one canvas shape.

`SamplePool` loads every sample once (downsized to `max_side`), so that bad files are found before training starts
and JPEG decoding is not repeated every epoch. `TrainDataset` draws one augmented sample per key
`(index, height, width, epoch)`; its randomness derives from `(seed, epoch, index)` only, so a resumed run sees the
same data as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from asbunet.data.augment import AugmentConfig, auto_crop, composite_scene, photometric, resize_pair
from asbunet.data.io import DataError, resize_long_side
from asbunet.data.sources import Source


class SamplePool:
    """Every `(image, mask)` of one or more sources, loaded once and downsized so the long side is <= `max_side`.

    Args:
        sources: the datasets to pool.
        max_side: long-side cap applied at load time (None keeps full resolution).
        skip_bad: skip unreadable or inconsistent samples (listed in `skipped`) instead of raising `DataError`.
    """

    def __init__(self, sources: Sequence[Source], max_side: int | None = 512, skip_bad: bool = False, progress=None):
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.names: list[str] = []
        self.skipped: list[str] = []
        items = [(src, i) for src in sources for i in range(len(src))]
        for src, i in progress(items) if progress else items:
            try:
                image, mask = src.load(i)
            except DataError as err:
                if not skip_bad:
                    raise
                self.skipped.append(str(err))
                continue
            if max_side is not None and max(image.shape[:2]) > max_side:
                image = resize_long_side(image, max_side)
                mask = resize_pair(image, mask, image.shape[:2])[1]
            self.images.append(image)
            self.masks.append(mask)
            self.names.append(str(src.samples[i].image))
        if not self.images:
            raise DataError("no usable samples in " + ", ".join(str(getattr(s, "name", s)) for s in sources))

    @classmethod
    def from_arrays(cls, images: list[np.ndarray], masks: list[np.ndarray], names: list[str]) -> SamplePool:
        """A pool of samples already in memory."""
        pool = cls.__new__(cls)
        pool.images, pool.masks, pool.names, pool.skipped = list(images), list(masks), list(names), []
        return pool

    def __len__(self) -> int:
        return len(self.images)

    def extend(self, other: SamplePool) -> range:
        """Appends the samples of `other`; returns their indices in this pool."""
        start = len(self)
        self.images += other.images
        self.masks += other.masks
        self.names += other.names
        self.skipped += other.skipped
        return range(start, len(self))

    def positive_fraction(self) -> float:
        """Fraction of person pixels over the pool (for the weighted BCE's positive weight)."""
        pos = sum(int(m.sum()) for m in self.masks)
        return pos / sum(m.size for m in self.masks)


class TrainDataset(Dataset):
    """Augmented training samples drawn from `pool[indices]`; keys are `(index, height, width, epoch)`.

    A composite (probability `augment.composite`) pastes the sample's person, and more people drawn from the pool
    (`augment.people`), onto a canvas: a frame of `backgrounds` (probability `augment.background`) or another
    sample. A person-free sample (all-zero mask) is its own canvas, so hard negatives are seen plain and with
    people pasted in.
    """

    def __init__(
        self,
        pool: SamplePool,
        indices: Sequence[int],
        augment: AugmentConfig,
        seed: int = 0,
        backgrounds: SamplePool | None = None,
    ):
        self.pool, self.indices, self.cfg, self.seed = pool, list(indices), augment, seed
        self.backgrounds = backgrounds
        self.photometric = photometric(augment)
        self.with_person = [i for i in self.indices if pool.masks[i].any()]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, h, w, epoch = key
        rng = np.random.default_rng((self.seed, epoch, index))
        image, mask = self.scene(self.indices[index], (h, w), rng)
        self.photometric.set_random_seed(int(rng.integers(2**31)))
        out = self.photometric(image=image, mask=mask)
        x = torch.from_numpy(out["image"].transpose(2, 0, 1).copy())  # (3, h, w) normalized
        y = torch.from_numpy(out["mask"][None].astype(np.float32))  # (1, h, w) in {0, 1}
        return x, y

    def scene(self, i: int, hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The geometric part of a sample: a composite, an auto crop or a plain resize of `pool[i]` at `hw`."""
        h, w = hw
        image, mask = self.pool.images[i], self.pool.masks[i]
        cfg = self.cfg
        if rng.random() < cfg.composite and len(self.with_person) > 1:
            people = [(image, mask)] if mask.any() else []
            if not people:
                canvas = (image, mask)
            elif self.backgrounds is not None and len(self.backgrounds) and rng.random() < cfg.background:
                b = int(rng.integers(len(self.backgrounds)))
                canvas = (self.backgrounds.images[b], self.backgrounds.masks[b])
            else:
                j = self.indices[int(rng.integers(len(self.indices)))]
                canvas = (self.pool.images[j], self.pool.masks[j])
            count = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
            for _ in range(max(0, count - len(people))):
                k = self.with_person[int(rng.integers(len(self.with_person)))]
                people.append((self.pool.images[k], self.pool.masks[k]))
            return composite_scene(*canvas, people, (h, w), rng, cfg)
        if rng.random() < self.cfg.crop:
            image, mask = auto_crop(image, mask, (h, w), rng, self.cfg.crop_scale)
        else:
            image, mask = resize_pair(image, mask, (h, w))
        return image, mask


def validation_scenes(
    pool: SamplePool, indices: Sequence[int], backgrounds: SamplePool, count: int, augment: AugmentConfig, seed: int = 0
) -> SamplePool:
    """`count` fixed scenes for validation: people of `pool[indices]` pasted onto `backgrounds` frames at the frame's
    own size, as training composites them (number, height, rotation), from a generator seeded by `seed` alone."""
    people = [i for i in indices if pool.masks[i].any()]
    if not people or not len(backgrounds):
        raise DataError("validation scenes need validation images with people and at least one background frame")
    rng = np.random.default_rng((seed, 99))
    scene_cfg = replace(augment, crop_scale=(1.0, 1.0), tilt=0.0)
    images, masks, names = [], [], []
    for n in range(count):
        b = int(rng.integers(len(backgrounds)))
        canvas, canvas_mask = backgrounds.images[b], backgrounds.masks[b]
        chosen = rng.choice(people, size=int(rng.integers(augment.people[0], augment.people[1] + 1)))
        cutouts = [(pool.images[i], pool.masks[i]) for i in chosen]
        image, mask = composite_scene(canvas, canvas_mask, cutouts, canvas_mask.shape, rng, scene_cfg)
        images.append(image)
        masks.append(mask)
        names.append(f"scene {n}: {backgrounds.names[b]} + {len(cutouts)} people")
    return SamplePool.from_arrays(images, masks, names)


class ShapeBatchSampler(Sampler[list[tuple[int, int, int, int]]]):
    """Groups the indices of `sampler` into batches and gives each batch one canvas shape `(H, W)`.

    Shapes are drawn from `shapes` with a generator seeded by `(seed, epoch)`, so training on portrait, square and
    landscape canvases stays deterministic. Call `set_epoch` every epoch (it is forwarded to `sampler`). `skip`
    leaves out the epoch's first batches (drawn all the same, so the rest are unchanged): a resume mid-epoch.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        shapes: Sequence[tuple[int, int]],
        seed: int = 0,
        drop_last: bool = True,
    ):
        self.sampler, self.batch_size, self.shapes = sampler, batch_size, [tuple(s) for s in shapes]
        self.seed, self.drop_last, self.epoch, self.skip = seed, drop_last, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        rng = np.random.default_rng((self.seed, self.epoch, 7))
        batch: list[int] = []
        done = 0
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                keys = self._keys(batch, rng)
                done += 1
                if done > self.skip:
                    yield keys
                batch = []
        if batch and not self.drop_last and done >= self.skip:
            yield self._keys(batch, rng)

    def _keys(self, batch: list[int], rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
        h, w = self.shapes[int(rng.integers(len(self.shapes)))]
        return [(i, h, w, self.epoch) for i in batch]


class EpochRandomSampler(Sampler[int]):
    """A permutation of `range(n)` seeded by `(seed, epoch)`: the single-process twin of `DistributedSampler`."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        yield from np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist()
