"""Images per second of `asbunet segment --engine ray` against `asbunet segment` on the same photos, same threads.

Each command is timed from start to exit as a user waits for it (Python start, model load, every image read,
segmented and written as a mask), on all COUNT photos and on the first tenth of them: the two times give each row's
fixed cost (what a command pays before its first image) and its throughput once running. The rows run in turn,
ROUNDS times, and each keeps its best time. The Ray rows run on a local cluster that this script starts first
(`ray.init(num_cpus=THREADS)`, timed on its own, idle during the local rows), its CPUs split into actors x threads
per actor; a command that starts its own cluster pays that start on top. Writes ray_segment.md
beside this file:

    python benchmarks/ray_segment.py ../shared/data/pfcn_portrait/test/images --count 200 --threads 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from asbunet import atomic
from asbunet.data.io import list_images
from asbunet.extras import version
from asbunet.inference.cpu import cpu_flags, cpu_name

HERE = Path(__file__).resolve().parent
FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_tile")


@dataclass
class Row:
    command: str
    split: str
    seconds: float  # all photos
    small_seconds: float  # the first tenth

    def rate(self, n: int) -> float:
        return n / self.seconds

    def steady(self, n: int, small: int) -> float:
        """Images per second once running: the slope between the two runs."""
        return (n - small) / max(self.seconds - self.small_seconds, 1e-9)

    def fixed(self, n: int, small: int) -> float:
        """Seconds before the first image: the intercept."""
        return self.seconds - n / self.steady(n, small)


def segment(photos: Path, output: Path, extra: list[str], env: dict[str, str]) -> float:
    """Seconds that `asbunet segment photos --output output *extra` takes, start to exit."""
    command = [sys.executable, "-m", "asbunet.cli", "segment", str(photos), "--output", str(output), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def same_masks(a: Path, b: Path) -> int:
    """How many masks of `a` equal those of `b` (IoU 1.0), name by name."""
    same = 0
    for mask in sorted(a.glob("*.png")):
        other = cv2.imread(str(b / mask.name), cv2.IMREAD_GRAYSCALE)
        same += other is not None and np.array_equal(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127, other > 127)
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of photos")
    parser.add_argument("--count", type=int, default=200, help="photos used (the first by name)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the local run, CPUs of the Ray cluster")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every row, interleaved; the best is kept")
    parser.add_argument("--output", type=Path, default=HERE / "ray_segment.md")
    args = parser.parse_args()
    import ray

    load_before = os.getloadavg()[0]
    photos = list_images(args.folder)[: args.count]
    small = max(1, len(photos) // 10)
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    for name, chosen in (("all", photos), ("small", photos[:small])):
        (work / name).mkdir()
        for path in chosen:  # the same files for every row
            (work / name / path.name).symlink_to(path.resolve())
    sizes = {cv2.imread(str(p)).shape[1::-1] for p in photos[:20]}

    start = time.perf_counter()
    ray.init(num_cpus=args.threads, include_dashboard=False)
    cluster_start = time.perf_counter() - start
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)  # with RAY_AUTH_MODE, as ray.init set it
    runs = {("asbunet segment", f"1 process x {args.threads}"): ["--threads", str(args.threads)]}
    for actors, threads in sorted({(args.threads, 1), (1, args.threads)}):
        label = f"{actors} actor{'s' if actors > 1 else ''} x {threads}"
        runs["asbunet segment --engine ray", label] = f"--engine ray --actors {actors} --threads {threads}".split()
    best: dict[tuple, list[float]] = {}
    for round_ in range(args.rounds):  # interleaved, the best of the rounds: what else runs on the machine only slows
        for i, (key, extra) in enumerate(runs.items()):
            times = [segment(work / name, work / f"{i}-{name}-{round_}", extra, env) for name in ("all", "small")]
            best[key] = [min(pair) for pair in zip(best.get(key, times), times, strict=True)]
    ray.shutdown()
    for i in range(1, len(runs)):
        same = same_masks(work / "0-all-0", work / f"{i}-all-0")
        if same != len(photos):
            raise SystemExit(f"{list(runs)[i]}: {same} of {len(photos)} masks equal those of asbunet segment")
    rows = [Row(command, split, *best[command, split]) for command, split in runs]
    load = (load_before, os.getloadavg()[0])
    write_report(args, photos, small, sizes, rows, cluster_start, ray.__version__, load)


def write_report(
    args, photos, small: int, sizes: set, rows: list[Row], cluster_start: float, ray_version: str, load: tuple
) -> None:
    n = len(photos)
    flags = sorted(f for f in FLAGS if f in cpu_flags())
    base = rows[0]
    lines = [
        "# Ray Data against one process: `asbunet segment --engine ray`",
        "",
        f"{n} photos of `{args.folder}` ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))} among the first 20), the "
        f"bundled model at its default runtime, masks only; {args.threads} CPUs for every row. {cpu_name()}, "
        f"{os.cpu_count()} logical CPUs, flags: {' '.join(flags) or 'none of ' + ' '.join(FLAGS)}; "
        f"asbunet {version()}, ray {ray_version}, Python {sys.version.split()[0]}. Every Ray mask equals the local one "
        "(IoU 1.0).",
        "",
        f"Each time is the best of {args.rounds} interleaved rounds (1-minute load average {load[0]:.1f} before the "
        f"run, {load[1]:.1f} after it: what else runs beside it only slows a round). `images/s` is end to end on all "
        f"{n} photos; "
        f"`steady images/s` and `fixed s` come from the times on {n} and on {small} photos (slope and intercept).",
        "",
        f"| command | workers x threads | s, {n} photos | s, {small} photos | images/s | vs `asbunet segment` | "
        "steady images/s | fixed s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row.command}` | {row.split} | {row.seconds:.1f} | {row.small_seconds:.1f} | {row.rate(n):.2f} | "
            f"{row.rate(n) / base.rate(n):.2f}x | {row.steady(n, small):.2f} | {row.fixed(n, small):.1f} |"
        )
    ray_rows = rows[1:]
    extra_fixed = [row.fixed(n, small) - base.fixed(n, small) for row in ray_rows]
    lines += [
        "",
        f"Ray's overhead, stated: starting the local cluster took {cluster_start:.1f} s, which a command without "
        f"`RAY_ADDRESS` pays on top of its row. On the running cluster each Ray command spends "
        f"{min(extra_fixed):.1f} to {max(extra_fixed):.1f} s more than one process before its first image (connecting, "
        "planning the dataset, starting the actors, each loading the model); once running, its throughput is "
        f"{min(r.steady(n, small) for r in ray_rows) / base.steady(n, small):.2f}x to "
        f"{max(r.steady(n, small) for r in ray_rows) / base.steady(n, small):.2f}x that of one process (every file's "
        "bytes go through Ray's object store, and Ray's own processes share the CPUs with the actors).",
        "",
        "Reproduce (on an otherwise idle machine):",
        "",
        "```bash",
        f"python benchmarks/ray_segment.py {args.folder} --count {args.count} --threads {args.threads} "
        f"--rounds {args.rounds}",
        "```",
        "",
    ]
    atomic.write_text(args.output, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
