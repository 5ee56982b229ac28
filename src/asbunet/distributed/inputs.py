"""The inputs of a Ray run: local files, folders and glob patterns as `asbunet segment` expands them, or URIs that
pyarrow's filesystems read (`s3://`, `gs://`, `abfs://`, `hdfs://`, `file://`), listed before the run so that the
finished ones can be left out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asbunet.data.io import DataError
from asbunet.segment.files import SUFFIXES, collect_inputs


def is_uri(text: str | Path) -> bool:
    return "://" in str(text)


@dataclass(frozen=True)
class Inputs:
    """What to read: `paths` as `ray.data.read_binary_files` takes them (with `filesystem`, None for local paths),
    and the name of each in messages and reports (`shown`: the path as given, or the full URI)."""

    paths: list[str]
    shown: list[str]
    filesystem: object | None = None  # pyarrow.fs.FileSystem


def list_inputs(inputs: Sequence[str | Path], skipped: list[tuple[str | Path, str]] | None = None) -> Inputs:
    """Expands local inputs with `asbunet.segment.files.collect_inputs`, or lists URIs (a file, or the images and
    videos of a folder, not recursive) through pyarrow.

    Args:
        skipped: receives `(path or URI, reason)` for each folder entry that is not segmented.

    Raises:
        DataError: a missing file or folder, a folder with nothing to segment, a pattern that matches nothing.
        ValueError: local paths mixed with URIs, or URIs of different filesystems.
    """
    uris = [str(item) for item in inputs if is_uri(item)]
    if not uris:  # absolute, for workers whose working folder is not ours; symlinks kept, as they name the outputs
        found = collect_inputs(inputs, skipped)
        return Inputs([os.path.abspath(p) for p in found], [str(p) for p in found])
    if len(uris) != len(inputs):
        raise ValueError("give local paths or URIs, not both: one run reads through one filesystem")
    from pyarrow import fs as pafs

    filesystem, paths, shown = None, [], []
    for uri in uris:
        found, path = pafs.FileSystem.from_uri(uri)
        if filesystem is None:
            filesystem = found
        elif found.type_name != filesystem.type_name:
            raise ValueError(f"{uri}: another filesystem than {uris[0]}; segment them in separate runs")
        prefix = uri[: uri.index("://") + 3]
        for entry in _entries(found, path, uri, prefix, skipped):
            paths.append(entry)
            shown.append(prefix + entry)
    return Inputs(paths, shown, filesystem)


def _entries(filesystem, path: str, uri: str, prefix: str, skipped: list | None) -> list[str]:
    """The file `path`, or the images and videos of the folder `path`, sorted; the folder's other entries go to
    `skipped` as full URIs (`prefix` + path) with the reason."""
    from pyarrow import fs as pafs

    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"{uri}: file or folder not found")
    if info.type == pafs.FileType.File:
        if Path(path).suffix.lower() not in SUFFIXES:
            raise DataError(f"{uri}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
        return [path]
    files = []
    for entry in sorted(filesystem.get_file_info(pafs.FileSelector(path, recursive=False)), key=lambda f: f.path):
        suffix = Path(entry.path).suffix
        if entry.type != pafs.FileType.File:
            reason = "a folder, not a regular file" if entry.type == pafs.FileType.Directory else "not a regular file"
        elif suffix.lower() not in SUFFIXES:
            reason = f"unsupported extension {suffix}" if suffix else "no extension"
        else:
            files.append(entry.path)
            continue
        if skipped is not None:
            skipped.append((prefix + entry.path, reason))
    if not files:
        raise DataError(f"{uri}: folder holds no image or video ({', '.join(SUFFIXES)})")
    return files
