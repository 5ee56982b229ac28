"""Segmenting image and video files: input discovery, per-image outputs, error reporting (`asbunet segment`).

For each image `<stem>.<ext>` the requested outputs are written to the output folder:

    mask     <stem>.png           binary mask, 0/255, at `threshold`
    prob     <stem>_prob.png      probability map, 0..255
    overlay  <stem>_overlay.jpg   person tinted green
    cutout   <stem>_cutout.png    RGBA, alpha = probability
    effect   <stem>_<name>.jpg    blurred (`_blur`) or replaced (`_background`) background

Videos go through `asbunet.segment.video` (one `.mp4` per requested output). The probability is refined at output
resolution by the guided filter (`asbunet.segment.effects.refine_probability`) unless `refine=False`. Images and video
frames larger than `asbunet.data.io.MAX_PIXELS` are refused from their headers, before decoding. An input that
fails for any reason (unreadable, too large, out of memory) is reported and skipped; the others are still written,
and the returned `Report` lists both.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from asbunet.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, DataError, read_image
from asbunet.inference.preprocess import input_warning
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.options import SegmentOptions, is_video, output_names, resolve_options, video_outputs
from asbunet.segment.render import postprocess, prepare_output_dir, render, write_image


@dataclass
class Report:
    """Outcome of a run: files written, and the inputs that failed with their error messages."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    processed: int = 0
    warnings: list[tuple[Path, str]] = field(default_factory=list)  # segmented, but the result says little

    def summary(self) -> str:
        """`N written, M failed (K files)`: inputs segmented, inputs skipped, files written."""
        return f"{self.processed} written, {len(self.failed)} failed ({len(self.written)} files)"


def failure_message(path: Path, err: BaseException) -> str:
    """One line naming the input and what went wrong with it (the package's own errors already name the file)."""
    text = str(err)
    if isinstance(err, MemoryError):
        return f"{path}: out of memory while segmenting it{f' ({text})' if text else ''}"
    if isinstance(err, (DataError, OSError)) and str(path) in text:
        return text
    return f"{path}: {type(err).__name__}: {text}" if text else f"{path}: {type(err).__name__}"


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Expands image files, video files, folders (their images and videos, not recursive) and glob patterns.

    Raises:
        DataError: a path that does not exist, a file of an unsupported type, a folder with no image or video,
            a pattern that matches nothing.
    """
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise DataError(f"{path}: folder holds no image or video ({', '.join(suffixes)})")
            found += files
        elif path.is_file():
            if path.suffix.lower() not in suffixes:
                raise DataError(f"{path}: unsupported file type; expected one of {', '.join(suffixes)}")
            found.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file() and p.suffix.lower() in suffixes]
            if not files:
                raise DataError(f"{text}: pattern matches no image or video file")
            found += files
        else:
            raise DataError(f"{path}: file or folder not found")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def planned_outputs(inputs: Sequence[Path], output: Path, options: SegmentOptions) -> dict[Path, list[Path]]:
    """Output paths of every input; raises `ValueError` when two inputs would write the same file or an output
    would overwrite an input."""
    plan: dict[Path, list[Path]] = {}
    owner: dict[Path, Path] = {}
    sources = {p.resolve() for p in inputs}
    for path in inputs:
        video = is_video(path)
        kinds = video_outputs(options, str(path)) if video else options.outputs_for(False)
        targets = [output / f"{path.stem}{output_names(k, options.background, video)}" for k in kinds]
        for t in targets:
            if t.resolve() in sources:
                raise ValueError(f"{t}: output would overwrite an input; choose another --output folder")
            if t in owner:
                raise ValueError(
                    f"{owner[t]} and {path} would both write {t}; rename one or segment them into "
                    "different --output folders"
                )
            owner[t] = path
        plan[path] = targets
    return plan


def segment_image(
    segmenter: Segmenter,
    path: Path,
    targets: Sequence[Path],
    options: SegmentOptions,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Segments one image file and writes its outputs (`targets` from `planned_outputs`).

    Args:
        warn: receives `asbunet.inference.preprocess.input_warning` for an image too small or of a single colour,
            which is segmented anyway.
    """
    image = read_image(path)
    if warn is not None and (problem := input_warning(image)):
        warn(problem)
    options = resolve_options(options, segmenter)
    prob = postprocess(segmenter, image, options)
    for kind, target in zip(options.outputs_for(False), targets, strict=True):
        write_image(target, render(kind, image, prob, options))
    return list(targets)


def segment_files(
    segmenter: Segmenter,
    inputs: Sequence[str | Path],
    output: str | Path,
    options: SegmentOptions | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Segments images and videos into `output`.

    Problems with the arguments (missing input, empty folder, unwritable output folder, clashing output names)
    raise before anything is written. A file that turns out unreadable while running is recorded in
    `Report.failed`, reported through `log` and skipped.

    Args:
        inputs: image or video files, folders, glob patterns.
        output: output folder, created if needed.
        progress: tqdm progress bars on stderr.
        log: receives one line per failure and per finished video; default prints above the progress bar.

    Raises:
        DataError: for input problems; ValueError: for clashing or overwriting outputs; OSError: when the output
            folder cannot be written.
    """
    from asbunet.segment.video import segment_video

    options = resolve_options(options, segmenter)
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    paths = collect_inputs(inputs)
    plan = planned_outputs(paths, Path(output), options)
    prepare_output_dir(output)
    report = Report()
    images = [p for p in paths if not is_video(p)]
    videos = [p for p in paths if is_video(p)]
    bar = tqdm(images, desc="segment", unit="image", disable=not progress or not images, dynamic_ncols=True)

    def warn(path: Path, problem: str) -> None:
        report.warnings.append((path, problem))
        log(f"warning: {path}: {problem}")

    for path in bar:
        try:
            report.written += segment_image(segmenter, path, plan[path], options, lambda text, p=path: warn(p, text))
            report.processed += 1
        except Exception as err:  # noqa: BLE001 - one input's failure, whatever it is, must not stop the others
            report.failed.append((path, failure_message(path, err)))
            log(f"failed: {report.failed[-1][1]}")
    for path in videos:
        try:
            result = segment_video(segmenter, path, plan[path], options, progress=progress)
        except Exception as err:  # noqa: BLE001 - as above
            report.failed.append((path, failure_message(path, err)))
            log(f"failed: {report.failed[-1][1]}")
            continue
        report.written += result.outputs
        report.processed += 1
        log(result.summary())
    return report
