"""The `asbunet` command line: thin argument parsing over the library functions."""

from __future__ import annotations

import argparse
import sys

from asbunet.analysis import command as analysis_command
from asbunet.bench import command as bench_command
from asbunet.compare import command as compare_command
from asbunet.data import command as data_command
from asbunet.evaluate import command as evaluate_command
from asbunet.export import command as export_command
from asbunet.extras import missing_extra, version
from asbunet.segment import command as segment_command
from asbunet.train import command as train_command

USER_COMMANDS = ("segment", "evaluate", "train", "bundle", "export")
MAINTAINER_COMMANDS = (
    "bench",
    "compare",
    "summary",
    "receptive-field",
    "check-data",
    "preview-augment",
    "teacher-labels",
)


def build_parser() -> argparse.ArgumentParser:
    """The `asbunet` parser: each room adds its own subcommands (`asbunet.<room>.command`), the user commands first,
    then the maintainer tools. The old names `bench-video`, `bench-predict` and `export-bundled` still parse, as
    hidden aliases of `bench video`, `bench predict` and `export --bundled`."""
    parser = argparse.ArgumentParser(
        prog="asbunet",
        description="Person segmentation with ASBU-Net.",
        epilog=f"user commands: {', '.join(USER_COMMANDS)}; maintainer tools: {', '.join(MAINTAINER_COMMANDS)}. "
        "`asbunet COMMAND --help` for each one's options.",
    )
    parser.add_argument("--version", action="version", version=f"asbunet {version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands (the user's first, then the maintainer's)"
    )
    segment_command.add_segment_parser(sub)
    evaluate_command.add_evaluate_parser(sub)
    train_command.add_train_parser(sub)
    train_command.add_bundle_parser(sub)
    export_command.add_export_parser(sub)
    bench_command.add_bench_parser(sub)
    compare_command.add_compare_parser(sub)
    analysis_command.add_summary_parser(sub)
    analysis_command.add_receptive_field_parser(sub)
    data_command.add_check_data_parser(sub)
    train_command.add_preview_augment_parser(sub)
    data_command.add_teacher_labels_parser(sub)
    # hidden aliases, the old names of modes (not listed in --help)
    bench_command.add_bench_video_parser(sub)
    bench_command.add_bench_predict_parser(sub)
    export_command.add_export_bundled_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ModuleNotFoundError as err:
        message = missing_extra(err)
        if message is None:
            raise
        print(f"asbunet {args.command}: {message}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"asbunet {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
