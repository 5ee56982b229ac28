"""The `asbunet` command line: thin argument parsing over the library functions."""

from __future__ import annotations

import argparse
import signal
import sys


def cmd_train(args) -> None:
    from asbunet.train.config import load_config
    from asbunet.train.engine import train

    train(load_config(args.config, args.overrides), resume=args.resume, overwrite=args.overwrite)


def cmd_check_data(args) -> None:
    from tqdm import tqdm

    from asbunet.data.check import check_datasets, format_report

    reports = check_datasets(args.paths, progress=lambda it, name: tqdm(it, desc=name, leave=False))
    print(format_report(reports))
    usable = sum(r.usable for r in reports)
    problems = sum(len(r.problems) for r in reports)
    unopened = any(not r.layout for r in reports)  # training cannot skip a whole dataset
    if problems and (unopened or not (args.skip_bad and usable)):
        hint = "" if args.skip_bad else " (--skip-bad accepts them, as data.skip_bad=true does in training)"
        print(f"asbunet check-data: {problems} problem(s){hint}", file=sys.stderr)
        raise SystemExit(1)


def cmd_preview_augment(args) -> None:
    from tqdm import tqdm

    from asbunet.data.preview import preview_samples, save_grid
    from asbunet.train.config import load_config

    cfg = load_config(args.config, args.overrides)
    pool_size = args.pool_size or None
    samples = preview_samples(cfg, args.count, args.epoch, pool_size, lambda it: tqdm(it, desc="loading", leave=False))
    title = f"{args.config}: epoch {args.epoch}, " + (
        "first samples of training" if pool_size is None else f"pool of {pool_size} samples per dataset"
    )
    print(f"wrote {save_grid(samples, args.output, title)} ({len(samples)} samples)")


def cmd_teacher_labels(args) -> None:
    from collections import Counter
    from fnmatch import fnmatch
    from pathlib import Path

    from tqdm import tqdm

    from asbunet.data.io import list_images
    from asbunet.data.teachers import Teachers, fetch_teachers, label_folder

    if args.fetch:
        fetch_teachers(args.teachers)
    excluded = set()
    for list_file in args.exclude:
        lines = (line.split("#", 1)[0].strip() for line in Path(list_file).read_text().splitlines())
        excluded |= {line for line in lines if line}
    images = [
        p for p in list_images(Path(args.images)) if not any(fnmatch(p.name, e) or fnmatch(p.stem, e) for e in excluded)
    ]
    rows = label_folder(images, args.output, Teachers(args.teachers), progress=lambda it: tqdm(it, desc="labelling"))
    counts = Counter(r["outcome"] for r in rows)
    print(f"{len(rows)} frames ({len(excluded)} names excluded): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    print(f"wrote {args.output}/masks, kept.txt and labels.csv")


def cmd_bundle(args) -> None:
    import json
    from pathlib import Path

    from tqdm import tqdm

    from asbunet.inference.weights import WEIGHTS_DIR
    from asbunet.train.bundle import bundle_checkpoint
    from asbunet.train.calibrate import best_threshold

    progress = lambda it: tqdm(it, desc="choosing the threshold", unit="img", leave=False)  # noqa: E731
    meta = bundle_checkpoint(args.checkpoint, args.output, args.threshold, args.input_size, progress)
    calibration = json.loads(meta["threshold_calibration"])
    for size, stored in calibration.get("sweeps", {}).items():
        sweep = {float(t): iou for t, iou in stored.items()}
        best = best_threshold(sweep)
        print(
            f"input size {size}: best mean IoU {sweep[best]:.4f} (threshold {best:g}) on the "
            f"{calibration['images']} validation images, {sweep.get(0.5, float('nan')):.4f} at threshold 0.5"
        )
    print(
        f"wrote {args.output} ({meta['architecture']}, input size {meta['input_size']}, threshold "
        f"{meta['threshold']}, epoch {meta['epoch']})"
    )
    output = Path(args.output).resolve()
    if output.parent == WEIGHTS_DIR.resolve():
        print(f"its ONNX files are now stale: run `asbunet export-bundled {output.stem}` and commit all three files")


def cmd_summary(args) -> None:
    from asbunet.analysis.size import format_summary, format_table, summarize, summarize_all

    if args.all == (args.model is not None):
        raise ValueError("give either a model name or --all, e.g. `asbunet summary asbunet` or `asbunet summary --all`")
    size = tuple(args.size)
    if args.all:
        print(format_table(summarize_all(size)))
    else:
        print(format_summary(summarize(args.model, size)))


def cmd_receptive_field(args) -> None:
    from asbunet.analysis.receptive_field import (
        format_linearity,
        format_rf_table,
        paper_and_deeplab,
        plot_receptive_fields,
    )

    schedules = paper_and_deeplab(args.model)
    print(f"{args.model}: receptive field after every layer (Eq. 2, k' = a(k-1)+1), in input pixels")
    print(format_rf_table(schedules))
    print()
    print(format_linearity(schedules))
    if args.plot:
        title = f"{args.model} encoder receptive field (Eq. 2)"
        print(f"wrote {plot_receptive_fields(schedules, args.plot, title=title)}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_segment(args) -> None:
    import cv2

    from asbunet.data.io import MAX_PIXELS, pixel_limit
    from asbunet.inference.segmenter import Segmenter
    from asbunet.segment.effects import parse_background
    from asbunet.segment.files import segment_files
    from asbunet.segment.options import SegmentOptions
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
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # unreadable files are reported by path below
    save = None if args.save is None else tuple(s.strip() for s in args.save.split(",") if s.strip())
    if args.background is not None and save is not None and "effect" not in save:
        save += ("effect",)
    with pixel_limit(MAX_PIXELS if args.max_pixels is None else args.max_pixels):
        effect = None if args.background is None else parse_background(args.background)
        options = SegmentOptions(
            save=save,
            effect=effect,
            threshold=args.threshold,
            refine=args.refine,
            smoother=args.smoother,
            smooth=args.smooth,
            max_frames=args.max_frames,
            main_person=args.main_person,
        )
        segmenter = Segmenter.from_pretrained(args.model, input_size=args.size, runtime=args.runtime)
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


def cmd_bench_video(args) -> None:
    from asbunet.bench.machine import describe_isa_of
    from asbunet.bench.pipeline import PipelineConfig, report_markdown, run_pipeline_bench, write_report

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
    print(report_markdown(report))
    for path in write_report(report, args.output):
        print(f"wrote {path}")


def cmd_evaluate(args) -> None:
    from asbunet.evaluate import Settings, default_output, evaluate_model, split_models

    models, datasets = split_models(args.model)  # `--model A B DATA...`: the data sets may follow the models
    if not models:
        raise ValueError(f"--model: {args.model[0]} is a data set, not a model; give the models first")
    settings = Settings(threshold=args.threshold, resize=args.resize)
    evaluate_model(
        models,
        datasets + args.datasets,
        args.output or default_output(models),
        size=args.size,
        settings=settings,
        gallery=args.gallery,
        threads=args.threads,
        peers=args.peers,
        runtime=args.runtime,
    )


def cmd_compare(args) -> None:
    from asbunet.compare.config import load_compare_config
    from asbunet.compare.run import run_comparison

    cfg = load_compare_config(args.config, output=args.output)
    run_comparison(cfg, resume=args.resume, only=args.only, seeds=args.seeds)


def cmd_export(args) -> None:
    from pathlib import Path

    from asbunet.export.calibration import calibration_files, load_images
    from asbunet.export.checks import check_onnx
    from asbunet.export.onnx import export_onnx
    from asbunet.export.quantize import quantize_int8
    from asbunet.export.tflite import export_tflite
    from asbunet.inference.runners import INPUT_SIZE_KEY, THRESHOLD_KEY
    from asbunet.inference.weights import load_model

    if args.size and args.dynamic:
        raise ValueError("give --size H W for a fixed-size model or --dynamic, not both")
    loaded = load_model(args.model, runtime="torch")
    if loaded.module is None:
        raise ValueError(f"{args.model}: export needs a PyTorch model: a .pt, .safetensors file or a model name")
    model, description, input_size, threshold = loaded.module, loaded.name, loaded.input_size, loaded.threshold
    size = tuple(args.size) if args.size else (input_size, input_size)
    folders = args.calibration
    images = load_images(calibration_files(folders, args.calibration_count)) if folders else None
    if args.int8 and not images:
        raise ValueError("--int8 needs real calibration images: give --calibration DIR [DIR ...] (folders of photos)")
    where = ", ".join(map(str, folders))
    print(f"exporting {description}; real-image check: {f'{len(images)} images from {where}' if images else 'none'}")
    result = export_onnx(
        model,
        args.output,
        size=size,
        dynamic=args.dynamic,
        opset=args.opset,
        images=images,
        input_size=input_size,
        metadata={THRESHOLD_KEY: f"{threshold:g}", INPUT_SIZE_KEY: str(input_size)},
    )
    print(result.summary())
    if args.int8:
        out = Path(args.output).with_name(Path(args.output).stem + "_int8.onnx")
        q = quantize_int8(args.output, out, images, count=None, input_size=input_size)
        random, real = check_onnx(model, out, size, images, input_size)
        print(f"{q.summary()}\n  random input: {random}\n  real images:  {real}")
    if args.tflite:
        try:
            tfl = export_tflite(model, Path(args.output).with_suffix(".tflite"), size=size, images=images)
        except ImportError as err:
            print(f"skipping TFLite: {err}")
        else:
            print(tfl.summary())


def cmd_export_bundled(args) -> None:
    from tqdm import tqdm

    from asbunet.export.bundled import check_bundled_onnx, export_bundled
    from asbunet.inference.weights import bundled_models

    names = args.names or bundled_models()
    if args.check:
        problems = check_bundled_onnx(names)
        for problem in problems:
            print(f"asbunet export-bundled: {problem}", file=sys.stderr)
        if problems:
            print(f"asbunet export-bundled: run `asbunet export-bundled {' '.join(names)}`", file=sys.stderr)
            raise SystemExit(1)
        print(f"the ONNX files of {', '.join(names)} match the shipped weights")
        return
    for name in names:
        progress = lambda it: tqdm(it, desc=f"{name}: int8 vs fp32", unit="img", leave=False)  # noqa: E731, B023
        done = export_bundled(
            name,
            calibration=args.calibration,
            validation=args.validation,
            calibration_count=args.calibration_count,
            threads=args.threads,
            progress=progress,
        )
        print(done.summary())
        print(f"wrote {done.fp32} and {done.int8}")


def cmd_bench(args) -> None:
    from asbunet.bench.config import BenchConfig
    from asbunet.bench.peers import fetch_peers
    from asbunet.bench.report import write_outputs
    from asbunet.bench.run import run_bench
    from asbunet.models import list_models

    def parse_size(text: str) -> tuple[int, int]:
        h, _, w = text.lower().partition("x")
        if not (h.isdigit() and w.isdigit()):
            raise ValueError(f"--sizes takes HxW values such as 256x256 or 144x256, got {text!r}")
        return int(h), int(w)

    if args.fetch_peers:
        print(f"peers: {', '.join(f'{k} ({v})' for k, v in fetch_peers(args.peers).items())}")
    cfg = BenchConfig(
        models=args.models or list_models(),
        sizes=[parse_size(s) for s in args.sizes],
        threads=args.threads,
        runtimes=args.runtimes,
        runs=args.runs,
        warmup=args.warmup,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asbunet", description="Person segmentation with ASBU-Net.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config (Section IV-B)")
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/paper.yaml")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue after the last completed epoch of last.pt in the output folder (refused when there is none)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an output folder that holds another run (last.pt, best.pt, metrics.csv), "
        "replacing it; without it such a folder is refused",
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=5 data.max_side=384")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check-data", help="validate datasets before training: readable images, matching masks")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a folder with images/ and masks/, or a COCO .json file")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="report problems but exit 0 while usable samples remain (as data.skip_bad=true trains)",
    )
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("preview-augment", help="grid of augmented training samples with their masks (Section IV-A)")
    p.add_argument("--config", required=True, help="YAML training config, e.g. configs/pfcn_fast.yaml")
    p.add_argument("--count", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--output", required=True, help="image file to write, e.g. augment.png")
    p.add_argument("--epoch", type=int, default=1, help="epoch whose augmentation to show (default 1)")
    p.add_argument(
        "--pool-size",
        type=int,
        default=64,
        help="samples loaded per dataset (default 64); 0 loads all: exactly the run's first samples",
    )
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. augment.composite=1")
    p.set_defaults(func=cmd_preview_augment)

    p = sub.add_parser("teacher-labels", help="person labels for unlabelled frames from MediaPipe selfie and pose")
    p.add_argument("images", help="folder of frames to label")
    p.add_argument("--output", required=True, help="folder for masks/, kept.txt and labels.csv")
    p.add_argument(
        "--exclude", nargs="*", default=[], help="list files of frames to leave out (one name or glob per line)"
    )
    p.add_argument("--teachers", default=".cache/teachers", help="folder with the MediaPipe .tflite files")
    p.add_argument("--fetch", action="store_true", help="pip download mediapipe==0.10.21 and extract the teachers")
    p.set_defaults(func=cmd_teacher_labels)

    p = sub.add_parser("bundle", help="turn a training checkpoint into a bundled safetensors model")
    p.add_argument("checkpoint", help="best.pt or last.pt written by `asbunet train`")
    p.add_argument("--output", required=True, help="e.g. src/asbunet/weights/asbunet_person.safetensors")
    p.add_argument(
        "--threshold",
        type=float,
        help="mask threshold to store (default: the best mean IoU on the run's validation split, 0.30-0.90)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        metavar="N",
        help="long side of the network input to store; several: the best on the validation split, chosen together "
        "with the threshold (default: the training run's val_size)",
    )
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("summary", help="parameters, fp32 size, MACs and output strides of a model (Fig. 7)")
    p.add_argument("model", nargs="?", help="a name from asbunet.list_models(), e.g. asbunet")
    p.add_argument("--all", action="store_true", help="one table of every model beside the paper's Fig. 7")
    p.add_argument("--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"), help="input size for MACs")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("receptive-field", help="per-layer receptive field of the encoder (Section III-C, Eq. 2)")
    p.add_argument("model", nargs="?", default="asbunet", help="an asbunet* model name (default: asbunet)")
    p.add_argument("--plot", help="write both curves to this PNG, e.g. docs/receptive_field.png")
    p.set_defaults(func=cmd_receptive_field)

    from asbunet.segment.options import SegmentOptions
    from asbunet.segment.temporal import SMOOTHERS

    p = sub.add_parser("segment", help="person masks and effects for images, folders, videos or a camera")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image or video files, folders, glob patterns")
    p.add_argument("--output", help="output folder (created if needed)")
    p.add_argument("--model", help="bundled model name, .pt checkpoint or .onnx file (default: the bundled model)")
    p.add_argument(
        "--runtime",
        choices=["onnx", "onnx-int8", "torch"],
        help="how a bundled model runs (default: onnxruntime int8 where it is within 0.3 IoU points of fp32, else "
        "fp32; docs/deployment.md)",
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
        help="mask threshold on the probability (default: the model's own, docs/model_card.md; 0.5 for checkpoints)",
    )
    p.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="guided-filter refinement at output resolution (default: on)",
    )
    p.add_argument(
        "--smoother",
        default=SegmentOptions.smoother,
        choices=list(SMOOTHERS),
        help=f"video: how masks are steadied over time (default {SegmentOptions.smoother}: averaged where the "
        "probability barely changes, large changes passed at once; docs/segment.md)",
    )
    p.add_argument(
        "--smooth",
        type=float,
        metavar="M",
        help="video: the smoother's weight of past frames in [0, 1), 0 = off (default: the smoother's own, 0.95 for "
        "confidence, 0.6 for ema)",
    )
    p.add_argument("--main-person", action="store_true", help="keep only the main person (largest, most central)")
    p.add_argument("--camera", type=int, metavar="N", help="segment camera N live instead of INPUT files")
    p.add_argument(
        "--virtual-camera",
        nargs="?",
        const=True,
        metavar="DEVICE",
        help="camera: send the effect to a virtual camera that video calls can select (the first free one, or "
        "DEVICE such as /dev/video10; needs asbunet[camera] and, on Linux, v4l2loopback: docs/segment.md)",
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

    p = sub.add_parser(
        "bench-video", help="frames per second of the whole video pipeline on a 720p clip, beside MediaPipe"
    )
    p.add_argument("--frames", metavar="DIR", help="images to make the 720p clip from (e.g. a davis_person sequence)")
    p.add_argument("--clip", metavar="VIDEO", help="an existing video to run instead")
    p.add_argument("--clip-frames", type=int, default=150, help="frames of the clip made from --frames (default 150)")
    p.add_argument(
        "--models",
        nargs="+",
        metavar="SPEC",
        help="models (bundled name[:runtime], files, mediapipe_landscape; default: the bundled models and "
        "mediapipe_landscape)",
    )
    p.add_argument("--runs", type=int, default=3, help="timed runs of the clip per model (default 3)")
    p.add_argument("--threads", type=int, default=2, help="network threads (default 2)")
    p.add_argument("--output", default="out/bench_video", help="folder for the clip and the results")
    p.set_defaults(func=cmd_bench_video)

    p = sub.add_parser(
        "evaluate", help="score models on labelled data sets, side by side: ignore-band IoU (Eq. 3), IoU, Dice..."
    )
    p.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help="a folder with images/ and masks/, a COCO .json, or a .txt list of person-free frames (images/ beside it)",
    )
    p.add_argument(
        "--model",
        required=True,
        nargs="+",
        metavar="MODEL",
        help="one or more models, the first being the reference for the per-image wins: bundled model name, .pt "
        "checkpoint, .onnx file, registry model name (random weights), or mediapipe_general / mediapipe_landscape "
        "(MediaPipe Selfie Segmentation from --peers); the data sets may follow directly",
    )
    p.add_argument(
        "--peers",
        default="peers/mediapipe",
        help="folder with the MediaPipe .tflite files (default peers/mediapipe, the repository's copy)",
    )
    p.add_argument(
        "--size",
        type=int,
        help="network input: long side, or side with --resize square (default: the model's; MediaPipe runs at its own)",
    )
    p.add_argument("--output", help="results folder (default: evaluation/<model>, or <first>_vs_<others>)")
    p.add_argument(
        "--threshold",
        type=float,
        help="mask = probability > threshold, for every model (default: each model's own, see docs/model_card.md; "
        "0.5 for checkpoints and MediaPipe)",
    )
    p.add_argument(
        "--resize",
        choices=["keep", "square"],
        default="keep",
        help="keep the aspect ratio (default) or squeeze every image to size x size",
    )
    p.add_argument(
        "--gallery",
        type=int,
        default=8,
        metavar="K",
        help="draw the K worst images per data set and model (default 8, 0 for none)",
    )
    p.add_argument("--threads", type=int, help="CPU threads of PyTorch, onnxruntime and LiteRT (default: theirs)")
    p.add_argument(
        "--runtime",
        choices=["onnx", "onnx-int8", "torch"],
        help="how bundled models run (default: as Segmenter.from_pretrained, onnxruntime int8 or fp32); files run "
        "on their own runtime",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="train, score and time ASBU-Net and the baselines alike (Fig. 6 and 7)")
    p.add_argument("config", help="comparison config, e.g. configs/compare_cpu.yaml")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue interrupted runs after their last completed epoch (finished runs are always kept)",
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="train and score only these models of the config")
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="seeds to run instead of the config's, e.g. --seeds 0 1 2 for the spread over seeds",
    )
    p.add_argument("--output", help="results folder instead of the config's `output`")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="ONNX (and int8, TFLite) export checked against PyTorch (docs/deployment.md)")
    p.add_argument("model", help="registry model name, bundled model name or .pt checkpoint")
    p.add_argument("--output", required=True, help="the .onnx file to write (int8: <stem>_int8.onnx beside it)")
    p.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="fixed input size (default: the model's input size, square)",
    )
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width instead of a fixed size")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--int8", action="store_true", help="also write a post-training int8 model (onnxruntime, QDQ)")
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="DIR",
        help="folders of real photos for the int8 calibration and the real-image check, shared equally (needed by "
        "--int8; without it the export is checked on random input only)",
    )
    p.add_argument(
        "--calibration-count",
        type=int,
        default=32,
        metavar="N",
        help="images to use, spread over the folders (default 32; fewer give a warning)",
    )
    p.add_argument("--tflite", action="store_true", help="also write <stem>.tflite (needs litert-torch)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "export-bundled",
        help="write the bundled models' ONNX files (fp32, int8) from their weights and choose the default runtime",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="bundled models (default: all)")
    p.add_argument("--check", action="store_true", help="only check that the ONNX files match the weights")
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="DIR",
        help="folders of photos for the int8 calibration (default: photos of the training split of the run that "
        "trained the weights, from the training config in their metadata)",
    )
    p.add_argument("--calibration-count", type=int, default=32, metavar="N", help="calibration photos (default 32)")
    p.add_argument(
        "--validation",
        nargs="+",
        metavar="DATASET",
        help="labelled data sets on which int8 is compared with fp32 (default: that run's validation split)",
    )
    p.add_argument("--threads", type=int, help="onnxruntime threads for the comparison (default: one per core)")
    p.set_defaults(func=cmd_export_bundled)

    p = sub.add_parser("bench", help="latency of every model and runtime vs matmul peaks and MediaPipe")
    p.add_argument("--models", nargs="+", metavar="NAME", help="registry model names (default: all)")
    p.add_argument(
        "--sizes",
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
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="DIR",
        help="folders of real photos for the int8 calibration (default: random images, noted in the results)",
    )
    p.add_argument("--calibration-count", type=int, default=32, metavar="N", help="calibration images (default 32)")
    p.add_argument(
        "--peers",
        default="peers/mediapipe",
        metavar="DIR",
        help="folder with the MediaPipe .tflite files (default peers/mediapipe, the repository's copy)",
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"asbunet {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
