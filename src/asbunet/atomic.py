"""Writing output files atomically: to a temporary name in the same folder, renamed to the final name when complete.

A kill (`kill -9` included), a crash or a full disk while writing leaves the final name either absent or holding its
previous complete content, never half a file; the temporary file is removed when the writer fails, and left behind
only by a kill. Temporary names are unique to the writing process (its pid and a random part), so that two processes
never write into one file: `.<stem>.<pid>-<random>.tmp<suffix>`, and `<stem>.<pid>-<random>.partial<suffix>` for a
long write (a video). Files get the usual mode, 0666 less the umask, as `open` gives them. Every output of the package
(images, videos, JSON, CSV, plots, checkpoints, exports) is written through here; `asbunet.publish` claims and
publishes a group of them together.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _unique() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def temporary_path(path: str | Path) -> Path:
    """A new name beside `path`, unique to this process, that keeps its suffix (for writers that choose the format by
    it): `.<stem>.<pid>-<random>.tmp<suffix>`."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{_unique()}.tmp{path.suffix}")


def partial_path(path: str | Path) -> Path:
    """A new name beside `path`, unique to this process, where a long write (a video) grows until it is complete:
    `<stem>.<pid>-<random>.partial<suffix>`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{_unique()}.partial{path.suffix}")


def process_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (one of another user counts as running; on Windows, where
    signal 0 is not a probe, every process counts as running)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists; other errors: assume it does
        return True
    return True


def stale_temporaries(path: str | Path) -> list[Path]:
    """The temporary files of `path` (`temporary_path` names) left by processes that no longer run: a kill's
    leftovers, safe to remove. Those of running processes, this one included, are not listed."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(\d+)-[0-9a-f]+\.tmp{re.escape(path.suffix)}")
    if not path.parent.is_dir():
        return []
    found = []
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and int(match[1]) != os.getpid() and not process_alive(int(match[1])):
            found.append(entry)
    return sorted(found)


def commit(tmp: str | Path, path: str | Path, sync: bool = False) -> Path:
    """Renames the complete file `tmp` to `path` (replacing it); `sync` first flushes it to the disk, so that the new
    content also survives a power cut."""
    if sync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    return Path(path)


@contextlib.contextmanager
def replacing(path: str | Path, tmp: str | Path | None = None, sync: bool = False) -> Iterator[Path]:
    """Yields a temporary name for a writer that takes a file name; renames it to `path` when the block ends without
    error, removes it otherwise.

    Args:
        path: the final name.
        tmp: the temporary name (default `temporary_path(path)`).
        sync: flush the file to the disk before the rename (checkpoints and exports).
    """
    path = Path(path)
    tmp = temporary_path(path) if tmp is None else Path(tmp)
    try:
        yield tmp
        if not tmp.is_file():
            raise OSError(f"{path}: the writer produced no file")
        commit(tmp, path, sync)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def open_atomic(path: str | Path, mode: str = "w", sync: bool = False, **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` for writing (`"w"` or `"wb"`), atomically: the file appears under `path` when the block
    ends without error. `kwargs` go to `open` (`newline=""` for CSV, `encoding`)."""
    if "w" not in mode or any(c in mode for c in "ax+"):
        raise ValueError(f"open_atomic writes whole files: mode 'w' or 'wb', got {mode!r}")
    with replacing(path, sync=sync) as tmp, open(tmp, mode.replace("w", "x"), **kwargs) as f:
        yield f


def write_bytes(path: str | Path, data: bytes, sync: bool = False) -> Path:
    """`Path.write_bytes`, atomically."""
    with open_atomic(path, "wb", sync=sync) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """`Path.write_text`, atomically."""
    with open_atomic(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def save_figure(fig, path: str | Path, **kwargs: Any) -> Path:
    """`matplotlib.figure.Figure.savefig(path, **kwargs)`, atomically (the format follows the suffix of `path`)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or None)
    with replacing(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return path
