"""The command line of this room, each subparser beside its command: `asbunet segment`."""

from __future__ import annotations

import argparse
import signal
import sys


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_segment(args) -> None:
    import cv2

    from asbunet.data.io import MAX_PIXELS, pixel_limit
    from asbunet.frames.effects import parse_background
    from asbunet.frames.options import FrameOptions
    from asbunet.inference.segmenter import Segmenter
    from asbunet.segment.devices import check_camera
    from asbunet.segment.files import segment_files
    from asbunet.segment.options import SegmentOptions
    from asbunet.segment.sinks import check_virtual_camera
    from asbunet.segment.video import segment_camera

    if (args.camera is None) == (not args.inputs):
        raise ValueError("give INPUT files, folders or glob patterns, or --camera N, but not both")
    if (args.virtual_camera or args.preview) and args.camera is None:
        raise ValueError("--virtual-camera and --preview go with --camera N")
    if args.output is None and not (args.virtual_camera and args.save is None):
        raise ValueError("--output FOLDER is needed (only a camera sent to --virtual-camera writes no file)")
    if args.size is not None and args.size < 16:
        raise ValueError(f"--size must be at least 16 (the output stride), got {args.size}")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.engine == "ray" and args.camera is not None:
        raise ValueError("--engine ray segments image files, not a camera")
    if args.actors is not None and args.engine != "ray":
        raise ValueError("--actors goes with --engine ray")
    if args.camera is not None:  # what exists and how to set it up, before the model loads or the camera opens
        if args.virtual_camera:
            check_virtual_camera(args.virtual_camera if isinstance(args.virtual_camera, str) else None)
        check_camera(args.camera)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # unreadable files are reported by path below
    save = None if args.save is None else tuple(s.strip() for s in args.save.split(",") if s.strip())
    if args.background is not None and save is not None and "effect" not in save:
        save += ("effect",)
    with pixel_limit(MAX_PIXELS if args.max_pixels is None else args.max_pixels):
        effect = None if args.background is None else parse_background(args.background)
        frame = FrameOptions(effect=effect, smoother=args.smoother, smooth=args.smooth, main_person=args.main_person)
        options = SegmentOptions(save=save, max_frames=args.max_frames, frame=frame)
        ray = args.engine == "ray"
        segmenter = None  # with Ray, the actors load the model
        if not ray:
            segmenter = Segmenter.from_pretrained(
                args.model, args.size, args.threads, args.runtime, threshold=args.threshold, refine=args.refine
            )
        previous = signal.signal(signal.SIGTERM, _interrupt)  # closes the videos being written, as Ctrl+C does
        try:
            if args.camera is not None:
                result = segment_camera(
                    segmenter,
                    args.camera,
                    args.output,
                    options,
                    virtual_camera=args.virtual_camera or False,
                    preview=args.preview,
                )
                print(result.summary())
                return
            if ray:
                from asbunet.distributed.pipeline import segment_dataset

                model = dict(model=args.model, runtime=args.runtime, size=args.size, threads=args.threads or 1)
                model.update(threshold=args.threshold, refine=args.refine)
                report = segment_dataset(args.inputs, args.output, options, actors=args.actors, **model)
            else:
                report = segment_files(segmenter, args.inputs, args.output, options)
        except KeyboardInterrupt:
            print("asbunet segment: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    print(report.summary())
    if report.failed:
        for path, _ in report.failed:
            print(f"asbunet segment: failed: {path}", file=sys.stderr)
        raise SystemExit(1 if report.processed else 2)


def add_segment_parser(sub) -> None:
    """The `segment` subcommand's arguments."""
    from asbunet.frames.options import FrameOptions
    from asbunet.frames.temporal import DEFAULT_SMOOTHER, OLD_SMOOTHER, SMOOTHERS
    from asbunet.inference.auto import RUNTIMES

    p = sub.add_parser("segment", help="person masks and effects for images, folders, videos or a camera")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image or video files, folders, glob patterns")
    p.add_argument("--output", help="output folder (created if needed)")
    p.add_argument("--model", help="bundled model name, .pt checkpoint or .onnx file (default: the bundled model)")
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="how a bundled model runs (default auto: the runtime measured fastest on this kind of CPU, int8 where it "
        "is within 0.3 IoU points of fp32; docs/deployment.md)",
    )
    p.add_argument("--size", type=int, help="long side of the network input (default: the model's)")
    p.add_argument(
        "--save",
        help="comma-separated outputs among mask,prob,overlay,cutout,effect "
        "(default: mask for images, effect for videos)",
    )
    p.add_argument(
        "--background",
        help="the effect: blur, an image file, or a colour (name or #RRGGBB); "
        "implies the effect output (default: blur)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="mask threshold on the probability, in (0, 1) (default: the model's own, docs/model_card.md; 0.5 for "
        "checkpoints)",
    )
    p.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resize the probability back with the model's own refinement, if it carries one (default: on); "
        "--no-refine resizes it bilinearly",
    )
    p.add_argument(
        "--smoother",
        default=FrameOptions.smoother,
        choices=list(SMOOTHERS),
        help=f"video: how masks are steadied over time (default {FrameOptions.smoother}: averaged where the "
        "probability barely changes, large changes passed at once; docs/segment.md)",
    )
    p.add_argument("--smooth", dest="smooth", type=float, help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    p.add_argument(
        "--momentum",
        dest="smooth",
        type=float,
        metavar="M",
        help="video: the smoother's weight of past frames in [0, 1), 0 = off (default: the smoother's own, "
        f"{DEFAULT_SMOOTHER[1]['momentum']} for {DEFAULT_SMOOTHER[0]}, {OLD_SMOOTHER[1]['momentum']} for "
        f"{OLD_SMOOTHER[0]})",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: image files on a Ray cluster (the ray extra; RAY_ADDRESS, else a cluster on "
        "this machine), outputs already there are left out (docs/scale.md)",
    )
    p.add_argument(
        "--actors", type=int, metavar="N", help="ray: segmenting actors (default: the cluster's CPUs / threads)"
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of the model's runtime (default: one per core); with --engine ray, of each actor (default 1)",
    )
    p.add_argument("--main-person", action="store_true", help="keep only the main person (largest, most central)")
    p.add_argument("--camera", type=int, metavar="N", help="segment camera N live instead of INPUT files")
    p.add_argument(
        "--virtual-camera",
        nargs="?",
        const=True,
        metavar="DEVICE",
        help="camera: send the effect to a virtual camera that video calls can select (the first free one, or "
        "DEVICE such as /dev/video10; needs pyvirtualcam, the camera extra, and on Linux v4l2loopback: "
        "docs/segment.md)",
    )
    p.add_argument("--preview", action="store_true", help="camera: show the effect and the frames per second")
    p.add_argument("--max-frames", type=int, metavar="N", help="video/camera: stop after N frames")
    p.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="refuse images and video frames of more than N pixels (width x height), checked from the file header "
        "before decoding (default 89478485, as Pillow)",
    )
    p.set_defaults(func=cmd_segment)
