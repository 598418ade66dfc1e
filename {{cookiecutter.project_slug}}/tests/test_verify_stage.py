"""After a stage deploy the pipeline checks that the live endpoint serves what the stage stack
created (``pipelines/deployed.py --verify``): a blue/green update SageMaker rolled back returns
the endpoint to InService on its previous configuration, which the CloudFormation action alone
records as a success. Executed against moto's CloudFormation and SageMaker."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines import deployed

pytestmark = pytest.mark.usefixtures("fake_aws")

PROJECT = "churn"
STACK = deployed.stage_stack(PROJECT, "staging")
BUILD_ACCOUNT = "123456789012"  # moto's default account: the credentials' own
ROLE = f"arn:aws:iam::{BUILD_ACCOUNT}:role/model"
STAGE_ACCOUNT = "222222222222"  # the stage's own account, not the build account (moto's default)


def _variant(model: Any) -> dict[str, Any]:
    return {
        "VariantName": "champion",
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": 1,
    }


# What of infrastructure/endpoint.yaml the check reads: a model, its configuration, the endpoint.
STAGE_TEMPLATE = {
    "Resources": {
        "Model": {
            "Type": "AWS::SageMaker::Model",
            "Properties": {"ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": "image"}},
        },
        "EndpointConfig": {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Properties": {
                "ProductionVariants": [_variant({"Fn::GetAtt": ["Model", "ModelName"]})]
            },
        },
        "Endpoint": {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {
                "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}
            },
        },
    }
}


def _deployed_stage(session: Any = boto3) -> tuple[Any, Any, str]:
    """The stage stack created (with ``session``: in its account); returns the clients and the
    endpoint's name."""
    cloudformation = session.client("cloudformation", region_name="us-east-1")
    sagemaker = session.client("sagemaker", region_name="us-east-1")
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(STAGE_TEMPLATE))
    resources = cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    (endpoint,) = (
        r["PhysicalResourceId"].rsplit("/", 1)[-1]
        for r in resources
        if r["ResourceType"] == "AWS::SageMaker::Endpoint"
    )
    return cloudformation, sagemaker, endpoint


def _roll_back(sagemaker: Any, endpoint: str, account: str = BUILD_ACCOUNT) -> None:
    """What SageMaker's blue/green guardrails leave after an alarm: the endpoint InService on the
    previous configuration (its models still exist)."""
    live = sagemaker.describe_endpoint(EndpointName=endpoint)
    model = sagemaker.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])[
        "ProductionVariants"
    ][0]["ModelName"]
    sagemaker.create_model(
        ModelName="churn-previous", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "previous"}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="churn-previous-config",
        ProductionVariants=[_variant("churn-previous")],
    )
    assert model != "churn-previous"
    # moto has no UpdateEndpoint: its endpoint record is pointed at the previous configuration,
    # which is the state DescribeEndpoint reports after SageMaker's rollback.
    from moto.sagemaker.models import sagemaker_backends

    backend = sagemaker_backends[account]["us-east-1"]
    backend.endpoints[endpoint].endpoint_config_name = "churn-previous-config"


def test_a_stage_serving_its_stack_passes() -> None:
    with mock_aws():
        cloudformation, sagemaker, _ = _deployed_stage()
        assert deployed.verify_stage(cloudformation, sagemaker, STACK) is None


def test_a_rolled_back_update_fails_the_stage_in_one_line() -> None:
    with mock_aws():
        cloudformation, sagemaker, endpoint = _deployed_stage()
        _roll_back(sagemaker, endpoint)
        failure = deployed.verify_stage(cloudformation, sagemaker, STACK)
    assert failure is not None and "\n" not in failure
    assert "serves configuration churn-previous-config, not the stack's" in failure
    assert "rolled back" in failure


def test_a_stage_whose_stack_is_missing_fails_in_one_line() -> None:
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        failure = deployed.verify_stage(cloudformation, sagemaker, STACK)
    assert failure is not None and failure.startswith(f"cannot read the stack {STACK}: ")


def test_the_cli_fails_the_build_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the deploy pipeline's verify action runs (``make verify-stage STAGE=staging``)."""
    monkeypatch.setenv("SAGEMAKER_PROJECT_NAME", PROJECT)
    with mock_aws():
        _, sagemaker, endpoint = _deployed_stage()
        assert deployed.main(["--verify", "staging"]) == 0
        _roll_back(sagemaker, endpoint)
        assert deployed.main(["--verify", "staging"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: endpoint ") and "rolled back" in line


def test_a_stage_in_its_own_account_is_verified_there_as_its_verify_role(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With stages in accounts of their own the verify build runs in the build account and reads
    the stage's account as the role the deploy pipeline names (``VERIFY_ROLE_ARN``). moto keeps
    each account's resources apart and serves an assumed role's requests in the role's account."""
    monkeypatch.setenv("SAGEMAKER_PROJECT_NAME", PROJECT)
    stage_role = f"arn:aws:iam::{STAGE_ACCOUNT}:role/{PROJECT}-verify-stage"
    with mock_aws():
        in_stage_account = deployed.session_as(stage_role, "deploy", "us-east-1")
        _, sagemaker, endpoint = _deployed_stage(in_stage_account)
        # As itself the build reads its own account, where no stage stack is.
        assert deployed.main(["--verify", "staging"]) == 1
        monkeypatch.setenv("VERIFY_ROLE_ARN", stage_role)
        assert deployed.main(["--verify", "staging"]) == 0
        _roll_back(sagemaker, endpoint, STAGE_ACCOUNT)
        assert deployed.main(["--verify", "staging"]) == 1
    missing, rolled_back = capsys.readouterr().err.splitlines()
    assert missing.startswith(f"error: cannot read the stack {STACK}")
    assert rolled_back.startswith("error: endpoint ") and "rolled back" in rolled_back
