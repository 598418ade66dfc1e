"""Rendered projects stay updatable: created with cruft, they pass `cruft check`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def wait_until_clean(project: Path, seconds: float = 30.0) -> str:
    """`cruft create` writes .cruft.json after the hooks; a helper commits it once cruft exits."""
    deadline = time.monotonic() + seconds
    while True:
        status = git(project, "status", "--porcelain")
        if not status or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def change_template(template: Path, edits: dict[str, str], message: str) -> None:
    for relative, text in edits.items():
        path = template / "{{cookiecutter.project_slug}}" / relative
        path.write_text(text)
    git(template, "add", "-A")
    git(template, "commit", "-qm", message)


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_home")
def test_cruft_update_applies_template_changes(tmp_path: Path, template_repo: Path) -> None:
    cruft = [sys.executable, "-m", "cruft"]
    out = tmp_path / "out"
    created = run(
        tmp_path, *cruft, "create", str(template_repo), "--no-input", "--output-dir", str(out)
    )
    assert created.returncode == 0, created.stderr
    project = out / "tumour-classifier"
    assert wait_until_clean(project) == ""
    assert ".cruft.json" in git(project, "ls-files")
    assert git(project, "rev-list", "--count", "HEAD").strip() == "1"
    # A fresh project is the template: nothing to show (before: .git/index, .git/objects/...).
    diff = run(project, *cruft, "diff")
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.strip() == "", diff.stdout[:2000]

    notes = template_repo / "{{cookiecutter.project_slug}}" / "reports" / "README.md"
    change_template(
        template_repo,
        {
            "reports/README.md": notes.read_text() + "A line the template added later.\n",
            "CHANGELOG.md": "# Changes of {{ cookiecutter.project_name }}\n",
        },
        "template moves on",
    )
    updated = run(project, *cruft, "update", "-y")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "A line the template added later." in (project / "reports" / "README.md").read_text()
    assert (project / "CHANGELOG.md").read_text() == "# Changes of Tumour Classifier\n"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == git(template_repo, "rev-parse", "HEAD").strip()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "take the template's changes")

    # The same line changed on both sides: cruft reports a conflict, the local edit survives.
    (project / "CHANGELOG.md").write_text("# Our own changelog\n")
    git(project, "commit", "-qam", "local edit")
    change_template(
        template_repo, {"CHANGELOG.md": "# Release notes of {{ cookiecutter.project_name }}\n"}, "x"
    )
    conflicted = run(project, *cruft, "update", "-y")
    text = (project / "CHANGELOG.md").read_text()
    rejects = list(project.rglob("*.rej"))
    assert "with conflicts" in conflicted.stdout + conflicted.stderr
    assert "<<<<<<<" in text or rejects, conflicted.stdout + conflicted.stderr
    assert "# Our own changelog" in text
    if rejects:
        assert "Release notes" in rejects[0].read_text()
    else:
        assert "# Release notes of Tumour Classifier" in text
