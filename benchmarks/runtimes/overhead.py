"""Where a whole `Segmenter.predict` call of a bundled model goes, step by step, on a 640x360 frame: the resize to the
network's input, the normalization (inside the compiled model on OpenVINO), the network, the sigmoid, and the
refinement (its coefficients at network resolution, then the full-size step) or the bilinear resize back. Each step is
timed alone, round-robin with the others and the whole call, median of `--runs` calls after `--warmup`.

    python benchmarks/runtimes/overhead.py --image ../shared/data/davis_person/lucia/images/lucia_00000.jpg \
        --model asbunet_person_fast asbunet_person_fast:onnx-int8 --threads 1 --output benchmarks/runtimes
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asbunet import atomic
from asbunet.bench.machine import describe_isa_of, describe_machine, machine_info
from asbunet.bench.outputs import segmenter_for
from asbunet.bench.predict import make_frame
from asbunet.bench.timing import time_round_robin
from asbunet.inference.postprocess import logits_to_probability, sigmoid
from asbunet.inference.preprocess import normalize


def steps(spec: str, frame, threads: int) -> dict:
    """The callables of each step of one model's predict, and the whole call."""
    seg = segmenter_for(spec, threads)
    small = seg._network_image(frame)
    fused = hasattr(seg.runner, "run_images")
    x = normalize(small)[None]
    logits = seg._run_network([small])[0, 0]
    p = sigmoid(logits)
    height, width = frame.shape[:2]
    calls = {
        "whole predict": lambda: seg.predict(frame, warn=False),
        "resize to the network": lambda: seg._network_image(frame),
    }
    if not fused:
        calls["normalize"] = lambda: normalize(small)
    calls["network"] = (lambda: seg.runner.run_images(small[None])) if fused else (lambda: seg.runner(x))
    if seg.refine is None:
        calls["sigmoid and resize back"] = lambda: logits_to_probability(logits, height, width)
    else:
        calls["sigmoid"] = lambda: sigmoid(logits)
        calls["refine: coefficients"] = lambda: seg.refine.coefficients(small, p)
        calls["refine: whole"] = lambda: seg.refine(frame, small, p)
    return {"runs_on": seg.name, "network_input": f"{small.shape[0]}x{small.shape[1]}", "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", help="picture the frame is made from (default: seeded noise)")
    parser.add_argument("--model", dest="models", nargs="+", default=["asbunet_person_fast"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--output", default="out/overhead")
    args = parser.parse_args()
    frame = make_frame(args.image, (640, 360))
    report = {"machine": machine_info(), "threads": args.threads, "runs": args.runs, "models": {}}
    for spec in args.models:
        found = steps(spec, frame, args.threads)
        timings = time_round_robin(found.pop("calls"), args.runs, args.warmup)
        found["steps_ms"] = {k: t.median_ms for k, t in timings.items()}
        ms = found["steps_ms"]
        found["outside_network_ms"] = ms["whole predict"] - ms["network"]
        if "refine: whole" in ms:
            found["steps_ms"]["refine: full-size step"] = ms["refine: whole"] - ms["refine: coefficients"]
        report["models"][spec] = found
        print(spec, json.dumps(found, indent=1), flush=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "overhead.json", json.dumps(report, indent=2) + "\n")
    atomic.write_text(out / "overhead.md", report_markdown(report))
    print(report_markdown(report))


def report_markdown(report: dict) -> str:
    names = list(report["models"])
    keys = list(dict.fromkeys(k for m in report["models"].values() for k in m["steps_ms"]))
    lines = [
        f"Steps of `Segmenter.predict` on a 640x360 frame, the runtime on {report['threads']} thread(s) (OpenCV on "
        f"its default, as in `asbunet bench predict`), median ms of {report['runs']} calls, every step timed alone, "
        "round-robin with the whole call; on OpenVINO the normalization runs inside the network. `outside the "
        "network`: the whole call less the network. Written by `benchmarks/runtimes/overhead.py`.",
        "",
        f"Machine: {describe_machine(report['machine'])}",
        f"Instruction sets: {describe_isa_of(report['machine'])}",
        "",
        "| step | " + " | ".join(f"`{n}` ({report['models'][n]['runs_on']})" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key in keys:
        cells = [report["models"][n]["steps_ms"].get(key) for n in names]
        lines.append(f"| {key} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    cells = [report["models"][n]["outside_network_ms"] for n in names]
    lines.append("| **outside the network** | " + " | ".join(f"**{c:.3f}**" for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
