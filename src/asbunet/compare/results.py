"""The comparison's figures: one row per model (mean and spread over seeds, size, MACs, latency), ratios to ASBU-Net,
and the paper's claims checked against them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from asbunet.analysis.size import count_keras_parameters, count_macs, count_parameters, fp32_size_bytes
from asbunet.compare.config import BASELINES, MOBILENETS, REFERENCE, CompareConfig
from asbunet.compare.runs import read_result
from asbunet.metrics import IgnoreBand
from asbunet.models import create_model
from asbunet.paper import LABELS, PAPER_FIG6, PAPER_FIG7


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def finished_results(cfg: CompareConfig, model: str) -> list[dict]:
    """Every finished run of `model` in the output folder, any seed, in seed order."""
    folder = Path(cfg.output) / model
    results = []
    for run in sorted(folder.glob("seed*"), key=lambda p: (len(p.name), p.name)):
        seed = run.name.removeprefix("seed")
        if seed.isdigit():
            result = read_result(cfg, model, int(seed))
            if result is not None:
                results.append(result)
    return results


def band_iou(test: dict) -> float:
    """IoU outside the ignore band (Eq. 3 before the false-detection penalty) of a run's test scores; runs scored
    before it was recorded get it back from Eq. 3's decomposition (no floor): score + penalty x detections."""
    if "band_iou" in test:
        return test["band_iou"]
    return test["ignore_band_iou"] + IgnoreBand().penalty * test["false_detections"]


def model_row(cfg: CompareConfig, model: str, latencies: dict | None) -> dict:
    """One row of the tables: our scores over seeds, latency, size, and the paper's figures."""
    results = finished_results(cfg, model)
    acc, acc_std = mean_std([r["test"]["ignore_band_iou"] for r in results])
    iou, iou_std = mean_std([r["test"]["iou"] for r in results])
    pooled, _ = mean_std([r["test"]["iou_pooled"] for r in results])
    false, _ = mean_std([r["test"]["false_detections"] for r in results])
    band, _ = mean_std([band_iou(r["test"]) for r in results])
    net = create_model(model)
    paper_acc, paper_ms = PAPER_FIG6.get(model, (None, None))
    paper_params, paper_mb = PAPER_FIG7.get(model, (None, None))
    lat = (latencies or {}).get("models", {}).get(model, {})
    return {
        "model": model,
        "label": LABELS.get(model, model),
        "status": "done" if results else "pending",
        "seeds": len(results),
        "seed_list": [r["seed"] for r in results],
        "accuracy": acc,
        "accuracy_std": acc_std,
        "paper_accuracy": paper_acc,
        "iou": iou,
        "iou_std": iou_std,
        "iou_pooled": pooled,
        "band_iou": band,
        "false_detections": false,
        "latency_ms": lat.get("median_ms"),
        "latency_p95_ms": lat.get("p95_ms"),
        "latency_ratio": None,
        "paper_latency_ms": paper_ms,
        "paper_latency_ratio": None,
        "params": count_parameters(net),
        "keras_params": count_keras_parameters(net),
        "paper_params": paper_params,
        "size_mb": fp32_size_bytes(net) / 1e6,
        "paper_size_mb": paper_mb,
        "gmacs": count_macs(net, cfg.latency.sizes[0]) / 1e9,
    }


def add_ratios(rows: list[dict]) -> None:
    """Latency relative to ASBU-Net ReLU, ours and the paper's, where both figures exist."""
    ref = next((r for r in rows if r["model"] == REFERENCE), None)
    paper_ref = PAPER_FIG6[REFERENCE][1]
    for r in rows:
        if ref is not None and r["latency_ms"] is not None and ref["latency_ms"]:
            r["latency_ratio"] = r["latency_ms"] / ref["latency_ms"]
        if r["paper_latency_ms"] is not None:
            r["paper_latency_ratio"] = r["paper_latency_ms"] / paper_ref


def _gap(a: dict, b: dict, key: str = "accuracy") -> tuple[float, float | None]:
    """Score `key` of `a` minus `b` in points (x100), and two standard errors of that difference when both have
    several seeds."""
    gap = 100 * (a[key] - b[key])
    if a.get(f"{key}_std") is None or b.get(f"{key}_std") is None:
        return gap, None
    se = math.sqrt(a[f"{key}_std"] ** 2 / a["seeds"] + b[f"{key}_std"] ** 2 / b["seeds"])
    return gap, 200 * se


def _range(values: list[float], unit: str) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:+.2f}{unit}" if math.isclose(lo, hi) else f"{lo:+.2f} to {hi:+.2f}{unit}"


def _times(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if math.isclose(lo, hi) else f"{lo:.2f}-{hi:.2f}x"


METRIC_NAMES = {"accuracy": "Eq. 3 accuracy", "iou": "plain IoU"}
PAPER_ACCURACY = {m: a for m, (a, _) in PAPER_FIG6.items()}  # Fig. 6


def _claim_suffix(key: str) -> str:
    """How a claim's name marks the score it is judged on: nothing for Eq. 3, the score's name otherwise."""
    return "" if key == "accuracy" else f" ({METRIC_NAMES[key]})"


def _accuracy_claim(by: dict, key: str) -> dict:
    """Claim 1: ASBU-Net ReLU against each baseline, on score `key` ("accuracy" = Eq. 3, or "iou")."""
    claim = {
        "claim": f"ASBU-Net is 1.5 to 3 IoU points more accurate than the baselines{_claim_suffix(key)}",
        "test": f"ASBU-Net ReLU minus each baseline, {METRIC_NAMES[key]} in points; holds if every gap is at least "
        "1.5 points and larger than two standard errors over seeds (when there are several)",
        "paper": _range([100 * (PAPER_ACCURACY[REFERENCE] - PAPER_ACCURACY[b]) for b in BASELINES], " points"),
    }
    present = [b for b in BASELINES if b in by]
    if present and all(n in by and by[n].get(key) is not None for n in (REFERENCE, *present)):
        gaps = [_gap(by[REFERENCE], by[b], key) for b in present]
        noisy = [b for b, (g, two_se) in zip(present, gaps, strict=True) if two_se is not None and g <= two_se]
        claim["ours"] = _range([g for g, _ in gaps], " points") + f" ({len(present)} of 6 baselines)"
        if min(g for g, _ in gaps) <= 0:
            claim["verdict"] = "does not hold: a baseline is at least as accurate"
        elif noisy:
            claim["verdict"] = f"not shown: within the seed spread for {', '.join(noisy)}"
        elif min(g for g, _ in gaps) >= 1.5:
            claim["verdict"] = "holds"
        else:
            claim["verdict"] = "ahead of every baseline, by less than 1.5 points for some"
    return claim


def _swish_claim(by: dict, key: str) -> dict:
    """Claim 4: ASBU-Net Swish against ASBU-Net ReLU, on score `key`."""
    claim = {
        "claim": f"Swish adds about 0.5 IoU points over ReLU{_claim_suffix(key)}",
        "test": f"ASBU-Net Swish minus ASBU-Net ReLU, {METRIC_NAMES[key]} in points; holds if positive and larger "
        "than two standard errors over seeds (when there are several)",
        "paper": _range([100 * (PAPER_ACCURACY["asbunet_swish"] - PAPER_ACCURACY[REFERENCE])], " points"),
    }
    if all(n in by and by[n].get(key) is not None for n in (REFERENCE, "asbunet_swish")):
        gap, two_se = _gap(by["asbunet_swish"], by[REFERENCE], key)
        claim["ours"] = _range([gap], " points") + ("" if two_se is None else f" (2 s.e. {two_se:.2f})")
        claim["verdict"] = (
            "does not hold"
            if gap <= 0
            else "not shown: within the seed spread"
            if two_se is not None and gap <= two_se
            else "holds"
        )
    return claim


def claims(rows: list[dict]) -> list[dict]:
    """The paper's claims (Section IV-D) with the paper's own figures (Fig. 6), ours, and a verdict by the stated
    test; "pending" while a figure is missing. The two accuracy claims are tested on the paper's metric (Eq. 3)
    and again on plain IoU (the last two rows): Eq. 3 subtracts 1.0 per false detection, so a few stray blobs
    move it by many points."""
    by = {r["model"]: r for r in rows}
    paper_ms = {m: t for m, (_, t) in PAPER_FIG6.items()}

    def timed(*names: str) -> bool:
        return all(n in by and by[n]["latency_ms"] is not None for n in names)

    out = [_accuracy_claim(by, "accuracy")]

    # 2. speed against the MobileNetV2 baselines
    claim = {
        "claim": "ASBU-Net is 1.5-2x faster than the MobileNetV2-UNets",
        "test": "latency of each MobileNetV2-UNet / latency of ASBU-Net ReLU, same machine and run; holds if every "
        "ratio is at least 1.5",
        "paper": _times([paper_ms[m] / paper_ms[REFERENCE] for m in MOBILENETS]),
    }
    present = [m for m in MOBILENETS if m in by]
    if present and timed(REFERENCE, *present):
        ratios = [by[m]["latency_ms"] / by[REFERENCE]["latency_ms"] for m in present]
        claim["ours"] = _times(ratios) + ("" if len(present) == len(MOBILENETS) else f" ({len(present)} of 3)")
        claim["verdict"] = (
            "holds" if min(ratios) >= 1.5 else "faster, by less than claimed" if min(ratios) > 1 else "does not hold"
        )
    out.append(claim)

    # 3. speed against EfficientNet-B2
    claim = {
        "claim": "ASBU-Net is about 3x faster than EfficientNet-UNet B2",
        "test": "latency of EfficientNet-UNet B2 / latency of ASBU-Net ReLU; holds if the ratio is at least 2.5",
        "paper": _times([paper_ms["efficientnet_unet_b2"] / paper_ms[REFERENCE]]),
    }
    if timed(REFERENCE, "efficientnet_unet_b2"):
        ratio = by["efficientnet_unet_b2"]["latency_ms"] / by[REFERENCE]["latency_ms"]
        claim["ours"] = _times([ratio])
        claim["verdict"] = "holds" if ratio >= 2.5 else "faster, by less than claimed" if ratio > 1 else "does not hold"
    out.append(claim)

    out += [_swish_claim(by, "accuracy"), _accuracy_claim(by, "iou"), _swish_claim(by, "iou")]
    for c in out:
        c.setdefault("ours", "pending")
        c.setdefault("verdict", "pending")
    return out
