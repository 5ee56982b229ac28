"""The command line of this room, each subparser beside its command: `asbunet train`, `asbunet preview-augment`,
`asbunet bundle`."""

from __future__ import annotations

import argparse


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the training stands, so that it stops as after Ctrl+C and says where it saved."""


def _terminate(signum, frame) -> None:
    raise Terminated("SIGTERM")


def cmd_train(args) -> None:
    import signal
    import sys

    from asbunet.train.config import load_config
    from asbunet.train.engine import train

    cfg = load_config(args.config, args.overrides)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        train(cfg, resume=args.resume, overwrite=args.overwrite, command=f"asbunet train --config {args.config}")
    except KeyboardInterrupt as stop:
        if not getattr(stop, "reported", False):  # else the engine has said where the last epoch is saved
            how = f"by {stop}" if str(stop) else "(Ctrl+C)"
            print(f"asbunet train: stopped {how} before training began; no checkpoint was written", file=sys.stderr)
        raise SystemExit(143 if isinstance(stop, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_train_parser(sub) -> None:
    """The `train` subcommand's arguments."""
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


def cmd_bundle(args) -> None:
    import json
    from pathlib import Path

    from tqdm import tqdm

    from asbunet.inference.weights import WEIGHTS_DIR
    from asbunet.train.bundle import bundle_checkpoint
    from asbunet.train.calibrate import best_threshold

    progress = lambda it: tqdm(it, desc="choosing the threshold", unit="img", leave=False)  # noqa: E731
    from asbunet.inference.refine import GuidedRefine

    refine = GuidedRefine.from_text(args.refine) if args.refine else None
    meta = bundle_checkpoint(args.checkpoint, args.output, args.threshold, args.input_size, progress, refine)
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
        f"{meta['threshold']}, epoch {meta['epoch']}{', refine ' + meta['refine'] if 'refine' in meta else ''})"
    )
    output = Path(args.output).resolve()
    if output.parent == WEIGHTS_DIR.resolve():
        print(f"its ONNX files are now stale: run `asbunet export --bundled {output.stem}` and commit all three files")


def add_bundle_parser(sub) -> None:
    """The `bundle` subcommand's arguments."""
    p = sub.add_parser("bundle", help="turn a training checkpoint into a bundled safetensors model")
    p.add_argument("checkpoint", help="best.pt or last.pt written by `asbunet train`")
    p.add_argument("--output", required=True, help="e.g. src/asbunet/weights/asbunet_person.safetensors")
    p.add_argument(
        "--threshold",
        type=float,
        help="mask threshold to store (default: the best mean IoU on the run's validation split, 0.30-0.90)",
    )
    p.add_argument(
        "--input-size", dest="input_size", type=int, nargs="+", help=argparse.SUPPRESS, default=argparse.SUPPRESS
    )
    p.add_argument(
        "--size",
        dest="input_size",
        type=int,
        nargs="+",
        metavar="N",
        help="long side of the network input to store; several: the best on the validation split, chosen together "
        "with the threshold (default: the training run's val_size)",
    )
    p.add_argument(
        "--refine",
        metavar="guided:radius=R,eps=E,subsample=S",
        help="resize the probability back along the image's edges with this colour guided filter "
        "(asbunet.inference.refine; docs/model.md), stored with the model; the threshold is chosen with it",
    )
    p.set_defaults(func=cmd_bundle)


def cmd_preview_augment(args) -> None:
    from tqdm import tqdm

    from asbunet.train.config import load_config
    from asbunet.train.preview import preview_samples, save_grid

    cfg = load_config(args.config, args.overrides)
    pool_size = args.pool_size or None
    samples = preview_samples(cfg, args.count, args.epoch, pool_size, lambda it: tqdm(it, desc="loading", leave=False))
    title = f"{args.config}: epoch {args.epoch}, " + (
        "first samples of training" if pool_size is None else f"pool of {pool_size} samples per dataset"
    )
    print(f"wrote {save_grid(samples, args.output, title)} ({len(samples)} samples)")


def add_preview_augment_parser(sub) -> None:
    """The `preview-augment` subcommand's arguments."""
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
