"""The command line of this room, each subparser beside its command: `asbunet compare`."""

from __future__ import annotations


def cmd_compare(args) -> None:
    from asbunet.compare.config import load_compare_config
    from asbunet.compare.run import run_comparison

    cfg = load_compare_config(args.config, output=args.output)
    run_comparison(cfg, resume=args.resume, only=args.only, seeds=args.seeds)


def add_compare_parser(sub) -> None:
    """The `compare` subcommand's arguments."""
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
