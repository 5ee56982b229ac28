"""The training loop (Section IV-B): loss goes down, checkpoints resume exactly, bad data and non-finite losses are
handled, two processes under torchrun stay in sync (on one node, and as two nodes meeting over a c10d rendezvous), and
the shipped configs hold the documented recipes."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_config, write_config

from asbunet.cli import main
from asbunet.data.io import DataError
from asbunet.inference.weights import load_checkpoint, model_from_checkpoint
from asbunet.train.checkpoint import FORMAT
from asbunet.train.config import TrainConfig, load_config
from asbunet.train.engine import NonFiniteLossError, train, weights_digest
from asbunet.train.loss import SegmentationLoss, lovasz_hinge

REPO = Path(__file__).resolve().parents[1]


def metrics(output: Path) -> list[dict]:
    return list(csv.DictReader((output / "metrics.csv").open()))


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def test_short_run_lowers_the_loss_and_writes_a_loadable_checkpoint(ccp_samples, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(**tiny_config(ccp_samples, out, epochs=5, batch_size=3, shapes=[[64, 64]], lr=5e-3))
    train(cfg)
    rows = metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10]  # 6 training images, batch 3
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert last < 0.8 * first, (first, last)
    for name in ("config.yaml", "last.pt", "best.pt", "curves.png", "summary.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(out / "config.yaml") == cfg

    raw = torch.load(out / "last.pt", map_location="cpu", weights_only=True)  # no code execution needed
    assert raw["format"] == FORMAT and raw["epoch"] == 5 and raw["step"] == 10 and raw["model"] == "asbunet"
    assert raw["config"]["lr"] == 5e-3 and raw["input_size"] == 64
    model = model_from_checkpoint(load_checkpoint(out / "last.pt"))
    digest = json.loads((out / "summary.json").read_text())["weights"]
    assert weights_digest(model) == digest and f"rank 0 weights {digest}" in capsys.readouterr().out
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 64, 48)).shape == (1, 1, 64, 48)
    best = load_checkpoint(out / "best.pt")
    assert best["best_iou"] == max(float(r["val_iou"]) for r in rows)


@pytest.mark.slow
def test_kill_and_resume_matches_an_uninterrupted_run(make_dataset, tmp_path):
    data = make_dataset(n=8, size=(56, 48))
    epochs = 4
    straight = tmp_path / "straight"
    train(TrainConfig(**tiny_config(data, straight, epochs=epochs)))

    killed = tmp_path / "killed"
    config = write_config(tmp_path / "killed.yaml", tiny_config(data, killed, epochs=epochs))
    proc = subprocess.Popen(
        [sys.executable, "-m", "asbunet.cli", "train", "--config", str(config)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (killed / "last.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    interrupted_at = load_checkpoint(killed / "last.pt")["epoch"]
    assert 1 <= interrupted_at < epochs

    train(load_config(config), resume=True)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert b["epoch"] == epochs and b["step"] == a["step"]
    assert same_state(a["state_dict"], b["state_dict"])
    assert (
        json.loads((straight / "summary.json").read_text())["weights"]
        == json.loads((killed / "summary.json").read_text())["weights"]
    )
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert all(
        torch.equal(a["optimizer"]["state"][k]["exp_avg"], b["optimizer"]["state"][k]["exp_avg"])
        for k in a["optimizer"]["state"]
    )
    rows_a, rows_b = metrics(straight), metrics(killed)
    assert [r["epoch"] for r in rows_b] == [str(e) for e in range(1, epochs + 1)]  # each epoch logged once
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]


def folder_state(folder: Path) -> dict:
    """Every file under `folder` with its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(make_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    values = tiny_config(make_dataset(n=4), out, epochs=1, shapes=[[32, 32]], val_size=32)
    config = write_config(tmp_path / "run.yaml", values)
    out.mkdir()
    (out / "config.yaml").write_text("model: asbunet_025\n")  # what a run killed during its first epoch leaves
    (out / "metrics.csv").write_text("epoch,step,lr,train_loss,val_iou\n")
    assert main(["train", "--config", str(config), "--resume"]) == 0
    assert "stopped before its first checkpoint; starting it anew" in capsys.readouterr().out
    assert (out / "last.pt").is_file() and len((out / "metrics.csv").read_text().splitlines()) == 2


def test_resume_with_nothing_to_resume_refuses_and_touches_nothing(make_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    values = tiny_config(make_dataset(n=4), out, epochs=1, shapes=[[32, 32]], val_size=32)
    config = write_config(tmp_path / "run.yaml", values)
    with pytest.raises(FileNotFoundError, match="run: nothing to resume \\(no last.pt\\)"):
        train(TrainConfig(**values), resume=True)
    assert not out.exists()
    train(TrainConfig(**values))
    (out / "last.pt").unlink()  # an earlier run whose last checkpoint is gone: best.pt, metrics.csv and curves stay
    before = folder_state(out)
    assert main(["train", "--config", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "asbunet train: error:" in err and "nothing to resume (no last.pt)" in err and "Traceback" not in err
    assert folder_state(out) == before


def test_new_run_over_another_run_refuses_unless_overwrite(make_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    values = tiny_config(make_dataset(n=4), out, epochs=1, shapes=[[32, 32]], val_size=32)
    config = write_config(tmp_path / "run.yaml", values)
    train(TrainConfig(**values))
    before = folder_state(out)
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "holds another run (last.pt, best.pt, metrics.csv)" in err and "--overwrite" in err
    assert folder_state(out) == before
    with pytest.raises(ValueError, match="not both"):
        train(TrainConfig(**values), resume=True, overwrite=True)
    (out / "summary.json").write_text("{}")  # stands for a file of the earlier run the new one would not rewrite
    (out / "skipped.txt").write_text("old")
    assert main(["train", "--config", str(config), "--overwrite", "epochs=1"]) == 0
    assert [r["epoch"] for r in metrics(out)] == ["1"] and not (out / "skipped.txt").exists()
    assert json.loads((out / "summary.json").read_text())["last"]["epoch"] == 1


def test_sigterm_says_where_it_saved_and_resume_removes_stale_temporary_files(
    make_dataset, tmp_path, monkeypatch, capsys
):
    from asbunet.train import engine

    out = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", tiny_config(make_dataset(n=4), out, epochs=3, shapes=[[32, 32]]))
    real = engine.train_one_epoch

    def terminated_in_epoch_2(*args, **kwargs):
        if args[6] == 2:  # the epoch
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", terminated_in_epoch_2)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", str(config)])
    assert stop.value.code == 143 and signal.getsignal(signal.SIGTERM) == before
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"asbunet train: stopped by SIGTERM during epoch 2; epoch 1 is saved in {out / 'last.pt'}, the best so far "
            f"in {out / 'best.pt'}; continue with `asbunet train --config {config} --resume`"
        )
    )
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    monkeypatch.undo()

    dead = subprocess.Popen(["true"])  # a process that has ended, for its pid
    dead.wait()
    stale = [out / f".last.{dead.pid}-0123abcd.tmp.pt", out / f".metrics.{dead.pid}-4567cdef.tmp.csv"]
    running = out / f".best.{os.getppid()}-89abcdef.tmp.pt"  # another process's, still running: not touched
    for path in [*stale, running]:
        path.write_bytes(b"half a checkpoint")
    assert main(["train", "--config", str(config), "--resume"]) == 0
    assert "removed 2 temporary files left by an interrupted run" in capsys.readouterr().out
    assert not any(p.exists() for p in stale) and running.exists()
    assert load_checkpoint(out / "last.pt")["epoch"] == 3


def test_interrupted_message_says_what_last_pt_holds(tmp_path):
    from asbunet.train.command import Terminated
    from asbunet.train.run_folder import interrupted_message

    run = "asbunet train --config c.yaml"
    stop = Terminated("SIGTERM")
    assert interrupted_message(stop, 1, None, tmp_path, run) == (
        "asbunet train: stopped by SIGTERM during epoch 1, before a checkpoint was written: nothing was saved"
    )
    assert interrupted_message(KeyboardInterrupt(), 7, (6, 400), tmp_path, run) == (
        f"asbunet train: stopped (Ctrl+C) during epoch 7; epoch 6 and 400 batches of epoch 7 are saved in "
        f"{tmp_path / 'last.pt'}; continue with `{run} --resume`"
    )
    assert "; 40 batches of epoch 1 are saved in" in interrupted_message(stop, 1, (0, 40), tmp_path, run)


def test_resume_drops_metrics_rows_the_checkpoint_does_not_hold(make_dataset, tmp_path):
    out = tmp_path / "run"
    values = tiny_config(make_dataset(n=4), out, epochs=3, shapes=[[32, 32]], val_size=32)  # 1 step an epoch
    train(TrainConfig(**values, max_steps=2))
    with (out / "metrics.csv").open("a") as f:  # a kill after logging epoch 3, before its checkpoint
        f.write("3,3,0.001,9.9,0.5,0.5,1.0,1.0\n")
    train(TrainConfig(**values), resume=True)
    rows = metrics(out)
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "1"), ("2", "2"), ("3", "3")]
    assert rows[-1]["train_loss"] != "9.9"


def test_bad_samples_stop_training_or_are_skipped_and_listed(bad_dataset, tmp_path, capsys):
    root, bad = bad_dataset
    values = tiny_config(root, tmp_path / "run", epochs=1, shapes=[[32, 32]], val_size=32)
    with pytest.raises(DataError, match=str(bad["unreadable"])):
        train(TrainConfig(**values))
    values["data"]["skip_bad"] = True
    train(TrainConfig(**values))
    skipped = (tmp_path / "run" / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 4
    for path in bad.values():
        assert sum(str(path) in line for line in skipped) == 1, path
    out = capsys.readouterr().out
    assert "4 skipped" in out and "4 samples were skipped" in out and str(bad["size"]) in out


def test_non_finite_losses_stop_the_run(make_dataset, tmp_path, monkeypatch):
    def nan_loss(self, logits, target):
        return logits.sum() * float("nan")

    monkeypatch.setattr(SegmentationLoss, "forward", nan_loss)
    out = tmp_path / "run"
    cfg = TrainConfig(**tiny_config(make_dataset(n=8), out, shapes=[[32, 32]], val_size=32, max_nonfinite=3))
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row at epoch 1"):
        train(cfg)
    assert not (out / "last.pt").exists()


def test_boundary_weight_makes_errors_at_the_label_edges_cost_more():
    target = torch.zeros(1, 1, 32, 32)
    target[..., 8:24, 8:24] = 1
    loss = SegmentationLoss(pos_weight=1.0, boundary_weight=4.0, boundary_band=2)
    band = loss.edge_band(target)
    assert band[0, 0, 16, 16] == 0 and band[0, 0, 0, 0] == 0  # deep inside, far outside
    assert [int(band[0, 0, row, 16]) for row in range(4, 12)] == [0, 0, 1, 1, 1, 1, 0, 0]  # 2 pixels either side
    right = torch.where(target > 0, 10.0, -10.0)  # confident and right everywhere
    at_edge, far = right.clone(), right.clone()
    at_edge[..., 7, 16] = 10.0  # one false pixel just outside the person
    far[..., 0, 16] = 10.0  # one false pixel in a corner
    plain = SegmentationLoss(pos_weight=1.0)
    assert plain(at_edge, target) == pytest.approx(plain(far, target).item())
    assert loss(at_edge, target) > 4 * loss(far, target)
    assert SegmentationLoss(1.0, boundary_weight=0.0)(at_edge, target) == pytest.approx(plain(at_edge, target).item())
    with pytest.raises(ValueError, match="boundary_weight"):
        SegmentationLoss(1.0, boundary_weight=-1.0)


def test_lovasz_hinge_is_twice_one_minus_iou_at_unit_logits_and_zero_when_confidently_right():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.random((3, 1, 16, 16)) < 0.4).float()
    pred = torch.from_numpy(rng.random((3, 1, 16, 16)) < 0.5)
    pred[1] = target[1] > 0  # one image exactly right
    logits = torch.where(pred, 1.0, -1.0)
    inter, union = (pred & (target > 0)).sum((1, 2, 3)), (pred | (target > 0)).sum((1, 2, 3))
    torch.testing.assert_close(lovasz_hinge(logits, target), 2 * (1 - inter / union))
    assert lovasz_hinge(torch.where(target > 0, 5.0, -5.0), target).abs().max() == 0
    loss = SegmentationLoss(pos_weight=1.0, lovasz_weight=0.5)
    plain = SegmentationLoss(pos_weight=1.0)
    expected = plain(logits, target) + 0.5 * lovasz_hinge(logits, target).mean()
    assert loss(logits, target).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="lovasz_weight"):
        SegmentationLoss(1.0, lovasz_weight=-1.0)


def test_isolated_non_finite_losses_are_skipped(make_dataset, tmp_path, monkeypatch):
    real_forward, calls = SegmentationLoss.forward, []

    def sometimes_nan(self, logits, target):
        calls.append(1)
        loss = real_forward(self, logits, target)
        return loss * float("inf") if len(calls) in (1, 2, 5) else loss

    monkeypatch.setattr(SegmentationLoss, "forward", sometimes_nan)
    out = tmp_path / "run"
    cfg = TrainConfig(**tiny_config(make_dataset(n=8), out, shapes=[[32, 32]], val_size=32, max_nonfinite=3))
    train(cfg)
    rows = metrics(out)
    assert len(calls) == 6 and [int(r["step"]) for r in rows] == [1, 3]  # 3 batches per epoch, 3 skipped
    assert all(float(r["train_loss"]) == float(r["train_loss"]) for r in rows)  # finite means only


def test_dataset_smaller_than_a_batch(make_dataset, tmp_path):
    cfg = TrainConfig(**tiny_config(make_dataset(n=4), tmp_path / "run", batch_size=8))
    with pytest.raises(ValueError, match="3 training samples make no full batch of batch_size=8"):
        train(cfg)


@pytest.mark.slow
def test_two_processes_with_torchrun_stay_in_sync(ccp_samples, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    launcher = [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    out = tmp_path / "ddp"
    config = write_config(tmp_path / "ddp.yaml", tiny_config(ccp_samples, out, batch_size=1, max_steps=5))
    result = subprocess.run(
        [*launcher, "--standalone", "--nproc_per_node", "2", "-m", "asbunet.cli", "train", "--config", str(config)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(line for line in result.stdout.splitlines() if " weights " in line and line.startswith("rank "))
    assert [line.split()[1] for line in lines] == ["0", "1"], result.stdout[-2000:]
    digests = {line.split()[-1] for line in lines}
    assert len(digests) == 1, lines  # identical weights, BatchNorm statistics included
    # only rank 0 writes: one event file, one row per epoch, the digest it printed
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "config.yaml",
        "curves.png",
        "last.pt",
        "metrics.csv",
        "summary.json",
        "tensorboard",
    ]
    assert len(list((out / "tensorboard").iterdir())) == 1
    rows = metrics(out)
    assert [int(r["step"]) for r in rows] == [3, 5]  # 6 training images over 2 ranks, batch 1: 3 steps an epoch
    assert json.loads((out / "summary.json").read_text())["weights"] == digests.pop()
    assert weights_digest(model_from_checkpoint(load_checkpoint(out / "last.pt"))) in result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_agents_meet_over_a_c10d_rendezvous_as_two_nodes_do(ccp_samples, tmp_path):
    """The multi-node path of docs/scale.md on one machine: two agents, `--nnodes 2`, one process each, a c10d
    rendezvous at an address both reach; the ranks come from the rendezvous, and rank 0 alone writes."""
    torchrun = Path(sys.executable).parent / "torchrun"
    launcher = [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    out = tmp_path / "nodes"
    config = write_config(tmp_path / "nodes.yaml", tiny_config(ccp_samples, out, batch_size=1, max_steps=3))
    rendezvous = ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--rdzv_id", "test-nodes"]
    command = [*launcher, "--nnodes", "2", "--nproc_per_node", "1", *rendezvous, "--max_restarts", "0"]
    command += ["-m", "asbunet.cli", "train", "--config", str(config)]
    agents = [subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    agents.append(subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [agent.communicate(timeout=300) for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    for agent, (_, err) in zip(agents, results, strict=True):
        assert agent.returncode == 0, err[-3000:]
    lines = [[line for line in stdout.splitlines() if line.startswith("rank ")] for stdout, _ in results]
    assert sorted(line.split()[1] for node in lines for line in node) == ["0", "1"], lines  # one rank per agent
    assert all(len(node) == 1 for node in lines), lines
    digests = {node[0].split()[-1] for node in lines}
    assert len(digests) == 1, lines  # the same weights on both nodes
    assert json.loads((out / "summary.json").read_text())["weights"] == digests.pop()
    assert [int(r["step"]) for r in metrics(out)] == [3]  # 6 training images over 2 nodes, batch 1: 3 steps


@pytest.mark.slow
def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "asbunet.cli", "--help"], env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for command in ("train", "check-data", "preview-augment"):
        assert command in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "asbunet.cli", "train", "--config", "no/such.yaml"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "config file not found: no/such.yaml" in result.stderr


def test_paper_config_holds_section_IV_B():  # noqa: N802
    cfg = load_config(REPO / "configs" / "paper.yaml")
    assert (cfg.optimizer, cfg.momentum, cfg.lr, cfg.weight_decay) == ("sgd", 0.9, 1e-2, 1e-12)
    assert (cfg.schedule, cfg.lr_gamma, cfg.warmup_steps) == ("step", 0.1, 0)
    assert (cfg.pos_weight, cfg.dice_weight, cfg.data.val_fraction, cfg.data.val) == ("auto", 0.0, 0.2, None)
    assert cfg.data.train == ["../shared/data/pfcn_portrait/train"]
    assert cfg.lr_step_epochs == 36  # 0.3 epoch of 124,800 images = ~37,400 images = 36 epochs of 1,032
    assert round(0.3 * 124_800 / round(0.8 * 1290)) == cfg.lr_step_epochs
    augment = cfg.augment
    assert (
        augment["composite"] == 0 and min(augment[k] for k in ("crop", "flip", "noise", "gamma", "shadow", "color")) > 0
    )


def test_pfcn_fast_config_fits_an_hour():
    cfg = load_config(REPO / "configs" / "pfcn_fast.yaml")
    assert cfg.data.train == ["../shared/data/pfcn_portrait/train"]
    train_images = 1290 - round(1290 * cfg.data.val_fraction)
    pixels = sum(h * w for h, w in cfg.shapes) / len(cfg.shapes)
    rate = 25 * 224 * 224 / pixels  # img/s measured at 224x224 (docs/training.md), scaled by pixels per image
    minutes = cfg.epochs * train_images / rate / 60
    assert 25 < minutes < 60, minutes


@pytest.mark.parametrize("name", ["paper.yaml", "pfcn_fast.yaml"])
def test_shipped_configs_start(name, ccp_samples, tmp_path):
    """The recipe runs end to end (on the eight sample photos at a small size, to stay fast)."""
    cfg = load_config(
        REPO / "configs" / name,
        [
            f"data.train=[{ccp_samples}]",
            f"output={tmp_path / 'run'}",
            "batch_size=2",
            "shapes=[[48, 48]]",
            "val_size=48",
            "max_steps=2",
            "workers=0",
            "threads=1",
            "epochs=1",
        ],
    )
    train(cfg)
    assert int(metrics(tmp_path / "run")[0]["step"]) == 2
