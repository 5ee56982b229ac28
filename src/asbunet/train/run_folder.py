"""A training run's folder: what it holds (checkpoints, metrics, curves), whether a new run or a resume may use it,
the temporary files a killed run left, and what an interrupted run says."""

from __future__ import annotations

import csv
from pathlib import Path

from asbunet import atomic
from asbunet.atomic import open_atomic, save_figure

METRICS_FIELDS = ["epoch", "step", "lr", "train_loss", "val_iou", "val_iou_pooled", "images_per_s", "epoch_s"]
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")  # a folder holding one of these holds a training run
OUTPUT_FILES = ("last.pt", "best.pt", "metrics.csv", "summary.json", "skipped.txt", "curves.png")


def write_plot(csv_path: Path, png_path: Path) -> None:
    """Training loss and validation IoU against epoch (and by kind, where the metrics have `val_<kind>` columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(epochs, [float(r["train_loss"]) for r in rows], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
    by_kind = [k for k in rows[0] if k.startswith("val_") and k not in ("val_iou", "val_iou_pooled")]
    mean = "mean over kinds" if by_kind else "mean over images"
    ax2.plot(epochs, [float(r["val_iou"]) for r in rows], marker="o", label=mean)
    ax2.plot(epochs, [float(r["val_iou_pooled"]) for r in rows], marker=".", label="pooled")
    for key in by_kind:
        ax2.plot(epochs, [float(r[key]) for r in rows], linestyle="--", label=key[4:])
    ax2.set(xlabel="epoch", ylabel="validation IoU", title="validation IoU")
    ax2.legend()
    fig.tight_layout()
    save_figure(fig, png_path, dpi=100)
    plt.close(fig)


def write_metrics(csv_path: Path, rows: list[list], fields: list[str] = METRICS_FIELDS) -> None:
    """Writes `metrics.csv` whole (header and every epoch's row), atomically."""
    with open_atomic(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerows(rows)


def holds_work(out: Path) -> bool:
    """Whether `out` holds anything of a run worth keeping: a checkpoint or a logged epoch (a run killed before its
    first checkpoint leaves only the header of metrics.csv and the config)."""
    if any((out / name).is_file() for name in ("last.pt", "best.pt")):
        return True
    metrics = out / "metrics.csv"
    return metrics.is_file() and len(metrics.read_text().splitlines()) > 1


def check_output(out: Path, resume: bool, overwrite: bool) -> bool:
    """Refuses, before anything is read or written, a resume with nothing to resume and a new run in a folder that
    holds another run (unless `overwrite`). Returns whether to resume: a resume of a run killed before its first
    checkpoint starts it anew, so that the same resume command works whenever the run was killed."""
    if resume and overwrite:
        raise ValueError("give --resume (continue the run in the output folder) or --overwrite (replace it), not both")
    if resume:
        if (out / "last.pt").is_file():
            return True
        if out.is_dir() and not holds_work(out):
            print(f"{out}: the run stopped before its first checkpoint; starting it anew", flush=True)
            return False
        raise FileNotFoundError(f"{out}: nothing to resume (no last.pt); run without --resume to start a new run there")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite and holds_work(out):
        raise ValueError(
            f"{out} holds another run ({', '.join(found)}): continue it with --resume, choose another output=..., "
            "or pass --overwrite to replace it"
        )
    return False


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Removes the temporary files of the run's outputs (`.last.<pid>-<random>.tmp.pt`, ...) left in `out` by
    processes that no longer run (a killed run); returns them."""
    stale = [tmp for name in (*OUTPUT_FILES, "config.yaml") for tmp in atomic.stale_temporaries(out / name)]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def interrupted_message(
    stop: KeyboardInterrupt, epoch: int, saved: tuple[int, int] | None, out: Path, command: str
) -> str:
    """What an interrupted run tells: the signal, the epoch it stopped in, and what `last.pt` holds (`saved`:
    `(whole epochs, batches of the next one)`, None when this run has saved nothing and found nothing)."""
    how = f"by {stop}" if str(stop) else "(Ctrl+C)"
    if saved is None or saved == (0, 0):
        return f"asbunet train: stopped {how} during epoch {epoch}, before a checkpoint was written: nothing was saved"
    whole, batches = saved
    held = " and ".join(
        ([f"epoch {whole}"] if whole else []) + ([f"{batches} batches of epoch {whole + 1}"] if batches else [])
    )
    best = f", the best so far in {out / 'best.pt'}" if (out / "best.pt").is_file() else ""
    return (
        f"asbunet train: stopped {how} during epoch {epoch}; {held} {'are' if batches else 'is'} saved in "
        f"{out / 'last.pt'}{best}; continue with `{command} --resume`"
    )
