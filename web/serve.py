"""`make web`: sets up the webcam page in web/ and serves it on localhost with cross-origin isolation.

Set-up (`setup`, also `--setup-only`):

1. `npm ci` in web/ installs the pinned runtime packages of web/package-lock.json (onnxruntime-web, and MediaPipe's
   selfie segmentation for web/bench.py's comparison) into web/node_modules; skipped when they are installed at the
   pinned versions already.
2. Their browser files are copied to web/vendor/ (onnxruntime-web's WebAssembly build: `ort.wasm.min.mjs` and the
   SIMD + threads module and binary; MediaPipe's solution files).
3. The bundled ONNX files of the installed package (`weights/<name>.onnx`, fp32, and `weights/<name>.int8.onnx`) are
   copied to web/models/, and web/models/models.json is written from their metadata (input size, threshold, the
   model's own refinement, the int8-default decision) and the package's preprocessing constants (mean, std, size
   multiple) and default temporal smoother, so that the page mirrors `asbunet.Segmenter` without reading ONNX
   metadata itself.

Serving (`serve`): a threaded `http.server` on 127.0.0.1 that sends `Cross-Origin-Opener-Policy: same-origin` and
`Cross-Origin-Embedder-Policy: require-corp`, which make the page cross-origin isolated, as onnxruntime-web's
WebAssembly threads require (without them the page runs on one thread). It serves the page's own files only
(`page_file`): the pages, their scripts and style sheet, and the browser files under vendor/ and models/; no folder
listings, no Python sources, no node_modules/, 404 for anything else and 400 for a malformed path (a null byte, bad
percent-encoding, `..`). web/ is then a static site: copy it
(without node_modules/) to any static host; web/_headers sets the same headers on hosts that read that file.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WEB = Path(__file__).resolve().parent
VENDOR = WEB / "vendor"
MODELS = WEB / "models"
# Browser files of each npm package, copied from node_modules/<package>/<folder> to vendor/<target>.
RUNTIME_FILES = {
    "onnxruntime-web": (
        "dist",
        "ort",
        ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"],
    ),
    "@mediapipe/selfie_segmentation": (
        "",
        "mediapipe",
        [
            "selfie_segmentation.js",
            "selfie_segmentation.binarypb",
            "selfie_segmentation.tflite",
            "selfie_segmentation_landscape.tflite",
            "selfie_segmentation_solution_simd_wasm_bin.js",
            "selfie_segmentation_solution_simd_wasm_bin.wasm",
            "selfie_segmentation_solution_simd_wasm_bin.data",
            "selfie_segmentation_solution_wasm_bin.js",
            "selfie_segmentation_solution_wasm_bin.wasm",
        ],
    ),
}
PAGE_FILES = frozenset(
    {"index.html", "app.js", "segment.js", "refine.js", "style.css", "mediapipe.html", "mediapipe.js"}
)
# the folders of browser files `setup` fills, and the kinds of file the page loads from them
PAGE_FOLDERS = {"vendor": (".js", ".mjs", ".wasm", ".data", ".binarypb", ".tflite"), "models": (".onnx", ".json")}
HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


class SetupError(RuntimeError):
    """The page cannot be set up; the message says what to install or run."""


def pinned_versions() -> dict[str, str]:
    """`{package: version}` of web/package-lock.json's direct dependencies."""
    lock = json.loads((WEB / "package-lock.json").read_text())
    return {name: lock["packages"][f"node_modules/{name}"]["version"] for name in lock["packages"][""]["dependencies"]}


def installed_version(package: str) -> str | None:
    manifest = WEB / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def install_packages(quiet: bool = False) -> dict[str, str]:
    """`npm ci` in web/ unless the pinned packages are installed already; returns the pinned versions."""
    pinned = pinned_versions()
    if all(installed_version(name) == version for name, version in pinned.items()):
        return pinned
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SetupError(
            "node and npm are needed to install onnxruntime-web for the page and were not found on PATH; install "
            "Node.js 18 or later (Debian: `apt-get install nodejs npm`), then run `make web` again"
        )
    print(f"installing {', '.join(f'{n}@{v}' for n, v in pinned.items())} into {WEB / 'node_modules'} (npm ci)")
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=WEB, capture_output=quiet, text=True, check=False)
    if done.returncode != 0:
        detail = f":\n{done.stdout}{done.stderr}" if quiet else ""
        raise SetupError(f"`npm ci` in {WEB} failed (exit {done.returncode}){detail}")
    return pinned


def copy_if_changed(source: Path, target: Path) -> None:
    if not source.is_file():
        raise SetupError(f"{source} is missing; delete {WEB / 'node_modules'} and run `make web` again")
    same_size = target.is_file() and target.stat().st_size == source.stat().st_size
    if same_size and target.read_bytes() == source.read_bytes():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def copy_runtime_files() -> None:
    """The browser files of the npm packages, from web/node_modules to web/vendor/."""
    for package, (folder, target, files) in RUNTIME_FILES.items():
        for name in files:
            copy_if_changed(WEB / "node_modules" / package / folder / name, VENDOR / target / name)


def onnx_metadata(path: Path) -> dict[str, str]:
    """The `key: value` metadata of an ONNX file, without loading its weights into a session."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def bundled_models() -> list[dict]:
    """One entry per bundled ONNX file (fp32 and int8 of each bundled model), as models.json lists them."""
    import asbunet
    from asbunet.inference.runners import INPUT_SIZE_KEY, INT8_DEFAULT_KEY, REFINE_KEY, THRESHOLD_KEY

    weights = Path(asbunet.__file__).parent / "weights"
    names = sorted(p.stem for p in weights.glob("*.safetensors"))
    if not names:
        raise SetupError(f"no bundled model in {weights}")
    models = []
    for name in names:
        for precision, file in (("fp32", f"{name}.onnx"), ("int8", f"{name}.int8.onnx")):
            path = weights / file
            if not path.is_file():
                raise SetupError(f"{path} is missing; write the bundled ONNX files with `make onnx`")
            meta = onnx_metadata(path)
            int8_default = meta.get(INT8_DEFAULT_KEY) == "true"
            models.append(
                {
                    "id": file.removesuffix(".onnx"),
                    "name": name,
                    "precision": precision,
                    "file": file,
                    "label": f"{name} ({precision})",
                    "input_size": int(meta.get(INPUT_SIZE_KEY, 256)),
                    "threshold": float(meta.get(THRESHOLD_KEY, 0.5)),
                    "refine": meta.get(REFINE_KEY),  # the model's own refinement (web/refine.js), or None
                    "default": int8_default == (precision == "int8"),
                    "bytes": path.stat().st_size,
                    "source": path,
                }
            )
    return models


def write_models() -> list[dict]:
    """Copies the bundled ONNX files to web/models/ and writes web/models/models.json; returns its entries."""
    from asbunet.frames.temporal import DEFAULT_SMOOTHER
    from asbunet.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, SIZE_MULTIPLE

    models = bundled_models()
    for spec in models:
        copy_if_changed(spec.pop("source"), MODELS / spec["file"])
    manifest = {
        "models": models,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "size_multiple": SIZE_MULTIPLE,
        "smoothing": {"name": DEFAULT_SMOOTHER[0], **DEFAULT_SMOOTHER[1]},  # the video pipeline's default smoother
        "onnxruntime_web": installed_version("onnxruntime-web"),
    }
    (MODELS / "models.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return models


def setup(quiet: bool = False) -> None:
    """Installs the npm packages (if needed) and puts their browser files and the bundled models beside the page."""
    install_packages(quiet)
    copy_runtime_files()
    models = write_models()
    if not quiet:
        print(f"page ready in {WEB}: {', '.join(m['label'] for m in models)}")


def page_file(request_path: str, root: Path = WEB) -> tuple[HTTPStatus, Path | None]:
    """The file under `root` that the request path (query and fragment allowed) names, with `HTTPStatus.OK`; or
    `BAD_REQUEST` for a malformed path (bad percent-encoding, a control character or null byte, a backslash, `.` or
    `..`), `NOT_FOUND` for anything that is not one of the page's own files (`PAGE_FILES`, files of the `PAGE_FOLDERS`
    kinds under vendor/ and models/), a folder included."""
    path = request_path.split("?", 1)[0].split("#", 1)[0]
    try:
        path = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return HTTPStatus.BAD_REQUEST, None
    parts = path[1:].split("/")
    malformed = any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path or any(p in (".", "..") for p in parts)
    if not path.startswith("/") or malformed:
        return HTTPStatus.BAD_REQUEST, None
    if path == "/":
        return HTTPStatus.OK, root / "index.html"
    if len(parts) == 1 and parts[0] in PAGE_FILES:
        return HTTPStatus.OK, root / parts[0]
    if len(parts) >= 2 and all(parts) and parts[-1].endswith(PAGE_FOLDERS.get(parts[0], ())):
        file = root.joinpath(*parts)
        folder = (root / parts[0]).resolve()
        if file.is_file() and file.resolve().is_relative_to(folder):
            return HTTPStatus.OK, file
    return HTTPStatus.NOT_FOUND, None


class Handler(SimpleHTTPRequestHandler):
    """The page's own files (`page_file`) with the cross-origin isolation headers and JavaScript/WebAssembly MIME
    types."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".onnx": "application/octet-stream",
    }

    def end_headers(self) -> None:
        for key, value in HEADERS.items():
            self.send_header(key, value)
        super().end_headers()

    def send_head(self):
        """Headers of a GET or HEAD; returns the open file to send, or None after an error response."""
        status, file = page_file(self.path, Path(self.directory))
        if file is None:
            self.send_error(status, "Malformed path" if status == HTTPStatus.BAD_REQUEST else "File not found")
            return None
        try:
            f = open(file, "rb")  # noqa: SIM115 - closed by the caller, as http.server does
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        stat = os.fstat(f.fileno())
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(str(file)))
        self.send_header("Content-Length", str(stat.st_size))
        self.send_header("Last-Modified", self.date_time_string(stat.st_mtime))
        self.end_headers()
        return f


class QuietHandler(Handler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the signature of http.server
        pass


class Server(ThreadingHTTPServer):
    """Serves each request in a thread; a browser that drops a download (leaving or reloading the page) is no error."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(host: str = "127.0.0.1", port: int = 8000, quiet: bool = False, root: Path = WEB) -> Server:
    """An HTTP server of the page in `root` (web/; not yet serving: call `serve_forever`); port 0 picks a free
    port."""
    handler = functools.partial(QuietHandler if quiet else Handler, directory=str(root))
    return Server((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--setup-only", action="store_true", help="set the page up and exit")
    parser.add_argument("--no-setup", action="store_true", help="serve web/ as it is")
    args = parser.parse_args(argv)
    try:
        if not args.no_setup:
            setup()
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.setup_only:
        return 0
    try:
        server = make_server(args.host, args.port)
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port} ({err.strerror}); pick another --port", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    print(f"serving {WEB} at http://{shown}:{port}/ (cross-origin isolated; Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
