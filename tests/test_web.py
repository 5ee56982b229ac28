"""The webcam page (web/) in headless Chromium, with a fake camera playing a still DAVIS frame.

With temporal smoothing off, the mask the page computes with onnxruntime-web must match `Segmenter`'s mask of the
same frame (the frame as the page read it from the camera) for every bundled model, and the page's frames-per-second
display must update. The test sets the page up as `make web` does (npm ci on first use) and needs Chromium
(Debian's `chromium`, or ASBUNET_CHROMIUM); `make test` installs both where it can, and the tests skip without
them (fail under CI=true). It writes the README's screenshot to
out/web/page.png.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet import Segmenter
from asbunet.frames.temporal import DEFAULT_SMOOTHER, create_smoother
from asbunet.inference.postprocess import sigmoid
from asbunet.inference.refine import GuidedRefine

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
sys.path.insert(0, str(WEB))

import harness  # noqa: E402 - web/ is not a package
import serve  # noqa: E402

FRAME = "davis_person/lucia/images/lucia_00000.jpg"
SCREENSHOT = REPO / "out" / "web" / "page.png"
MIN_IOU = {"fp32": 0.98, "int8": 0.97}  # int8: onnxruntime-web's WebAssembly kernels round otherwise than native ones

pytestmark = pytest.mark.slow


def require(what: str, check) -> None:
    """Skips the test when `check()` raises (what is missing, and how to get it), but fails it under CI=true."""
    try:
        check()
    except (FileNotFoundError, serve.SetupError) as err:
        message = f"{what}: {err} (`make test` installs it where it can: root with apt-get, node and npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def page_ready() -> dict:
    """web/ set up (npm packages, runtime files, models); returns models/models.json."""
    require("the webcam page's tests need its npm packages", lambda: serve.setup(quiet=True))
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


# the page's processing functions (web/segment.js) on given pixels and logits, for `Segmenter` to do the same
SEGMENT_JS = """async ([rgba, height, width, inputSize, logits, threshold]) => {
  const m = await import("./segment.js");
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const b64 = (array) => {
    const u8 = new Uint8Array(array.buffer);
    let text = "";
    for (let i = 0; i < u8.length; i += 0x8000) text += String.fromCharCode(...u8.subarray(i, i + 0x8000));
    return btoa(text);
  };
  const [h, w] = m.networkSize(height, width, inputSize, 16);
  const rgb = m.resizeRGB(bytes(rgba), height, width, h, w);
  const x = m.normalize(rgb, h, w, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
  const prob = m.logitsToProbability(new Float32Array(bytes(logits).buffer), h, w, height, width);
  return { h, w, x: b64(x), prob: b64(prob), mask: b64(m.mask(prob, threshold)) };
}"""


class Capture:
    """A runner for `Segmenter` that keeps the normalized batch it is given and returns fixed logits."""

    def __init__(self, logits: np.ndarray):
        self.logits, self.batch = logits, None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batch = batch
        return self.logits[None, None]


SIZES = [(480, 854), (720, 1280), (640, 480), (240, 320), (200, 1000), (300, 386)]


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_page_processing_matches_segmenter(segment_page, size):
    """Resize rule, normalization, logits to probability and threshold of web/segment.js against `Segmenter`, for
    landscape, portrait, upscaled, extreme and shrunk-one-way-grown-the-other frames (random pixels and logits)."""
    height, width = size
    rng = np.random.default_rng(height * width)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=2)
    segmenter = Segmenter(Capture(np.zeros((1, 1), np.float32)), input_size=384, threshold=0.7)
    segmenter.predict(rgb, warn=False)
    h, w = segmenter.runner.batch.shape[2:]
    logits = rng.normal(0, 4, (h, w)).astype(np.float32)
    args = [base64.b64encode(rgba.tobytes()).decode(), height, width, 384, base64.b64encode(logits.tobytes()).decode()]
    out = segment_page.evaluate(SEGMENT_JS, [*args, 0.7])
    assert (out["h"], out["w"]) == (h, w), "network size differs from Segmenter's"
    x = np.frombuffer(base64.b64decode(out["x"]), np.float32).reshape(3, h, w)
    level = 1 / 255 / 0.224 + 1e-5  # one uint8 step, normalized
    diff = np.abs(x - segmenter.runner.batch[0])
    off = (diff > 1e-5).mean()
    print(f"{width}x{height} -> {w}x{h}: {off:.3%} of the input values one uint8 step off, max {diff.max():.2g}")
    assert diff.max() <= level * 1.03 and off < 0.005, f"input differs: max {diff.max()}, {off:.2%} of the values"
    segmenter.runner = Capture(logits)
    prob = np.frombuffer(base64.b64decode(out["prob"]), np.float32).reshape(height, width)
    expected = segmenter.predict(rgb, warn=False)
    assert np.abs(prob - expected).max() < 1e-5
    mask = np.frombuffer(base64.b64decode(out["mask"]), np.uint8).reshape(height, width).astype(bool)
    assert (mask != (expected >= segmenter.threshold)).sum() <= (np.abs(expected - 0.7) < 1e-5).sum()


REFINE_JS = """async ([refine, rgba, height, width, small, h, w, logits, ph, pw]) => {
  const m = await import("./refine.js");
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const prob = m.guidedRefine(m.parseRefine(refine), bytes(rgba), height, width, bytes(small), h, w,
    new Float32Array(bytes(logits).buffer), ph, pw);
  return Array.from(prob);
}"""

# (frame, network image, logits, refinement): the fast model's head-stride logits at a quarter-size fit, a growing
# probability, the fitting grid at the network size, halves with rounding of the shrunk image at stake
REFINE_CASES = [
    ((360, 640), (176, 320), (88, 160), GuidedRefine(2, 1e-4, 4)),
    ((480, 640), (240, 320), (240, 320), GuidedRefine(3, 3e-4, 2)),
    ((100, 75), (64, 48), (64, 48), GuidedRefine(2, 1e-3, 1)),
    ((200, 100), (96, 48), (24, 12), GuidedRefine(2, 1e-4, 2)),
]


@pytest.mark.parametrize("frame, network, head, refine", REFINE_CASES, ids=[str(c[0]) for c in REFINE_CASES])
def test_page_refinement_matches_guided_refine(segment_page, frame, network, head, refine):
    """web/refine.js resizes the probability back as `GuidedRefine` does (smooth random images and logits)."""
    rng = np.random.default_rng(frame[0])
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (*frame, 3), dtype=np.uint8), (0, 0), 3)
    small = cv2.resize(rgb, network[::-1], interpolation=cv2.INTER_AREA)
    logits = cv2.GaussianBlur(rng.normal(0, 4, head).astype(np.float32), (0, 0), 2)
    rgba = np.concatenate([rgb, np.full((*frame, 1), 255, np.uint8)], axis=2)
    b64 = [base64.b64encode(a.tobytes()).decode() for a in (rgba, small, logits)]
    out = segment_page.evaluate(REFINE_JS, [refine.to_text(), b64[0], *frame, b64[1], *network, b64[2], *head])
    expected = refine(rgb, small, sigmoid(logits))
    assert np.abs(np.array(out, np.float32).reshape(frame) - expected).max() < 1e-4


SMOOTHER_JS = """async ([frames, momentum, delta]) => {
  const m = await import("./segment.js");
  const smoother = new m.ConfidenceGatedSmoother(momentum, delta);
  return frames.map((p) => Array.from(smoother.apply(Float32Array.from(p))));
}"""


def test_page_smoother_matches_the_video_pipeline(segment_page):
    """web/segment.js smooths a sequence of probability maps as the video pipeline's default smoother does."""
    name, params = DEFAULT_SMOOTHER
    rng = np.random.default_rng(5)
    frames = rng.uniform(0, 1, (6, 64)).astype(np.float32)
    frames[3:, :32] = 1.0 - frames[3:, :32]  # large changes pass, small ones are averaged
    out = np.array(segment_page.evaluate(SMOOTHER_JS, [frames.tolist(), params["momentum"], params["delta"]]))
    smoother = create_smoother(name, **params)
    expected = np.stack([smoother(f[None], None)[0] for f in frames])
    assert np.abs(out - expected).max() < 1e-5


@pytest.fixture(scope="module")
def playwright(page_ready):
    """Playwright, running, and the URL of the served web/."""
    from playwright.sync_api import sync_playwright

    require("the webcam page's browser tests need Chromium", harness.chromium_path)

    with harness.served() as url, sync_playwright() as p:
        yield p, url


@pytest.fixture(scope="module")
def segment_page(playwright):
    """A page of the served web/ in headless Chromium, to import web/segment.js from."""
    p, url = playwright
    with harness.chromium(p) as page:
        page.goto(url + "style.css")  # a document at the root, so that ./segment.js resolves
        yield page


def test_page_masks_match_segmenter(page_ready, playwright, shared_data, tmp_path):
    frame = cv2.imread(str(shared_data / FRAME), cv2.IMREAD_COLOR)
    assert frame is not None, f"cannot read {shared_data / FRAME}"
    rgb = np.ascontiguousarray(frame[..., ::-1])
    clip = harness.write_y4m(rgb, tmp_path / "clip.y4m")
    p, url = playwright
    with harness.chromium(p, clip) as page:
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
            assert spec["refine"] == (segmenter.refine.to_text() if segmenter.refine else None)
            expected = segmenter.mask(seen)
            iou = (expected & mask).sum() / max(1, (expected | mask).sum())
            print(f"{spec['label']}: IoU {iou:.5f} with Segmenter ({(expected != mask).sum()} pixels differ)")
            assert iou >= MIN_IOU[spec["precision"]], (
                f"{spec['label']}: the page's mask has IoU {iou:.4f} with Segmenter's"
            )
            if i == 0:
                readings = fps_updates(page)
                assert len(readings) >= 2, f"the fps display did not update: {readings}"
        # the README's screenshot: the default model and effect (background blur, smoothing on)
        page.goto(url)
        harness.wait_frames(page, 3)
        time.sleep(0.6)  # one update of the displayed figures
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
