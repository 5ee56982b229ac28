"""The options tables of the docs agree with the command line's argparse definitions: the same flags, the same
defaults.

A table whose first header cell is `option` documents one subcommand (`DOCUMENTED`). A flag's default is checked
against the parser: an argparse default (`--refine`: on, `--smoother`: `confidence`) must appear in the table's
`default` cell; where argparse has none and the help says `default: ...`, the table must give the same numbers.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from asbunet.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = {"docs/segment.md": "segment", "docs/comparison.md": "compare"}  # file -> the subcommand of its table


def option_tables(markdown: str) -> list[list[list[str]]]:
    """The Markdown tables whose first header cell is `option`, as rows of cells (header first, separator left out)."""
    tables, rows = [], None
    for line in [*markdown.splitlines(), ""]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells and rows is None and cells[0] == "option":
            rows = [cells]
        elif cells and rows is not None:
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows is not None:
            tables.append(rows)
            rows = None
    return tables


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each optional argument's long flags, `--help` and the hidden old spellings (help suppressed) left out."""
    return {
        flag: action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS
        for flag in action.option_strings
        if flag.startswith("--")
    }


def numbers(text: str) -> set[float]:
    """The numbers of a text, thousands separators ignored (`89,478,485` = `89478485`)."""
    return {float(n.replace(",", "")) for n in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", text)}


def stated_default(action: argparse.Action) -> str:
    """The text after `default` in an option's help, up to `;` or `)`, or '' when the help states none."""
    found = re.search(r"\bdefault:?\s*([^;)]*)", action.help or "")
    return found[1] if found else ""


def rendered(value) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("path", sorted(DOCUMENTED))
def test_options_tables_match_the_parser(path):
    tables = option_tables((REPO / path).read_text())
    assert len(tables) == 1, f"{path}: expected one options table, found {len(tables)}"
    header, *rows = tables[0]
    parser = subcommand(DOCUMENTED[path])
    actions = flags_of(parser)
    documented = {flag: row for row in rows for flag in re.findall(r"--[a-z][a-z0-9-]*", row[0])}
    assert set(documented) == set(actions), (
        f"{path}: flags only in the docs: {sorted(set(documented) - set(actions))}; "
        f"only in `asbunet {DOCUMENTED[path]}`: {sorted(set(actions) - set(documented))}"
    )
    if "default" not in header:
        return
    column = header.index("default")
    for flag, row in documented.items():
        action, cell = actions[flag], row[column].replace("`", "")
        if action.default not in (None, argparse.SUPPRESS):
            value = rendered(action.default)
            assert value in cell, f"{path}: {flag} default is {value!r} in the parser, {cell!r} in the docs"
        else:
            stated = stated_default(action)
            assert numbers(cell) == numbers(stated), f"{path}: {flag} default {cell!r} in the docs, {stated!r} in help"


def test_no_options_table_is_left_unchecked():
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        relative = str(path.relative_to(REPO))
        if option_tables(path.read_text()):
            assert relative in DOCUMENTED, f"{relative}: an options table not in DOCUMENTED"


def test_a_wrong_default_is_caught():
    """The check itself: the old `--momentum 0.6` (then `--smooth`) of docs/segment.md disagrees with --help."""
    table = "| option | default | meaning |\n|---|---|---|\n| `--momentum` | 0.6 | weight |\n"
    header, row = option_tables(table)[0]
    assert header[1] == "default" and row[0] == "`--momentum`"
    assert numbers(row[1]) != numbers(stated_default(flags_of(subcommand("segment"))["--momentum"]))
