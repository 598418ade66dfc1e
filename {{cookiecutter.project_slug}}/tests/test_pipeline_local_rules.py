"""The pieces of `make pipeline-local` that take input from a person or a definition."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import local


def test_parameters_are_typed_as_the_definition_declares() -> None:
    definition = {
        "Parameters": [
            {"Name": "QualityThreshold", "Type": "Float", "DefaultValue": 0.9},
            {"Name": "ProcessingInstanceCount", "Type": "Integer", "DefaultValue": 1},
            {"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "Pending"},
        ]
    }
    values = local.typed_parameters(definition, {"QualityThreshold": "0.95"})
    assert values == {
        "QualityThreshold": 0.95,
        "ProcessingInstanceCount": 1,
        "ModelApprovalStatus": "Pending",
    }
    with pytest.raises(local.PipelineLocalError, match="unknown pipeline parameter 'Threshold'"):
        local.typed_parameters(definition, {"Threshold": "1"})
    with pytest.raises(local.PipelineLocalError, match="QualityThreshold: 'high' is not a valid"):
        local.typed_parameters(definition, {"QualityThreshold": "high"})


def test_a_parameter_must_be_name_equals_value() -> None:
    assert local.parse_parameter("ModelApprovalStatus=Approved") == (
        "ModelApprovalStatus",
        "Approved",
    )
    assert local.parse_parameter("Url=s3://b/k?x=1") == ("Url", "s3://b/k?x=1")
    with pytest.raises(Exception, match="expected Name=Value"):
        local.parse_parameter("Approved")


def test_only_a_loopback_endpoint_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(local.PipelineLocalError, match="must be a loopback address"):
        local.loopback_environment("https://s3.amazonaws.com", "us-east-1", tmp_path)
    env = local.loopback_environment("http://127.0.0.1:5000", "us-east-1", tmp_path)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert "TelemetryOptOut: true" in Path(env["SAGEMAKER_USER_CONFIG_OVERRIDE"]).read_text()


def test_property_paths_as_sagemaker_writes_them() -> None:
    properties = {
        "ProcessingOutputConfig": {"Outputs": {"train": {"S3Output": {"S3Uri": "s3://b"}}}}
    }
    path = local.property_path("ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri")
    assert local.walk(properties, path, "x") == "s3://b"
    assert local.json_path({"a": {"b": [{"c": 3}]}}, "a.b[0].c") == 3
    with pytest.raises(local.StepError, match="is undefined"):
        local.json_path({"binary_classification_metrics": {}}, "multiclass.accuracy.value")


@pytest.mark.parametrize(
    ("condition", "outcome"),
    [
        ({"Type": "GreaterThanOrEqualTo", "LeftValue": 0.9, "RightValue": 0.9}, True),
        ({"Type": "LessThanOrEqualTo", "LeftValue": 71.0, "RightValue": 70.0}, False),
        ({"Type": "In", "QueryValue": "a", "Values": ["a", "b"]}, True),
        (
            {
                "Type": "Not",
                "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": 1},
            },
            False,
        ),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "LessThan", "LeftValue": 2, "RightValue": 1},
                    {"Type": "GreaterThan", "LeftValue": 2, "RightValue": 1},
                ],
            },
            True,
        ),
    ],
)
def test_conditions(condition: dict[str, object], outcome: bool) -> None:
    assert local.evaluate_condition(condition) is outcome


def test_a_condition_on_incomparable_values_fails_the_step() -> None:
    with pytest.raises(local.StepError, match="cannot compare"):
        local.evaluate_condition({"Type": "GreaterThan", "LeftValue": "a", "RightValue": 1.0})


def test_every_fixed_input_location_is_found() -> None:
    """The job code locations a definition names; each must exist before an execution."""
    definition = {
        "Steps": [
            {
                "Arguments": {
                    "ProcessingInputs": [
                        {"S3Input": {"S3Uri": "s3://b/code/runproc.sh"}},
                        {"S3Input": {"S3Uri": {"Get": "Parameters.InputDataUrl"}}},
                    ],
                    "InputDataConfig": [
                        {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/train/code"}}}
                    ],
                }
            }
        ]
    }
    assert local.literal_inputs(definition) == ["s3://b/code/runproc.sh", "s3://b/train/code"]


def test_a_jobs_inputs_are_mapped_to_its_own_root(tmp_path: Path) -> None:
    root = local.JobRoot(tmp_path / "job")
    assert root.local("/opt/ml/processing/input") == tmp_path / "job/opt/ml/processing/input"
    with pytest.raises(local.StepError, match="outside /opt/ml"):
        root.local("/etc/passwd")
    script = tmp_path / "runproc.sh"
    script.write_text("cd /opt/ml/processing/input/code/\n")
    data = tmp_path / "rows.csv"
    data.write_text("path\n/opt/ml/kept\n")
    helper = tmp_path / "install_requirements.py"
    helper.write_text("import subprocess  # would pip install\n")
    root.rewrite_inputs([script, data, helper])
    assert script.read_text() == f"cd {tmp_path}/job/opt/ml/processing/input/code/\n"
    assert data.read_text() == "path\n/opt/ml/kept\n"  # data is never rewritten
    assert "requirements not installed" in helper.read_text()


def test_jobs_run_this_interpreter_and_pip_does_nothing(tmp_path: Path) -> None:
    shims = local.shim_directory(tmp_path)
    python = subprocess.run(
        [shims / "python3", "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert python.stdout.strip() == sys.prefix
    pip = subprocess.run(
        [shims / "pip", "install", "-r", "requirements.txt"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "skipped 'pip install -r requirements.txt'" in pip.stdout
