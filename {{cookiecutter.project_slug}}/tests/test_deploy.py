"""The deploy flow: approval event -> trigger build -> deploy pipeline -> deploy config.

The registry is moto's SageMaker; every request goes through boto3, so botocore's ParamValidator
checks it against the service model before moto sees it. The EventBridge pattern is matched by
moto's EventBridge matcher, the trigger build's own commands are executed, and the requests they
make are validated against the CodeBuild and CodePipeline service models.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from deploy_setup import (
    ENV,
    KMS,
    model_artifact,
    project_settings,
    register,
    shipped_code,
    stage_model,
    vendored_code,
    write,
    write_for_model,
    written_parameters,
)
from moto.events.models import EventPattern

from pipelines import deploy_config, promote
from pipelines.settings import Standards, load_settings

pytestmark = pytest.mark.usefixtures("fake_aws")
PIPELINE_TEMPLATE = deploy_config.INFRASTRUCTURE / "deploy-pipeline.yaml"


def test_the_approved_package_is_deployed_even_when_a_newer_one_is_approved(
    tmp_path: Path, registry: Any
) -> None:
    """Rollback: re-approving v1 while v2 is approved deploys v1, with v1's own baseline."""
    v1 = register(registry, "Approved")
    register(registry, "Approved")
    package, account = write(tmp_path, registry, v1)
    assert package.arn == v1
    assert account.startswith(f"deploying churn version 1 ({v1}): the package whose approval")
    template_parameters = deploy_config.template_parameters()
    for stage in deploy_config.STAGES:
        parameters = written_parameters(tmp_path, stage)
        assert parameters["ModelPackageArn"] == v1
        assert parameters["StageName"] == stage
        assert parameters["KmsKeyArn"] == KMS
        assert set(parameters) <= set(template_parameters)


@pytest.mark.parametrize("status", ["Rejected", "PendingManualApproval"])
def test_a_package_that_is_not_approved_is_refused(
    tmp_path: Path, registry: Any, status: str
) -> None:
    register(registry, "Approved")
    arn = register(registry, status)
    with pytest.raises(deploy_config.DeployConfigError, match=f"is {status}, not Approved"):
        write(tmp_path / "out", registry, arn)
    assert not (tmp_path / "out").exists()


def test_a_package_of_another_project_is_refused(tmp_path: Path, registry: Any) -> None:
    registry.create_model_package_group(ModelPackageGroupName="fraud")
    arn = register(registry, "Approved", group="fraud")
    with pytest.raises(deploy_config.DeployConfigError, match="belongs to group 'fraud'"):
        write(tmp_path, registry, arn)


def test_an_unknown_package_is_a_clear_error(tmp_path: Path, registry: Any) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/9"
    with pytest.raises(deploy_config.DeployConfigError, match=f"{arn} cannot be read"):
        write(tmp_path, registry, arn)


def test_a_manual_run_deploys_the_newest_approved_package_and_says_so(
    tmp_path: Path, registry: Any
) -> None:
    register(registry, "Approved")
    newest = register(registry, "Approved")
    register(registry, "Rejected")
    package, account = write(tmp_path, registry, None)
    assert package.arn == newest
    assert "version 2" in account
    assert "no MODEL_PACKAGE_ARN given (manual run), so the newest Approved package" in account


def test_no_approved_package_is_a_clear_error(tmp_path: Path, registry: Any) -> None:
    register(registry, "Rejected")
    with pytest.raises(deploy_config.DeployConfigError, match="no approved model package"):
        write(tmp_path, registry, None)


def test_cli_prints_one_line_for_a_deploy_and_one_for_a_refusal(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KMS_KEY_ARN", KMS)
    # As the deploy stack sets them for this project's org-standards.json (separate accounts).
    for stage, account in load_settings(ENV).standards.accounts.items():
        monkeypatch.setenv(deploy_config.ACCOUNT_VARIABLES[stage], account)
    # A model that starts without network: this project's standards may require isolation.
    offline = model_artifact("churn/m/model.tar.gz", vendored_code())
    approved = register(registry, "Approved", model_data=offline)
    rejected = register(registry, "Rejected")
    monkeypatch.setenv("MODEL_PACKAGE_ARN", approved)
    assert deploy_config.main(["--output-dir", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"deploying churn version 1 ({approved})")
    assert (
        deploy_config.main(["--output-dir", str(tmp_path / "no"), "--model-package-arn", rejected])
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: model package {rejected} is Rejected, not Approved: refusing to deploy it"
    ]
    # The pipeline's default for a manual start means "no package given".
    monkeypatch.setenv("MODEL_PACKAGE_ARN", pipeline_variable()["DefaultValue"])
    assert deploy_config.main(["--output-dir", str(tmp_path / "manual")]) == 0
    assert "(manual run)" in capsys.readouterr().out


# --- the wiring from the approval event to the deploy build ---------------------------------


def deploy_pipeline() -> dict[str, Any]:
    return deploy_config.load_template(PIPELINE_TEMPLATE)


def pipeline_variable() -> dict[str, Any]:
    (variable,) = deploy_pipeline()["Resources"]["Pipeline"]["Properties"]["Variables"]
    return dict(variable)


def approval_event(arn: str, status: str = "Approved", group: str = "churn") -> dict[str, Any]:
    """A SageMaker Model Package State Change event, as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "7b0a2d2c-0000-0000-0000-000000000000",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-23T22:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": 1,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "ModelPackageStatus": "Completed",
        },
    }


def resolve(value: Any, names: dict[str, str]) -> Any:
    """Substitute the few intrinsics the rule's pattern uses (Ref of a parameter)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return names[value["Ref"]]
    if isinstance(value, dict):
        return {key: resolve(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, names) for item in value]
    return value


def transform(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """EventBridge's input transformer: each <name> in the template becomes its JSON value."""
    result = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        value: Any = event
        for key in path.removeprefix("$.").split("."):
            value = value[key]
        result = result.replace(f"<{name}>", json.dumps(value))
    return str(result)


def test_only_this_projects_approvals_match_the_deploy_rule() -> None:
    rule = deploy_pipeline()["Resources"]["ModelApprovedRule"]["Properties"]
    pattern = json.dumps(resolve(rule["EventPattern"], {"SageMakerProjectName": "churn"}))
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1"
    # moto's EventBridge matcher (its TestEventPattern is not implemented)
    matches = EventPattern.load(pattern).matches_event
    assert matches(approval_event(arn))
    assert not matches(approval_event(arn, status="Rejected"))
    assert not matches(approval_event(arn, status="PendingManualApproval"))
    assert not matches(approval_event(arn, group="fraud"))


def test_the_approval_event_starts_the_pipeline_with_that_package(tmp_path: Path) -> None:
    """Event -> StartBuild request -> the trigger build's commands -> StartPipelineExecution."""
    resources = deploy_pipeline()["Resources"]
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/5"
    (target,) = resources["ModelApprovedRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["DeployTriggerProject", "Arn"]}
    start_build = {"projectName": "churn-deploy-trigger"} | json.loads(
        transform(target["InputTransformer"], approval_event(arn))
    )
    codebuild = boto3.client("codebuild", region_name="us-east-1")
    validator = ParamValidator()
    report = validator.validate(
        start_build, codebuild.meta.service_model.operation_model("StartBuild").input_shape
    )
    assert not report.has_errors(), report.generate_report()
    environment = {v["name"]: v["value"] for v in start_build["environmentVariablesOverride"]}

    # Run the trigger project's buildspec with an `aws` on PATH that records what it is asked.
    project = resources["DeployTriggerProject"]["Properties"]
    buildspec = yaml.safe_load(project["Source"]["BuildSpec"])
    calls = tmp_path / "calls.json"
    aws = tmp_path / "bin" / "aws"
    aws.parent.mkdir()
    # A shell script that runs this Python: a shebang line cannot hold a path with a space.
    record = f"import json, sys; open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')"
    python = shlex.quote(sys.executable)
    aws.write_text(f'#!/bin/sh\nexec {python} -c {shlex.quote(record)} "$@"\n')
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    env = (
        os.environ
        | environment
        | {
            "DEPLOY_PIPELINE": "churn-deploy",
            "PATH": f"{aws.parent}{os.pathsep}{os.environ['PATH']}",
        }
    )
    for command in buildspec["phases"]["build"]["commands"]:
        subprocess.run(["bash", "-ec", command], env=env, check=True)
    (argv,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert argv[:2] == ["codepipeline", "start-pipeline-execution"]
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    request = {"name": options["--name"], "variables": json.loads(options["--variables"])}
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    shape = codepipeline.meta.service_model.operation_model("StartPipelineExecution").input_shape
    report = validator.validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert request["variables"] == [{"name": pipeline_variable()["Name"], "value": arn}]

    # The deploy-config action hands that variable to the build as MODEL_PACKAGE_ARN.
    stages = {s["Name"]: s for s in resources["Pipeline"]["Properties"]["Stages"]}
    (action,) = stages["ResolveApprovedModel"]["Actions"]
    variables = json.loads(action["Configuration"]["EnvironmentVariables"])
    assert variables == [
        {
            "name": deploy_config.PACKAGE_ARN_VARIABLE,
            "value": "#{variables." + pipeline_variable()["Name"] + "}",
            "type": "PLAINTEXT",
        }
    ]


@pytest.mark.parametrize("action", [deploy_config.PROMOTE, deploy_config.DISCARD])
def test_make_promote_and_discard_start_the_deploy_pipeline_with_their_action(action: str) -> None:
    """The request names this project's deploy pipeline and its variable (which the deploy
    build receives as MODEL_PACKAGE_ARN, above); botocore validates it before the stub answers."""
    pipeline = deploy_pipeline()["Resources"]["Pipeline"]["Properties"]
    name = resolve_sub(pipeline["Name"], {"SageMakerProjectName": "churn"})
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    with Stubber(codepipeline) as stub:
        stub.add_response(
            "start_pipeline_execution",
            {"pipelineExecutionId": "0123abcd"},
            {"name": name, "variables": [{"name": pipeline_variable()["Name"], "value": action}]},
        )
        assert promote.start(codepipeline, project_settings(), action) == "0123abcd"
        stub.assert_no_pending_responses()


def resolve_sub(value: Any, names: dict[str, str]) -> str:
    text = str(value["Fn::Sub"])
    for key, replacement in names.items():
        text = text.replace("${" + key + "}", replacement)
    return text


def test_the_trigger_build_refuses_an_event_without_a_package(tmp_path: Path) -> None:
    project = deploy_pipeline()["Resources"]["DeployTriggerProject"]["Properties"]
    first = yaml.safe_load(project["Source"]["BuildSpec"])["phases"]["build"]["commands"][0]
    result = subprocess.run(
        ["bash", "-ec", first],
        env=os.environ | {"MODEL_PACKAGE_ARN": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout.strip() == "MODEL_PACKAGE_ARN is empty"


# --- network isolation of the model (org-standards.json `network_isolation`) -----------------
# Realtime endpoints and batch transforms; a serverless endpoint supports none, and the deploy
# build refuses the standard for it (tests/test_deploy_serverless.py).
ISOLABLE = pytest.mark.skipif(
    project_settings().inference_mode == "serverless",
    reason="a serverless endpoint supports no network isolation",
)


@ISOLABLE
@pytest.mark.parametrize("isolated", [False, True])
def test_each_stage_model_is_isolated_exactly_when_the_standards_require_it(
    tmp_path: Path, registry: Any, isolated: bool
) -> None:
    """The stage stack (endpoint or transform), resolved with the stage's parameters, makes a
    CreateModel request SageMaker's service model accepts, with the standards' isolation."""
    arn = write_for_model(
        tmp_path, registry, Standards(network_isolation=isolated), vendored_code()
    )
    for stage in deploy_config.STAGES:
        model = stage_model(tmp_path, stage)
        assert model["EnableNetworkIsolation"] is isolated
        assert model["Containers"] == [{"ModelPackageName": arn}]


@ISOLABLE
def test_under_isolation_a_model_that_needs_the_package_index_is_refused_in_one_line(
    tmp_path: Path, registry: Any
) -> None:
    with pytest.raises(deploy_config.DeployConfigError) as caught:
        write_for_model(tmp_path, registry, Standards(network_isolation=True), shipped_code())
    message = str(caught.value)
    assert "\n" not in message
    assert re.match(
        r"network_isolation \(organisation standards\) is on, but model package "
        r"arn:aws:sagemaker:\S+:model-package/churn/\d+ ",
        message,
    ), message
    assert "setuptools>=40.8.0 (pip builds code/ in an isolated environment)" in message
    # a locked library the image ships in another version, named with both versions
    assert re.search(r"\b(numpy|pandas|scipy)==\S+ \(image has \S+\)", message), message
    assert not (tmp_path / "staging-config.json").exists()
    # Without the standard the same code deploys: the image downloads what it lacks.
    write_for_model(tmp_path, registry, Standards(), shipped_code())
