"""The training loop (Section IV-B): weighted BCE, SGD or AdamW, step or cosine decay, validation IoU per epoch.

Runs as one process or under `torchrun` (DistributedDataParallel; gloo on CPU, nccl on GPU). Only rank 0 writes
checkpoints and logs. `--resume` restarts after the last completed epoch with the exact model, optimizer, schedule
and data order of an uninterrupted run; with `checkpoint_every`, from the last of those steps inside an epoch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from asbunet.atomic import write_text
from asbunet.data.augment import AugmentConfig
from asbunet.data.dataset import (
    EpochRandomSampler,
    SamplePool,
    ShapeBatchSampler,
    TrainDataset,
    validation_scenes,
)
from asbunet.data.sources import open_source, split_indices
from asbunet.inference.postprocess import binarize
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import TORCH_SUFFIXES, bundled_models, load_checkpoint, load_model
from asbunet.metrics import iou
from asbunet.models import create_model
from asbunet.train.calibrate import selection_iou, selection_score, split_kinds
from asbunet.train.checkpoint import FORMAT, atomic_save
from asbunet.train.config import TrainConfig
from asbunet.train.distill import Distiller
from asbunet.train.loss import SegmentationLoss
from asbunet.train.mixture import evaluate_kinds, mixture_data
from asbunet.train.run_folder import (
    METRICS_FIELDS,
    OUTPUT_FILES,
    check_output,
    interrupted_message,
    remove_stale_temporaries,
    write_metrics,
    write_plot,
)


class NonFiniteLossError(RuntimeError):
    """Training produced non-finite losses repeatedly; resume from the last checkpoint with a lower lr."""


def setup_distributed() -> tuple[int, int, torch.device]:
    """Initializes the process group when launched by torchrun; returns (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        device = torch.device("cuda", local_rank)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    return dist.get_rank(), world, device


def lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base lr at optimizer step `step` (linear warm-up, then step or cosine decay)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "step":
        period = max(1, round(cfg.lr_step_epochs * steps_per_epoch))
        return cfg.lr_gamma ** (step // period)
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, to compare runs and ranks."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def evaluate_iou(
    model: nn.Module, pool: SamplePool, indices: list[int], input_size: int, selection: str = "images"
) -> tuple[float, float]:
    """Person IoU at threshold 0.5 on `pool[indices]`: the split's `selection_score` (`selection_iou` per image,
    person-free frames scoring the share of pixels left background; averaged over images or, with `selection`
    "kinds", kind by kind) and pooled over pixels."""
    segmenter = Segmenter(TorchRunner(model), input_size)  # the same preprocessing as prediction
    preds = [binarize(segmenter.predict(pool.images[i]), 0.5) for i in indices]  # (H, W) each
    targets = [pool.masks[i].astype(bool) for i in indices]
    per_image = [selection_iou(p[None], t[None]) for p, t in zip(preds, targets, strict=True)]
    mean = float(selection_score(per_image, split_kinds(pool, indices, selection)))
    pooled = iou(np.concatenate([p.ravel() for p in preds])[None], np.concatenate([t.ravel() for t in targets])[None])
    return mean, pooled  # pooled: all pixels as one image


def train_one_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    loss_fn,
    cfg: TrainConfig,
    epoch: int,
    device,
    rank: int,
    start_step: int,
    distiller: Distiller | None = None,
    on_step=None,
) -> tuple[float, float, int]:
    """One pass over the training data; returns (mean loss, images/s, optimizer steps done).

    With a `distiller`, the loss adds its soft-target term to the labelled one. `on_step(batches, steps)` is called
    after every optimizer step with the batches taken from `loader` and the steps done so far."""
    model.train()
    losses, seen, steps, nonfinite, taken = [], 0, 0, 0, 0
    t0 = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=rank != 0, dynamic_ncols=True, leave=False)
    for x, y in bar:
        if cfg.max_steps is not None and start_step + steps >= cfg.max_steps:
            break
        taken += 1
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(x)  # (B, 1, H, W)
        loss = loss_fn(logits.float(), y)
        if distiller is not None:
            loss = loss + distiller(x, logits.float())
        optimizer.zero_grad(set_to_none=True)
        finite = torch.isfinite(loss.detach()).int()
        if dist.is_initialized():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # all ranks skip the step together, or none does
        if not finite:
            nonfinite += 1
            if nonfinite >= cfg.max_nonfinite:
                raise NonFiniteLossError(
                    f"{nonfinite} non-finite losses in a row at epoch {epoch}; resume from the last checkpoint "
                    "with a lower lr (lr=...) or without bf16 (bf16=false)"
                )
            continue
        nonfinite = 0
        loss.backward()
        optimizer.step()
        scheduler.step()
        steps += 1
        losses.append(loss.item())
        seen += x.shape[0]
        rate = seen / (time.perf_counter() - t0) * (dist.get_world_size() if dist.is_initialized() else 1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", img_s=f"{rate:.1f}")
        if on_step is not None:
            on_step(taken, steps)
    elapsed = time.perf_counter() - t0
    world = dist.get_world_size() if dist.is_initialized() else 1
    return float(np.mean(losses)) if losses else float("nan"), seen * world / max(elapsed, 1e-9), steps


def sync_buffers(model: nn.Module, src: int = 0) -> None:
    """Copies rank `src`'s buffers (BatchNorm statistics) to every rank.

    DistributedDataParallel broadcasts rank 0's buffers at the start of each forward pass, so the statistics each rank
    gathers in its last forward pass are never used; syncing at the end of an epoch gives every rank the state that
    rank 0 saves, without changing training.
    """
    for buffer in model.buffers():
        dist.broadcast(buffer, src)


def load_data(cfg: TrainConfig, progress=None) -> tuple[SamplePool, list[int], SamplePool, list[int]]:
    """`(pool, training indices, validation pool, validation indices)`.

    Validation is `data.val`, or the seeded split of `data.train` (Section IV-A: 80/20), the same for every run with
    this config and seed. `data.train_repeat` repeats the training samples of each `data.train` entry (oversampling a
    harder set) without changing that split. `data.negatives` and `data.extra` join the training indices only
    (negatives repeated `data.negatives_repeat` times). With `data.val_backgrounds`, validation also holds
    `data.val_scenes` scenes of the validation people composited onto those person-free frames, and the frames
    themselves as negatives.
    """
    d = cfg.data

    def load(specs, bar=None):
        return SamplePool([open_source(s) for s in specs], d.max_side, d.skip_bad, bar)

    pool = load(d.train, progress)
    if d.val:
        val_pool = load(d.val)
        train_idx, val_idx = list(range(len(pool))), list(range(len(val_pool)))
    else:
        train_idx, val_idx = split_indices(len(pool), d.val_fraction, cfg.seed)
        val_pool = pool
    if d.train_repeat:
        entry = {str(sample.image): k for k, spec in enumerate(d.train) for sample in open_source(spec).samples}
        train_idx = [i for i in train_idx for _ in range(d.train_repeat[entry[pool.names[i]]])]
    if d.extra:
        train_idx += list(pool.extend(load(d.extra))) * d.extra_repeat
    if d.negatives:
        train_idx += list(pool.extend(load(d.negatives))) * d.negatives_repeat
    if d.val_backgrounds:
        frames = load(d.val_backgrounds)
        augment = AugmentConfig.from_dict(cfg.augment)
        scenes = validation_scenes(val_pool, val_idx, frames, d.val_scenes, augment, cfg.seed) if d.val_scenes else None
        own = SamplePool.from_arrays(
            [val_pool.images[i] for i in val_idx],
            [val_pool.masks[i] for i in val_idx],
            [val_pool.names[i] for i in val_idx],
        )
        for extra in (scenes, frames):
            if extra is not None:
                own.extend(extra)
        own.skipped = []
        val_pool, val_idx = own, list(range(len(own)))
    return pool, train_idx, val_pool, val_idx


def load_backgrounds(cfg: TrainConfig) -> SamplePool | None:
    """The canvases for composites (`data.backgrounds`), or None."""
    if not cfg.data.backgrounds:
        return None
    return SamplePool([open_source(s) for s in cfg.data.backgrounds], cfg.data.max_side, cfg.data.skip_bad)


def init_weights(model: nn.Module, cfg: TrainConfig) -> None:
    """Loads `cfg.init_from` into `model` (fine-tuning); the architecture must be the one `cfg` trains."""
    spec = str(cfg.init_from)
    if Path(spec).suffix not in TORCH_SUFFIXES and spec not in bundled_models():
        raise ValueError(
            f"init_from {spec}: give a .pt checkpoint written by `asbunet train`, a .safetensors file written by "
            f"`asbunet bundle` or a bundled model name ({', '.join(bundled_models()) or 'none'}); no bundled model "
            "of that name"
        )
    loaded = load_model(spec, runtime="torch")
    arch, options, state = loaded.architecture, loaded.options, loaded.module.state_dict()
    if (arch, options) != (cfg.model, cfg.model_options):
        raise ValueError(
            f"init_from {cfg.init_from}: holds {arch} weights{f' with options {options}' if options else ''}, "
            f"but the config trains {cfg.model}{f' with options {cfg.model_options}' if cfg.model_options else ''}; "
            f"set model: {arch}"
        )
    model.load_state_dict(state)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, command: str = "asbunet train") -> dict:
    """Runs (or resumes) a training run; returns the final metrics row.

    Ctrl+C (or SIGTERM, which `asbunet train` turns into the same) stops it with a message naming what the last
    checkpoint holds and where; the checkpoints stay whole (`asbunet.atomic`).

    Args:
        resume: continue after the last completed epoch of `cfg.output/last.pt` (an error when there is none).
        overwrite: start a new run even where `cfg.output` holds another run's files, replacing them (without it,
            such a folder is refused and left untouched).
        command: how the run was started, for the message on how to resume it.
    """
    out = Path(cfg.output)
    resume = check_output(out, resume, overwrite)
    rank, world, device = setup_distributed()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    main = rank == 0
    log = print if main else (lambda *a, **k: None)
    distiller = None  # loaded first: a bad teacher is refused before the data is read
    if cfg.teacher:
        distiller = Distiller(cfg.teacher, cfg.distill_weight, cfg.channels_last, cfg.distill_at_threshold).to(device)
        centred = f", targets centred on its threshold {distiller.center:g}" if cfg.distill_at_threshold else ""
        log(f"distilling from {cfg.teacher} (soft-target weight {cfg.distill_weight}{centred})")

    progress = (lambda it: tqdm(it, desc="loading data", leave=False)) if main else None
    val_kinds = None  # with data.mixture: the kind of every validation sample, scored kind by kind
    if cfg.data.mixture:
        dataset, val_pool, val_kinds, frac = mixture_data(cfg, progress)
        val_idx, skipped, backgrounds = list(range(len(val_pool))), [], None
    else:
        pool, train_idx, val_pool, val_idx = load_data(cfg, progress)
        backgrounds = load_backgrounds(cfg)
        skipped = pool.skipped + (val_pool.skipped if val_pool is not pool else [])
        frac = pool.positive_fraction() if cfg.pos_weight == "auto" else None
        dataset = TrainDataset(pool, train_idx, AugmentConfig.from_dict(cfg.augment), cfg.seed, backgrounds)
    pos_weight = cfg.pos_weight
    if pos_weight == "auto":
        pos_weight = (1 - frac) / max(frac, 1e-6)
    log(
        f"data: {len(dataset)} training, {len(val_idx)} validation samples; pos_weight {pos_weight:.3f}; "
        f"{len(skipped)} skipped{f'; {len(backgrounds)} background frames' if backgrounds else ''}"
    )
    fields = METRICS_FIELDS + [f"val_{k}" for k in dict.fromkeys(val_kinds or [])]
    if world > 1:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    else:
        sampler = EpochRandomSampler(len(dataset), cfg.seed)
    batches = ShapeBatchSampler(sampler, cfg.batch_size, cfg.shapes, cfg.seed)
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        pin_memory=device.type == "cuda",
    )
    steps_per_epoch = len(batches)
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(dataset)} training samples make no full batch of batch_size={cfg.batch_size}"
            f"{f' per process ({world} processes)' if world > 1 else ''}: lower batch_size or add data"
        )
    total_steps = steps_per_epoch * cfg.epochs

    model = create_model(cfg.model, **cfg.model_options).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, steps_per_epoch, total_steps))
    loss_fn = SegmentationLoss(
        float(pos_weight), cfg.dice_weight, cfg.boundary_weight, cfg.boundary_band, cfg.lovasz_weight
    ).to(device)

    start_epoch, step, best, start_batch = 1, 0, -1.0, 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume:
        ckpt = load_checkpoint(last_path)
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, step, best = ckpt["epoch"] + 1, ckpt["step"], ckpt["best_iou"]
        start_batch = ckpt.get("batch", 0)  # batches of the next epoch already trained (`checkpoint_every`)
        inside = f", batch {start_batch} of epoch {start_epoch}" if start_batch else ""
        log(f"resumed from {last_path} after epoch {ckpt['epoch']}{inside} (step {step})")
    elif cfg.init_from:
        init_weights(model, cfg)
        log(f"starting from the weights of {cfg.init_from}")
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model

    if main:
        out.mkdir(parents=True, exist_ok=True)
        if stale := remove_stale_temporaries(out):
            log(f"removed {len(stale)} temporary files left by an interrupted run: {', '.join(p.name for p in stale)}")
        if not resume:  # a new run: nothing of an earlier one (--overwrite) may be mistaken for its own
            for name in OUTPUT_FILES:
                (out / name).unlink(missing_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
        csv_path = out / "metrics.csv"
        # a resumed run keeps the rows of the epochs its checkpoint holds (a kill may have left a later one)
        kept = []
        if csv_path.is_file() and start_epoch > 1:
            kept = [r for r in csv.DictReader(csv_path.open()) if int(r["epoch"]) < start_epoch]
        metric_rows = [[r.get(k, "") for k in fields] for r in kept]
        write_metrics(csv_path, metric_rows, fields)
    row: dict = {}
    saved = (start_epoch - 1, start_batch) if resume else None  # what last.pt holds: whole epochs, batches

    def checkpoint(epoch: int, step: int, batch: int = 0) -> dict:
        """The resume state after `epoch` whole epochs and `batch` batches of the next one."""
        return {
            "format": FORMAT,
            "model": cfg.model,
            "model_options": cfg.model_options,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "step": step,
            "batch": batch,
            "best_iou": best,
            "metrics": row,
            "config": cfg.to_dict(),
            "input_size": cfg.val_size,
        }

    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            batches.set_epoch(epoch)
            batches.skip, start_batch = start_batch, 0
            t0 = time.perf_counter()

            def on_step(taken: int, done: int, epoch=epoch, first=step, skip=batches.skip) -> None:
                nonlocal saved
                if main and cfg.checkpoint_every and (first + done) % cfg.checkpoint_every == 0:
                    atomic_save(checkpoint(epoch - 1, first + done, skip + taken), last_path)
                    saved = (epoch - 1, skip + taken)

            loss, rate, done = train_one_epoch(
                net, loader, optimizer, scheduler, loss_fn, cfg, epoch, device, rank, step, distiller, on_step
            )
            step += done
            if world > 1:
                sync_buffers(model)
            if main:
                by_kind = {}
                if val_kinds is None:
                    val_iou, val_pooled = evaluate_iou(model, val_pool, val_idx, cfg.val_size, cfg.selection)
                else:
                    by_kind, val_pooled = evaluate_kinds(model, val_pool, val_kinds, cfg.val_size)
                    val_iou = float(np.mean(list(by_kind.values())))  # the mean over kinds
                row = {
                    "epoch": epoch,
                    "step": step,
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": loss,
                    "val_iou": val_iou,
                    "val_iou_pooled": val_pooled,
                    "images_per_s": rate,
                    "epoch_s": time.perf_counter() - t0,
                    **{f"val_{k}": v for k, v in by_kind.items()},
                }
                metric_rows.append([row.get(k, "") for k in fields])
                write_metrics(csv_path, metric_rows, fields)
                for key in ("train_loss", "val_iou", "val_iou_pooled", "lr", "images_per_s"):
                    writer.add_scalar(key, row[key], epoch)
                writer.flush()
                is_best = val_iou > best
                best = max(best, val_iou)
                ckpt = checkpoint(epoch, step)
                atomic_save(ckpt, last_path)
                saved = (epoch, 0)
                if is_best:
                    atomic_save(ckpt, best_path)
                write_plot(csv_path, out / "curves.png")
                kinds = "".join(f"  {k} {v:.4f}" for k, v in by_kind.items())
                log(
                    f"epoch {epoch}/{cfg.epochs}: loss {loss:.4f}  val IoU {val_iou:.4f} (pooled {val_pooled:.4f})"
                    f"{kinds}  {rate:.1f} img/s  lr {row['lr']:.2e}{'  best' if is_best else ''}"
                )
            if world > 1:
                dist.barrier()
    except KeyboardInterrupt as stop:
        if main:
            print(interrupted_message(stop, epoch, saved, out, command), file=sys.stderr, flush=True)
        stop.reported = True
        raise
    if skipped and main:
        write_text(out / "skipped.txt", "\n".join(skipped) + "\n")
        log(f"{len(skipped)} samples were skipped, listed in {out / 'skipped.txt'}:")
        for line in skipped:
            log(f"  {line}")
    digest = weights_digest(model)
    # one write per line, so that the lines of several processes sharing a pipe do not interleave
    sys.stdout.write(f"rank {rank} weights {digest}\n")
    sys.stdout.flush()
    if main:
        write_text(out / "summary.json", json.dumps({"last": row, "best_val_iou": best, "weights": digest}, indent=2))
        writer.close()
    if world > 1:
        dist.destroy_process_group()
    return row
