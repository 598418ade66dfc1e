"""Deploy configuration (moto registry) and the staging endpoint test (Stubber)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from pipelines import deploy_config, endpoint_test
from pipelines.settings import Standards, load_settings

pytestmark = pytest.mark.usefixtures("fake_aws")
ENV = {
    "SAGEMAKER_PROJECT_NAME": "churn",
    "SAGEMAKER_PROJECT_ID": "p-1",
    "ARTIFACT_BUCKET": "artifacts",
    "AWS_REGION": "us-east-1",
    "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/pipeline",
}
KMS = "arn:aws:kms:us-east-1:123456789012:key/project"


def register(sagemaker: object, status: str) -> str:
    response = sagemaker.create_model_package(  # type: ignore[attr-defined]
        ModelPackageGroupName="churn",
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "img"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    return str(response["ModelPackageArn"])


def test_newest_approved_package_is_deployed(tmp_path: Path) -> None:
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model_package_group(ModelPackageGroupName="churn")
        approved = register(sagemaker, "Approved")
        register(sagemaker, "Rejected")
        register(sagemaker, "PendingManualApproval")
        settings = load_settings(ENV, standards=Standards())
        chosen = deploy_config.write_configs(tmp_path, settings, sagemaker, KMS, "monitor-image")
    assert chosen == approved
    assert (tmp_path / "endpoint.yaml").exists()
    template_parameters = deploy_config.template_parameters()
    for stage in deploy_config.STAGES:
        config = json.loads((tmp_path / f"{stage}-config.json").read_text())
        assert config["Parameters"]["ModelPackageArn"] == approved
        assert config["Parameters"]["StageName"] == stage
        assert config["Parameters"]["KmsKeyArn"] == KMS
        assert set(config["Parameters"]) <= template_parameters
        assert config["Tags"]["stage"] == stage
        assert (
            config["Parameters"]["GroundTruthUri"] == f"s3://artifacts/churn/ground-truth/{stage}"
        )


@pytest.mark.parametrize(
    ("metric", "threshold", "comparison"),
    [
        ("accuracy", 0.9, "LessThanThreshold"),
        ("r2", 0.5, "LessThanThreshold"),
        ("rmse", 70.0, "GreaterThanThreshold"),
        ("mae", 3.0, "GreaterThanThreshold"),
    ],
)
def test_quality_alarm_fires_on_the_wrong_side_of_the_training_gate(
    tmp_path: Path, metric: str, threshold: float, comparison: str
) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    shutil.copy(next(deploy_config.PROJECT.glob("src/*/schema.json")), tmp_path / "src" / "pkg")
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"gate": {"metric": metric, "threshold": threshold}, "train": {}})
    )
    quality = deploy_config.model_quality_parameters(params)
    assert quality["QualityMetric"] == metric
    assert float(quality["QualityThreshold"]) == threshold
    assert quality["QualityAlarmComparison"] == comparison
    schema = json.loads((next((tmp_path / "src" / "pkg").glob("*.json"))).read_text())
    expected = {"regression": "Regression", "classification": "BinaryClassification"}
    assert quality["ModelQualityProblemType"] == expected[schema["problem_type"]]


def test_no_approved_package_is_a_clear_error(tmp_path: Path) -> None:
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model_package_group(ModelPackageGroupName="churn")
        register(sagemaker, "Rejected")
        with pytest.raises(deploy_config.DeployConfigError, match="no approved model package"):
            deploy_config.write_configs(
                tmp_path, load_settings(ENV, standards=Standards()), sagemaker, KMS, "monitor-image"
            )


def test_standards_put_endpoints_in_the_vpc_with_the_org_key() -> None:
    standards = Standards(
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/org",
        subnets=("subnet-0a",),
        security_groups=("sg-0b",),
        instance_types={"serving": ("ml.m5.large",)},
    )
    config = deploy_config.stage_config(
        "prod",
        load_settings(ENV, standards=standards),
        "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1",
        KMS,
        "monitor-image",
    )
    assert config["Parameters"]["KmsKeyArn"] == standards.kms_key_arn
    assert config["Parameters"]["SubnetIds"] == "subnet-0a"
    assert config["Parameters"]["SecurityGroupIds"] == "sg-0b"
    forbidden = Standards(instance_types={"serving": ("ml.c5.large",)})
    with pytest.raises(ValueError, match="not allowed"):
        deploy_config.stage_config("prod", load_settings(ENV, standards=forbidden), "arn", KMS, "m")


def _body(payload: str) -> StreamingBody:
    return StreamingBody(io.BytesIO(payload.encode()), len(payload.encode()))


def test_endpoint_smoke_test_passes_on_a_well_behaved_endpoint() -> None:
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body('{"predictions": [{}, {}, {}]}')},
            {
                "EndpointName": "churn-staging",
                "ContentType": "text/csv",
                "Accept": "application/json",
                "Body": endpoint_test.contract_rows(3),
            },
        )
        stub.add_client_error(
            "invoke_endpoint", service_error_code="ModelError", http_status_code=424
        )
        assert endpoint_test.check_endpoint(runtime, "churn-staging") == []
        stub.assert_no_pending_responses()


def test_endpoint_smoke_test_catches_a_lenient_endpoint() -> None:
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": [{}]}')})
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": []}')})
        failures = endpoint_test.check_endpoint(runtime, "churn-staging")
    assert failures == ["expected 3 predictions, got 1", "a malformed payload was accepted"]
