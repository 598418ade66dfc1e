"""Each distinct buildspec runs as CodeBuild runs it (tests/codebuild.py) in the source artifact its
pipeline's Source action hands over, against loopback AWS, on the default render (GitHub through
a connection, CodePipeline builds, a real-time endpoint): the build (lint, tests, upsert and start
the SageMaker pipeline), the deploy-config build and the staging test.

The deploy builds must not fetch the dataset: their moto has no DVC remote bucket at all.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from . import codebuild
from .conftest import bake

pytestmark = pytest.mark.slow

# Never pulled: the deploy build only reads the package's record.
IMAGE = "sagemaker-scikit-learn:1.4-2"
BUILDSPECS = ("buildspec.yml", "buildspec-deploy.yml", "buildspec-test.yml", "buildspec-verify.yml")
ROLE = f"arn:aws:iam::{codebuild.iam.ACCOUNT}:role/model"


@pytest.fixture(scope="module")
def project(cookies_session: Any) -> Path:
    return bake(cookies_session)


def _action(project: Path, buildspec: str) -> codebuild.BuildAction:
    actions = [a for a in codebuild.build_actions(project) if a.buildspec == buildspec]
    assert actions, f"no CodeBuild action runs {buildspec}"
    return actions[0]


def _dvc_bucket(source: Path) -> str:
    config = configparser.ConfigParser()
    config.read(source / ".dvc" / "config")
    (remote,) = (s for s in config.sections() if s.startswith("'remote"))
    return config[remote]["url"].removeprefix("s3://").split("/")[0]


def _features(source: Path) -> list[str]:
    schema = json.loads(next((source / "src").glob("*/schema.json")).read_text())
    return list(schema["features"])


def _register_approved_package(
    aws: dict[str, str], environment: dict[str, str], source: Path
) -> str:
    """What the model-building pipeline leaves for a deploy: an Approved package of the project's
    group with a data-quality baseline naming every feature."""
    session = boto3.Session(region_name=codebuild.iam.REGION)
    s3 = session.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"])
    sagemaker = session.client("sagemaker", endpoint_url=aws["AWS_ENDPOINT_URL"])
    bucket, group = environment["ARTIFACT_BUCKET"], environment["SAGEMAKER_PROJECT_NAME"]
    prefix = f"{group}/executions/run-1/baseline"
    constraints = {
        "version": 0.0,
        "features": [
            {"name": name, "inferred_type": "Fractional", "completeness": 1.0}
            for name in _features(source)
        ],
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
            },
        },
    }
    s3.put_object(Bucket=bucket, Key=f"{prefix}/constraints.json", Body=json.dumps(constraints))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/statistics.json", Body=b"{}")
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": f"683313688378.dkr.ecr.us-east-1.amazonaws.com/{IMAGE}",
                        "ModelDataUrl": f"s3://{bucket}/{group}/executions/run-1/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            DriftCheckBaselines={
                "ModelDataQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{bucket}/{prefix}/statistics.json",
                    },
                    "Constraints": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{bucket}/{prefix}/constraints.json",
                    },
                }
            },
        )["ModelPackageArn"]
    )


def _deployed_stage_stack(endpoint_url: str, environment: dict[str, str]) -> None:
    """The stage stack the verify build reads: a model, its configuration and the endpoint."""
    variant = {
        "VariantName": "champion",
        "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    template = {
        "Resources": {
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {"ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": IMAGE}},
            },
            "EndpointConfig": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {"ProductionVariants": [variant]},
            },
            "Endpoint": {
                "Type": "AWS::SageMaker::Endpoint",
                "Properties": {
                    "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}
                },
            },
        }
    }
    cloudformation = boto3.client(
        "cloudformation", endpoint_url=endpoint_url, region_name=codebuild.iam.REGION
    )
    stack = f"{environment['SAGEMAKER_PROJECT_NAME']}-endpoint-{environment['STAGE']}"
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))


@pytest.mark.parametrize("buildspec", BUILDSPECS)
def test_buildspec_runs_in_the_source_its_pipeline_hands_over(
    project: Path, buildspec: str, moto_endpoint: str, tmp_path: Path
) -> None:
    action = _action(project, buildspec)
    source = codebuild.source_artifact(project, action.source_format, tmp_path / "src")
    home = tmp_path / "home"
    home.mkdir()
    aws = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret - moto's throw-away value
        "AWS_SESSION_TOKEN": "testing",
    }
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=codebuild.iam.REGION)
    s3.create_bucket(Bucket=action.environment["ARTIFACT_BUCKET"])
    if buildspec == "buildspec.yml":  # the build pulls the dataset from the DVC remote
        s3.create_bucket(Bucket=_dvc_bucket(source))
    if buildspec == "buildspec-deploy.yml":
        _register_approved_package(aws, action.environment, source)
    if buildspec == "buildspec-verify.yml":
        _deployed_stage_stack(moto_endpoint, action.environment)
    with (
        codebuild.endpoint_stand_in(len(_features(source))) as endpoint,
        codebuild.advisory_stand_in() as advisories,
    ):
        aws["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = endpoint.url
        aws |= {"PIP_AUDIT_VULNERABILITY_SERVICE": "osv", "PIP_AUDIT_OSV_URL": advisories.url}
        result = codebuild.run_build(action, source, home, aws)
    where = f"{action.template} {action.action} ({buildspec}, {action.source_format})"
    assert result.succeeded, f"{where}: {result.summary()}"
    if buildspec == "buildspec-test.yml":
        assert endpoint.invoked == [action.environment["ENDPOINT_NAME"]] * 2
    if "make audit" in (source / buildspec).read_text():
        assert "scikit-learn" in advisories.asked  # the locked packages were audited
