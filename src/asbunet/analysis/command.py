"""The command line of this room, each subparser beside its command: `asbunet summary`, `asbunet receptive-field`."""

from __future__ import annotations


def cmd_summary(args) -> None:
    from asbunet.analysis.size import format_summary, format_table, summarize, summarize_all

    if args.all == (args.model is not None):
        raise ValueError("give either a model name or --all, e.g. `asbunet summary asbunet` or `asbunet summary --all`")
    size = tuple(args.size)
    if args.all:
        print(format_table(summarize_all(size)))
    else:
        print(format_summary(summarize(args.model, size)))


def add_summary_parser(sub) -> None:
    """The `summary` subcommand's arguments."""
    p = sub.add_parser("summary", help="parameters, fp32 size, MACs and output strides of a model (Fig. 7)")
    p.add_argument("model", nargs="?", help="a name from asbunet.list_models(), e.g. asbunet")
    p.add_argument("--all", action="store_true", help="one table of every model beside the paper's Fig. 7")
    p.add_argument("--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"), help="input size for MACs")
    p.set_defaults(func=cmd_summary)


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


def add_receptive_field_parser(sub) -> None:
    """The `receptive-field` subcommand's arguments."""
    p = sub.add_parser("receptive-field", help="per-layer receptive field of the encoder (Section III-C, Eq. 2)")
    p.add_argument("model", nargs="?", default="asbunet", help="an asbunet* model name (default: asbunet)")
    p.add_argument("--plot", help="write both curves to this PNG, e.g. docs/receptive_field.png")
    p.set_defaults(func=cmd_receptive_field)
