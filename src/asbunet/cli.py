"""The `asbunet` command line: thin argument parsing over the library functions."""

from __future__ import annotations

import argparse
import sys


def cmd_train(args) -> None:
    from asbunet.train.config import load_config
    from asbunet.train.engine import train

    train(load_config(args.config, args.overrides), resume=args.resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asbunet", description="Person segmentation with ASBU-Net.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config (Section IV-B)")
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/paper.yaml")
    p.add_argument("--resume", action="store_true", help="continue after the last completed epoch in the output dir")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=5 data.max_side=384")
    p.set_defaults(func=cmd_train)
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
