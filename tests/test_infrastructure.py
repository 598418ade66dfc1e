"""Rendered CloudFormation: cfn-lint and checkov clean, tagged, consistent with its configs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import MATRIX, REALTIME_ROWS, TEMPLATE, load_yaml, matrix_id
from .rendered_tag_propagation import tag_propagation


def tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def checkov_report(*target: str) -> dict[str, Any]:
    """checkov's JSON report on ``target`` (``-d folder`` or ``-f file``), offline."""
    result = subprocess.run(
        [
            *(tool("checkov"), *target),
            *("--framework", "cloudformation", "--output", "json"),
            "--skip-download",  # stay offline
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def templates(project: Path) -> list[Path]:
    return sorted((project / "infrastructure").glob("*.yaml"))


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_cfn_lint_has_no_findings(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    project = baked_matrix[matrix_id(extra)]
    files = templates(project)
    assert len(files) >= 3
    result = subprocess.run(
        [tool("cfn-lint"), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_resource_level_tags_only_where_stack_tags_do_not_reach(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """The tag set is given once per stack; a resource repeats it only when its type's schema (or
    a public report) says stack tags do not reach it, and then in full, with a comment saying why.
    That every resource ends up with every tag is the rendered suite's tests/test_stack_tags.py
    and, for the product, tests/test_publisher.py."""
    project = baked_matrix[matrix_id(extra)]
    for path in templates(project):
        lines = path.read_text().splitlines()
        for name, resource in load_yaml(path)["Resources"].items():
            resource_type = resource["Type"]
            tags = resource.get("Properties", {}).get("Tags")
            needs_own = tag_propagation.taggable(resource_type) and not (
                tag_propagation.stack_tags_reach(resource_type)
            )
            assert bool(tags) == needs_own, f"{path.name}:{name} ({resource_type})"
        for number, line in enumerate(lines):
            if line.strip() == "Tags:" and line.startswith("      Tags"):
                assert lines[number - 1].strip().startswith("#"), f"{path.name}:{number + 1}"


def _policy_statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement a role may have: both branches of a statement under !If."""
    statements = []
    for policy in resource["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            branches = statement["If"][1:] if set(statement) == {"If"} else [statement]
            statements += [b for b in branches if b != {"Ref": "AWS::NoValue"}]
    return statements


# The one wildcard a role may name: KMS's data-key family (GenerateDataKey and its variants),
# which services encrypting with the project key call on the role's behalf.
KMS_ACTION_FAMILIES = {"kms:GenerateDataKey*"}


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_roles_name_their_actions(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    """No role grants a whole service. Where Resource "*" is allowed: tests/test_permissions.py."""
    project = baked_matrix[matrix_id(extra)]
    for path in templates(project):
        for name, resource in load_yaml(path)["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for statement in _policy_statements(resource):
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                wildcards = {a for a in actions if "*" in a} - KMS_ACTION_FAMILIES
                assert not wildcards, f"{path.name}:{name}: {sorted(wildcards)}"


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_buckets_are_encrypted_private_versioned_and_retained(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    project = baked_matrix[matrix_id(extra)]
    buckets = {
        name: r
        for path in templates(project)
        for name, r in load_yaml(path)["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket"
    }
    assert buckets
    # Server access logs are delivered only to SSE-S3 buckets (tests/test_aws_calls.py).
    log_targets = {
        b["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
        for b in buckets.values()
        if "LoggingConfiguration" in b["Properties"]
    }
    assert log_targets
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        expected = "AES256" if name in log_targets else "aws:kms"
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == expected, name
        assert all(properties["PublicAccessBlockConfiguration"].values()), name
        assert properties["VersioningConfiguration"]["Status"] == "Enabled", name
        assert bucket["DeletionPolicy"] == "Retain", name  # teardown never fails on a full bucket


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_stage_configs_match_the_endpoint_template(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    project = baked_matrix[matrix_id(extra)]
    parameters = load_yaml(project / "infrastructure" / "endpoint.yaml")["Parameters"]
    for stage in ("staging", "prod"):
        config = json.loads((project / "infrastructure" / f"{stage}-config.json").read_text())
        assert set(config["Parameters"]) <= set(parameters), stage
        assert config["Parameters"]["StageName"] == stage
        for key, value in config["Parameters"].items():
            allowed = parameters[key].get("AllowedValues")
            assert allowed is None or value in allowed, (stage, key)


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_deploy_triggers_only_on_approval(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    project = baked_matrix[matrix_id(extra)]
    rule = load_yaml(project / "infrastructure" / "deploy-pipeline.yaml")["Resources"][
        "ModelApprovedRule"
    ]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["SageMaker Model Package State Change"]
    assert pattern["detail"]["ModelApprovalStatus"] == ["Approved"]


# The one command a build runs that is not a make target: the CI images have no uv. It names one
# exact version, the one tools/uv.sh installs as a private copy.
UV_INSTALL = re.compile(r"^python -m pip install (?:--quiet )?uv==(\d+\.\d+\.\d+)$")
UV_SH_PIN = re.compile(r"pip install [^\n]*\buv==(\d+\.\d+\.\d+)")
# A GitHub Action pinned to a full commit SHA, its release tag in a comment.
PINNED_ACTION = re.compile(r"^\s*- uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")


def ci_commands(project: Path) -> list[tuple[str, str]]:
    """(file, command) for every shell step of every buildspec and GitHub Actions workflow."""
    commands = []
    for buildspec in sorted(project.glob("buildspec*.yml")):
        for phase in load_yaml(buildspec)["phases"].values():
            commands += [(buildspec.name, command) for command in phase.get("commands", [])]
    for workflow in sorted(project.glob(".github/workflows/*.yml")):
        for job in load_yaml(workflow)["jobs"].values():
            commands += [(workflow.name, step["run"]) for step in job["steps"] if "run" in step]
    return commands


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_ci_steps_only_call_make_targets(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """CI runs what a person runs: every step is a target the project's Makefile defines."""
    project = baked_matrix[matrix_id(extra)]
    targets = set(re.findall(r"^([a-zA-Z_-]+):", (project / "Makefile").read_text(), re.MULTILINE))
    commands = ci_commands(project)
    assert commands
    uv_versions = set(UV_SH_PIN.findall((project / "tools" / "uv.sh").read_text()))
    assert len(uv_versions) == 1, uv_versions
    for name, command in commands:
        pinned = UV_INSTALL.match(command.strip())
        if pinned:
            assert {pinned.group(1)} == uv_versions, f"{name}: {command}"
            continue
        words = command.split()
        assert words[0] == "make" and len(words) == 2 and words[1] in targets, f"{name}: {command}"
    assert "make audit" in {command for _, command in commands}  # the lock's known vulnerabilities


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_workflow_actions_are_pinned_by_commit(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """A tag can be moved upstream; a commit SHA cannot. Every action a rendered workflow uses
    names a full commit SHA, with the release tag it was taken from in a comment."""
    project = baked_matrix[matrix_id(extra)]
    for workflow in sorted(project.glob(".github/workflows/*.yml")):
        for line in workflow.read_text().splitlines():
            if line.strip().startswith("- uses:"):
                assert PINNED_ACTION.match(line), f"{workflow.name}: {line.strip()}"


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_build_uses_current_codebuild_image_and_project_python(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    project = baked_matrix[matrix_id(extra)]
    python = (project / ".python-version").read_text().strip()
    for buildspec in project.glob("buildspec*.yml"):
        assert load_yaml(buildspec)["phases"]["install"]["runtime-versions"]["python"] == python
    for path in templates(project):
        for resource in load_yaml(path)["Resources"].values():
            if resource["Type"] == "AWS::CodeBuild::Project":
                image = resource["Properties"]["Environment"]["Image"]
                assert image.startswith("aws/codebuild/amazonlinux-x86_64-standard:")
                assert float(image.rsplit(":", 1)[1]) >= 5.0


@pytest.mark.parametrize("extra", REALTIME_ROWS, ids=matrix_id)
def test_prod_monitors_data_and_model_quality_and_retrains_on_either_alarm(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    project = baked_matrix[matrix_id(extra)]
    resources = load_yaml(project / "infrastructure" / "endpoint.yaml")["Resources"]
    # SageMaker Model Monitor is closed to new customers: the project's own monitor runs as a
    # scheduled pipeline instead (the rendered tests/test_monitoring_job.py resolves it).
    assert not {
        resource["Type"]
        for resource in resources.values()
        if resource["Type"].startswith("AWS::SageMaker::")
        and resource["Type"].endswith(("JobDefinition", "MonitoringSchedule"))
    }
    schedule = resources["MonitorSchedule"]["Properties"]["Target"]
    assert schedule["Arn"]["Sub"].endswith(":pipeline/${MonitorPipeline}")
    passed = {
        p["Name"]: p["Value"]
        for p in schedule["SageMakerPipelineParameters"]["PipelineParameterList"]
    }
    assert passed["GroundTruthUri"] == {"Ref": "GroundTruthUri"}
    # The endpoint's rollback alarms (every stage; the rendered tests/test_rollout.py shows
    # they fire) are not monitoring: they guard updates and start no retraining.
    deployment_config = repr(resources["Endpoint"]["Properties"]["DeploymentConfig"])
    rollback = {name for name in resources if f"'Ref': '{name}'" in deployment_config}
    assert rollback, "the endpoint rolls back on no alarm"
    alarms = {
        name
        for name, resource in resources.items()
        if resource["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
        and name not in rollback
    }
    # The drift alarm covers every feature (the rendered tests/test_drift_alarms.py shows it
    # fires); silence (no monitoring data for a day) notifies people and starts no retraining.
    assert alarms == {"DriftedFeaturesAlarm", "QualityAlarm", "DriftMonitoringSilentAlarm"}
    watched = resources["RetrainOnAlarmRule"]["Properties"]["EventPattern"]["resources"]
    assert {ref["GetAtt"].split(".")[0] for ref in watched} == alarms - {
        "DriftMonitoringSilentAlarm"
    }
    monitoring = [
        resource
        for name, resource in resources.items()
        if (name.startswith("Monitor") or resource["Type"].endswith("Alarm"))
        and name not in rollback
    ]
    assert all(resource.get("Condition") == "IsProd" for resource in monitoring)


@pytest.mark.parametrize(
    "extra", [row for row in MATRIX if row.get("inference_mode") == "serverless"], ids=matrix_id
)
def test_the_serverless_readme_says_what_is_watched_and_what_is_not(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """A serverless endpoint captures nothing, so it has no monitoring job: the user guide's
    serverless section names every alarm its stage stack does create, with the metric it watches,
    and says that the monitoring job (drift, data and model quality) and its alarms are not there;
    the project's README says so in brief and names that section."""
    project = baked_matrix[matrix_id(extra)]
    resources = load_yaml(project / "infrastructure" / "endpoint.yaml")["Resources"]
    assert "`guide/inference-modes.md#serverless`" in (project / "README.md").read_text()
    guide = (TEMPLATE / "docs" / "guide" / "inference-modes.md").read_text()
    readme = guide.split("\n## serverless\n", 1)[1].split("\n## ", 1)[0]
    types = {resource["Type"] for resource in resources.values()}
    assert not types & {"AWS::SageMaker::Pipeline", "AWS::Scheduler::Schedule"}
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert alarms
    for alarm in alarms:
        name = (
            alarm["AlarmName"]["Sub"]
            .replace("${SageMakerProjectName}", "<project>")
            .replace("${StageName}", "<stage>")
        )
        assert f"`{name}`" in readme, name
        assert f"`{alarm['MetricName']}`" in readme, alarm["MetricName"]
    (not_watched,) = [
        line for line in readme.splitlines() if line.startswith("| data capture, hence")
    ]
    for missing in ("monitoring job", "drift", "model quality", "retraining rule"):
        assert missing in not_watched, missing
