"""The webcam page (web/) in headless Chromium, with a fake camera playing a still DAVIS frame.

With temporal smoothing off, the mask the page computes with onnxruntime-web must match `Segmenter`'s mask of the
same frame (the frame as the page read it from the camera) for every bundled model, and the page's frames-per-second
display must update. The test sets the page up as `make web` does (npm ci on first use) and needs Chromium
(Debian's `chromium`, or ASBUNET_CHROMIUM); `.ci/run` installs both. It writes the README's screenshot to
out/web/page.png.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet import Segmenter

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
sys.path.insert(0, str(WEB))

import harness  # noqa: E402 - web/ is not a package
import serve  # noqa: E402

FRAME = "davis_person/lucia/images/lucia_00000.jpg"
SCREENSHOT = REPO / "out" / "web" / "page.png"
MIN_IOU = 0.98

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page_ready() -> dict:
    """web/ set up (npm packages, runtime files, models); returns models/models.json."""
    serve.setup(quiet=True)
    return json.loads((WEB / "models" / "models.json").read_text())


def fps_updates(page, timeout: float = 15.0) -> list[float]:
    """Readings of the page's fps display until two different positive values were shown."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.inner_text("#fps")
        if text != "-" and float(text) > 0 and (not seen or float(text) != seen[-1]):
            seen.append(float(text))
            if len(seen) >= 2:
                break
        time.sleep(0.25)
    return seen


def test_served_with_isolation_headers(page_ready):
    with harness.served() as url:
        for path, kind in [("", "text/html"), ("vendor/ort/ort-wasm-simd-threaded.wasm", "application/wasm")]:
            with urllib.request.urlopen(url + path) as response:
                assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
                assert response.headers["Content-Type"].startswith(kind)


def test_manifest_lists_every_bundled_onnx_file(page_ready):
    files = {spec["file"] for spec in page_ready["models"]}
    shipped = {p.name for p in (Path(serve.bundled_models()[0]["source"]).parent).glob("*.onnx")}
    assert files == shipped
    assert sum(spec["default"] for spec in page_ready["models"]) == len(files) // 2


def test_setup_without_npm_says_what_to_install(monkeypatch):
    monkeypatch.setattr(serve, "installed_version", lambda name: None)
    monkeypatch.setattr(serve.shutil, "which", lambda name: None)
    with pytest.raises(serve.SetupError, match="node and npm are needed.*install Node.js"):
        serve.install_packages(quiet=True)


def test_page_masks_match_segmenter(page_ready, shared_data, tmp_path):
    frame = cv2.imread(str(shared_data / FRAME), cv2.IMREAD_COLOR)
    assert frame is not None, f"cannot read {shared_data / FRAME}"
    rgb = np.ascontiguousarray(frame[..., ::-1])
    clip = harness.write_y4m(rgb, tmp_path / "clip.y4m")
    with harness.browser(clip) as (page, url):
        for i, spec in enumerate(page_ready["models"]):
            page.goto(f"{url}?model={spec['id']}&smooth=0")
            harness.wait_frames(page, 2, spec["id"])
            seen, mask, model = harness.snapshot(page)
            assert model == spec["id"]
            assert seen.shape == rgb.shape, "the page did not get the clip's frame size from the camera"
            # the camera's frame is the clip's, through YUV 4:2:0
            assert np.abs(seen.astype(np.int16) - rgb).mean() < 3
            runtime = "onnx-int8" if spec["precision"] == "int8" else "onnx"
            segmenter = Segmenter.from_pretrained(spec["name"], runtime=runtime)
            assert (spec["input_size"], spec["threshold"]) == (segmenter.input_size, segmenter.threshold)
            expected = segmenter.mask(seen)
            iou = (expected & mask).sum() / max(1, (expected | mask).sum())
            print(f"{spec['label']}: IoU {iou:.5f} with Segmenter ({(expected != mask).sum()} pixels differ)")
            assert iou >= MIN_IOU, f"{spec['label']}: the page's mask has IoU {iou:.4f} with Segmenter's"
            if i == 0:
                readings = fps_updates(page)
                assert len(readings) >= 2, f"the fps display did not update: {readings}"
        # the README's screenshot: the default model and effect (background blur, smoothing on)
        page.goto(url)
        harness.wait_frames(page, 3)
        time.sleep(0.6)  # one update of the displayed figures
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
