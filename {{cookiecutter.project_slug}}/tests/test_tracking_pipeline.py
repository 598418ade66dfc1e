"""The pipeline's side of experiment tracking: which server, and what the definition carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_definition import placeholders, validate_request, walk_steps

from pipelines import run
from pipelines.settings import Standards, load_settings, load_standards

TRACKING_SERVER = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/churn"
PROVISIONED = {
    "SAGEMAKER_PROJECT_NAME": "churn-prod",
    "SAGEMAKER_PROJECT_ID": "p-abc123",
    "ARTIFACT_BUCKET": "provisioned-artifacts",
    "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/pipeline-role",
    "AWS_REGION": "us-east-1",
}


def test_the_tracking_server_comes_from_the_build_then_the_organisation(tmp_path: Path) -> None:
    standards_file = tmp_path / "org-standards.json"
    standards_file.write_text(json.dumps({"mlflow_tracking_server_arn": "arn:org"}))
    organisation = load_standards(standards_file)
    given = PROVISIONED | {"MLFLOW_TRACKING_ARN": TRACKING_SERVER}
    assert load_settings(given, organisation).mlflow_tracking_arn == TRACKING_SERVER
    assert load_settings(PROVISIONED, organisation).mlflow_tracking_arn == "arn:org"
    # The foundation stack exports "none" when it has no server (an export cannot be empty); its
    # role then grants no MLflow call, so the organisation's server is not used either.
    none = PROVISIONED | {"MLFLOW_TRACKING_ARN": "none"}
    assert load_settings(none, organisation).mlflow_tracking_arn is None
    assert (
        load_settings(PROVISIONED | {"MLFLOW_TRACKING_ARN": ""}, organisation).mlflow_tracking_arn
        == "arn:org"
    )


@pytest.mark.slow
@pytest.mark.usefixtures("fake_aws")
def test_pipeline_definition_carries_the_mlflow_config_only_with_a_tracking_server() -> None:
    tracked = json.loads(
        run.definition(load_settings(PROVISIONED | {"MLFLOW_TRACKING_ARN": TRACKING_SERVER}))
    )
    untracked = json.loads(run.definition(load_settings(PROVISIONED, Standards())))
    assert tracked["MlflowConfig"] == {
        "MlflowResourceArn": TRACKING_SERVER,
        "MlflowExperimentName": "churn-prod",
    }
    assert untracked["MlflowConfig"] is None

    evaluate = walk_steps(tracked)["EvaluateModel"]["Arguments"]
    assert evaluate["Environment"] == {
        "MLFLOW_TRACKING_URI": TRACKING_SERVER,
        "MLFLOW_EXPERIMENT_NAME": "churn-prod",
    }
    assert "Environment" not in walk_steps(untracked)["EvaluateModel"]["Arguments"]
    arguments = evaluate["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--gate-threshold") + 1] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.QualityThreshold"}]}
    }
    # The registered package names its run; untracked, the key is absent (values cannot be "").
    metadata = walk_steps(tracked)["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    assert metadata["MlflowRunId"]["Std:JsonGet"]["Path"] == "mlflow_run_id"
    assert metadata["MlflowRunId"]["Std:JsonGet"]["PropertyFile"] == {
        "Get": "Steps.EvaluateModel.PropertyFiles.EvaluationLineage"
    }
    untracked_register = walk_steps(untracked)["RegisterModel"]["Arguments"]
    assert "MlflowRunId" not in untracked_register["CustomerMetadataProperties"]
    validate_request("CreateProcessingJob", placeholders(evaluate) | {"ProcessingJobName": "e"})
    register = placeholders(walk_steps(tracked)["RegisterModel"]["Arguments"])
    validate_request("CreateModelPackage", register)
