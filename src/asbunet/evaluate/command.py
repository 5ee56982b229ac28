"""The command line of this room, each subparser beside its command: `asbunet evaluate`."""

from __future__ import annotations

from asbunet.inference.peers import DEFAULT_PEERS_DIR


def cmd_evaluate(args) -> None:
    from asbunet.evaluate.run import default_output, evaluate_model, split_models
    from asbunet.evaluate.scoring import Settings

    models, datasets = split_models(args.model)  # `--model A B DATA...`: the data sets may follow the models
    if not models:
        raise ValueError(f"--model: {args.model[0]} is a data set, not a model; give the models first")
    settings = Settings(resize=args.resize, video=args.video, smoother=args.smoother)
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
        threshold=args.threshold,
    )


def add_evaluate_parser(sub) -> None:
    """The `evaluate` subcommand's arguments."""
    from asbunet.inference.auto import RUNTIMES

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
        default=str(DEFAULT_PEERS_DIR),
        help="folder with the MediaPipe .tflite files (default: the copy inside the package)",
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
        help="mask = probability >= threshold, in (0, 1), for every model (default: each model's own, see "
        "docs/model_card.md; "
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
    p.add_argument(
        "--video",
        action="store_true",
        help="each data set is a frame sequence (images in name order): report flicker, the share of pixels whose "
        "mask changes between consecutive frames where the label does not",
    )
    p.add_argument(
        "--smoother",
        default="frame_by_frame",
        help="with --video: smooth each model's probabilities over time as `asbunet segment` does (confidence, ema, "
        "...; docs/segment.md); default frame_by_frame",
    )
    p.add_argument("--threads", type=int, help="CPU threads of PyTorch, onnxruntime and LiteRT (default: theirs)")
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="how bundled models run (default auto, as Segmenter.from_pretrained: the runtime measured fastest on "
        "this kind of CPU); files run on their own runtime",
    )
    p.set_defaults(func=cmd_evaluate)
