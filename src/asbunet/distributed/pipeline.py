"""`segment_dataset`: `asbunet segment` for images on a Ray cluster (`asbunet segment --engine ray`).

The driver lists the inputs (`asbunet.distributed.inputs`), plans every output as `asbunet segment` does, and leaves
out the inputs whose outputs all exist already, so that a killed run started again goes on where it stopped. Ray Data
reads the others' bytes (`read_binary_files`), a pool of actors segments and writes them (`SegmentFiles`, one
`Segmenter` each), and the driver gathers one row per input: written, or failed with its message. Ray's own progress
bars show the run. The output folder must be the same path on every node (a local folder on one machine, shared
storage on a cluster); outputs are written atomically, so a kill never leaves half a file under a final name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asbunet.data import io
from asbunet.distributed.actors import SegmentFiles
from asbunet.distributed.inputs import is_uri, list_inputs
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.files import Report, planned_outputs
from asbunet.segment.options import SegmentOptions, is_video
from asbunet.segment.outputs import prepare_output_dir

BATCH_SIZE = 4  # images per call of an actor: small, so that a kill loses little and progress moves evenly
FILES_PER_BLOCK = 64  # files per block that Ray reads and hands to one actor


@dataclass
class DatasetReport(Report):
    """`Report` of a Ray run, with the inputs left out because their outputs were already there. Inputs are named as
    given: local paths as `Path`, URIs as strings."""

    already_done: int = 0

    def summary(self) -> str:
        text = super().summary()
        return f"{text}; {self.already_done} already done" if self.already_done else text


def segment_dataset(
    inputs: Sequence[str | Path],
    output: str | Path,
    options: SegmentOptions | None = None,
    model: str | Path | None = None,
    runtime: str | None = None,
    size: int | None = None,
    threshold: float | None = None,
    refine: bool = True,
    threads: int = 1,
    actors: int | None = None,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> DatasetReport:
    """Segments image files on Ray into `output`, with `asbunet segment`'s file names and formats.

    Connects to the Ray cluster of `RAY_ADDRESS` (or the one `ray start` runs on this machine), else starts one on this
    machine, unless the caller has called `ray.init` already; it is left running.

    Args:
        inputs: local files, folders and glob patterns, or URIs (`s3://bucket/photos`); not both in one run.
        output: output folder, created if needed; on a cluster, shared storage mounted at the same path on every node.
        model, runtime, size, threshold, refine: as `Segmenter.from_pretrained` (a model file must be readable from
            every node).
        threads: threads (and Ray CPUs) of each actor.
        actors: actors in the pool (None: the cluster's CPUs divided by `threads`).
        progress: Ray Data's progress bars.
        log: receives one line per failed input, per warning, per skipped folder entry and about the inputs already
            done (default: stderr).

    Raises:
        DataError: for input problems; ValueError: for clashing outputs or bad arguments; OSError: when the output
            folder cannot be written.
    """
    import ray

    if is_uri(output):
        raise ValueError(f"{output}: the output is a folder every node can write (shared storage), not a URI")
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be at least 1, got {actors}")
    options = options or SegmentOptions()
    log = log or (lambda line: print(line, file=sys.stderr))
    report = DatasetReport()
    found = list_inputs(inputs, report.skipped)
    shown = dict(zip(found.paths, found.shown, strict=True))
    keys = {path: Path(shown[path]) for path in found.paths}  # for output names
    names = {path: shown[path] if found.filesystem else keys[path] for path in found.paths}  # URIs keep their `//`
    images = [path for path in found.paths if not is_video(keys[path])]
    plan = planned_outputs([keys[p] for p in images], Path(output), options)
    prepare_output_dir(output)
    for path, reason in report.skipped:
        log(f"skipped: {path}: {reason}")
    for path in found.paths:
        if is_video(keys[path]):
            message = f"{shown[path]}: a video; --engine ray segments images (segment videos without it)"
            report.failed.append((names[path], message))
            log(f"failed: {message}")
    todo = [p for p in images if not all(target.is_file() for target in plan[keys[p]])]
    report.already_done = len(images) - len(todo)
    if report.already_done:
        log(f"{report.already_done} of {len(images)} images already have all their outputs in {output}: left out")
    if not todo:
        return report
    Segmenter.from_pretrained(model, size, 1, runtime, threshold=threshold, refine=refine)  # a bad model fails here
    if not ray.is_initialized():
        ray.init()
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    # Reading bytes takes no CPU of its own, so the actors may hold every CPU of the cluster without starving the
    # reads; blocks of at most FILES_PER_BLOCK files, at least four per actor, keep every actor busy.
    blocks = min(len(todo), max(4 * actors, -(-len(todo) // FILES_PER_BLOCK)))
    dataset = ray.data.read_binary_files(
        todo, include_paths=True, filesystem=found.filesystem, num_cpus=0, override_num_blocks=blocks
    )
    results = dataset.map_batches(
        SegmentFiles,
        fn_constructor_kwargs={
            "output": os.path.abspath(output),  # the actors' working folder is not ours
            "model": model,
            "runtime": runtime,
            "threads": threads,
            "size": size,
            "threshold": threshold,
            "refine": refine,
            "options": options,
            "max_pixels": io.MAX_PIXELS,
        },
        batch_size=batch_size,
        num_cpus=threads,
        compute=ray.data.ActorPoolStrategy(size=actors),
    )
    for row in results.iter_rows():
        path = names[row["path"]]
        if row["warning"]:
            report.warnings.append((path, row["warning"]))
            log(f"warning: {path}: {row['warning']}")
        if row["error"]:
            message = row["error"].replace(row["path"], shown[row["path"]], 1)
            report.failed.append((path, message))
            log(f"failed: {message}")
        else:
            report.processed += 1
            report.written += [Path(output) / Path(f).name for f in row["files"].splitlines()]
    return report
