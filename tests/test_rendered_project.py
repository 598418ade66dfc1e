"""Install rendered projects from their lock files and run their own test suites."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import bake, user_shell_env

pytestmark = pytest.mark.slow

FULL = ("setup", "test", "lint", "hooks", "repro", "pipeline-local")
# Every supported Python runs a rendered project's whole suite from its own interpreter (uv finds
# 3.12 and 3.13 through pyenv here; without them the test fails, it never skips).
COMBINATIONS: list[tuple[dict[str, str], tuple[str, ...]]] = [
    ({}, FULL),
    (
        {
            "problem_type": "regression",
            "ci_system": "github-actions",
            "source_control": "github",
            "license": "MIT",
            "project_name": "Demand Forecast",
            "aws_region": "eu-west-1",
            "python_version": "3.12",
        },
        FULL,
    ),
    (
        {
            "source_control": "codecommit",
            "license": "Proprietary",
            "project_name": "Fraud Score",
            "python_version": "3.13",
        },
        FULL,
    ),
]


STRICT_STANDARDS = {
    "allowed_regions": ["eu-west-1"],
    "instance_types": {"serving": ["ml.m5.large"]},
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/org",
    "vpc": {"subnets": ["subnet-0a1b"], "security_groups": ["sg-0c2d"]},
    "network_isolation": True,
}


def make(project: Path, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", target],
        cwd=project,
        env=user_shell_env(),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.mark.parametrize(
    ("extra", "targets"),
    COMBINATIONS,
    ids=["default-3.11", "regression-gha-github-3.12", "codecommit-3.13"],
)
def test_rendered_project_suite_passes(
    cookies: Any, extra: dict[str, str], targets: tuple[str, ...]
) -> None:
    project = bake(cookies, **extra)
    for target in targets:
        result = make(project, target)
        assert result.returncode == 0, (
            f"make {target}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    version = (project / ".venv" / "pyvenv.cfg").read_text()
    assert f"version_info = {extra.get('python_version', '3.11')}." in version
    if "pipeline-local" in targets:
        assert (project / "models" / "lineage.json").exists()
        # The SageMaker pipeline definition executed against loopback AWS registered a model.
        report = json.loads((project / "reports" / "pipeline-local.json").read_text())
        assert report["status"] == "Succeeded" and report["model_package_arn"]
        assert_hooks_run_on_commit_from_a_plain_shell(project)


def assert_hooks_run_on_commit_from_a_plain_shell(project: Path) -> None:
    """After `pre-commit install`, `git commit` works without the environment on PATH."""
    shell = user_shell_env()
    assert str(project / ".venv" / "bin") not in shell["PATH"]
    commands = [
        [str(project / ".venv" / "bin" / "pre-commit"), "install"],
        ["git", "add", "notes.py"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-m", "a plain commit"],
    ]
    (project / "notes.py").write_text('"""Notes."""\n\nANSWER = 42\n')
    for command in commands:
        result = subprocess.run(
            command, cwd=project, env=shell, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    assert "ruff (lint)" in result.stdout + result.stderr  # the hooks ran, and passed


def test_project_rendered_under_strict_standards_applies_them(
    cookies: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own pipeline tests then assert KMS and VPC on the definition from org-standards.json."""
    standards = tmp_path / "org-standards.yaml"
    standards.write_text(json.dumps(STRICT_STANDARDS))
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(standards))
    project = bake(cookies, aws_region="eu-west-1", project_name="Strict Model")
    assert json.loads((project / "org-standards.json").read_text()) == STRICT_STANDARDS
    for target in ("setup", "test"):
        result = make(project, target)
        assert result.returncode == 0, (
            f"make {target}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
