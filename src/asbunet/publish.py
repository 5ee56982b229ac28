"""Publishing one input's output files together: claimed first, written under temporary names, renamed all or none.

`claimed(paths)` is how `asbunet segment` writes the outputs of one photo or video:

- Each final name is claimed with a lock before anything is written: `flock` on `.<name>.lock` beside it, held until
  the group is published or dropped. The kernel releases it when the process dies, and the lock file is removed
  with it (a `kill -9` can leave an empty one, which the next run reuses). A second process that claims a name held
  by another gets `OutputBusyError`, naming the file and the other process, and writes nothing: of two runs writing
  the same file at the same time, one publishes it and the other says so.
- A final name that no run holds is replaced, as a re-run over its own earlier outputs expects.
- Files are written under names unique to the process (`asbunet.atomic.temporary_path`, `partial_path`) and
  renamed to their final names when the block ends without error. When anything fails (a full disk, an encoder
  error, one of the renames) every file of the group is removed: the temporary ones and those this group already
  renamed, so an input has all its outputs or none.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from asbunet import atomic

try:
    import fcntl
except ImportError:  # Windows: an exclusive lock file stands in for the lock
    fcntl = None


class OutputBusyError(OSError):
    """Another process is writing the same output file at this moment."""


def lock_path(path: Path) -> Path:
    """`.<name>.lock` beside `path`."""
    return path.with_name(f".{path.name}.lock")


def _busy(path: Path, holder: str) -> OutputBusyError:
    who = f"another asbunet run (process {holder})" if holder.isdigit() else "another asbunet run"
    return OutputBusyError(f"{path} is being written by {who} at the same time")


def _lock(path: Path) -> int:
    """Takes the lock of final name `path`; returns its file descriptor."""
    lock = lock_path(path)
    if fcntl is None:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            message = f"{path} is being written by another asbunet run (if none runs, remove {lock})"
            raise OutputBusyError(message) from None
        _write_pid(fd)
        return fd
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = _holder(fd)
            finally:
                os.close(fd)
            raise _busy(path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us may have removed the file we opened: then lock the one now under the name
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            _write_pid(fd)
            return fd
        os.close(fd)


def _holder(fd: int) -> str:
    """The pid in a lock file held by another process (it writes it just after locking: wait a moment for it)."""
    for _ in range(20):
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if holder.isdigit():
            return holder
        time.sleep(0.005)
    return ""


def _write_pid(fd: int) -> None:
    """Records the holder's pid in the lock file, for the message of a run that finds it busy."""
    with contextlib.suppress(OSError):  # a full disk: the lock holds without it
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)


def _unlock(path: Path, fd: int) -> None:
    """Removes the lock file, then releases the lock (in that order, so no one locks a file that is going away
    without noticing: `_lock` checks that the file it locked is still under the name)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path(path))
    os.close(fd)


class OutputGroup:
    """The output files of one input, claimed; give each a temporary name with `temporary`, write it, and the group
    is published when the `claimed` block ends."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]
        self._temporary: dict[Path, Path] = {}
        self._published: list[Path] = []
        self._locks: dict[Path, int] = {}

    def claim(self) -> None:
        try:
            for path in self.paths:
                self._locks[path] = _lock(path)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        for path, fd in self._locks.items():
            _unlock(path, fd)
        self._locks.clear()

    def temporary(self, path: Path, partial: bool = False) -> Path:
        """The name to write final name `path` under: hidden and temporary, or (`partial`, for videos) a
        `.partial` name that `keep` can leave behind."""
        path = Path(path)
        if path not in self._locks:
            raise ValueError(f"{path} is not one of the claimed outputs")
        tmp = atomic.partial_path(path) if partial else atomic.temporary_path(path)
        self._temporary[path] = tmp
        return tmp

    def keep(self) -> list[Path]:
        """Leaves the temporary files where they are (a video interrupted by Ctrl+C, closed and playable); returns
        them."""
        kept = [tmp for tmp in self._temporary.values() if tmp.is_file()]
        self._temporary.clear()
        return kept

    def publish(self) -> list[Path]:
        """Renames every temporary file to its final name; on any failure removes the whole group and raises."""
        try:
            for path in self.paths:
                tmp = self._temporary.get(path)
                if tmp is None or not tmp.is_file():
                    raise OSError(f"{path}: the writer produced no file")
                try:
                    os.replace(tmp, path)
                except OSError as err:
                    raise OSError(f"{path}: could not be renamed into place ({err.strerror or err})") from None
                del self._temporary[path]
                self._published.append(path)
        except BaseException:
            self.discard()
            raise
        return list(self.paths)

    def discard(self) -> None:
        """Removes this group's files: the temporary ones and those it published."""
        for path in [*self._temporary.values(), *self._published]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._temporary.clear()
        self._published.clear()


@contextlib.contextmanager
def claimed(paths: Sequence[str | Path]) -> Iterator[OutputGroup]:
    """Claims the final names `paths` (`OutputBusyError` when another process holds one; nothing is written then),
    yields the group for its files to be written under `OutputGroup.temporary` names, and publishes them together
    when the block ends without error; removes them all otherwise.

    Raises:
        OutputBusyError: another process is writing one of `paths`.
        OSError: a temporary file is missing or cannot be renamed (the group is removed).
    """
    group = OutputGroup(paths)
    group.claim()
    try:
        yield group
        group.publish()
    except BaseException:
        group.discard()
        raise
    finally:
        group.release()
