"""Render the seed code with the organisation's answers and zip it reproducibly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
EXCLUDED_DIRS = frozenset(
    {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
)
# A fixed timestamp: the zip's bytes then depend on the files alone (same input, same bytes).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
VERSION_FILE = ".template-version.json"


def template_version(template: Path = TEMPLATE) -> dict[str, str]:
    """The template's ``git describe`` and commit; ``unknown`` outside a git checkout."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(  # noqa: S603 - fixed git command
                ["git", *args],  # noqa: S607 - git from PATH
                cwd=template,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "version": git("describe", "--tags", "--always", "--dirty"),
        "commit": git("rev-parse", "HEAD"),
    }


def render_seed(answers: Mapping[str, Any], output_dir: Path, version: Mapping[str, str]) -> Path:
    """Render the template non-interactively; record the template version in the seed."""
    project = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=dict(answers),
            output_dir=str(output_dir),
            overwrite_if_exists=False,
        )
    )
    (project / VERSION_FILE).write_text(json.dumps(dict(version), indent=2, sort_keys=True) + "\n")
    return project


def zip_tree(root: Path) -> bytes:
    """Zip a folder with sorted entries, fixed timestamps and normalised permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
            for name in sorted(files):
                path = Path(folder, name)
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_EPOCH)
                executable = path.stat().st_mode & 0o111
                info.external_attr = (0o100755 if executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def build_seed_zip(answers: Mapping[str, Any], version: Mapping[str, str]) -> tuple[bytes, str]:
    """Render into a temporary folder and return (zip bytes, project slug)."""
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        project = render_seed(answers, Path(tmp), version)
        return zip_tree(project), project.name
