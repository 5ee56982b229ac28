"""`asbunet compare` (Fig. 6 and 7): the smoke comparison end to end, resuming, seeds, recipe checks, the claims."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from asbunet.bench.config import LatencySettings
from asbunet.cli import main
from asbunet.compare.config import CompareConfig, load_compare_config
from asbunet.compare.latency import measure_latency
from asbunet.compare.results import band_iou, claims
from asbunet.compare.run import run_comparison
from asbunet.paper import PAPER_FIG6

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "compare_smoke.yaml"
MODELS = ("asbunet", "mobilenetv2_unet_100")  # the smoke config's models


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, ccp_samples) -> Path:
    """The smoke comparison run once through the CLI (its data paths, ../shared/data/ccp_samples, are relative to the
    repository root)."""
    out = tmp_path_factory.mktemp("compare") / "smoke"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        assert main(["compare", str(SMOKE), "--output", str(out)]) == 0
    torch.set_num_threads(threads)
    return out


def smoke_config(out: Path, **train) -> CompareConfig:
    cfg = load_compare_config(SMOKE, output=out)
    return CompareConfig(**{**cfg.__dict__, "train": {**cfg.train, **train}})


@pytest.mark.slow
def test_smoke_comparison_writes_tables_plot_and_json_with_the_papers_figures(smoke_run):
    out = smoke_run
    for name in ("results.md", "results.csv", "results.json", "accuracy_latency.png", "latency.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for model in MODELS:
        run = out / model / "seed0"
        for name in ("result.json", "best.pt", "metrics.csv", "eval/summary.json"):
            assert (run / name).is_file(), run / name
    report = json.loads((out / "results.json").read_text())
    rows = {r["model"]: r for r in report["models"]}
    assert list(rows) == list(MODELS)
    for model, row in rows.items():
        assert row["status"] == "done" and row["seeds"] == 1
        assert -1 <= row["accuracy"] <= 1 and 0 <= row["iou"] <= 1
        assert row["latency_ms"] > 0 and row["params"] > 0
        assert (row["paper_accuracy"], row["paper_latency_ms"]) == PAPER_FIG6[model]
    assert rows["asbunet"]["latency_ratio"] == 1.0
    assert report["latency"]["source"].startswith("asbunet.bench.run.run_bench")
    assert rows["mobilenetv2_unet_100"]["paper_latency_ratio"] == pytest.approx(12.98 / 7.46)
    md = (out / "results.md").read_text()
    for paper_figure in ("0.9244", "0.8976", "7.46", "12.98", "1,656,385", "1,057,013", "+0.96 to +2.68 points"):
        assert paper_figure in md, paper_figure
    ours = f"{rows['asbunet']['accuracy']:.4f}"
    assert f"| ASBU-Net ReLU | 1 | {ours} | 0.9244 |" in md  # ours beside the paper's, Fig. 6 layout
    detail = rows["asbunet"]  # Eq. 3 in parts: IoU outside the band minus 1.0 per false detection
    assert detail["accuracy"] == pytest.approx(detail["band_iou"] - detail["false_detections"])
    assert f"| ASBU-Net ReLU | {ours} | {detail['band_iou']:.4f} | {detail['false_detections']:.3f} |" in md
    table = list(csv.DictReader((out / "results.csv").open()))
    assert [r["model"] for r in table] == list(MODELS)
    assert float(table[0]["paper_accuracy"]) == 0.9244 and float(table[0]["accuracy"]) == rows["asbunet"]["accuracy"]
    verdicts = {c["claim"]: c["verdict"] for c in report["claims"]}
    assert len(verdicts) == 6  # four claims, the two accuracy claims also on plain IoU
    assert sum(v == "pending" for v in verdicts.values()) == 3  # no EfficientNet-B2, no Swish in the smoke config


def test_second_invocation_skips_finished_runs(smoke_run, monkeypatch, capsys):
    markers = {m: (smoke_run / m / "seed0" / "result.json").stat().st_mtime_ns for m in MODELS}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("asbunet.train.engine.train", no_training)
    monkeypatch.setattr("asbunet.evaluate.run.evaluate_model", no_training)
    monkeypatch.chdir(REPO)
    assert main(["compare", str(SMOKE), "--output", str(smoke_run)]) == 0
    assert "2 of 2 runs finished already; 0 to do" in capsys.readouterr().out
    assert {m: (smoke_run / m / "seed0" / "result.json").stat().st_mtime_ns for m in MODELS} == markers


def test_interrupted_run_needs_resume_and_then_continues(smoke_run, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    run = smoke_run / "mobilenetv2_unet_100" / "seed0"
    (run / "result.json").unlink()
    (run / "summary.json").unlink()  # as if killed during training: last.pt is all that is left
    assert main(["compare", str(SMOKE), "--output", str(smoke_run)]) == 2
    err = capsys.readouterr().err
    assert "mobilenetv2_unet_100 seed 0" in err and "--resume" in err
    assert not (run / "result.json").exists()
    assert main(["compare", str(SMOKE), "--output", str(smoke_run), "--resume"]) == 0
    assert "1 of 2 runs finished already; 1 to do" in capsys.readouterr().out
    assert json.loads((run / "result.json").read_text())["seed"] == 0


def test_seeds_add_runs_and_the_table_shows_the_spread(smoke_run, monkeypatch):
    monkeypatch.chdir(REPO)
    report = run_comparison(load_compare_config(SMOKE, output=smoke_run), only=["asbunet"], seeds=[0, 1])
    rows = {r["model"]: r for r in report["models"]}
    assert rows["asbunet"]["seeds"] == 2 and rows["asbunet"]["seed_list"] == [0, 1]
    assert rows["asbunet"]["accuracy_std"] is not None
    assert rows["mobilenetv2_unet_100"]["seeds"] == 1  # --only: the other model keeps its finished run
    md = (smoke_run / "results.md").read_text()
    assert f"| ASBU-Net ReLU | 2 | {rows['asbunet']['accuracy']:.4f} ± {rows['asbunet']['accuracy_std']:.4f} |" in md


def test_a_changed_recipe_is_refused_instead_of_mixed_into_the_tables(smoke_run, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match=r"another recipe \(differs in train\.epochs\)"):
        run_comparison(smoke_config(smoke_run, epochs=3))


def test_only_must_name_models_of_the_config(tmp_path):
    cfg = load_compare_config(SMOKE, output=tmp_path / "out")
    with pytest.raises(ValueError, match="config does not compare; its models: asbunet, mobilenetv2_unet_100"):
        run_comparison(cfg, only=["efficientnet_unet_b2"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": ["asbunet", "resnet_unet"]}, "unknown models"),
        ({"train": {"model": "asbunet"}}, "sets for every run"),
        ({"epochs": 3}, "training settings go under `train:`"),
        ({"latency": {"sizes": [[100, 100]]}}, "multiples of 16"),
        ({"latency": {"sizes": [[64, 64]], "threads": [1, 2]}}, "one size and one thread count"),
        ({"latency": {"repeats": 5}}, r"unknown latency keys \['repeats'\]; repeats is now runs"),
        ({"bench": {"size": [64, 64]}}, r"unknown keys \['bench'\] \(the latency settings are now `latency:`"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"checkpoint": "final"}, "checkpoint must be one of best, last"),
        ({"train": {"optimizer": "lamb"}}, "optimizer must be"),
    ],
)
def test_config_errors_say_what_to_fix(tmp_path, change, message):
    values = yaml.safe_load(SMOKE.read_text())
    if "train" in change:
        values["train"].update(change.pop("train"))
    values.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ValueError, match=message):
        load_compare_config(path)


def test_shipped_configs_load_and_compare_all_eight_models():
    for name in ("compare_cpu", "compare_gpu"):
        cfg = load_compare_config(REPO / "configs" / f"{name}.yaml")
        assert set(cfg.models) == set(PAPER_FIG6), name
        assert cfg.test.endswith("pfcn_portrait/test")
        assert cfg.train_config("asbunet", 0).data.train == ["../shared/data/pfcn_portrait/train"]


def paper_rows(**drop) -> list[dict]:
    """Rows whose 'ours' figures are the paper's own (Fig. 6), one seed each."""
    return [
        {"model": m, "accuracy": acc, "accuracy_std": None, "iou": acc, "iou_std": None, "seeds": 1, "latency_ms": ms}
        for m, (acc, ms) in PAPER_FIG6.items()
        if m not in drop
    ]


def test_claims_on_the_papers_own_figures():
    verdicts = [(c["ours"], c["verdict"]) for c in claims(paper_rows())]
    assert verdicts[0] == (
        "+0.96 to +2.68 points (6 of 6 baselines)",
        "ahead of every baseline, by less than 1.5 points for some",
    )
    assert verdicts[1] == ("1.74-2.12x", "holds")
    assert verdicts[2] == ("2.89x", "holds")
    assert verdicts[3] == ("+0.49 points", "holds")
    assert verdicts[4:] == [verdicts[0], verdicts[3]]  # the same tests on plain IoU
    assert all(c["ours"] == c["paper"] or c["paper"] in c["ours"] for c in claims(paper_rows()))


def test_accuracy_claims_are_judged_on_eq3_and_on_plain_iou_separately():
    rows = paper_rows()
    for r in rows:
        if r["model"] == "mobilenetv2_unet_100":
            r["accuracy"] = 0.95  # a stray-blob penalty difference: ahead on Eq. 3 ...
    by = {c["claim"]: c for c in claims(rows)}
    assert by["ASBU-Net is 1.5 to 3 IoU points more accurate than the baselines"]["verdict"].startswith("does not")
    iou_claim = by["ASBU-Net is 1.5 to 3 IoU points more accurate than the baselines (plain IoU)"]
    assert iou_claim["verdict"] == "ahead of every baseline, by less than 1.5 points for some"  # ... not on IoU


def test_claims_weigh_the_spread_over_seeds_and_stay_pending_without_figures():
    rows = paper_rows()
    for r in rows:
        if r["model"] in ("asbunet", "asbunet_swish"):
            r.update(accuracy_std=0.01, seeds=3)  # 2 standard errors of the Swish gap: 1.63 points > 0.49
    assert claims(rows)[3]["verdict"] == "not shown: within the seed spread"
    pending = claims(paper_rows(asbunet=True))
    assert all(c["ours"] == "pending" and c["verdict"] == "pending" for c in pending)


def test_latency_is_measured_for_every_model_in_one_run():
    settings = LatencySettings(sizes=[(32, 32)], threads=[1], warmup=1, runs=3)
    result = measure_latency(["asbunet_025", "asbunet_035"], settings)
    assert set(result["models"]) == {"asbunet_025", "asbunet_035"}
    for figures in result["models"].values():
        assert 0 < figures["median_ms"] <= figures["p95_ms"]
    assert result["settings"]["sizes"] == [[32, 32]] and result["settings"]["dtype"] == "float32"
    assert str(os.cpu_count()) in result["machine"]


def test_band_iou_is_recorded_or_recovered_from_the_eq3_decomposition():
    assert band_iou({"band_iou": 0.93, "ignore_band_iou": 0.5, "false_detections": 0.25}) == 0.93
    assert band_iou({"ignore_band_iou": 0.68, "false_detections": 0.25}) == pytest.approx(0.93)
