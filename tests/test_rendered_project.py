"""Install rendered projects from their lock files and run their own test suites."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import bake

pytestmark = pytest.mark.slow

COMBINATIONS = [
    {},
    {
        "problem_type": "regression",
        "ci_system": "github-actions",
        "source_control": "github",
        "license": "MIT",
        "project_name": "Demand Forecast",
        "aws_region": "eu-west-1",
    },
]


STRICT_STANDARDS = {
    "allowed_regions": ["eu-west-1"],
    "instance_types": {"serving": ["ml.m5.large"]},
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/org",
    "vpc": {"subnets": ["subnet-0a1b"], "security_groups": ["sg-0c2d"]},
    "network_isolation": True,
}


def make(project: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    return subprocess.run(
        ["make", target],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.mark.parametrize("extra", COMBINATIONS, ids=["default", "regression-gha-github"])
def test_rendered_project_suite_passes(cookies: Any, extra: dict[str, str]) -> None:
    project = bake(cookies, **extra)
    for target in ("setup", "test", "lint", "hooks", "repro", "pipeline-local"):
        result = make(project, target)
        assert result.returncode == 0, (
            f"make {target}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    assert (project / "models" / "lineage.json").exists()
    # The SageMaker pipeline definition executed against loopback AWS registered a model.
    report = json.loads((project / "reports" / "pipeline-local.json").read_text())
    assert report["status"] == "Succeeded" and report["model_package_arn"]


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
