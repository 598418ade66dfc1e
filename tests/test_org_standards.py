"""Organisation standards: schema-checked, enforced at render time, applied by the project."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import org_standards
import pytest
import yaml
from org_standards import StandardsError
from template_rules import AnswerError

from .conftest import run_cookiecutter
from .test_rules import DEFAULTS

STRICT: dict[str, Any] = {
    "allowed_regions": ["eu-west-1", "eu-central-1"],
    "allowed_licenses": ["Proprietary"],
    "instance_types": {
        "processing": ["ml.m5.xlarge"],
        "training": ["ml.c5.2xlarge"],
        "serving": ["ml.m5.large"],
    },
    "required_tags": {
        "cost-centre": "^cc-[0-9]{4}$",
        "data-classification": "^(internal|restricted)$",
    },
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/org",
    "vpc": {"subnets": ["subnet-0a1b"], "security_groups": ["sg-0c2d"]},
    "network_isolation": True,
    "minimum_quality_gate": {"accuracy": 0.85, "rmse": 80},
    "accounts": {"staging": "111111111111", "prod": "222222222222"},
    "stage_vpc": {
        "staging": {"subnets": ["subnet-1a1b"], "security_groups": ["sg-1c2d"]},
        "prod": {"subnets": ["subnet-2a1b", "subnet-2a2b"], "security_groups": ["sg-2c2d"]},
    },
    "mlflow_tracking_server_arn": (
        "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/org-shared"
    ),
}
COMPLIANT = {
    "aws_region": "eu-west-1",
    "license": "Proprietary",
    "cost_centre": "cc-1234",
    "extra_tags": {"data-classification": "internal"},
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "org-standards.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_strict_file_loads(tmp_path: Path) -> None:
    assert org_standards.load(write(tmp_path, STRICT)) == STRICT
    assert org_standards.load(None) == {}


@pytest.mark.parametrize(
    ("broken", "where"),
    [
        ({"allowed_regions": "eu-west-1"}, "allowed_regions"),
        ({"kms_key_arn": "not-an-arn"}, "kms_key_arn"),
        ({"vpc": {"subnets": ["subnet-0a"]}}, "vpc"),
        ({"instance_types": {"training": ["p3.2xlarge"]}}, "instance_types/training/0"),
        ({"unknown_rule": 1}, "(top level)"),
        (
            {"mlflow_tracking_server_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model/x"},
            "mlflow_tracking_server_arn",
        ),
        ({"accounts": {"staging": "111111111111"}}, "accounts: 'prod' is a required property"),
        (
            {"accounts": {"staging": "1111", "prod": "222222222222"}},
            "accounts/staging: '1111' is not an AWS account id: write it as a quoted string of 12",
        ),
        (
            # YAML reads an unquoted id as a number (and one with a leading 0 as octal)
            {"accounts": {"staging": 111111111111, "prod": "222222222222"}},
            "accounts/staging: 111111111111 is not an AWS account id",
        ),
        (
            {"accounts": {"staging": "111111111111", "prod": "222222222222", "dev": "3" * 12}},
            "accounts: Additional properties are not allowed",
        ),
        (
            {"accounts": {"staging": "111111111111", "prod": "111111111111"}},
            "accounts: staging and prod are both 111111111111; separate accounts must be distinct",
        ),
        # The vpc standard with stages in accounts of their own: each account's own network.
        (
            {key: STRICT[key] for key in ("vpc", "accounts")},
            "stage_vpc: missing; with both 'vpc' and 'accounts' set, the staging and prod "
            "accounts run in networks of their own",
        ),
        (
            {key: STRICT[key] for key in ("vpc", "accounts")}
            | {"stage_vpc": {"staging": STRICT["stage_vpc"]["staging"]}},
            "stage_vpc: 'prod' is a required property: with both 'vpc' and 'accounts' set",
        ),
        (
            {key: STRICT[key] for key in ("vpc", "accounts")}
            | {"stage_vpc": STRICT["stage_vpc"] | {"prod": {"subnets": ["subnet-2a"]}}},
            "stage_vpc/prod: 'security_groups' is a required property",
        ),
        (
            {key: STRICT[key] for key in ("vpc", "stage_vpc")},
            "stage_vpc: given without both 'vpc' and 'accounts', so it would apply to nothing",
        ),
        (
            {key: STRICT[key] for key in ("accounts", "stage_vpc")},
            "stage_vpc: given without both 'vpc' and 'accounts'",
        ),
        (
            {key: STRICT[key] for key in ("vpc", "accounts")}
            | {"stage_vpc": STRICT["stage_vpc"] | {"prod": STRICT["vpc"]}},
            "stage_vpc.prod.subnets: subnet-0a1b is also in vpc; each account has subnets",
        ),
        (
            {key: STRICT[key] for key in ("vpc", "accounts")}
            | {"stage_vpc": STRICT["stage_vpc"] | {"prod": STRICT["stage_vpc"]["staging"]}},
            "stage_vpc.prod.subnets: subnet-1a1b is also in stage_vpc.staging",
        ),
        (
            {key: STRICT[key] for key in ("vpc", "accounts")}
            | {
                "stage_vpc": STRICT["stage_vpc"]
                | {"prod": {"subnets": ["subnet-2a1b"], "security_groups": ["sg-1c2d"]}}
            },
            "stage_vpc.prod.security_groups: sg-1c2d is also in stage_vpc.staging",
        ),
        (
            {"notifications": {"emails": ["oncall"]}},
            "notifications/emails/0: 'oncall' does not match",
        ),
        ({"notifications": {}}, "notifications: {} should be non-empty"),
        (
            {"notifications": {"chatbot_slack": {"workspace_id": "T0123ABCD"}}},
            "notifications/chatbot_slack: 'channel_id' is a required property",
        ),
        (
            {"notifications": {"chatbot_slack": {"workspace_id": "t01", "channel_id": "C1"}}},
            "notifications/chatbot_slack/workspace_id: 't01' does not match",
        ),
        ({"notifications": {"sms": ["+15550100"]}}, "notifications: Additional properties"),
        ({"budget": {"monthly_usd": 0}}, "budget/monthly_usd: 0 is less than or equal to"),
        ({"budget": {}}, "budget: 'monthly_usd' is a required property"),
    ],
)
def test_schema_errors_name_the_place(tmp_path: Path, broken: dict[str, Any], where: str) -> None:
    with pytest.raises(StandardsError, match=re.escape(where)) as caught:
        org_standards.load(write(tmp_path, broken))
    assert "\n" not in str(caught.value)


def test_unreadable_yaml(tmp_path: Path) -> None:
    path = tmp_path / "org-standards.yaml"
    path.write_text("allowed_regions: [unclosed\n")
    with pytest.raises(StandardsError, match="not valid YAML"):
        org_standards.load(path)


def test_environment_variable_wins_and_must_exist(tmp_path: Path) -> None:
    beside = write(tmp_path, STRICT)
    assert org_standards.locate(tmp_path, {}) == beside
    other = tmp_path / "other.yaml"
    other.write_text("{}")
    assert org_standards.locate(tmp_path, {"MLOPS_ORG_STANDARDS": str(other)}) == other
    with pytest.raises(StandardsError, match="does not exist"):
        org_standards.locate(tmp_path, {"MLOPS_ORG_STANDARDS": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"aws_region": "us-east-1"}, "aws_region", "allow only eu-west-1"),
        ({"license": "MIT"}, "license", "allow only Proprietary"),
        ({"cost_centre": "cc-12"}, "tag 'cost-centre'", "match"),
        ({"extra_tags": {}}, "extra_tags", "require the tag 'data-classification'"),
        ({"extra_tags": {"data-classification": "public"}}, "tag 'data-classification'", "match"),
    ],
)
def test_answers_breaking_the_standards(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(AnswerError, match=words) as caught:
        org_standards.check(STRICT, DEFAULTS | COMPLIANT | change)
    assert str(caught.value).startswith(f"invalid answer for '{field}'")


@pytest.mark.parametrize(
    ("standards", "required"),
    [
        ({"network_isolation": True}, "network_isolation"),
        ({"vpc": {"subnets": ["subnet-0a"], "security_groups": ["sg-0b"]}}, "vpc"),
    ],
)
def test_serverless_is_refused_where_the_standards_require_what_it_cannot_do(
    standards: dict[str, Any], required: str
) -> None:
    """SageMaker serverless endpoints support neither a VPC nor network isolation."""
    with pytest.raises(AnswerError) as caught:
        org_standards.check(standards, DEFAULTS | {"inference_mode": "serverless"})
    message = str(caught.value)
    assert message.startswith("invalid answer for 'inference_mode' = 'serverless'")
    assert f"require {required}" in message
    for mode in ("realtime", "batch"):
        org_standards.check(standards, DEFAULTS | {"inference_mode": mode})


def test_compliant_answers_pass_and_weak_gates_fail() -> None:
    org_standards.check(STRICT, DEFAULTS | COMPLIANT)
    with pytest.raises(AnswerError, match="weaker than the organisation minimum"):
        org_standards.check({"minimum_quality_gate": {"accuracy": 0.95}}, DEFAULTS)
    with pytest.raises(AnswerError, match="weaker"):
        org_standards.check(
            {"minimum_quality_gate": {"rmse": 50}}, DEFAULTS | {"problem_type": "regression"}
        )


@pytest.mark.usefixtures("isolated_home")
def test_render_refuses_what_the_standards_forbid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(write(tmp_path, STRICT)))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cookiecutter(out)  # the defaults: us-east-1, Apache-2.0
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: invalid answer for 'aws_region' = 'us-east-1': organisation "
        "standards allow only eu-west-1, eu-central-1"
    ]
    assert list(out.iterdir()) == []


@pytest.mark.usefixtures("isolated_home")
def test_a_broken_notifications_standard_stops_the_render_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The templates read the standards while cookiecutter renders (the subscribers): a file the
    schema refuses is still refused by the hook, before anything is written."""
    broken = {"notifications": {"emails": ["ml-oncall@example.com", "oncall"]}}
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(write(tmp_path, broken)))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cookiecutter(out)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "notifications/emails/1: 'oncall' does not match" in errors[0]
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


@pytest.mark.usefixtures("isolated_home")
def test_render_carries_the_standards_into_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(write(tmp_path, STRICT)))
    out = tmp_path / "out"
    result = run_cookiecutter(
        out,
        "aws_region=eu-west-1",
        "license=Proprietary",
        "cost_centre=cc-1234",
        "project_name=Strict Model",
    )
    # extra_tags is a mapping; on the command line it comes from a config file instead
    assert result.returncode != 0 and "data-classification" in result.stderr
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"default_context": COMPLIANT | {"project_name": "Strict Model"}})
    )
    result = run_cookiecutter(out, "--config-file", str(config))
    assert result.returncode == 0, result.stderr
    project = out / "strict-model"
    assert json.loads((project / "org-standards.json").read_text()) == STRICT
    # Every stack's stack-level tags (tests/test_stack_tags.py of the render: they reach
    # every taggable resource).
    tags = json.loads((project / "infrastructure" / "tags.json").read_text())
    assert tags["data-classification"] == "internal"
    assert tags["cost-centre"] == "cc-1234"
    # The hook checks required_tags against the very set the stacks get.
    # (cookiecutter merges the config file's extra_tags into cookiecutter.json's default mapping)
    merged_tags = {"team": "data-science"} | COMPLIANT["extra_tags"]
    answers = DEFAULTS | COMPLIANT | {"project_slug": "strict-model", "extra_tags": merged_tags}
    assert org_standards.project_tags(answers) == tags


def test_a_required_project_tag_is_met_by_the_tag_every_stack_gets() -> None:
    standards = {"required_tags": {"project": "^[a-z][a-z0-9-]*$"}}
    org_standards.check(standards, DEFAULTS | {"cost_centre": "cc-1", "extra_tags": {}})


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize(
    ("standards", "error"),
    [
        (
            {"accounts": {"staging": "111111111111", "prod": "111111111111"}},
            "accounts: staging and prod are both 111111111111; separate accounts must be distinct "
            "(leave 'accounts' out to deploy both in the build account)",
        ),
        # vpc and accounts without stage_vpc: the stages' endpoints would run outside any VPC.
        (
            {key: STRICT[key] for key in ("vpc", "accounts")},
            "stage_vpc: missing; with both 'vpc' and 'accounts' set, the staging and prod accounts "
            "run in networks of their own (subnets belong to one account): name each one's "
            "subnets and security_groups under stage_vpc.staging and stage_vpc.prod",
        ),
    ],
    ids=["accounts-not-separate", "vpc-without-stage-networks"],
)
def test_render_refuses_standards_it_cannot_apply_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, standards: dict[str, Any], error: str
) -> None:
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(write(tmp_path, standards)))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cookiecutter(out)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].endswith(error)
    assert list(out.iterdir()) == []
