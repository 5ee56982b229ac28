"""The command line of this room, each subparser beside its command: `asbunet export`, and `asbunet export --bundled`
(`export-bundled`, its old name, still parses as a hidden alias)."""

from __future__ import annotations

import sys

BUNDLED_ONLY = ("check", "validation", "threads")  # the options of `export --bundled` alone


def cmd_export(args) -> None:
    if args.bundled is not None:
        if args.model or args.output:
            raise ValueError("--bundled writes the bundled models' own files: give their names after --bundled")
        args.names = args.bundled
        cmd_export_bundled(args)
        return
    if given := [f"--{name}" for name in BUNDLED_ONLY if getattr(args, name)]:
        raise ValueError(f"{', '.join(given)}: only with --bundled")
    if not args.model or not args.output:
        raise ValueError("give a MODEL and --output FILE.onnx, or --bundled [NAME ...]")
    _export_one(args)


def _export_one(args) -> None:
    from pathlib import Path

    from asbunet.export.calibration import calibration_files, load_images
    from asbunet.export.checks import check_onnx
    from asbunet.export.onnx import HeadLogits, export_onnx
    from asbunet.export.quantize import quantize_int8
    from asbunet.export.tflite import export_tflite
    from asbunet.inference.runners import INPUT_SIZE_KEY, REFINE_KEY, THRESHOLD_KEY
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
    where = ", ".join(map(str, folders or ()))
    print(f"exporting {description}; real-image check: {f'{len(images)} images from {where}' if images else 'none'}")
    result = export_onnx(
        model,
        args.output,
        size=size,
        dynamic=args.dynamic,
        opset=args.opset,
        images=images,
        input_size=input_size,
        metadata={
            THRESHOLD_KEY: f"{threshold:g}",
            INPUT_SIZE_KEY: str(input_size),
            **({REFINE_KEY: loaded.refine.to_text()} if loaded.refine else {}),
        },
        head_stride=args.head_stride,
    )
    print(result.summary())
    if args.int8:
        out = Path(args.output).with_name(Path(args.output).stem + "_int8.onnx")
        q = quantize_int8(args.output, out, images, count=None, input_size=input_size)
        written = HeadLogits(model) if args.head_stride else model  # what the ONNX files compute
        random, real = check_onnx(written, out, size, images, input_size)
        print(f"{q.summary()}\n  random input: {random}\n  real images:  {real}")
    if args.tflite:
        try:
            tfl = export_tflite(model, Path(args.output).with_suffix(".tflite"), size=size, images=images)
        except ImportError as err:
            print(f"skipping TFLite: {err}")
        else:
            print(tfl.summary())


def add_export_parser(sub) -> None:
    """The `export` subcommand's arguments."""
    help = (
        "ONNX (and int8, TFLite) export checked against PyTorch (docs/deployment.md); --bundled: the bundled models' "
        "own files"
    )
    p = sub.add_parser("export", help=help, description=help)
    p.add_argument("model", nargs="?", help="registry model name, bundled model name or .pt checkpoint")
    p.add_argument("--output", help="the .onnx file to write (int8: <stem>_int8.onnx beside it); needed with MODEL")
    p.add_argument(
        "--bundled",
        nargs="*",
        metavar="NAME",
        help="instead of MODEL: write the ONNX files (fp32, int8) of these bundled models (default: all) from their "
        "weights and choose their default runtime",
    )
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
    add_calibration_arguments(
        p,
        "folders of real photos for the int8 calibration and the real-image check, shared equally (needed by --int8; "
        "without it the export is checked on random input only)",
    )
    p.add_argument(
        "--head-stride",
        action="store_true",
        help="write the logits at the network's output stride, without its last resize to the input size (Segmenter "
        "resizes them back to the image itself; ONNX files only)",
    )
    p.add_argument("--tflite", action="store_true", help="also write <stem>.tflite (needs litert-torch)")
    add_bundled_check_arguments(p, "--bundled: ")
    p.set_defaults(func=cmd_export)


def cmd_export_bundled(args) -> None:
    from tqdm import tqdm

    from asbunet.export.bundled import check_bundled_onnx, export_bundled
    from asbunet.inference.weights import bundled_models

    names = args.names or bundled_models()
    if args.check:
        stale = {name: check_bundled_onnx([name]) for name in names}
        for problem in (p for problems in stale.values() for p in problems):
            print(f"asbunet export --bundled: {problem}", file=sys.stderr)
        if any(stale.values()):
            again = " ".join(name for name, problems in stale.items() if problems)
            print(f"asbunet export --bundled: run `asbunet export --bundled {again}`", file=sys.stderr)
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


def add_export_bundled_parser(sub) -> None:
    """The hidden `export-bundled` subcommand, the old name of `export --bundled`: parsed, not listed in --help."""
    p = sub.add_parser("export-bundled", description="the old name of `asbunet export --bundled`")
    p.add_argument("names", nargs="*", metavar="NAME", help="bundled models (default: all)")
    add_calibration_arguments(
        p,
        "folders of photos for the int8 calibration (default: photos of the training split of the run that trained "
        "the weights, from the training config in their metadata)",
    )
    add_bundled_check_arguments(p)
    p.set_defaults(func=cmd_export_bundled)


def add_bundled_check_arguments(p, prefix: str = "") -> None:
    """`--check`, `--validation` and `--threads` of `export --bundled`."""
    p.add_argument("--check", action="store_true", help=f"{prefix}only check that the ONNX files match the weights")
    p.add_argument(
        "--validation",
        nargs="+",
        metavar="DATASET",
        help=f"{prefix}labelled data sets on which int8 is compared with fp32 (default: that run's validation split)",
    )
    p.add_argument(
        "--threads", type=int, help=f"{prefix}onnxruntime threads for the comparison (default: one per core)"
    )


def add_calibration_arguments(p, folders_help: str) -> None:
    """`--calibration DIR [DIR ...]` and `--calibration-count N`, the int8 calibration photos of `export` (with
    `--bundled` too) and `bench`."""
    p.add_argument("--calibration", nargs="+", metavar="DIR", help=folders_help)
    p.add_argument(
        "--calibration-count",
        type=int,
        default=32,
        metavar="N",
        help="photos to use, spread evenly over the folders (default 32; fewer give a warning)",
    )
