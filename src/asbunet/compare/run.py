"""The comparison's entry point (`asbunet compare`, `run_comparison`): every (model, seed) run trained and scored, the
latencies measured, the report written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from asbunet.compare.config import CompareConfig, check_seeds
from asbunet.compare.latency import cached_latency, latency
from asbunet.compare.report import write_report
from asbunet.compare.runs import run_one, run_state


def run_comparison(
    cfg: CompareConfig, resume: bool = False, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> dict:
    """Trains, evaluates and times the comparison's models, then writes the tables (see the module docstring).

    Args:
        cfg: the comparison.
        resume: continue interrupted runs after their last completed epoch; without it an interrupted run is an
            error (nothing is trained), so that no run is restarted from scratch by accident.
        only: train and evaluate these models only (names from `cfg.models`); the tables still list every model,
            with the finished runs found in the output folder.
        seeds: replace the config's seeds for this invocation.

    Returns:
        The content of `results.json`.
    """
    only = list(cfg.models) if not only else list(only)
    unknown = [m for m in only if m not in cfg.models]
    if unknown:
        raise ValueError(
            f"--only names {unknown}, which the config does not compare; its models: {', '.join(cfg.models)}"
        )
    seeds = cfg.seeds if seeds is None else check_seeds(seeds)
    if cfg.latency.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("latency device is 'cuda' but PyTorch sees no GPU: set latency.device to cpu, or run on a GPU")
    from asbunet.data.io import DataError
    from asbunet.data.sources import open_source

    for spec in [*cfg.train_config(cfg.models[0], seeds[0]).data.train, cfg.test]:
        try:
            open_source(spec)  # a missing data set fails now, not after the first training run
        except DataError as err:
            raise DataError(
                f"{err} (relative paths in the config are relative to the directory the command runs "
                f"in, here {Path.cwd()}: run it from the repository root)"
            ) from None
    plan = [(m, s) for m in cfg.models if m in only for s in seeds]
    states = {run: run_state(cfg, *run) for run in plan}  # every recipe check before any training
    interrupted = [f"{m} seed {s}" for (m, s), st in states.items() if st == "interrupted"]
    if interrupted and not resume:
        raise ValueError(
            f"interrupted runs in {cfg.output}: {', '.join(interrupted)}; pass --resume to continue them after their "
            "last completed epoch, or delete their folders to start them over"
        )
    todo = [run for run in plan if states[run] != "finished"]
    print(f"compare: {len(plan) - len(todo)} of {len(plan)} runs finished already; {len(todo)} to do", flush=True)
    for i, (model, seed) in enumerate(todo, 1):
        print(f"compare: run {i}/{len(todo)}: {model} seed {seed}", flush=True)
        run_one(cfg, model, seed, states[(model, seed)])
        write_report(cfg, cached_latency(cfg))  # the tables grow as runs finish
    report = write_report(cfg, latency(cfg))
    print(
        f"compare: wrote {Path(cfg.output) / 'results.md'}, results.csv, results.json, accuracy_latency.png", flush=True
    )
    return report
