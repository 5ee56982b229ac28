"""What the frame benchmarks (`bench video`, `bench predict`) share: a segmenter from a model spec, and their two
result files."""

from __future__ import annotations

import json
from pathlib import Path

from asbunet import atomic
from asbunet.inference.segmenter import Segmenter


def segmenter_for(spec: str, threads: int) -> Segmenter:
    """`name[:runtime]` (a bundled name with an optional runtime, a file, a MediaPipe peer) -> its `Segmenter`."""
    name, _, runtime = spec.partition(":")
    return Segmenter.from_pretrained(name, threads=threads, runtime=runtime or None)


def write_files(report: dict, markdown: str, output: str | Path, stem: str) -> list[Path]:
    """Writes `<stem>.json` (the report) and `<stem>.md` (its table) into `output`, atomically."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    atomic.write_text(paths[0], json.dumps(report, indent=2) + "\n")
    atomic.write_text(paths[1], markdown)
    return paths
