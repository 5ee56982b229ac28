"""The command line of this room, each subparser beside its command: `asbunet bench`, with its modes `bench video`
and `bench predict` (`bench-video` and `bench-predict`, their old names, still parse as hidden aliases)."""

from __future__ import annotations

import argparse

from asbunet.export.command import add_calibration_arguments
from asbunet.inference.peers import DEFAULT_PEERS_DIR


def cmd_bench(args) -> None:
    from asbunet.bench.config import BenchConfig, LatencySettings
    from asbunet.bench.peers import fetch_peers
    from asbunet.bench.report import write_outputs
    from asbunet.bench.run import run_bench
    from asbunet.models import list_models

    def parse_size(text: str) -> tuple[int, int]:
        h, _, w = text.lower().partition("x")
        if not (h.isdigit() and w.isdigit()):
            raise ValueError(f"--size takes HxW values such as 256x256 or 144x256, got {text!r}")
        return int(h), int(w)

    if args.fetch_peers:
        print(f"peers: {', '.join(f'{k} ({v})' for k, v in fetch_peers(args.peers).items())}")
    cfg = BenchConfig(
        models=args.models or list_models(),
        latency=LatencySettings(
            sizes=[parse_size(s) for s in args.sizes], threads=args.threads, warmup=args.warmup, runs=args.runs
        ),
        runtimes=args.runtimes,
        calibration=args.calibration,
        calibration_count=args.calibration_count,
        peers=args.peers,
        accuracy=args.accuracy or (),
        accuracy_metric=args.accuracy_metric,
        profile=not args.no_profile,
        profile_model=args.profile_model,
        workdir=args.workdir,
    )
    for path in write_outputs(run_bench(cfg), args.output):
        print(f"wrote {path}")


BENCH_HELP = "latency of every model and runtime vs matmul peaks and MediaPipe; modes: video, predict"
VIDEO_HELP = "frames per second of the whole video pipeline on a 720p clip, beside MediaPipe"
PREDICT_HELP = "latency of a whole Segmenter.predict call on a video frame, beside MediaPipe"


def add_subparser(sub, name: str, help: str, hidden: bool = False) -> argparse.ArgumentParser:
    """A subparser listed in its parent's help with `help`, or, `hidden`, parsed but not listed (an old name)."""
    return sub.add_parser(name, description=help, **({} if hidden else {"help": help}))


def add_hidden_alias(p: argparse.ArgumentParser, flag: str, dest: str, **kwargs) -> None:
    """An old spelling of an option: parsed into `dest`, left out of --help and of the docs' options tables."""
    p.add_argument(flag, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def add_model_argument(p: argparse.ArgumentParser, help: str, metavar: str = "SPEC") -> None:
    """`--model SPEC [SPEC ...]` into `models`, `--models` its old spelling."""
    p.add_argument("--model", dest="models", nargs="+", metavar=metavar, help=help)
    add_hidden_alias(p, "--models", "models", nargs="+")


def add_bench_parser(sub) -> None:
    """The `bench` subcommand's arguments, and its modes `video` and `predict`."""
    p = add_subparser(sub, "bench", BENCH_HELP)
    add_model_argument(p, "registry model names (default: all)", metavar="NAME")
    add_hidden_alias(p, "--sizes", "sizes", nargs="+")
    p.add_argument(
        "--size",
        dest="sizes",
        nargs="+",
        default=["256x256", "144x256", "360x640"],
        metavar="HxW",
        help="input sizes (default 256x256 144x256 360x640)",
    )
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument(
        "--runtimes",
        nargs="+",
        default=["torch", "onnxruntime", "onnxruntime-int8"],
        help="any of torch, onnxruntime, onnxruntime-int8 (default: all)",
    )
    p.add_argument("--runs", type=int, default=50, help="timed passes per row (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed passes first (default 10)")
    add_calibration_arguments(
        p, "folders of real photos for the int8 calibration (default: random images, noted in the results)"
    )
    p.add_argument(
        "--peers",
        default=str(DEFAULT_PEERS_DIR),
        metavar="DIR",
        help="folder with the MediaPipe .tflite files (default: the copy inside the package)",
    )
    p.add_argument(
        "--fetch-peers",
        action="store_true",
        help="pip download mediapipe==0.10.21 (kept in .cache/peers) and extract its two selfie models into --peers",
    )
    p.add_argument(
        "--accuracy",
        nargs="+",
        metavar="SPEC",
        help="NAME=summary.json from `asbunet evaluate`, or a JSON {model: accuracy}",
    )
    p.add_argument("--accuracy-metric", default="iou", help="metric read from evaluate summaries (default iou)")
    p.add_argument("--no-profile", action="store_true", help="skip the per-operator profile and int8 ablation")
    p.add_argument(
        "--profile-model",
        default="asbunet",
        metavar="NAME",
        help="model profiled at the first size with the most threads (default asbunet)",
    )
    p.add_argument("--workdir", help="keep the exported models here (default: a temporary folder)")
    p.add_argument(
        "--output",
        default="out/bench",
        help="folder for the results (default out/bench; the repository's committed results are in benchmarks/)",
    )
    p.set_defaults(func=cmd_bench)
    modes = p.add_subparsers(dest="mode", metavar="{video,predict}", title="modes (default: the network alone)")
    add_bench_video_parser(modes, "video")
    add_bench_predict_parser(modes, "predict")


def _print_and_write(report: dict, markdown: str, output: str, stem: str) -> None:
    from asbunet.bench.outputs import write_files

    print(markdown)
    for path in write_files(report, markdown, output, stem):
        print(f"wrote {path}")


def cmd_bench_video(args) -> None:
    from asbunet.bench.machine import describe_isa_of
    from asbunet.bench.pipeline import PipelineConfig, report_markdown, run_pipeline_bench

    cfg = PipelineConfig(
        frames=args.frames,
        clip=args.clip,
        clip_frames=args.clip_frames,
        models=args.models,
        runs=args.runs,
        threads=args.threads,
        output=args.output,
    )
    report = run_pipeline_bench(cfg)
    print(describe_isa_of(report["machine"]))
    _print_and_write(report, report_markdown(report), args.output, "pipeline")


def add_bench_video_parser(sub, name: str = "bench-video") -> None:
    """The arguments of `bench video` (`name="video"`), or of its hidden old name `bench-video`."""
    p = add_subparser(sub, name, VIDEO_HELP, hidden=name == "bench-video")
    p.add_argument("--frames", metavar="DIR", help="images to make the 720p clip from (e.g. a davis_person sequence)")
    p.add_argument("--clip", metavar="VIDEO", help="an existing video to run instead")
    p.add_argument("--clip-frames", type=int, default=150, help="frames of the clip made from --frames (default 150)")
    add_model_argument(
        p,
        "models (bundled name[:runtime], files, mediapipe_landscape; default: the bundled models and "
        "mediapipe_landscape)",
    )
    p.add_argument("--runs", type=int, default=3, help="timed runs of the clip per model (default 3)")
    p.add_argument("--threads", type=int, default=2, help="network threads (default 2)")
    p.add_argument("--output", default="out/bench_video", help="folder for the clip and the results")
    p.set_defaults(func=cmd_bench_video)


def cmd_bench_predict(args) -> None:
    from asbunet.bench.predict import PredictBenchConfig, report_markdown, run_predict_bench

    width, _, height = args.frame.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ValueError(f"--frame takes WxH such as 640x360, got {args.frame!r}")
    cfg = PredictBenchConfig(
        models=args.models,
        image=args.image,
        frame=(int(width), int(height)),
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
    )
    report = run_predict_bench(cfg)
    _print_and_write(report, report_markdown(report), args.output, "predict")


def add_bench_predict_parser(sub, name: str = "bench-predict") -> None:
    """The arguments of `bench predict` (`name="predict"`), or of its hidden old name `bench-predict`."""
    p = add_subparser(sub, name, PREDICT_HELP, hidden=name == "bench-predict")
    add_model_argument(
        p,
        "models (bundled name[:runtime], files, mediapipe_general, mediapipe_landscape; a bundled name alone runs on "
        "auto; default: every bundled model on auto and on each runtime, then both MediaPipe models)",
    )
    p.add_argument("--image", help="picture the frame is made from (default: seeded noise)")
    p.add_argument("--frame", default="640x360", metavar="WxH", help="frame size (default 640x360)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--runs", type=int, default=100, help="timed calls per model and thread count (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    p.add_argument("--output", default="out/bench_predict", help="folder for the results")
    p.set_defaults(func=cmd_bench_predict)
