"""`web/serve.py` serves the page's own files only: no folder listings, no sources, 400 for malformed paths."""

from __future__ import annotations

import http.client
import sys
import threading
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "web"
sys.path.insert(0, str(WEB))

import serve  # noqa: E402 - web/ is not a package


@pytest.fixture
def served(tmp_path):
    """A copy of the page's layout in tmp_path, served on a free port; yields a `request(method, path)` function
    returning `(status, headers, body)`."""
    root = tmp_path / "web"
    for name in [*serve.PAGE_FILES, "serve.py", "bench.py", "package.json", "_headers"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"content of {name}")
    for name in [
        "vendor/ort/ort.wasm.min.mjs",
        "vendor/ort/ort-wasm-simd-threaded.wasm",
        "models/models.json",
        "models/m.onnx",
        "models/notes.txt",
        "node_modules/onnxruntime-web/package.json",
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"content of {name}")
    (tmp_path / "secret.onnx").write_text("outside")
    (root / "models" / "link.onnx").symlink_to(tmp_path / "secret.onnx")
    server = serve.make_server("127.0.0.1", 0, quiet=True, root=root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def request(method: str, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        try:
            connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    yield request
    server.shutdown()
    server.server_close()


def test_the_page_and_its_browser_files_are_served_with_isolation_headers(served):
    for path, kind in [
        ("/", "text/html"),
        ("/index.html?model=x#top", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/vendor/ort/ort.wasm.min.mjs", "text/javascript"),
        ("/vendor/ort/ort-wasm-simd-threaded.wasm", "application/wasm"),
        ("/models/models.json", "application/json"),
        ("/models/m.onnx", "application/octet-stream"),
    ]:
        status, headers, body = served("GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind), path
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert body.startswith(b"content of "), path
    status, headers, body = served("HEAD", "/app.js")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len("content of app.js")


def test_no_listing_no_source_and_nothing_outside_the_page(served):
    for path in [
        "/models/",
        "/models",
        "/vendor/ort/",
        "/serve.py",
        "/bench.py",
        "/package.json",
        "/_headers",
        "/node_modules/onnxruntime-web/package.json",
        "/models/notes.txt",
        "/models/link.onnx",  # a link out of the page's folders
        "/vendor/ort/missing.wasm",
        "//serve.py",
    ]:
        status, _, body = served("GET", path)
        assert status == 404, path
        assert b"content of" not in body and b"Directory listing" not in body, path


def test_malformed_paths_get_400_and_the_server_keeps_serving(served):
    for path in [
        "/%00",
        "/index.html%00.js",
        "/%ff",
        "/models/..%2fserve.py",
        "/../serve.py",
        "/./app.js",
        "/vendor%5cort%5cort.wasm.min.mjs",
        "/%0a",
        "*",
    ]:
        status, _, body = served("GET", path)
        assert status == 400, path
        assert b"Traceback" not in body
    assert served("GET", "/")[0] == 200
