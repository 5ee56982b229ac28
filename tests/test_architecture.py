"""The package's layout stays as docs/architecture.md draws it: floors that only look down (`FLOORS`), no import cycle
between its modules (imports inside functions count, and so do the packages' `__init__` files), no module over 500
lines, one model loader, one threshold rule with one range check, one guided filter and no path outside the
repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "asbunet"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, name: str | None = None) -> set[str]:
    """The package's modules that `path` imports anywhere in its code, at module level or inside a function.

    `from asbunet.x import y` names the module `asbunet.x.y` where that is a module, else `asbunet.x` (whose
    `__init__` then runs); a relative import is resolved against the module's package.
    """
    found = set()
    name = module_name(path) if name is None else name
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "asbunet"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "asbunet":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as `[a, b, ..., a]`, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_through_function_level_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from asbunet.inference import weights\n    import asbunet.metrics\n")
    assert imported_modules(source, "asbunet.mod") == {"asbunet.inference.weights", "asbunet.metrics"}


def test_no_import_cycle_between_the_package_modules():
    graph = {name: imported_modules(path) for name, path in MODULES.items()}
    assert graph["asbunet.inference.segmenter"] >= {"asbunet.inference.weights", "asbunet.inference.preprocess"}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


# The floors, from the bottom up: a module imports modules of its own floor or of the floors below, never above. A
# room is a sub-package (`asbunet/frames/`) or a top-level module (`asbunet/metrics.py`); `asbunet` is the package's
# door (`asbunet/__init__.py`), loaded before any of its modules, so that importing it from below adds nothing.
FLOORS: list[set[str]] = [
    {"atomic", "metrics", "layers", "publish", "extras", "paper"},  # core: files written atomically, metrics, layers
    {"models"},  # the networks: import only torch and the layers
    {"inference"},  # load and run a model: pre- and post-processing, runtimes, the model's refinement
    {"data"},  # images, masks, data sets, augmentation
    {"frames"},  # VideoSegmenter: frames one at a time, smoothers, main person, compositing
    {"train"},  # training, calibration, bundling, the augmentation preview
    {"export"},  # ONNX, int8, TFLite, the bundled models' files
    {"evaluate", "segment", "distributed", "analysis"},  # the commands on a model: evaluate, segment (Ray), summary
    {"bench", "compare"},  # the maintainers' measurements, over the commands above
    {"cli", "asbunet"},  # the command line and the package's door
]
DOOR = "asbunet"


def room(module: str) -> str:
    """A module's room: `asbunet.frames.stream` -> `frames`, `asbunet.metrics` -> `metrics`, `asbunet` -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def floor(module: str) -> int:
    """The floor of a module's room (0 is the bottom); a KeyError names a room that `FLOORS` does not place."""
    for level, rooms in enumerate(FLOORS):
        if room(module) in rooms:
            return level
    raise KeyError(f"{module}: room {room(module)!r} has no floor; add it to FLOORS and docs/architecture.md")


def upward(importer: str, imported: str) -> bool:
    """Whether `importer` importing `imported` climbs a floor (the package's door excepted)."""
    return imported != DOOR and floor(imported) > floor(importer)


def test_the_floor_rule_catches_an_upward_import(tmp_path):
    source = tmp_path / "fake.py"  # a module of the base floor that reaches for a frame, inside a function
    source.write_text("def f():\n    from asbunet.frames import stream\n")
    assert [d for d in imported_modules(source, "asbunet.inference.fake") if upward("asbunet.inference.fake", d)] == [
        "asbunet.frames.stream"
    ]
    assert upward("asbunet.inference.segmenter", "asbunet.frames.stream")  # the base floor reaching for frames
    assert upward("asbunet.frames.stream", "asbunet.segment.options")  # frames reaching for the CLI's options
    assert upward("asbunet.data.command", "asbunet.train.preview")
    assert not upward("asbunet.segment.video", "asbunet.frames.stream")
    assert not upward("asbunet.bench.pipeline", "asbunet.segment.media")  # the room above
    assert not upward("asbunet.compare.run", "asbunet.bench.run")  # the same floor
    assert not upward("asbunet.extras", "asbunet")  # `asbunet.__version__`
    with pytest.raises(KeyError, match="no floor"):
        floor("asbunet.newroom.thing")


def test_every_room_has_a_floor_and_no_import_climbs_one():
    rooms = {room(name) for name in MODULES}
    placed = set().union(*FLOORS)
    assert rooms == placed, (
        f"rooms without a floor: {sorted(rooms - placed)}; floors without a room: {sorted(placed - rooms)}"
    )
    climbs = sorted(
        f"{name} -> {dep}" for name, path in MODULES.items() for dep in imported_modules(path) if upward(name, dep)
    )
    assert not climbs, "imports that climb a floor (docs/architecture.md):\n" + "\n".join(climbs)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_500_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines; split it by meaning (one job per module)"


def test_one_model_loader_one_threshold_rule_and_no_path_outside_the_repository():
    sources = {name: path.read_text() for name, path in MODULES.items()}
    loaders = [n for n, t in sources.items() if re.search(r"^def (load_model|load_segmenter|load_weights)\(", t, re.M)]
    assert loaders == ["asbunet.inference.weights"]
    outside = [n for n, t in sources.items() if "../shared" in t]
    assert not outside, f"paths outside the repository in {outside}"
    # masks come from `binarize` (probability >= threshold): no other code compares a value with a threshold
    compared = sorted({n for n, path in MODULES.items() for c in threshold_comparisons(path)})
    assert compared == ["asbunet.inference.postprocess"], compared


def threshold_comparisons(path: Path) -> list[str]:
    """The `>`, `>=`, `<`, `<=` comparisons of `path`'s code with a threshold (range checks `0 <= t <= 1` aside)."""
    text = path.read_text()
    found = []
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], (ast.Gt, ast.GtE, ast.Lt, ast.LtE))
        ):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if any(name in ("threshold", "cuts", "thresholds") for name in names):
                found.append(ast.get_source_segment(text, node))
    return found


def test_one_threshold_range_check():
    """A threshold's range is checked in one place (`check_threshold`, (0, 1) both ends excluded), which every entry
    point calls: no other module range-checks a threshold (`0 <= threshold < 1`) or words its own message."""
    checks = sorted({n for n, path in MODULES.items() if threshold_range_checks(path)})
    assert checks == ["asbunet.inference.postprocess"], checks
    worded = sorted(n for n, path in MODULES.items() if re.search(r"thresholds? must", path.read_text()))
    assert worded == ["asbunet.inference.postprocess"], worded


def threshold_range_checks(path: Path) -> list[str]:
    """The chained comparisons of `path`'s code that bound a threshold on both sides (`a < threshold < b`)."""
    text = path.read_text()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Compare) and len(node.ops) == 2:
            middle = node.comparators[0]
            if (middle.id if isinstance(middle, ast.Name) else getattr(middle, "attr", None)) == "threshold":
                found.append(ast.get_source_segment(text, node))
    return found


def test_one_guided_filter():
    """The probability is refined in one place, the model's own refinement (`asbunet.inference.refine`): no other
    module runs the box filters of a guided filter."""
    filters = sorted(
        n
        for n, path in MODULES.items()
        if any(
            isinstance(node, ast.Attribute) and node.attr == "boxFilter"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert filters == ["asbunet.inference.refine"], filters
