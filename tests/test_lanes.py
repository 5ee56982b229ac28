"""The test lanes stay visible (docs/development.md): a test that needs ../shared/data is marked `data` by
tests/conftest.py, through a fixture it uses, whether or not the data is present."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_test_using_the_data_through_a_fixture_is_in_the_data_lane_and_others_are_not():
    # `dataset` is built on `ccp_samples`, which is built on `shared_data`: the mark follows the fixture chain.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=", "-p", "no:cacheprovider"]
        + ["-m", "data", "tests/test_evaluate.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    selected = {line.split("::")[-1] for line in result.stdout.splitlines() if "::" in line}
    assert "test_cli_writes_every_file_and_the_summary_matches_the_csv" in selected
    assert "test_missing_dataset_and_model_are_clear_errors" not in selected
