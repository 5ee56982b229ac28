"""Headless Chromium on the webcam page, with a fake camera that plays a clip: shared by tests/test_web.py and
web/bench.py.

Chromium plays a Y4M file as its camera (`--use-fake-device-for-media-stream --use-file-for-fake-video-capture`),
looping it, and grants camera access without asking (`--use-fake-ui-for-media-stream`). The page is served by
`web/serve.py`'s server on a free localhost port, with the cross-origin isolation headers, as `make web` serves it.
Chromium is Debian's (`/usr/bin/chromium`) or the one named by `ASBUNET_CHROMIUM`; Playwright drives it.
"""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import serve

CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--enable-unsafe-swiftshader",  # WebGL on the CPU, which MediaPipe's web package needs (web/bench.py)
    "--ignore-gpu-blocklist",
]


def chromium_path() -> str:
    """The Chromium executable: `ASBUNET_CHROMIUM`, else `chromium` or `chromium-browser` on PATH."""
    for candidate in (os.environ.get("ASBUNET_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise FileNotFoundError(
        "Chromium not found: install Debian's (`apt-get install chromium`) or name an executable in ASBUNET_CHROMIUM"
    )


def write_y4m(rgb: np.ndarray, path: Path, frames: int = 2, fps: int = 30) -> Path:
    """A Y4M clip of `frames` copies of an RGB uint8 image (even width and height), 4:2:0, for the fake camera."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"the fake camera needs an even width and height, got {w}x{h}")
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).tobytes()  # planar Y, U, V
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


@contextmanager
def served() -> Iterator[str]:
    """Serves web/ (set up already) on a free localhost port; yields its URL."""
    server = serve.make_server("127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(playwright, clip: Path | None = None, width: int = 1100, height: int = 700):
    """A page in headless Chromium, launched by a running Playwright, whose camera plays `clip` (else Chromium's
    test pattern)."""
    args = [*CHROMIUM_ARGS, *([f"--use-file-for-fake-video-capture={clip}"] if clip else [])]
    launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
    try:
        page = launched.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda msg: msg.type == "error" and print(f"page console: {msg.text}"))
        yield page
    finally:
        launched.close()


@contextmanager
def browser(clip: Path | None = None, width: int = 1100, height: int = 700):
    """`chromium` with its own Playwright and web/ served; yields `(page, url of the served web/)`."""
    from playwright.sync_api import sync_playwright

    with served() as url, sync_playwright() as p, chromium(p, clip, width, height) as page:
        yield page, url


def wait_frames(page, frames: int, model: str | None = None, timeout: float = 60.0) -> dict:
    """Waits until the page has processed `frames` frames (of `model`, if given); returns `window.asbunet.stats`."""
    deadline = time.monotonic() + timeout
    while True:
        state = page.evaluate(
            "() => window.asbunet && {error: window.asbunet.error, model: window.asbunet.model,"
            " frames: window.asbunet.stats.frames}"
        )
        if state and state["error"]:
            raise RuntimeError(f"the page failed: {state['error']}")
        if state and state["frames"] >= frames and (model is None or state["model"] == model):
            return page.evaluate("() => window.asbunet.stats")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page processed {state and state['frames']} of {frames} frames in {timeout:.0f} s")
        time.sleep(0.1)


def snapshot(page) -> tuple[np.ndarray, np.ndarray, str]:
    """The page's last frame, RGB uint8 `(H, W, 3)`, the mask it computed, bool `(H, W)`, and the model's id."""
    shot = page.evaluate("() => window.asbunet.snapshot()")
    if shot is None:
        raise RuntimeError("the page has not processed a frame")
    h, w = shot["height"], shot["width"]
    rgb = np.frombuffer(base64.b64decode(shot["rgb"]), np.uint8).reshape(h, w, 3)
    mask = np.frombuffer(base64.b64decode(shot["mask"]), np.uint8).reshape(h, w).astype(bool)
    return rgb, mask, shot["model"]
