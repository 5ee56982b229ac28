"""The optional extras of `pyproject.toml` and how to install one, from a checkout or from a wheel.

asbunet is not on PyPI, so the `asbunet[camera]` form resolves nowhere; messages give the checkout's command
and the packages themselves (`install_hint`). `tests/test_cli.py` checks `EXTRAS` against `pyproject.toml`.
"""

from __future__ import annotations

# extra -> its requirements, as in pyproject.toml's [project.optional-dependencies] (the `dev` extra is left out)
EXTRAS: dict[str, tuple[str, ...]] = {
    "tflite": ("litert-torch", "ai-edge-litert"),
    "bench": ("ai-edge-litert",),
    "camera": ("pyvirtualcam>=0.11",),
}


def install_hint(extra: str) -> str:
    """`pip install -e ".[extra]" (from a checkout) or pip install <its packages>`, quoted for a shell."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; choose from: {', '.join(EXTRAS)}")
    packages = " ".join(f'"{p}"' if any(c in p for c in "<>=!~;[ ") else p for p in EXTRAS[extra])
    return f'pip install -e ".[{extra}]" (from a checkout) or pip install {packages}'
