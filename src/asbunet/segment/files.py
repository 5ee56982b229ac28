"""Segmenting image and video files: input discovery, per-image outputs, error reporting (`asbunet segment`).

For each image `<stem>.<ext>` the requested outputs are written to the output folder:

    mask     <stem>.png           binary mask, 0/255, at `threshold`
    prob     <stem>_prob.png      probability map, 0..255
    overlay  <stem>_overlay.jpg   person tinted green
    cutout   <stem>_cutout.png    RGBA, alpha = probability
    effect   <stem>_<name>.jpg    blurred (`_blur`) or replaced (`_background`) background

Videos go through `asbunet.segment.video` (one `.mp4` per requested output). The probability and the mask are the
segmenter's (`Segmenter.predict`, with the model's refinement, and `Segmenter.threshold`). Images and video
frames larger than `asbunet.data.io.MAX_PIXELS` are refused from their headers, before decoding. An input that
fails for any reason (unreadable, too large, out of memory, a full disk, an output that another run is writing at
the same time) is reported and skipped, with none of its outputs left (`asbunet.publish`: all of an input's outputs
or none); the others are still written, and the returned `Report` lists both. The entries of an input folder that
are not segmented (symlink loops, dangling symlinks, folders, FIFOs, unsupported extensions) are listed with the
reason.
"""

from __future__ import annotations

import errno
import glob
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asbunet.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, DataError, read_image
from asbunet.frames.render import postprocess, render
from asbunet.inference.preprocess import input_warning
from asbunet.inference.segmenter import Segmenter
from asbunet.publish import OutputBusyError, claimed
from asbunet.segment.options import SegmentOptions, is_video, output_names, video_outputs
from asbunet.segment.outputs import prepare_output_dir, write_image

SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES


@dataclass
class Report:
    """Outcome of a run: files written, the inputs that failed with their error messages, and the entries of input
    folders that were not segmented with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    processed: int = 0
    warnings: list[tuple[Path, str]] = field(default_factory=list)  # segmented, but the result says little
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # folder entries not segmented, and why

    def summary(self) -> str:
        """`N written (K files); M failed: a.jpg, b.mp4; S skipped: c (reason)`: inputs segmented and the files they
        wrote, inputs that failed, folder entries not segmented. Parts with nothing to say are left out, except the
        first ("0 written")."""
        parts = [f"{self.processed} written" + (f" ({_count(len(self.written), 'file')})" if self.written else "")]
        if self.failed:
            parts.append(f"{len(self.failed)} failed: {', '.join(str(path) for path, _ in self.failed)}")
        if self.skipped:
            listed = ", ".join(f"{path} ({reason})" for path, reason in self.skipped)
            parts.append(f"{len(self.skipped)} skipped: {listed}")
        return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def failure_message(path: Path, err: BaseException) -> str:
    """One line naming the input and what went wrong with it (the package's own errors already name the file)."""
    text = str(err)
    if isinstance(err, MemoryError):
        return f"{path}: out of memory while segmenting it{f' ({text})' if text else ''}"
    if isinstance(err, OutputBusyError):
        return f"{path}: not written: {text}; run it again when that run has finished, or use another --output folder"
    if isinstance(err, (DataError, OSError)) and str(path) in text:
        return text
    if isinstance(err, OSError) and err.strerror:  # an OSError of the system: its words, not its number
        return f"{path}: {err.strerror[0].lower()}{err.strerror[1:]}{f' ({err.filename})' if err.filename else ''}"
    if isinstance(err, (DataError, OSError)):
        return f"{path}: {text}"
    return f"{path}: {type(err).__name__}: {text}" if text else f"{path}: {type(err).__name__}"


def skip_reason(path: Path) -> str | None:
    """Why `path` is not segmented (a symlink loop, a dangling symlink, not a regular file, an unsupported
    extension), or None for a regular image or video file. Never opens the file (a FIFO would block)."""
    try:
        mode = path.stat().st_mode  # follows symlinks
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop"
        if err.errno == errno.ENOENT and path.is_symlink():
            return f"dangling symlink to {path.readlink()}"
        return f"cannot be read ({err.strerror})" if err.strerror else "cannot be read"
    if stat.S_ISDIR(mode):
        return "a folder, not a regular file"
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        return f"{kind}, not a regular file"
    if path.suffix.lower() not in SUFFIXES:
        return f"unsupported extension {path.suffix}" if path.suffix else "no extension"
    return None


def collect_inputs(inputs: Sequence[str | Path], skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Expands image files, video files, folders (their images and videos, not recursive) and glob patterns.

    Args:
        skipped: receives `(path, reason)` for each entry of a folder, and each match of a pattern, that is not
            segmented (`skip_reason`).

    Raises:
        DataError: a path that does not exist or is not a regular file of a supported type, a folder with no image or
            video, a pattern that matches nothing.
    """
    found: list[Path] = []
    passed: list[tuple[Path, str]] = []

    def sort_out(entries: list[Path]) -> list[Path]:
        files = []
        for entry in sorted(entries):
            reason = skip_reason(entry)
            if reason is None:
                files.append(entry)
            else:
                passed.append((entry, reason))
        return files

    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            files = sort_out(list(path.iterdir()))
            if not files:
                raise DataError(f"{path}: folder holds no image or video ({', '.join(SUFFIXES)})")
            found += files
        elif glob.has_magic(text) and not path.exists() and not path.is_symlink():
            files = sort_out([Path(p) for p in glob.glob(text, recursive=True)])
            if not files:
                raise DataError(f"{text}: pattern matches no image or video file")
            found += files
        elif path.exists() or path.is_symlink():
            reason = skip_reason(path)
            if reason is not None and reason.startswith(("unsupported", "no extension")):
                raise DataError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
            if reason is not None:
                raise DataError(f"{path}: {reason}")
            found.append(path)
        else:
            raise DataError(f"{path}: file or folder not found")
    if skipped is not None:
        skipped += passed
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
        targets = [output / f"{path.stem}{output_names(k, options.frame.background, video)}" for k in kinds]
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
    image: np.ndarray | None = None,
) -> list[Path]:
    """Segments one image file and writes its outputs (`targets` from `planned_outputs`).

    Args:
        warn: receives `asbunet.inference.preprocess.input_warning` for an image too small or of a single colour,
            which is segmented anyway.
        image: the image already decoded (`asbunet.data.io.decode_image` of bytes read elsewhere); None reads `path`.
    """
    image = read_image(path) if image is None else image
    if warn is not None and (problem := input_warning(image)):
        warn(problem)
    options = options or SegmentOptions()
    prob = postprocess(segmenter, image, options.frame)
    with claimed(targets) as group:  # all of the image's outputs, or none
        for kind, target in zip(options.outputs_for(False), targets, strict=True):
            tmp = group.temporary(target)
            try:
                write_image(tmp, render(kind, image, prob, options.frame, segmenter.threshold))
            except OSError as err:  # named by the final name, not the temporary one
                raise OSError(str(err).replace(str(tmp), str(target))) from None
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
    `Report.failed`, reported through `log` and skipped, with none of its outputs left. Folder entries that are not
    segmented are recorded in `Report.skipped` and reported through `log`.

    Args:
        inputs: image or video files, folders, glob patterns.
        output: output folder, created if needed.
        progress: tqdm progress bars on stderr.
        log: receives one line per failure, per skipped folder entry and per finished video; default prints above the
            progress bar.

    Raises:
        DataError: for input problems; ValueError: for clashing or overwriting outputs; OSError: when the output
            folder cannot be written.
    """
    from asbunet.segment.video import segment_video

    options = options or SegmentOptions()
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    report = Report()
    paths = collect_inputs(inputs, report.skipped)
    plan = planned_outputs(paths, Path(output), options)
    prepare_output_dir(output)
    for path, reason in report.skipped:
        log(f"skipped: {path}: {reason}")
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
