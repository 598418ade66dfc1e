"""The ``mlops-platform`` command: its subcommands reach the library's functions."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import mlops_platform
from mlops_platform import cli


def test_version_is_the_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == metadata.version("mlops-platform")
    assert mlops_platform.__version__ == metadata.version("mlops-platform")


def test_ground_truth_writes_the_labels(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("inference_id,label\norder-1,1\n")
    code = cli.main(["ground-truth", "--labels", str(labels), "--output-dir", str(tmp_path / "gt")])
    assert code == 0
    (written,) = (tmp_path / "gt").rglob("*.jsonl")
    assert json.loads(written.read_text())["eventMetadata"]["eventId"] == "order-1"


def test_a_bad_label_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n")
    command = [sys.executable, "-m", "mlops_platform.cli", "ground-truth", "--labels", str(labels)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
