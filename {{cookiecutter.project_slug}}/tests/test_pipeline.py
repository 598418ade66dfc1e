"""The SageMaker pipeline definition, built offline, and its upsert/start against moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines import run
from pipelines.settings import Standards, load_settings, load_standards

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_aws")]
SETTINGS_ENV = {
    "SAGEMAKER_PROJECT_NAME": "churn-prod",
    "SAGEMAKER_PROJECT_ID": "p-abc123",
    "ARTIFACT_BUCKET": "provisioned-artifacts",
    "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/pipeline-role",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture()
def aws(fake_aws: None) -> Iterator[None]:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=SETTINGS_ENV["ARTIFACT_BUCKET"])
        yield


@pytest.fixture()
def definition(aws: None) -> dict[str, Any]:
    pipeline = run.build(load_settings(SETTINGS_ENV))
    return dict(json.loads(pipeline.definition()))


def steps_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return found


def references(value: Any) -> set[str]:
    """Step names a step's arguments point at (its data dependencies)."""
    text = json.dumps(value)
    return {part.split(".")[1] for part in text.split('"Get": "')[1:] if part.startswith("Steps.")}


def test_settings_come_from_the_provisioned_project() -> None:
    settings = load_settings(SETTINGS_ENV)
    assert settings.pipeline_name == "churn-prod-pipeline"
    assert settings.model_package_group == "churn-prod"
    assert settings.bucket == "provisioned-artifacts"
    assert settings.tags["sagemaker:project-id"] == "p-abc123"
    local = load_settings({})
    assert local.project_id == "local" and "sagemaker:project-id" not in local.tags


def test_steps_and_types(definition: dict[str, Any]) -> None:
    types = {name: step["Type"] for name, step in steps_by_name(definition).items()}
    assert types == {
        "PrepareData": "Processing",
        "TrainModel": "Training",
        "EvaluateModel": "Processing",
        "QualityGate": "Condition",
        "RegisterModel": "RegisterModel",
        "QualityGateFailed": "Fail",
    }


def test_dependency_graph(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    assert references(steps["TrainModel"]["Arguments"]) == {"PrepareData"}
    assert references(steps["EvaluateModel"]["Arguments"]) == {"PrepareData", "TrainModel"}
    gate = steps["QualityGate"]["Arguments"]
    assert references(gate["Conditions"]) == {"EvaluateModel"}
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["QualityGateFailed"]


def test_parameters(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert set(parameters) == {
        "InputDataUrl",
        "ProcessingInstanceType",
        "ProcessingInstanceCount",
        "TrainingInstanceType",
        "QualityThreshold",
        "ModelApprovalStatus",
    }
    inputs = run.pipeline_inputs()
    assert parameters["QualityThreshold"]["DefaultValue"] == inputs["gate_threshold"]
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert parameters["InputDataUrl"]["DefaultValue"].startswith("s3://provisioned-artifacts/")


def test_quality_gate_reads_the_evaluation_report(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    (condition,) = steps["QualityGate"]["Arguments"]["Conditions"]
    inputs = run.pipeline_inputs()
    lower_is_better = inputs["gate_metric"] in {"mse", "rmse", "mae"}
    assert condition["Type"] == ("LessThanOrEqualTo" if lower_is_better else "GreaterThanOrEqualTo")
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["Path"].endswith(f".{inputs['gate_metric']}.value")
    assert json_get["PropertyFile"] == {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"}
    assert condition["RightValue"] == {"Get": "Parameters.QualityThreshold"}
    (property_file,) = steps["EvaluateModel"]["PropertyFiles"]
    assert property_file["FilePath"] == "metrics.json"
    assert "Model below the quality gate" in json.dumps(steps["QualityGateFailed"]["Arguments"])


def test_registration(definition: dict[str, Any]) -> None:
    register = steps_by_name(definition)["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == "churn-prod"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "EvaluateModel" in json.dumps(statistics["S3Uri"])
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_jobs_run_the_projects_own_modules(definition: dict[str, Any], aws: None) -> None:
    steps = steps_by_name(definition)
    package = load_settings(SETTINGS_ENV).package
    for name, module in (("PrepareData", "data"), ("EvaluateModel", "evaluate")):
        arguments = steps[name]["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert arguments[0] == f"{package}.{module}", name
    train = steps["TrainModel"]["Arguments"]
    assert "sagemaker-scikit-learn" in train["AlgorithmSpecification"]["TrainingImage"]
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="provisioned-artifacts")["Contents"]]
    (source,) = [k for k in keys if k.endswith("sm_drivers/sourcecode.json")]
    body = json.loads(s3.get_object(Bucket="provisioned-artifacts", Key=source)["Body"].read())
    assert body["command"].startswith(f"python3 -m {package}.train")
    assert any(k.endswith(f"code/{package}/train.py") for k in keys)


def test_every_job_is_tagged(definition: dict[str, Any]) -> None:
    for name, step in steps_by_name(definition).items():
        if step["Type"] in ("Processing", "Training"):
            tags = {t["Key"]: t["Value"] for t in step["Arguments"]["Tags"]}
            assert tags["sagemaker:project-name"] == "churn-prod", name
            assert "cost-centre" in tags, name


def test_cli_prints_the_definition(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in SETTINGS_ENV.items():
        monkeypatch.setenv(key, value)
    assert run.main(["--definition-only"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["Version"] and len(printed["Steps"]) == 4


def test_upsert_and_start(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SETTINGS_ENV.items():
        monkeypatch.setenv(key, value)
    assert run.main(["--upsert", "--start"]) == 0
    assert run.main(["--upsert"]) == 0  # a second upsert updates, it does not duplicate
    sagemaker = boto3.client("sagemaker")
    (summary,) = sagemaker.list_pipelines()["PipelineSummaries"]
    assert summary["PipelineName"] == "churn-prod-pipeline"
    described = sagemaker.describe_pipeline(PipelineName="churn-prod-pipeline")
    assert described["RoleArn"] == SETTINGS_ENV["SAGEMAKER_PIPELINE_ROLE_ARN"]
    assert len(json.loads(described["PipelineDefinition"])["Steps"]) == 4
    executions = sagemaker.list_pipeline_executions(PipelineName="churn-prod-pipeline")
    assert len(executions["PipelineExecutionSummaries"]) == 1


def test_cli_needs_an_action() -> None:
    with pytest.raises(SystemExit):
        run.main([])


STRICT = Standards(
    kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/org-key",
    subnets=("subnet-0a1b2c", "subnet-0d4e5f"),
    security_groups=("sg-0123abcd",),
    network_isolation=True,
    instance_types={"processing": ("ml.m5.xlarge",), "training": ("ml.c5.2xlarge",)},
)


def test_organisation_standards_reach_every_job(aws: None) -> None:
    definition = json.loads(run.build(load_settings(SETTINGS_ENV, standards=STRICT)).definition())
    steps = steps_by_name(definition)
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert parameters["ProcessingInstanceType"] == "ml.m5.xlarge"
    assert parameters["TrainingInstanceType"] == "ml.c5.2xlarge"
    for name in ("PrepareData", "EvaluateModel"):
        arguments = steps[name]["Arguments"]
        assert (
            arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
            == STRICT.kms_key_arn
        )
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == STRICT.kms_key_arn
        network = arguments["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True
        assert network["VpcConfig"]["Subnets"] == list(STRICT.subnets)
        assert network["VpcConfig"]["SecurityGroupIds"] == list(STRICT.security_groups)
    training = steps["TrainModel"]["Arguments"]
    assert training["OutputDataConfig"]["KmsKeyId"] == STRICT.kms_key_arn
    assert training["ResourceConfig"]["VolumeKmsKeyId"] == STRICT.kms_key_arn
    assert training["VpcConfig"]["Subnets"] == list(STRICT.subnets)
    assert training["EnableNetworkIsolation"] is True


def test_instance_types_outside_the_standards_are_refused() -> None:
    with pytest.raises(ValueError, match="not allowed by the organisation standards"):
        STRICT.check_instance("training", "ml.p4d.24xlarge")
    STRICT.check_instance("training", "ml.c5.2xlarge")
    Standards().check_instance("training", "ml.p4d.24xlarge")  # no standards: no limit


def test_the_projects_own_standards_file_is_applied(aws: None) -> None:
    """org-standards.json (written by the template) reaches the definition as it says."""
    standards = load_standards()
    definition = json.loads(run.build(load_settings(SETTINGS_ENV)).definition())
    prepare = steps_by_name(definition)["PrepareData"]["Arguments"]
    if standards.kms_key_arn:
        assert prepare["ProcessingOutputConfig"]["KmsKeyId"] == standards.kms_key_arn
    else:
        assert "KmsKeyId" not in prepare["ProcessingOutputConfig"]
    if standards.subnets:
        assert prepare["NetworkConfig"]["VpcConfig"]["Subnets"] == list(standards.subnets)
    else:
        assert "NetworkConfig" not in prepare


def test_definition_only_needs_no_aws_account(tmp_path: Path) -> None:
    """`make pipeline-definition` on a laptop: no credentials, no region, no network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--definition-only"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    definition = json.loads(result.stdout)
    assert [step["Name"] for step in definition["Steps"]] == [
        "PrepareData",
        "TrainModel",
        "EvaluateModel",
        "QualityGate",
    ]
