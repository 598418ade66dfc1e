"""A project rendered under strict organisation standards passes its own suite, and the requests
its pipelines make are the ones AWS lets the execution role make under those standards."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import aws_calls as calls
from . import iam_model as iam
from . import iam_policy as policy
from .conftest import bake, load_yaml, user_shell_env
from .test_rendered_project import make

pytestmark = pytest.mark.slow


STRICT_STANDARDS = {
    "allowed_regions": ["eu-west-1"],
    "instance_types": {"serving": ["ml.m5.large"]},
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/org",
    "vpc": {"subnets": ["subnet-0a1b"], "security_groups": ["sg-0c2d"]},
    "network_isolation": True,
}
UV = os.environ.get("UV") or "uv"  # `uv run` names its own binary in UV
# The build pipeline's and prod's monitoring pipeline's definitions, as the build and deploy
# builds make them, and the parameters `make stack STACK=foundation` gives the foundation.
COLLECT = """
import json
from pipelines import monitoring, run, stacks
from pipelines.settings import load_settings

settings = load_settings()
print(json.dumps({
    "pipeline": json.loads(run.definition(settings)),
    "monitoring": monitoring.definition(settings),
    "foundation": stacks.standards_parameters(settings, "foundation"),
}))
"""
BUILD_ENV = {
    "SAGEMAKER_PROJECT_NAME": "tumour",
    "SAGEMAKER_PROJECT_ID": "p-abc123",
    "ARTIFACT_BUCKET": "tumour-artifacts",
    "SAGEMAKER_PIPELINE_ROLE_ARN": f"arn:aws:iam::{iam.ACCOUNT}:role/tumour-sagemaker-execution",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
}
CREATE = {"Processing": "sagemaker:CreateProcessingJob", "Training": "sagemaker:CreateTrainingJob"}


def job_requests(definitions: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(step, Create action, request) of every job step of the definitions."""
    return [
        (step["Name"], CREATE[step["Type"]], step["Arguments"])
        for definition in definitions
        for step in definition["Steps"]
        if step["Type"] in CREATE
    ]


def decisions(
    role: list[dict[str, Any]], caller: str, requests: list[tuple[str, str, dict[str, Any]]]
) -> dict[str, str]:
    decided = {}
    for name, action, request in requests:
        kind = "training-job" if action.endswith("TrainingJob") else "processing-job"
        arn = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:{kind}/pipelines-x-{name}"
        context = calls.request_condition_keys(action, request)
        decided[name] = policy.decide(policy.Request(caller, action, arn, context), role).name
    return decided


def test_project_rendered_under_strict_standards_applies_them(
    cookies: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own pipeline tests then assert KMS and VPC on the definition from org-standards.json.
    Then the job requests of its build and monitoring pipelines, as their definitions carry
    them, are decided against the foundation's execution role with the parameters ``make stack``
    gives it: every one is allowed, and the same request without isolation, with another key
    or outside the network is denied by IAM."""
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
    made, broken = decisions_of_the_projects_requests(project)
    assert set(made.values()) == {"ALLOW"}, made
    assert set(broken.values()) == {"EXPLICIT_DENY"}, broken


def decisions_of_the_projects_requests(project: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The execution role's decisions on the job requests the project's build and monitoring
    pipelines make (their definitions, built in the render's own environment), and on the same
    requests each breaking one standard, with the parameters ``make stack`` gives the foundation."""
    collected = subprocess.run(
        [UV, "run", "--locked", "python", "-c", COLLECT],
        cwd=project,
        env=user_shell_env(**BUILD_ENV),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert collected.returncode == 0, collected.stderr[-3000:]
    collected_json = json.loads(collected.stdout.strip().splitlines()[-1])
    foundation = iam.Stack(
        load_yaml(project / "infrastructure" / "foundation.yaml"),
        "tumour-foundation",
        collected_json["foundation"],
    )
    role = iam.role_documents(foundation, "SageMakerExecutionRole")
    caller = foundation.arn("SageMakerExecutionRole")
    requests = job_requests([collected_json["pipeline"], collected_json["monitoring"]])
    assert {action for _, action, _ in requests} == set(CREATE.values())

    # the same requests, each breaking one standard
    other_key = f"{STRICT_STANDARDS['kms_key_arn']}-other"
    broken: list[tuple[str, str, dict[str, Any]]] = []
    for name, action, request in requests:
        if action == "sagemaker:CreateTrainingJob":
            not_isolated = copy.deepcopy(request) | {"EnableNetworkIsolation": False}
            another_key = copy.deepcopy(request)
            another_key["ResourceConfig"]["VolumeKmsKeyId"] = other_key
            broken += [
                (f"{name} not isolated", action, not_isolated),
                (f"{name} another volume key", action, another_key),
            ]
        else:
            another_key = copy.deepcopy(request)
            another_key["ProcessingOutputConfig"]["KmsKeyId"] = other_key
            outside = copy.deepcopy(request)
            del outside["NetworkConfig"]["VpcConfig"]
            broken += [
                (f"{name} another output key", action, another_key),
                (f"{name} no VPC", action, outside),
            ]
    return decisions(role, caller, requests), decisions(role, caller, broken)
