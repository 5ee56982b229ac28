"""The `asbunet` command itself: `--version`, and messages naming an extra that work from a checkout and a wheel."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import asbunet
from asbunet import cli, extras
from asbunet.extras import EXTRA_OF_MODULE, EXTRAS, install_hint, missing_extra

REPO = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"asbunet {extras.version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", extras.version())


def test_version_falls_back_to_the_source_tree(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(extras.metadata, "version", missing)
    assert extras.version() == asbunet.__version__


def test_version_in_a_fresh_interpreter():
    done = subprocess.run([sys.executable, "-m", "asbunet.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("asbunet "), done.stderr


def test_extras_match_pyproject():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {k: tuple(v) for k, v in declared.items() if k != "dev"} == EXTRAS


def test_install_hint_works_from_a_checkout_and_a_wheel():
    hint = install_hint("camera")
    assert hint.startswith('pip install -e ".[camera]" (from a checkout) or pip install "asbunet-')
    assert hint.endswith('-py3-none-any.whl[camera]" (with the wheel)')
    with pytest.raises(ValueError, match="unknown extra 'gpu'; choose from: train, camera, bench, tflite, ray, openvi"):
        install_hint("gpu")


def test_a_missing_module_names_its_extra_in_one_line():
    message = missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert message.startswith("this needs the 'train' extra (torch is not installed): ") and "\n" not in message
    assert install_hint("camera") in missing_extra(ModuleNotFoundError("x", name="pyvirtualcam"))
    assert missing_extra(ModuleNotFoundError("No module named 'nothing_of_ours'", name="nothing_of_ours")) is None
    assert set(EXTRA_OF_MODULE.values()) <= set(EXTRAS)


def test_no_message_names_an_extra_that_pip_cannot_resolve():
    """asbunet is not on PyPI: `pip install 'asbunet[x]'` resolves nowhere; messages use `install_hint`."""
    for path in sorted((REPO / "src").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"pip install ['\"]?asbunet\[", text), f"{path.relative_to(REPO)}: use install_hint"


def test_tflite_export_without_litert_torch_says_how_to_install_it(monkeypatch):
    from asbunet.export.tflite import export_tflite

    monkeypatch.setitem(sys.modules, "litert_torch", None)  # import fails
    with pytest.raises(ImportError, match=re.escape(install_hint("tflite"))):
        export_tflite(None, "unused.tflite")
