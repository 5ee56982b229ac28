"""Fuzzing the file readers: truncated and mutated images, masks, videos, checkpoints, safetensors and ONNX files.

Every outcome must be a result or an error of the package's kinds (`ValueError`, `DataError` among them, or
`OSError`) whose message names the file; never another exception, a crash of the whole run or a hang. The inputs are
real files (a sample photo and its mask, a short video made from it, a small model saved as a checkpoint, as
safetensors and as ONNX), truncated at a random length or with random bytes overwritten.

Bounded in time: a fixed number of examples per reader, derandomized (the same inputs every run); set
`ASBUNET_FUZZ_EXAMPLES=N` to run N random examples per reader instead.
"""

from __future__ import annotations

import faulthandler
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from helpers import tiny_onnx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from asbunet.data.check import check_datasets  # noqa: E402
from asbunet.data.io import DataError  # noqa: E402
from asbunet.inference.segmenter import Segmenter  # noqa: E402
from asbunet.models import create_model  # noqa: E402
from asbunet.segment.files import segment_files  # noqa: E402
from asbunet.segment.options import SegmentOptions  # noqa: E402
from asbunet.train.checkpoint import FORMAT, atomic_save  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
EXAMPLES = int(os.environ.get("ASBUNET_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 20,
    deadline=20_000,  # ms per example: generous on a loaded machine; the watchdog below catches hangs
    derandomize=not EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CLEAR_ERRORS = (ValueError, OSError)  # DataError is a ValueError, FileNotFoundError an OSError


@pytest.fixture(autouse=True, scope="module")
def watchdog():
    """A hang in a decoder fails the run with every thread's traceback instead of blocking CI."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@dataclass(frozen=True)
class Mutation:
    """Truncation at a fraction of the length, then bytes overwritten at fractions of the length."""

    keep: float
    writes: tuple[tuple[float, int], ...]

    def __call__(self, data: bytes) -> bytes:
        out = bytearray(data[: int(len(data) * self.keep)])
        for where, value in self.writes:
            if out:
                out[min(int(where * len(out)), len(out) - 1)] = value
        return bytes(out)


fractions = st.floats(0.0, 1.0, allow_nan=False)
mutations = st.builds(
    Mutation,
    keep=st.one_of(st.just(1.0), fractions),
    writes=st.lists(st.tuples(fractions, st.integers(0, 255)), max_size=12).map(tuple),
)
header_mutations = st.builds(  # writes near the start, where the headers and sizes are
    Mutation,
    keep=st.one_of(st.just(1.0), fractions),
    writes=st.lists(st.tuples(st.floats(0.0, 0.05), st.integers(0, 255)), min_size=1, max_size=6).map(tuple),
)
any_mutation = st.one_of(mutations, header_mutations)


def assert_clear(err: BaseException, path: Path) -> None:
    assert isinstance(err, CLEAR_ERRORS), f"{type(err).__name__}: {err}"
    assert str(path) in str(err), f"the message does not name {path}: {err}"


def brightness_runner(batch: np.ndarray) -> np.ndarray:
    return (batch.mean(axis=1, keepdims=True) * 8.0).astype(np.float32)  # (B, 1, h, w)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """The real files to mutate, small so that each example is quick."""
    folder = tmp_path_factory.mktemp("seeds")
    photo = cv2.resize(cv2.imread(str(SAMPLES / "images" / "0001.jpg")), (64, 96), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(cv2.imread(str(SAMPLES / "masks" / "0001.png"), cv2.IMREAD_UNCHANGED), (64, 96))
    files = {
        "jpg": cv2.imencode(".jpg", photo)[1].tobytes(),
        "png": cv2.imencode(".png", photo)[1].tobytes(),
        "mask": cv2.imencode(".png", mask)[1].tobytes(),
    }
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 96))
    for t in range(3):
        writer.write(np.roll(photo, 3 * t, axis=1))
    writer.release()
    files["mp4"] = (folder / "clip.mp4").read_bytes()
    torch.manual_seed(0)
    model = create_model("asbunet_025").eval()
    checkpoint = {"format": FORMAT, "model": "asbunet_025", "model_options": {}, "state_dict": model.state_dict()}
    atomic_save({**checkpoint, "input_size": 32, "threshold": 0.5}, folder / "model.pt")
    files["pt"] = (folder / "model.pt").read_bytes()
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"architecture": "asbunet_025", "input_size": "32", "threshold": "0.5"}
    save_file(state, str(folder / "model.safetensors"), metadata=meta)
    files["safetensors"] = (folder / "model.safetensors").read_bytes()
    files["onnx"] = tiny_onnx()
    return files


def test_seed_files_are_valid(seeds, tmp_path):
    """Unmutated, every seed gives a result (so that the fuzzing below starts from working files)."""
    image = np.zeros((20, 30, 3), np.uint8)
    for kind in ("pt", "safetensors", "onnx"):
        path = tmp_path / f"model.{kind}"
        path.write_bytes(seeds[kind])
        assert Segmenter.from_pretrained(path).predict(image, warn=False).shape == (20, 30)
    for kind in ("jpg", "mp4"):
        (tmp_path / f"in.{kind}").write_bytes(seeds[kind])
        report = segment_files(
            Segmenter(brightness_runner, 32), [tmp_path / f"in.{kind}"], tmp_path / kind, None, False
        )
        assert report.processed == 1 and not report.failed


@FUZZ
@given(kind=st.sampled_from(["jpg", "png", "mp4"]), mutation=any_mutation)
def test_segment_reports_or_segments_every_mutated_input(seeds, tmp_path_factory, kind, mutation):
    folder = tmp_path_factory.mktemp("segment")
    path = folder / f"input.{kind}"
    path.write_bytes(mutation(seeds[kind]))
    good = folder / "good.jpg"
    good.write_bytes(seeds["jpg"])
    lines: list[str] = []
    report = segment_files(
        Segmenter(brightness_runner, 32), [path, good], folder / "out", SegmentOptions(), False, lines.append
    )
    assert (folder / "out" / "good.png").is_file()  # the other input is always written
    for failed, message in report.failed:
        assert failed == path and str(path) in message, message
    for written in report.written:
        assert written.stat().st_size > 0 and not written.name.startswith(".")


@FUZZ
@given(image=any_mutation, mask=any_mutation)
def test_check_data_names_the_file_of_every_problem(seeds, tmp_path_factory, image, mask):
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    (root / "images" / "a.jpg").write_bytes(image(seeds["jpg"]))
    (root / "masks" / "a.png").write_bytes(mask(seeds["mask"]))
    (root / "images" / "b.jpg").write_bytes(seeds["jpg"])
    (root / "masks" / "b.png").write_bytes(seeds["mask"])
    (report,) = check_datasets([root])
    assert report.samples == 2 and report.usable + len(report.problems) == 2 and report.usable >= 1
    for problem in report.problems:
        assert str(root / "images" / "a.jpg") in problem or str(root / "masks" / "a.png") in problem, problem


@FUZZ
@given(kind=st.sampled_from(["pt", "safetensors", "onnx"]), mutation=any_mutation)
def test_model_loaders_load_or_name_the_file(seeds, tmp_path_factory, kind, mutation):
    path = tmp_path_factory.mktemp("model") / f"model.{kind}"
    path.write_bytes(mutation(seeds[kind]))
    try:
        segmenter = Segmenter.from_pretrained(path, threads=1)
    except Exception as err:  # noqa: BLE001 - the test is what kind of error
        assert_clear(err, path)
        return
    try:
        prob = segmenter.predict(np.full((20, 30, 3), 120, np.uint8), warn=False)
    except Exception as err:  # noqa: BLE001 - a model that loads but cannot run must still name its file
        assert_clear(err, path)
        return
    assert prob.shape == (20, 30) and prob.dtype == np.float32


def test_onnx_metadata_that_is_not_utf8_or_not_a_number_names_the_file(seeds, tmp_path):
    """Found by the fuzzing above: onnxruntime raised `UnicodeDecodeError` for text that is not UTF-8."""
    cases = {
        "key.onnx": seeds["onnx"].replace(b"asbunet.threshold", b"asbunet.thresh\xff\xfe\x88", 1),
        "value.onnx": seeds["onnx"].replace(b"asbunet.threshold\x12\x030.5", b"asbunet.threshold\x12\x03\xff.5", 1),
        "number.onnx": seeds["onnx"].replace(b"asbunet.threshold\x12\x030.5", b"asbunet.threshold\x12\x03x.5", 1),
    }
    for name, data in cases.items():
        assert data != seeds["onnx"]
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as refused:
            Segmenter.from_pretrained(path)
        assert_clear(refused.value, path)


def test_onnx_with_an_unknown_operator_is_not_called_corrupt(seeds, tmp_path):
    """An operator onnxruntime does not implement is named as such; only an unparsable file is called corrupt."""
    import onnx

    proto = onnx.load_from_string(seeds["onnx"])
    proto.graph.node[0].op_type = "FancyOp"
    unknown = tmp_path / "unknown.onnx"
    unknown.write_bytes(proto.SerializeToString())
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(seeds["onnx"][: len(seeds["onnx"]) // 2])
    with pytest.raises(ValueError) as refused:
        Segmenter.from_pretrained(unknown)
    assert_clear(refused.value, unknown)
    assert "it uses the operator FancyOp (opset 17), which onnxruntime" in str(refused.value)
    assert "does not implement" in str(refused.value) and "corrupt" not in str(refused.value)
    with pytest.raises(ValueError) as refused:
        Segmenter.from_pretrained(truncated)
    assert_clear(refused.value, truncated)
    assert "cannot be parsed as ONNX (truncated, corrupt or not an ONNX file)" in str(refused.value)
    assert "operator" not in str(refused.value) and "[ONNXRuntimeError]" not in str(refused.value)


def test_data_error_is_a_clear_error():
    assert issubclass(DataError, CLEAR_ERRORS)
