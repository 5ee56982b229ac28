"""The bundled model's ONNX files (`asbunet export --bundled`): fp32 and int8 exported from the shipped safetensors
weights, with the weights' SHA-256, input size and threshold in their metadata, and the decision whether int8 is
the default runtime (within `INT8_TOLERANCE` of fp32 on the training run's validation split)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asbunet.atomic import replacing
from asbunet.data.sources import open_source, split_indices
from asbunet.inference.cpu import cpu_isa, cpu_name, describe_isa
from asbunet.inference.runners import (
    HEAD_STRIDE_KEY,
    INPUT_SIZE_KEY,
    INT8_CHECK_KEY,
    INT8_DEFAULT_KEY,
    REFINE_KEY,
    THRESHOLD_KEY,
    WEIGHTS_DIGEST_KEY,
    OnnxRunner,
)
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import (
    bundled_models,
    bundled_onnx_paths,
    bundled_path,
    file_sha256,
    load_model,
)
from asbunet.metrics import iou
from asbunet.train.config import TrainConfig

INT8_TOLERANCE = 0.003  # int8 is the default runtime when its mean IoU is at most 0.3 points below fp32's


def run_split(meta: dict) -> tuple[list, list]:
    """`(training, validation)` samples, each `(source, index)`, of the run that trained a bundled model, rebuilt from
    the training config in its metadata: `data.val` when the run had one, else the seeded split of `data.train`
    (`asbunet.data.sources.split_indices`, as `asbunet train` makes it). Paths are relative to the folder the run
    was started in (the repository root).

    Raises:
        ValueError: no training config in the metadata, or its data are not at hand.
    """
    if not meta.get("config"):
        raise ValueError("the weights carry no training config; give --calibration and --validation")
    cfg = TrainConfig(**json.loads(meta["config"]))
    try:
        pool = [(source, i) for source in map(open_source, cfg.data.train) for i in range(len(source))]
        if cfg.data.val:
            return pool, [(source, i) for source in map(open_source, cfg.data.val) for i in range(len(source))]
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(
            f"the training data of the bundled model are not at hand ({err}); run from the repository root with "
            "the data sets of its training config at hand, or give --calibration and --validation"
        ) from None
    train, val = split_indices(len(pool), cfg.data.val_fraction, cfg.seed)
    return [pool[i] for i in train], [pool[i] for i in val]


def compare_int8(
    fp32: str | Path, int8: str | Path, samples: Sequence, threads: int | None = None, progress=None
) -> dict:
    """Mean person IoU of an fp32 and an int8 ONNX file on labelled `samples` (`(source, index)` pairs), at the
    files' own input size and threshold, and how the int8 masks agree with the fp32 ones (mean and worst IoU)."""
    segs = [Segmenter.from_pretrained(path, threads=threads) for path in (fp32, int8)]
    ious: list[list[float]] = [[], []]
    agreement = []
    for source, i in progress(samples) if progress else samples:
        image, label = source.load(i)
        masks = [seg.mask(image) for seg in segs]
        for scores, mask in zip(ious, masks, strict=True):
            scores.append(iou(mask, label.astype(bool)))
        agreement.append(iou(masks[1], masks[0]))
    if not agreement:
        raise ValueError("no validation images to compare int8 with fp32")
    return {
        "images": len(agreement),
        "iou_fp32": float(np.mean(ious[0])),
        "iou_int8": float(np.mean(ious[1])),
        "agreement_mean": float(np.mean(agreement)),
        "agreement_worst": float(np.min(agreement)),
    }


@dataclass
class BundledExport:
    """What `export_bundled` wrote and measured."""

    name: str
    fp32: Path
    int8: Path
    digest: str
    check: dict
    int8_default: bool
    export_summary: str
    quantize_summary: str

    def summary(self) -> str:
        c = self.check
        verdict = "int8" if self.int8_default else "fp32 (int8 is more than 0.3 IoU points below it)"
        return "\n".join(
            [
                self.export_summary,
                self.quantize_summary,
                f"int8 vs fp32 on {c['images']} validation images ({c['validation']}): mean IoU {c['iou_int8']:.4f} "
                f"int8, {c['iou_fp32']:.4f} fp32; int8 masks vs fp32 masks: mean IoU {c['agreement_mean']:.4f}, "
                f"worst {c['agreement_worst']:.4f}; on {c['cpu']} ({c['isa']})",
                f"default runtime of {self.name}: onnxruntime {verdict}",
                f"weights {self.name}.safetensors sha256 {self.digest}",
            ]
        )


def _folder_samples(folders: Sequence[str | Path]) -> list:
    return [(source, i) for source in map(open_source, folders) for i in range(len(source))]


def export_bundled(
    name: str,
    calibration: Sequence[str | Path] | None = None,
    validation: Sequence[str | Path] | None = None,
    calibration_count: int = 32,
    threads: int | None = None,
    progress=None,
) -> BundledExport:
    """Writes `weights/<name>.onnx` (fp32, dynamic size) and `weights/<name>.int8.onnx` from the bundled safetensors
    weights, with the weights' SHA-256, input size and threshold in their metadata, and decides the default runtime.

    Both files end at the network's output stride (`export_onnx(head_stride=True)`): `Segmenter` resizes the logits
    (or, with a refinement, the probability) to the image itself, so the network's own last resize to its input size
    would be wasted work. For `asbunet_person` that resize took 1.2 of 14 ms of OpenVINO int8's network on an AVX-512
    VNNI CPU, and dropping it moved pfcn_portrait/test and ccp/test IoU by at most 0.0002 (`docs/speed.md`).

    Args:
        name: a bundled model (`asbunet.inference.weights.bundled_models()`).
        calibration: folders of photos for the int8 calibration; None: `calibration_count` photos spread over the
            training split of the run that trained the weights (`run_split`).
        validation: labelled data sets (folders with images/ and masks/) on which int8 is compared with fp32; None:
            that run's validation split.
        calibration_count: calibration photos.
        threads: onnxruntime threads for the comparison.
        progress: optional wrapper for the comparison loop (e.g. `tqdm`).
    """
    from asbunet.export.calibration import calibration_files, load_images, spread
    from asbunet.export.onnx import export_onnx, set_metadata
    from asbunet.export.quantize import QUANTIZATION_KEY, quantize_int8

    weights = bundled_path(name)
    model, meta = load_model(name, runtime="torch").module, safetensors_metadata(weights)
    digest = file_sha256(weights)
    input_size, threshold = int(meta.get("input_size", 256)), float(meta.get("threshold", 0.5))
    train, val = run_split(meta) if calibration is None or validation is None else ([], [])
    if calibration is None:
        images = [source.load(i)[0] for source, i in spread(train, calibration_count)]
        calibration_text = f"{len(images)} photos of the training split"
    else:
        images = load_images(calibration_files(calibration, calibration_count))
        calibration_text = f"{len(images)} photos from {', '.join(map(str, calibration))}"
    samples = val if validation is None else _folder_samples(validation)
    validation_text = "validation split of the training run" if validation is None else ", ".join(map(str, validation))
    fp32_path, int8_path = bundled_onnx_paths(name)
    with tempfile.TemporaryDirectory(prefix="asbunet-bundled-") as tmp:
        fp32_tmp, int8_tmp = Path(tmp) / fp32_path.name, Path(tmp) / int8_path.name
        result = export_onnx(
            model,
            fp32_tmp,
            size=(input_size, input_size),
            dynamic=True,
            images=images[:8],
            input_size=input_size,
            head_stride=True,
            metadata={
                THRESHOLD_KEY: f"{threshold:g}",
                INPUT_SIZE_KEY: str(input_size),
                WEIGHTS_DIGEST_KEY: digest,
                "asbunet.weights_file": weights.name,
                "asbunet.architecture": meta["architecture"],
                **({REFINE_KEY: meta["refine"]} if "refine" in meta else {}),
            },
        )
        if result.real is None or result.real.mask_iou < 0.999:
            raise ValueError(f"{name}: the fp32 ONNX file does not reproduce PyTorch: {result.real}")
        q = quantize_int8(fp32_tmp, int8_tmp, images, count=None, input_size=input_size)
        check = compare_int8(fp32_tmp, int8_tmp, samples, threads, progress)
        int8_default = check["iou_int8"] >= check["iou_fp32"] - INT8_TOLERANCE
        check.update(
            validation=validation_text,
            calibration=calibration_text,
            tolerance=INT8_TOLERANCE,
            cpu=cpu_name(),
            isa=describe_isa(cpu_isa()),
        )
        decided = {INT8_DEFAULT_KEY: "true" if int8_default else "false", INT8_CHECK_KEY: json.dumps(check)}
        set_metadata(fp32_tmp, decided)
        set_metadata(int8_tmp, {**decided, QUANTIZATION_KEY: f"{q.recipe}; {calibration_text}"})
        for src, dst in ((fp32_tmp, fp32_path), (int8_tmp, int8_path)):
            with replacing(dst, sync=True) as out:
                shutil.copyfile(src, out)
    result.path, q.path = fp32_path, int8_path
    return BundledExport(name, fp32_path, int8_path, digest, check, int8_default, result.summary(), q.summary())


def check_bundled_onnx(names: Sequence[str] | None = None) -> list[str]:
    """Problems of the bundled ONNX files: missing, or exported from other weights than the shipped safetensors file
    (stored SHA-256, threshold, input size, refine setting or output stride differ). Empty when all match."""
    problems = []
    for name in names or bundled_models():
        weights = bundled_path(name)
        meta = safetensors_metadata(weights)
        digest = file_sha256(weights)
        for path in bundled_onnx_paths(name):
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            stored = OnnxRunner(path).metadata
            expected = {
                WEIGHTS_DIGEST_KEY: digest,
                THRESHOLD_KEY: f"{float(meta.get('threshold', 0.5)):g}",
                INPUT_SIZE_KEY: str(meta.get("input_size", 256)),
                REFINE_KEY: meta.get("refine"),
                HEAD_STRIDE_KEY: "true",
            }
            wrong = [k for k, v in expected.items() if stored.get(k) != v]
            if wrong:
                problems.append(f"{path}: {', '.join(wrong)} differ from {weights.name}")
            if INT8_DEFAULT_KEY not in stored:
                problems.append(f"{path}: no {INT8_DEFAULT_KEY} (the int8 decision)")
    return problems


def safetensors_metadata(path: Path) -> dict:
    """The metadata of a safetensors file, without loading its weights."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return dict(f.metadata() or {})
