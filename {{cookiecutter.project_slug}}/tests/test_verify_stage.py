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
ROLE = "arn:aws:iam::123456789012:role/model"


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


def _deployed_stage() -> tuple[Any, Any, str]:
    """The stage stack created; returns the clients and the endpoint's name."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(STAGE_TEMPLATE))
    resources = cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    (endpoint,) = (
        r["PhysicalResourceId"].rsplit("/", 1)[-1]
        for r in resources
        if r["ResourceType"] == "AWS::SageMaker::Endpoint"
    )
    return cloudformation, sagemaker, endpoint


def _roll_back(sagemaker: Any, endpoint: str) -> None:
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

    backend = sagemaker_backends["123456789012"]["us-east-1"]
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
