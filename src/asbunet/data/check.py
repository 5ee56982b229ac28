"""Checking a dataset before training: the data of Section IV-A, validated up front.

Every sample of a source (a folder with `images/` and `masks/`, or a COCO JSON file; see `asbunet.data.sources`) is
loaded exactly as training loads it: the image must be readable, the mask present, non-empty, readable and of the
image's size (for COCO, the image of the size the JSON states). The report gives the counts, the share of person
pixels (which sets the weighted BCE's `pos_weight: auto`, Section IV-B), the image sizes, and every problem with the
file it concerns. `asbunet check-data` prints it and exits non-zero on problems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asbunet.data.io import DataError, list_images
from asbunet.data.sources import FolderSource, Source, open_source

FULL_FRAME = 0.97  # masks covering more of the image than this are listed as notes (close-ups or inverted masks)


@dataclass
class SourceReport:
    """What `check_source` found in one dataset.

    Attributes:
        name: the dataset as given (path or mapping).
        layout: "folder", "coco", or "" when the dataset could not be opened.
        samples: images the dataset lists.
        usable: samples that load without a problem; every other sample has exactly one entry in `problems`.
        sizes: image size `(width, height)` -> number of usable samples.
        person_fractions: share of person pixels of each usable sample.
        problems: samples training cannot use, or a dataset that cannot be opened; each message names the file.
        notes: things that are allowed but worth a look (masks with no person, orphan masks, full-frame masks).
    """

    name: str
    layout: str = ""
    samples: int = 0
    usable: int = 0
    person_pixels: int = 0
    pixels: int = 0
    sizes: Counter = field(default_factory=Counter)
    person_fractions: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def person_fraction(self) -> float:
        """Person pixels over all pixels of the usable samples (0 when there are none)."""
        return self.person_pixels / self.pixels if self.pixels else 0.0


def _folder_layout_problems(source: FolderSource) -> tuple[dict[str, str], list[str]]:
    """Ambiguous pairings (image stem -> problem) and notes (orphan masks, shared stems) of a folder source."""
    ambiguous, notes = {}, []
    if source.masks_dir is None:  # person-free frames: no masks to pair
        return ambiguous, notes
    masks = list_images(source.masks_dir)
    by_stem: dict[str, list[Path]] = {}
    for path in masks:
        by_stem.setdefault(path.stem, []).append(path)
    for stem, paths in sorted(by_stem.items()):
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            ambiguous[stem] = f"several masks for the image stem {stem!r} in {source.masks_dir} ({names}); keep one"
    image_stems = Counter(s.image.stem for s in source.samples)
    for stem, n in sorted(image_stems.items()):
        if n > 1 and stem in by_stem:
            notes.append(f"{source.images_dir}: {n} images share the stem {stem!r} and so the mask {by_stem[stem][0]}")
    orphans = [p for p in masks if p.stem not in image_stems]
    if orphans:
        shown = ", ".join(p.name for p in orphans[:5]) + (" ..." if len(orphans) > 5 else "")
        notes.append(f"{source.masks_dir}: {len(orphans)} masks have no image ({shown}); they are ignored")
    return ambiguous, notes


def check_source(
    source: Source, name: str | None = None, progress: Callable[[Iterable], Iterable] | None = None
) -> SourceReport:
    """Loads every sample of `source` as training does and reports what is wrong with it.

    Args:
        source: an opened dataset (`asbunet.data.sources.open_source`).
        name: how the report names the dataset (defaults to the source's own name).
        progress: optional wrapper of the sample iteration (e.g. `tqdm`).
    """
    layout = "folder" if isinstance(source, FolderSource) else "coco"
    report = SourceReport(name=name or source.name, layout=layout, samples=len(source))
    ambiguous: dict[str, str] = {}
    if isinstance(source, FolderSource):
        ambiguous, report.notes = _folder_layout_problems(source)
    indices = range(len(source))
    for i in progress(indices) if progress else indices:
        stem = source.samples[i].image.stem
        if stem in ambiguous:  # a problem, so not usable: each sample counts once
            report.problems.append(f"{source.samples[i].image}: {ambiguous[stem]}")
            continue
        try:
            image, mask = source.load(i)
        except DataError as err:
            report.problems.append(str(err))
            continue
        report.usable += 1
        h, w = image.shape[:2]
        report.sizes[(w, h)] += 1
        positive = int(mask.sum())
        report.person_pixels += positive
        report.pixels += mask.size
        fraction = positive / mask.size
        report.person_fractions.append(fraction)
        label = source.samples[i].mask or source.samples[i].image
        if positive == 0:
            report.notes.append(f"{label}: the mask holds no person pixel (fine for negative samples)")
        elif fraction > FULL_FRAME:
            report.notes.append(f"{label}: the mask covers {fraction:.1%} of the image (close-up or inverted mask?)")
    return report


def check_datasets(specs: Sequence[str | Path | dict], progress=None) -> list[SourceReport]:
    """`check_source` on every dataset of `specs`; a dataset that cannot be opened is reported as a problem.

    Args:
        specs: paths (folder with `images/` and `masks/`, or COCO `.json`) or config mappings, as in `data.train`.
        progress: optional factory `progress(iterable, desc)` wrapping each dataset's iteration.
    """
    reports = []
    for spec in specs:
        name = str(spec)
        try:
            source = open_source(spec)
        except DataError as err:
            reports.append(SourceReport(name=name, problems=[str(err)]))
            continue
        wrap = (lambda it, n=name: progress(it, n)) if progress else None
        reports.append(check_source(source, name, wrap))
    return reports


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def format_report(reports: Sequence[SourceReport], max_lines: int = 50) -> str:
    """Human-readable report: per dataset counts, sizes, person-pixel share, notes and problems."""
    lines = []
    for r in reports:
        layout = f" ({r.layout})" if r.layout else ""
        lines.append(
            f"{r.name}{layout}: {_count(r.samples, 'sample')}, {r.usable} usable, {_count(len(r.problems), 'problem')}"
        )
        if r.usable:
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in r.sizes.most_common(4))
            rest = len(r.sizes) - min(len(r.sizes), 4)
            areas = sorted(r.sizes, key=lambda s: s[0] * s[1])
            lines.append(
                f"  image sizes (W x H): {common}{f', {rest} other sizes' if rest else ''}; "
                f"smallest {areas[0][0]}x{areas[0][1]}, largest {areas[-1][0]}x{areas[-1][1]}"
            )
            f = np.asarray(r.person_fractions)
            lines.append(
                f"  person pixels: {_percent(r.person_fraction)} of all pixels; per image min "
                f"{_percent(f.min())}, median {_percent(float(np.median(f)))}, max {_percent(f.max())}; "
                f"pos_weight auto = {(1 - r.person_fraction) / max(r.person_fraction, 1e-6):.3f}"
            )
        for title, items in (("notes", r.notes), ("problems", r.problems)):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {item}" for item in items[:max_lines])
                if len(items) > max_lines:
                    lines.append(f"    ... and {len(items) - max_lines} more")
    total = sum(r.samples for r in reports)
    usable = sum(r.usable for r in reports)
    problems = sum(len(r.problems) for r in reports)
    lines.append(f"total: {_count(total, 'sample')}, {usable} usable, {_count(problems, 'problem')}")
    return "\n".join(lines)
