"""Full-size work planes kept between frames, one set per thread.

A fresh array of a video frame's size is fresh memory: with glibc, large blocks are mapped on allocation and unmapped
on release, so every page of every temporary faults in again on every frame (on a 720p frame a few milliseconds per
stage). The per-frame stages (`asbunet.inference.refine`, the matte and the background blur of `asbunet.segment`)
write their temporaries into these planes instead; what they return is always a new array.
"""

from __future__ import annotations

import threading

import numpy as np

_PLANES = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """The plane `name` of this thread, `shape` and `dtype`, uninitialized; reallocated when either changes. Two
    names never share memory, and a caller must not keep a plane past its own return."""
    planes = getattr(_PLANES, "planes", None)
    if planes is None:
        planes = _PLANES.planes = {}
    plane = planes.get(name)
    if plane is None or plane.shape != tuple(shape) or plane.dtype != dtype:
        plane = planes[name] = np.empty(shape, dtype)
    return plane
