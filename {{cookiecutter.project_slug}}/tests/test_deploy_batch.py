"""Deploy configuration of batch inference, built against a loopback registry (moto).

The deploy build uploads the batch pipeline's definition and writes each stage's parameters; the
stage stack's schedule, resolved with them, is checked with EventBridge Scheduler's own service
model, and the pipeline is created in the registry from the uploaded definition and started with
exactly the parameters the schedule passes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator
from deploy_setup import (
    ENV,
    KMS,
    project_settings,
    register,
    write,
    written_parameters,
)

from pipelines import deploy_config, endpoint_requests
from pipelines.settings import Standards

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_aws")]
ROLE = "arn:aws:iam::123456789012:role/pipeline"


def schedule_request(output: Path, stage: str) -> dict[str, Any]:
    """The stage's CreateSchedule request, resolved as CloudFormation resolves the stack."""
    template = deploy_config.load_template(output / "endpoint.yaml")
    stack = endpoint_requests.Resolver(template, written_parameters(output, stage))
    return stack.properties("Schedule")


def test_each_stage_runs_the_uploaded_definition_on_its_own_prefixes(
    tmp_path: Path, registry: Any
) -> None:
    write(tmp_path, registry, register(registry, "Approved"))
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = {written_parameters(tmp_path, s)["PipelineDefinitionKey"] for s in deploy_config.STAGES}
    (key,) = keys  # one definition for both stages
    body = s3.get_object(Bucket="artifacts", Key=key)["Body"].read()
    assert key == f"churn/batch/definitions/{hashlib.sha256(body).hexdigest()}.json"
    definition = json.loads(body)
    declared = {parameter["Name"] for parameter in definition["Parameters"]}
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    create_schedule = scheduler.meta.service_model.operation_model("CreateSchedule").input_shape
    states = {}
    for stage in deploy_config.STAGES:
        parameters = written_parameters(tmp_path, stage)
        assert parameters["BatchDataUri"] == f"s3://artifacts/churn/batch/{stage}"
        request = schedule_request(tmp_path, stage)
        report = ParamValidator().validate(request, create_schedule)
        assert not report.has_errors(), report.generate_report()
        states[stage] = request["State"]
        passed = request["Target"]["SageMakerPipelineParameters"]["PipelineParameterList"]
        assert {parameter["Name"] for parameter in passed} == declared
        # How far the transform scales is the stage configuration's.
        configured = deploy_config.read_stage_settings(stage)["Parameters"]
        for name in endpoint_requests.TRANSFORM_SCALE:
            (value,) = [p["Value"] for p in passed if p["Name"] == name]
            assert value == configured[name]
        # The registry creates the pipeline from the uploaded definition and starts it with
        # what the schedule passes (botocore validates both requests).
        registry.create_pipeline(
            PipelineName=f"churn-{stage}-batch",
            PipelineDefinition=body.decode(),
            RoleArn=ROLE,
        )
        values = {p["Name"]: p["Value"] for p in passed if isinstance(p["Value"], str)}
        assert values["InputRoot"] == f"s3://artifacts/churn/batch/{stage}/input"
        registry.start_pipeline_execution(
            PipelineName=f"churn-{stage}-batch",
            PipelineParameters=[{"Name": name, "Value": value} for name, value in values.items()],
        )
    assert states == {"staging": "DISABLED", "prod": "ENABLED"}


def test_in_accounts_of_their_own_prods_drift_alarm_goes_to_the_build_accounts_bus(
    tmp_path: Path, registry: Any
) -> None:
    """The stage configurations name the build account; prod's retraining rule, resolved with
    them, forwards to that account's default bus (whose rule starts the pipeline there)."""
    build, separate = "123456789012", {"staging": "111111111111", "prod": "222222222222"}
    environ = {"STAGING_ACCOUNT_ID": separate["staging"], "PROD_ACCOUNT_ID": separate["prod"]}
    accounts = deploy_config.target_accounts(separate, build, environ)
    deploy_config.write_configs(
        tmp_path,
        project_settings(Standards(accounts=separate)),
        (registry, boto3.client("s3", region_name="us-east-1")),
        KMS,
        register(registry, "Approved"),
        accounts,
        build,
    )
    template = deploy_config.load_template(tmp_path / "endpoint.yaml")
    for stage in deploy_config.STAGES:
        parameters = written_parameters(tmp_path, stage)
        assert parameters["BuildAccountId"] == build
    prod = endpoint_requests.Resolver(template, written_parameters(tmp_path, "prod"))
    (target,) = prod.properties("RetrainOnAlarmRule")["Targets"]
    assert target["Arn"] == f"arn:aws:events:us-east-1:{build}:event-bus/default"
    assert "SageMakerPipelineParameters" not in target


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"TransformInstanceCount": "0"}, "TransformResources.InstanceCount, value: 0"),
        ({"MaxPayloadInMB": "-1"}, "MaxPayloadInMB, value: -1"),
        ({"MaxConcurrentTransforms": "two"}, "MaxConcurrentTransforms, value: two"),
        ({"MaxPayloadInMB": "60", "MaxConcurrentTransforms": "2"}, "times MaxConcurrentTransforms"),
    ],
)
def test_scale_settings_createtransformjob_rejects_are_refused_in_one_line(
    tmp_path: Path,
    registry: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    changes: dict[str, str],
    named: str,
) -> None:
    infrastructure = tmp_path / "infrastructure"
    infrastructure.mkdir()
    for name in ("endpoint.yaml", "staging-config.json", "prod-config.json"):
        (infrastructure / name).write_text((deploy_config.INFRASTRUCTURE / name).read_text())
    prod = json.loads((infrastructure / "prod-config.json").read_text())
    prod["Parameters"] |= changes
    (infrastructure / "prod-config.json").write_text(json.dumps(prod))
    monkeypatch.setattr(deploy_config, "INFRASTRUCTURE", infrastructure)
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("KMS_KEY_ARN", KMS)
    monkeypatch.setenv("MODEL_PACKAGE_ARN", register(registry, "Approved"))
    monkeypatch.setattr(deploy_config, "load_settings", project_settings)
    assert deploy_config.main(["--output-dir", str(tmp_path / "out")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: prod-config.json: ")
    assert named in line
    assert not (tmp_path / "out").exists()
