"""configs/ holds the recipes a user runs, and nothing else: each loads, each starts from something that exists or
that another recipe there writes, the shipped models' recipes are the ones their weights record, and experiments/
keeps only the weights a recipe starts from (the rest of the record is in git history, experiments/*/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from asbunet.compare.config import load_compare_config
from asbunet.inference.weights import WEIGHTS_DIR, bundled_models
from asbunet.train.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
WEIGHT_SUFFIXES = {".safetensors", ".pt", ".pth", ".onnx", ".tflite", ".ckpt"}
# The last training step of each shipped model; the earlier steps of `asbunet_person` are person.yaml and
# person_finetune.yaml, whose runs the later steps start from.
SHIPPED_RECIPES = {"asbunet_person": "person_hires.yaml", "asbunet_person_fast": "person_fast_s.yaml"}


def train_configs() -> dict[str, TrainConfig]:
    """Every training recipe of configs/, by file name; a comparison config contributes one per model."""
    found = {}
    for path in CONFIGS:
        if path.name.startswith("compare_"):
            cfg = load_compare_config(path)
            found |= {f"{path.name}:{model}": cfg.train_config(model, cfg.seeds[0]) for model in cfg.models}
        else:
            found[path.name] = load_config(path)
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_loads(path):
    if path.name.startswith("compare_"):
        cfg = load_compare_config(path)
        for model in cfg.models:
            cfg.train_config(model, cfg.seeds[0])
    else:
        load_config(path)


def test_the_papers_and_the_shipped_models_recipes_are_there():
    names = {p.name for p in CONFIGS}
    assert {"paper.yaml", "person.yaml", "person_finetune.yaml", *SHIPPED_RECIPES.values()} <= names
    assert set(SHIPPED_RECIPES) == set(bundled_models())


@pytest.mark.parametrize("model", sorted(SHIPPED_RECIPES))
def test_shipped_weights_record_the_recipe_in_configs(model):
    with safe_open(str(WEIGHTS_DIR / f"{model}.safetensors"), "np") as f:
        recorded = TrainConfig(**json.loads(f.metadata()["config"])).to_dict()
    recipe = load_config(REPO / "configs" / SHIPPED_RECIPES[model]).to_dict()
    # The teacher's weights left the tree for git history; the recipe names where their restore command puts them.
    assert Path(recorded.pop("teacher") or "").name == Path(recipe.pop("teacher") or "").name
    assert recipe == recorded


def test_every_recipe_starts_from_a_bundled_model_a_file_here_or_another_recipes_run():
    configs = train_configs()
    runs = {Path(cfg.output) / name for cfg in configs.values() for name in ("best.pt", "last.pt")}
    for name, cfg in configs.items():
        start = cfg.init_from
        if start is None or start in bundled_models():
            continue
        assert (REPO / start).is_file() or Path(start) in runs, f"{name}: init_from {start} is nowhere"


def test_experiments_keep_only_the_weights_a_recipe_starts_from():
    """A live run's resume state (`experiments/<run>/resume/`) is exempt until the run ends."""
    starts = {cfg.init_from for cfg in train_configs().values() if cfg.init_from}
    weights = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "experiments").rglob("*")
        if p.suffix in WEIGHT_SUFFIXES and "resume" not in p.relative_to(REPO).parts
    }
    assert weights <= starts, f"weights no recipe in configs/ starts from: {sorted(weights - starts)}"
