"""The command line a user can read: `asbunet --help` lists at most 12 subcommands, the user's first; old names and
spellings still parse, hidden; the package exports what its docs name."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

import asbunet
from asbunet.cli import USER_COMMANDS, build_parser, main


def subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def listed(help_text: str) -> list[str]:
    """The subcommands that `asbunet --help` lists, in order."""
    block = help_text.split("COMMAND\n", 1)[1]
    return re.findall(r"^    ([a-z][a-z-]*)", block, flags=re.MULTILINE)


def test_help_lists_at_most_12_subcommands_the_users_first(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = listed(capsys.readouterr().out)
    assert len(shown) <= 12 and tuple(shown[:5]) == USER_COMMANDS == (
        "segment",
        "evaluate",
        "train",
        "bundle",
        "export",
    )
    hidden = {"bench-video", "bench-predict", "export-bundled"}
    assert not hidden & set(shown) and hidden <= set(subparsers(build_parser()).choices)
    assert [a.dest for a in subparsers(build_parser())._choices_actions] == shown


@pytest.mark.parametrize(
    ("old", "new", "dest"),
    [
        (["bench", "--models", "a", "b"], ["bench", "--model", "a", "b"], "models"),
        (["bench", "--sizes", "64x64"], ["bench", "--size", "64x64"], "sizes"),
        (["bench-video", "--models", "a"], ["bench", "video", "--model", "a"], "models"),
        (["bench-predict", "--models", "a"], ["bench", "predict", "--model", "a"], "models"),
        (
            ["bundle", "c.pt", "--output", "o", "--input-size", "256", "320"],
            ["bundle", "c.pt", "--output", "o", "--size", "256", "320"],
            "input_size",
        ),  # noqa: E501
        (["segment", "x.jpg", "--smooth", "0.3"], ["segment", "x.jpg", "--momentum", "0.3"], "smooth"),
        (["export-bundled", "a", "--check"], ["export", "--bundled", "a", "--check"], "check"),
    ],
)
def test_old_spellings_parse_to_the_same_dest(old, new, dest):
    parser = build_parser()
    was, now = parser.parse_args(old), parser.parse_args(new)
    assert getattr(was, dest) == getattr(now, dest) and getattr(now, dest) not in (None, False)
    assert was.func.__name__.replace("cmd_export_bundled", "cmd_export") == now.func.__name__.replace(
        "cmd_export_bundled", "cmd_export"
    )


def test_old_spellings_are_hidden(capsys):
    for command, old in [
        ("bench", "--sizes"),
        ("bench", "--models"),
        ("bundle", "--input-size"),
        ("segment", "--smooth "),
    ]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert old not in capsys.readouterr().out


def test_export_modes_are_checked():
    assert main(["export", "--bundled", "asbunet_person", "--output", "x.onnx"]) == 2
    assert main(["export", "asbunet", "--output", "x.onnx", "--check"]) == 2
    assert main(["export"]) == 2


def test_the_package_exports_its_api_without_torch():
    for name in ("bundled_models", "FrameResult", "ImageWarning", "Segmenter", "VideoSegmenter"):
        assert name in asbunet.__all__ and getattr(asbunet, name) is not None
    assert "asbunet_person" in asbunet.bundled_models() and issubclass(asbunet.ImageWarning, UserWarning)
    code = "import sys, asbunet; asbunet.bundled_models(); asbunet.ImageWarning; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
