"""Each runtime and precision of the bundled models checked against onnxruntime fp32: the masks on the validation photos
of each model's training run (mean and worst mask IoU against fp32's masks, and IoU against the labels), and the
person IoU of `asbunet evaluate --runtime R` on the two photo test sets. A runtime passes where its validation IoU and
both test IoUs are at most 0.3 points below fp32's (`asbunet.export.bundled.INT8_TOLERANCE`).

    python benchmarks/runtimes/accuracy.py --output benchmarks/runtimes    # writes accuracy.md and accuracy.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from asbunet import atomic
from asbunet.bench.machine import describe_isa_of, describe_machine, machine_info
from asbunet.cli import main as cli
from asbunet.export.bundled import INT8_TOLERANCE, run_split
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import bundled_models, bundled_path, read_safetensors
from asbunet.metrics import iou

REFERENCE = "onnx"
RUNTIMES = ("onnx-int8", "openvino", "openvino-int8", "openvino-bf16")
TEST_SETS = ("../shared/data/pfcn_portrait/test", "../shared/data/ccp/test")


def validation(name: str, runtimes: list[str], threads: int) -> dict[str, dict]:
    """Per runtime: mean label IoU on the run's validation photos, and mean and worst IoU of its masks against the
    reference's."""
    samples = run_split(read_safetensors(bundled_path(name))[1])[1]
    segs = {rt: Segmenter.from_pretrained(name, runtime=rt, threads=threads) for rt in [REFERENCE, *runtimes]}
    labels, agreement = {rt: [] for rt in segs}, {rt: [] for rt in runtimes}
    for source, i in samples:
        image, label = source.load(i)
        masks = {rt: seg.mask(image) for rt, seg in segs.items()}
        for rt, mask in masks.items():
            labels[rt].append(iou(mask, label.astype(bool)))
            if rt != REFERENCE:
                agreement[rt].append(iou(mask, masks[REFERENCE]))
    rows = {rt: {"runner": segs[rt].name, "images": len(samples), "val_iou": float(np.mean(labels[rt]))} for rt in segs}
    for rt, values in agreement.items():
        rows[rt] |= {"agreement_mean": float(np.mean(values)), "agreement_worst": float(np.min(values))}
    return rows


def test_iou(name: str, runtime: str, output: Path, threads: int) -> dict[str, float]:
    """Person IoU per test set of `asbunet evaluate --model NAME --runtime RUNTIME`."""
    folder = output / f"{name}_{runtime}"
    args = ["evaluate", "--model", name, "--runtime", runtime, *TEST_SETS, "--gallery", "0", "--threads", str(threads)]
    if cli([*args, "--output", str(folder)]) != 0:
        raise SystemExit(f"asbunet evaluate failed for {name} on {runtime}")
    summary = json.loads((folder / "summary.json").read_text())
    return {slug: entry["mean"]["iou"] for slug, entry in summary["datasets"].items()}


def report_markdown(report: dict) -> str:
    lines = [
        "Each runtime and precision of the bundled models against onnxruntime fp32 (`onnx`): masks at each model's "
        "threshold on the validation photos of its training run (label IoU, and mean / worst IoU of the masks against "
        "fp32's), and person IoU of `asbunet evaluate --runtime R` on the photo test sets; `pass`: validation and "
        f"test IoUs at most {100 * INT8_TOLERANCE:.1f} points below fp32's. Written by "
        "`python benchmarks/runtimes/accuracy.py --threads 1 --output benchmarks/runtimes`.",
        "",
        f"Machine: {describe_machine(report['machine'])}",
        f"Instruction sets: {describe_isa_of(report['machine'])}",
        "",
    ]
    for name, rows in report["models"].items():
        slugs = list(rows[REFERENCE]["test"])
        lines += [
            f"`{name}`:",
            "",
            "| runtime | runs on | val IoU | masks vs fp32, mean | worst | " + " | ".join(slugs) + " | pass |",
            "|---|---|---:|---:|---:|" + "---:|" * len(slugs) + "---|",
        ]
        ref = rows[REFERENCE]
        for rt, row in rows.items():
            tests = " | ".join(f"{row['test'][s]:.4f}" for s in slugs)
            agree = f"{row['agreement_mean']:.4f} | {row['agreement_worst']:.4f}" if rt != REFERENCE else "1 | 1"
            scores = [row["val_iou"], *row["test"].values()]
            refs = [ref["val_iou"], *ref["test"].values()]
            passed = all(s >= r - INT8_TOLERANCE for s, r in zip(scores, refs, strict=True))
            lines.append(
                f"| `{rt}` | {row['runner']} | {row['val_iou']:.4f} | {agree} | {tests} | {'yes' if passed else 'no'} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", dest="models", nargs="+", default=bundled_models())
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="out/runtime_accuracy")
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine_info(), "models": {}}
    for name in args.models:
        rows = validation(name, args.runtimes, args.threads)
        for rt, row in rows.items():
            row["test"] = test_iou(name, rt, Path("out/runtime_accuracy_evaluate"), args.threads)
            print(name, rt, row, flush=True)
        report["models"][name] = rows
    atomic.write_text(out / "accuracy.json", json.dumps(report, indent=2) + "\n")
    atomic.write_text(out / "accuracy.md", report_markdown(report))
    print(report_markdown(report))


if __name__ == "__main__":
    main()
