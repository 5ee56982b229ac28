"""The scripts outside the package (experiments/, benchmarks/) import only modules and names that the package has, so
that moving or deleting a module fails the suite, not the next run of a study. Read from the source, nothing runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
SCRIPTS = sorted(p for folder in ("experiments", "benchmarks") for p in (REPO / folder).rglob("*.py"))


def module_file(name: str) -> Path | None:
    """The source file of package module `name` (`asbunet.x.y`), or None."""
    base = SRC.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def top_level_names(path: Path) -> set[str]:
    """Names a module binds outside its functions and classes, plus those its `__all__` lists (lazy exports)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(), str(path)).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                body.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            body.extend(node.body)
    return names


def missing_imports(path: Path) -> list[str]:
    """`module` or `module.name` for each import of the package in `path` that does not resolve."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            missing += [a.name for a in node.names if a.name.split(".")[0] == "asbunet" and not module_file(a.name)]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "asbunet":
            source = module_file(node.module)
            if source is None:
                missing.append(node.module)
                continue
            names = top_level_names(source)
            missing += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name not in names and module_file(f"{node.module}.{a.name}") is None
            ]
    return missing


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.relative_to(REPO).as_posix() for p in SCRIPTS])
def test_script_imports_exist(path):
    assert not missing_imports(path), f"{path.relative_to(REPO)} imports what the package no longer has"


def test_a_stale_import_is_caught(tmp_path):
    script = tmp_path / "old.py"
    lines = [
        "from asbunet import Segmenter, VideoSegmenter",  # one bound at import, one a lazy export in __all__
        "from asbunet.frames import effects",  # a submodule
        "import asbunet.metrics",
        "from asbunet.effects import refine_probability",  # moved to asbunet.frames.effects
        "from asbunet.metrics import no_such_name",
        "import asbunet.gone",
    ]
    script.write_text("\n".join(lines) + "\n")
    assert missing_imports(script) == ["asbunet.effects", "asbunet.metrics.no_such_name", "asbunet.gone"]
