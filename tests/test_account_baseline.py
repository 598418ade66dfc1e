"""The account baseline (service_catalog/account-baseline.yaml): SageMaker's account-wide job log
groups, created once per account and region with a retention and a key CloudWatch Logs may use
for exactly them."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

from . import aws_calls as calls
from . import iam_model as iam
from .conftest import TEMPLATE, load_yaml
from .test_aws_calls import Policies, key_users, refused
from .test_infrastructure import checkov_report, tool

BASELINE = TEMPLATE / "service_catalog" / "account-baseline.yaml"
JOB_LOG_GROUPS = {
    f"/aws/sagemaker/{kind}" for kind in ("ProcessingJobs", "TrainingJobs", "TransformJobs")
}


def baseline(template: dict[str, Any] | None = None) -> iam.Stack:
    return iam.Stack(template or load_yaml(BASELINE), "sagemaker-account-baseline")


def key_refusals(stack: iam.Stack) -> list[str]:
    """What AWS would refuse CloudWatch Logs on the key of each log group of the stack."""
    policies = Policies([stack])
    found = []
    for logical, caller, key, requested, extra in key_users(stack):
        values = {"region": iam.REGION, "key": key} | extra
        found += [f"{logical}: {line}" for line in refused(caller, [], policies, requested, values)]
    return found


def test_the_job_log_groups_are_kept_and_encrypted_with_a_key_logs_may_use() -> None:
    stack = baseline()
    groups = {
        stack.resolve(resource["Properties"]["LogGroupName"]): stack.resolve(resource["Properties"])
        for _, resource in stack.active()
        if resource["Type"] == "AWS::Logs::LogGroup"
    }
    assert set(groups) == JOB_LOG_GROUPS
    assert {g["RetentionInDays"] for g in groups.values()} == {365}
    assert all(g["KmsKeyId"] == stack.arn("JobLogsKey") for g in groups.values())
    assert key_refusals(stack) == []


def test_the_key_admits_no_other_log_group() -> None:
    stack = baseline()
    other = f"arn:aws:logs:{iam.REGION}:{iam.ACCOUNT}:log-group:/aws/sagemaker/Endpoints/x"
    values = {"key": stack.arn("JobLogsKey"), "log_group": other}
    logs = f"logs.{iam.REGION}.amazonaws.com"
    assert len(refused(logs, [], Policies([stack]), calls.LOGS_KEY_CALLS, values)) == len(
        calls.LOGS_KEY_CALLS
    )


def test_the_check_fails_without_the_logs_statement() -> None:
    """Without its CloudWatch Logs statement the key would fail the stack (CloudWatch Logs
    refuses to associate a key it may not use): the check above sees it."""
    template = copy.deepcopy(load_yaml(BASELINE))
    statements = template["Resources"]["JobLogsKey"]["Properties"]["KeyPolicy"]["Statement"]
    statements[:] = [s for s in statements if s["Sid"] != "CloudWatchLogsEncryptsJobLogGroups"]
    assert len(key_refusals(baseline(template))) == len(JOB_LOG_GROUPS) * len(calls.LOGS_KEY_CALLS)


def test_cfn_lint_and_checkov_are_clean() -> None:
    lint = subprocess.run(
        [tool("cfn-lint"), str(BASELINE)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    report = checkov_report("-f", str(BASELINE))
    assert report["summary"]["failed"] == 0, report["results"]["failed_checks"]
    assert report["summary"]["passed"] > 0


def test_the_baseline_creates_the_groups_before_any_job(moto_endpoint: str) -> None:
    """Executed against loopback CloudFormation: the three groups exist, kept a year, once the
    stack is created (moto's CloudFormation drops a log group's KmsKeyId: the key is checked
    on the template above)."""
    import boto3

    cloudformation = boto3.client(
        "cloudformation", endpoint_url=moto_endpoint, region_name="us-east-1"
    )
    cloudformation.create_stack(
        StackName="sagemaker-account-baseline", TemplateBody=BASELINE.read_text()
    )
    (stack,) = cloudformation.describe_stacks(StackName="sagemaker-account-baseline")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name="us-east-1")
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == dict.fromkeys(
        JOB_LOG_GROUPS, 365
    )
