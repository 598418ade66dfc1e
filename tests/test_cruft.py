"""Rendered projects stay updatable: created with cruft, they pass `cruft check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import copy_template


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture()
def template_repo(tmp_path: Path) -> Path:
    """A git repository of the template's current files (cruft tracks templates by commit)."""
    repo = copy_template(tmp_path / "template")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "template")
    return repo


@pytest.mark.usefixtures("isolated_home")
def test_cruft_create_then_check(tmp_path: Path, template_repo: Path) -> None:
    cruft = [sys.executable, "-m", "cruft"]
    out = tmp_path / "out"
    subprocess.run(
        [*cruft, "create", str(template_repo), "--no-input", "--output-dir", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    project = out / "tumour-classifier"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == git(template_repo, "rev-parse", "HEAD").strip()
    assert (project / "src" / "tumour_classifier" / "schema.json").exists()  # hooks ran
    check = subprocess.run([*cruft, "check"], cwd=project, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    (template_repo / "NEWS.md").write_text("the template moved on\n")
    git(template_repo, "add", "-A")
    git(template_repo, "commit", "-qm", "template moves on")
    stale = subprocess.run([*cruft, "check"], cwd=project, capture_output=True, text=True)
    assert stale.returncode != 0
