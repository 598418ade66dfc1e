"""A project rendered under strict organisation standards passes its own suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import bake
from .test_rendered_project import make

pytestmark = pytest.mark.slow


STRICT_STANDARDS = {
    "allowed_regions": ["eu-west-1"],
    "instance_types": {"serving": ["ml.m5.large"]},
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/org",
    "vpc": {"subnets": ["subnet-0a1b"], "security_groups": ["sg-0c2d"]},
    "network_isolation": True,
}


def test_project_rendered_under_strict_standards_applies_them(
    cookies: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own pipeline tests then assert KMS and VPC on the definition from org-standards.json."""
    standards = tmp_path / "org-standards.yaml"
    standards.write_text(json.dumps(STRICT_STANDARDS))
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(standards))
    project = bake(cookies, aws_region="eu-west-1", project_name="Strict Model")
    assert json.loads((project / "org-standards.json").read_text()) == STRICT_STANDARDS
    for target in ("setup", "test-fast"):
        result = make(project, target)
        assert result.returncode == 0, (
            f"make {target}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
