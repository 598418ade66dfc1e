"""The deploy flow: approval event -> trigger build -> deploy pipeline -> deploy config.

The registry is moto's SageMaker; every request goes through boto3, so botocore's ParamValidator
checks it against the service model before moto sees it. The EventBridge pattern is matched by
moto's EventBridge matcher, the trigger build's own commands are executed, and the requests they
make are validated against the CodeBuild and CodePipeline service models.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.response import StreamingBody
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from moto import mock_aws
from moto.events.models import EventPattern

from pipelines import deploy_config, endpoint_requests, endpoint_test, promote, rollout
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
PIPELINE_TEMPLATE = deploy_config.INFRASTRUCTURE / "deploy-pipeline.yaml"


def constraints(**changes: Any) -> dict[str, Any]:
    """A Model Monitor constraints.json for the data contract's features."""
    document: dict[str, Any] = {
        "version": 0.0,
        "features": [
            {"name": name, "inferred_type": "Fractional", "completeness": 1.0}
            for name in deploy_config.features()
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
    return document | changes


def baseline_of(version: int) -> dict[str, Any]:
    """Model Monitor baseline files as the pipeline registers them, one folder per execution."""
    prefix = f"s3://artifacts/churn/executions/run-{version}/baseline"
    return {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"{prefix}/statistics.json"},
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"{prefix}/constraints.json",
            },
        }
    }


def register(
    sagemaker: Any,
    status: str,
    baseline: bool = True,
    group: str = "churn",
    constraints_file: dict[str, Any] | None = None,
) -> str:
    version = len(
        sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    )
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [{"Image": "img"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if baseline:
        request["DriftCheckBaselines"] = baseline_of(version + 1)
        uri = request["DriftCheckBaselines"]["ModelDataQuality"]["Constraints"]["S3Uri"]
        boto3.client("s3", region_name="us-east-1").put_object(
            Bucket="artifacts",
            Key=uri.removeprefix("s3://artifacts/"),
            Body=json.dumps(constraints_file or constraints()).encode(),
        )
    return str(sagemaker.create_model_package(**request)["ModelPackageArn"])


@pytest.fixture()
def registry() -> Any:
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model_package_group(ModelPackageGroupName="churn")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="artifacts")
        yield sagemaker


def settings() -> Any:
    return load_settings(ENV, standards=Standards())


def write(output: Path, sagemaker: Any, arn: str | None) -> tuple[deploy_config.Package, str]:
    clients = (sagemaker, boto3.client("s3", region_name="us-east-1"))
    return deploy_config.write_configs(output, settings(), clients, KMS, "monitor-image", arn)


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
        parameters = json.loads((tmp_path / f"{stage}-config.json").read_text())["Parameters"]
        assert parameters["ModelPackageArn"] == v1
        assert parameters["BaselineStatisticsUri"] == (
            "s3://artifacts/churn/executions/run-1/baseline/statistics.json"
        )
        assert parameters["BaselineConstraintsUri"].endswith("run-1/baseline/constraints.json")
        assert parameters["StageName"] == stage
        assert parameters["KmsKeyArn"] == KMS
        assert parameters["GroundTruthUri"] == f"s3://artifacts/churn/ground-truth/{stage}"
        assert set(parameters) <= template_parameters


@pytest.mark.parametrize("status", ["Rejected", "PendingManualApproval"])
def test_a_package_that_is_not_approved_is_refused(
    tmp_path: Path, registry: Any, status: str
) -> None:
    register(registry, "Approved")
    arn = register(registry, status)
    with pytest.raises(deploy_config.DeployConfigError, match=f"is {status}, not Approved"):
        write(tmp_path / "out", registry, arn)
    assert not (tmp_path / "out").exists()


def test_a_package_without_a_baseline_is_refused(tmp_path: Path, registry: Any) -> None:
    arn = register(registry, "Approved", baseline=False)
    with pytest.raises(deploy_config.DeployConfigError, match="no data-quality baseline"):
        write(tmp_path, registry, arn)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"monitoring_config": {}}, "emit_metrics is None, not 'Enabled'"),
        (
            {
                "monitoring_config": constraints()["monitoring_config"]
                | {"emit_metrics": "Disabled"}
            },
            "emit_metrics is 'Disabled'",
        ),
        ({"features": []}, "no constraints for"),
    ],
)
def test_a_baseline_that_would_publish_no_drift_metric_is_refused(
    tmp_path: Path, registry: Any, change: dict[str, Any], message: str
) -> None:
    arn = register(registry, "Approved", constraints_file=constraints(**change))
    with pytest.raises(deploy_config.DeployConfigError, match=message):
        write(tmp_path, registry, arn)


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
    monkeypatch.setattr(deploy_config, "monitor_image_uri", lambda region: "monitor-image")
    approved = register(registry, "Approved")
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


# --- champion and challenger: shadow, A/B, promotion, discard -------------------------------


@pytest.fixture()
def shadow_aware_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5 accepts CreateEndpointConfig's ShadowProductionVariants but keeps none; store them
    so that DescribeEndpointConfig returns them, as SageMaker documents it does."""
    from moto.sagemaker.responses import SageMakerResponse

    original = SageMakerResponse.create_endpoint_config

    def create_endpoint_config(self: Any) -> Any:
        result = original(self)
        shadow = self._get_param("ShadowProductionVariants")
        if shadow:
            name = self._get_param("EndpointConfigName")
            self.sagemaker_backend.endpoint_configs[name].shadow_production_variants = shadow
        return result

    monkeypatch.setattr(SageMakerResponse, "create_endpoint_config", create_endpoint_config)


def with_deployment(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """Every stage's Deployment settings with these changes (the files stay as they are)."""
    read = deploy_config.read_stage_settings

    def changed(stage: str) -> dict[str, Any]:
        config = read(stage)
        config["Deployment"] = config.get("Deployment", {}) | changes
        return config

    monkeypatch.setattr(deploy_config, "read_stage_settings", changed)


def stage_requests(output: Path, stage: str) -> tuple[Any, dict[str, Any]]:
    template = yaml.safe_load((output / "endpoint.yaml").read_text())
    parameters = json.loads((output / f"{stage}-config.json").read_text())["Parameters"]
    stack = endpoint_requests.Resolver(template, parameters)
    return stack, endpoint_requests.endpoint_requests(template, parameters)


def apply(output: Path, sagemaker: Any, number: int) -> None:
    """What CloudFormation does with the artifact, on moto: the models, a new endpoint
    configuration, and the endpoint moved onto it (moto has no UpdateEndpoint: it is recreated)."""
    for stage in deploy_config.STAGES:
        stack, requests = stage_requests(output, stage)
        names = {}
        for logical in ("Model", "ChallengerModel"):
            if stack.active(logical):
                properties = stack.properties(logical)
                names[f"{logical}-ModelName-generated"] = f"{stage}-{logical}-{number}"
                sagemaker.create_model(
                    ModelName=names[f"{logical}-ModelName-generated"],
                    ExecutionRoleArn=properties["ExecutionRoleArn"],
                    Containers=properties["Containers"],
                )
        config = requests["CreateEndpointConfig"]
        config["EndpointConfigName"] = f"{stage}-config-{number}"
        for key in ("ProductionVariants", "ShadowProductionVariants"):
            for variant in config.get(key, []):
                variant["ModelName"] = names[variant["ModelName"]]
        sagemaker.create_endpoint_config(**config)
        endpoint = requests["CreateEndpoint"]["EndpointName"]
        if endpoint in {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}:
            sagemaker.delete_endpoint(EndpointName=endpoint)
        sagemaker.create_endpoint(
            EndpointName=endpoint, EndpointConfigName=f"{stage}-config-{number}"
        )


def variants_of(requests: dict[str, Any], key: str) -> dict[str, int]:
    return {
        v["VariantName"]: v["InitialVariantWeight"]
        for v in requests["CreateEndpointConfig"].get(key, [])
    }


CHAMPION, CHALLENGER = rollout.CHAMPION, rollout.CHALLENGER


@pytest.mark.usefixtures("shadow_aware_moto")
def test_shadow_puts_the_approved_package_beside_the_live_champion_then_promotes_it(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_deployment(monkeypatch, Mode="shadow")
    v1 = register(registry, "Approved")
    _, line = write(tmp_path / "1", registry, v1)
    assert "prod: version 1 serves alone (nothing else serves yet to be its champion)" in line
    apply(tmp_path / "1", registry, 1)

    v2 = register(registry, "Approved")
    _, line = write(tmp_path / "2", registry, v2)
    assert "prod: version 2 as the shadow challenger of version 1 (variants change" in line
    _, requests = stage_requests(tmp_path / "2", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 1}
    assert variants_of(requests, "ShadowProductionVariants") == {CHALLENGER: 1}
    # Entering shadow adds a variant: no DeploymentConfig (guardrails need the same names).
    assert "DeploymentConfig" not in requests["UpdateEndpoint"]
    # Data capture covers the endpoint, the shadow's answers included.
    assert requests["CreateEndpointConfig"]["DataCaptureConfig"]["EnableCapture"] is True
    parameters = json.loads((tmp_path / "2" / "prod-config.json").read_text())["Parameters"]
    assert (parameters["ModelPackageArn"], parameters["ChallengerPackageArn"]) == (v1, v2)
    # Monitoring compares live inputs with the baseline of the champion that answers them.
    assert parameters["BaselineStatisticsUri"].endswith("run-1/baseline/statistics.json")
    apply(tmp_path / "2", registry, 2)

    # A newer challenger replaces the old one: same variants, so a guarded update.
    v3 = register(registry, "Approved")
    _, line = write(tmp_path / "3", registry, v3)
    assert "prod: version 3 as the shadow challenger of version 1;" in line + ";"
    stack, requests = stage_requests(tmp_path / "3", "prod")
    assert requests["UpdateEndpoint"]["DeploymentConfig"]["AutoRollbackConfiguration"]
    assert stack.properties("ChallengerModel")["Containers"] == [{"ModelPackageName": v3}]
    apply(tmp_path / "3", registry, 3)

    package, line = write(tmp_path / "4", registry, deploy_config.PROMOTE)
    assert package.arn == v3
    assert "prod: version 3 promoted to champion (variants change" in line
    stack, requests = stage_requests(tmp_path / "4", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 1}
    assert "ShadowProductionVariants" not in requests["CreateEndpointConfig"]
    assert not stack.active("ChallengerModel")
    assert stack.properties("Model")["Containers"] == [{"ModelPackageName": v3}]
    apply(tmp_path / "4", registry, 4)
    with pytest.raises(deploy_config.DeployConfigError, match="no stage serves a challenger"):
        write(tmp_path / "5", registry, deploy_config.PROMOTE)


def test_ab_splits_traffic_by_weight_and_scales_and_alarms_each_serving_variant(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_deployment(monkeypatch, Mode="ab", ChallengerPercent=10)
    v1 = register(registry, "Approved")
    write(tmp_path / "1", registry, v1)
    apply(tmp_path / "1", registry, 1)
    v2 = register(registry, "Approved")
    _, line = write(tmp_path / "2", registry, v2)
    assert "prod: version 2 as the ab challenger of version 1" in line
    stack, requests = stage_requests(tmp_path / "2", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 90, CHALLENGER: 10}
    scaled = {
        stack.properties(logical)["ResourceId"]
        for logical, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
        and stack.active(logical)
    }
    assert scaled == {f"endpoint/churn-prod/variant/{v}" for v in (CHAMPION, CHALLENGER)}
    # The discard goes back to the champion alone; the challenger's alarms go with it.
    apply(tmp_path / "2", registry, 2)
    package, line = write(tmp_path / "3", registry, deploy_config.DISCARD)
    assert package.arn == v1
    assert "prod: challenger discarded, version 1 serves alone" in line
    stack, requests = stage_requests(tmp_path / "3", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 1}
    assert not stack.active("ChallengerErrorAlarm")


def test_a_challenger_rejected_after_deployment_is_not_promoted(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_deployment(monkeypatch, Mode="ab", ChallengerPercent=10)
    v1 = register(registry, "Approved")
    write(tmp_path / "1", registry, v1)
    apply(tmp_path / "1", registry, 1)
    v2 = register(registry, "Approved")
    write(tmp_path / "2", registry, v2)
    apply(tmp_path / "2", registry, 2)
    registry.update_model_package(ModelPackageArn=v2, ModelApprovalStatus="Rejected")
    with pytest.raises(deploy_config.DeployConfigError, match="is Rejected, not Approved"):
        write(tmp_path / "3", registry, deploy_config.PROMOTE)
    assert not (tmp_path / "3").exists()


def test_promoting_or_discarding_with_nothing_deployed_is_a_clear_error(
    tmp_path: Path, registry: Any
) -> None:
    for action in (deploy_config.PROMOTE, deploy_config.DISCARD):
        with pytest.raises(deploy_config.DeployConfigError, match=f"nothing to {action}"):
            write(tmp_path, registry, action)


def test_replace_after_ab_removes_the_challenger_in_one_unguarded_step(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_deployment(monkeypatch, Mode="ab", ChallengerPercent=10)
    write(tmp_path / "1", registry, register(registry, "Approved"))
    apply(tmp_path / "1", registry, 1)
    write(tmp_path / "2", registry, register(registry, "Approved"))
    apply(tmp_path / "2", registry, 2)
    monkeypatch.undo()
    v3 = register(registry, "Approved")
    _, line = write(tmp_path / "3", registry, v3)
    assert "prod: version 3 serves alone (variants change" in line
    _, requests = stage_requests(tmp_path / "3", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 1}


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
    aws.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
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
        assert promote.start(codepipeline, settings(), action) == "0123abcd"
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


# --- the quality alarm and the organisation standards -------------------------------------


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
    schema_file = next(deploy_config.PROJECT.glob("src/*/schema.json"))
    (tmp_path / "src" / "pkg" / "schema.json").write_text(schema_file.read_text())
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"gate": {"metric": metric, "threshold": threshold}, "train": {}})
    )
    quality = deploy_config.model_quality_parameters(params)
    assert quality["QualityMetric"] == metric
    assert float(quality["QualityThreshold"]) == threshold
    assert quality["QualityAlarmComparison"] == comparison
    schema = json.loads(schema_file.read_text())
    expected = {"regression": "Regression", "classification": "BinaryClassification"}
    assert quality["ModelQualityProblemType"] == expected[schema["problem_type"]]


def test_standards_put_endpoints_in_the_vpc_with_the_org_key() -> None:
    standards = Standards(
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/org",
        subnets=("subnet-0a",),
        security_groups=("sg-0b",),
        instance_types={"serving": ("ml.m5.large",)},
    )
    package = deploy_config.Package(
        arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1",
        group="churn",
        version=1,
        status="Approved",
        baseline=deploy_config.Baseline("s3://b/statistics.json", "s3://b/constraints.json"),
    )
    plan = deploy_config.StagePlan(package, None, deploy_config.stage_deployment("prod"))
    config = deploy_config.stage_config(
        "prod", load_settings(ENV, standards=standards), plan, KMS, "monitor-image"
    )
    assert config["Parameters"]["KmsKeyArn"] == standards.kms_key_arn
    assert config["Parameters"]["SubnetIds"] == "subnet-0a"
    assert config["Parameters"]["SecurityGroupIds"] == "sg-0b"
    forbidden = Standards(instance_types={"serving": ("ml.c5.large",)})
    with pytest.raises(ValueError, match="not allowed"):
        deploy_config.stage_config("prod", load_settings(ENV, standards=forbidden), plan, KMS, "m")


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
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": "wrong column count"},
        )
        assert endpoint_test.check_endpoint(runtime, "churn-staging") == []
        stub.assert_no_pending_responses()


def test_endpoint_smoke_test_catches_a_container_that_crashes_on_bad_input() -> None:
    """The container's own status travels in ModelError: a 500 there is a crash, not a refusal."""
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": [{}, {}, {}]}')})
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "Internal Server Error"},
        )
        failures = endpoint_test.check_endpoint(runtime, "churn-staging")
    assert failures == ["malformed payload: the container answered 500, expected a 4xx"]


def test_endpoint_smoke_test_catches_a_lenient_endpoint() -> None:
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": [{}]}')})
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": []}')})
        failures = endpoint_test.check_endpoint(runtime, "churn-staging")
    assert failures == ["expected 3 predictions, got 1", "a malformed payload was accepted"]


# --- staging and prod in accounts of their own (org-standards.json `accounts`) --------------------

BUILD_ACCOUNT = "123456789012"  # the account moto answers as: this deploy's build account
SEPARATE = {"staging": "111111111111", "prod": "222222222222"}
DEPLOY_STACK_ENV = {"STAGING_ACCOUNT_ID": SEPARATE["staging"], "PROD_ACCOUNT_ID": SEPARATE["prod"]}


def _account_of(value: str) -> str | None:
    """The account an ARN names, or the one a target data bucket is named after."""
    if value.startswith("arn:"):
        return value.split(":")[4] or None
    if value.startswith("s3://"):
        bucket = value.removeprefix("s3://").split("/")[0]
        return bucket.rsplit("-", 1)[1] if bucket.rsplit("-", 1)[-1].isdigit() else None
    return None


def test_separate_accounts_stage_configs_name_each_stages_own_account(
    tmp_path: Path, registry: Any
) -> None:
    arn = register(registry, "Approved")
    accounts = deploy_config.target_accounts(SEPARATE, BUILD_ACCOUNT, DEPLOY_STACK_ENV)
    clients = (registry, boto3.client("s3", region_name="us-east-1"))
    separate = load_settings(ENV, standards=Standards(accounts=SEPARATE))
    deploy_config.write_configs(
        tmp_path, separate, clients, KMS, "monitor-image", arn, accounts, BUILD_ACCOUNT
    )
    deploy_config.write_configs(tmp_path / "single", settings(), clients, KMS, "monitor-image", arn)
    for stage, account in SEPARATE.items():
        parameters = json.loads((tmp_path / f"{stage}-config.json").read_text())["Parameters"]
        single = json.loads((tmp_path / "single" / f"{stage}-config.json").read_text())
        named = {key: _account_of(str(value)) for key, value in parameters.items()}
        # the package and its baseline stay in the build account's registry and bucket
        assert named["ModelPackageArn"] == BUILD_ACCOUNT
        assert (
            parameters["BaselineConstraintsUri"] == single["Parameters"]["BaselineConstraintsUri"]
        )
        assert parameters["BuildAccountId"] == BUILD_ACCOUNT
        # what the endpoint runs as, encrypts with and writes to is the stage account's own
        for key in ("ModelExecutionRoleArn", "KmsKeyArn", "DataCaptureUri", "MonitoringOutputUri"):
            assert named[key] == account, (stage, key, parameters[key])
        assert named["GroundTruthUri"] == account
        assert set(parameters) - set(single["Parameters"]) == {"BuildAccountId"}
        assert set(parameters) <= deploy_config.template_parameters()


@pytest.mark.parametrize(
    ("accounts", "environ", "build", "words"),
    [
        (
            SEPARATE,
            {},
            BUILD_ACCOUNT,
            "prod 222222222222 but the deploy stack was deployed for none",
        ),
        ({}, DEPLOY_STACK_ENV, BUILD_ACCOUNT, "names the accounts none but the deploy stack was"),
        (
            SEPARATE,
            DEPLOY_STACK_ENV | {"PROD_ACCOUNT_ID": "333333333333"},
            BUILD_ACCOUNT,
            "for staging 111111111111, prod 333333333333 ",
        ),
        (SEPARATE, DEPLOY_STACK_ENV, SEPARATE["prod"], "accounts.prod in org-standards.json is"),
    ],
)
def test_accounts_the_deploy_stack_or_sts_disagree_with_are_refused(
    accounts: dict[str, str], environ: dict[str, str], build: str, words: str
) -> None:
    with pytest.raises(deploy_config.DeployConfigError, match=words) as caught:
        deploy_config.target_accounts(accounts, build, environ)
    assert "\n" not in str(caught.value)


def test_cli_refuses_a_separate_account_that_is_the_build_account(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The build account is the one STS says the deploy build runs in (moto's here)."""
    same = {"staging": BUILD_ACCOUNT, "prod": SEPARATE["prod"]}
    for name, value in (
        ENV.items() | {"KMS_KEY_ARN": KMS, "STAGING_ACCOUNT_ID": BUILD_ACCOUNT}.items()
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROD_ACCOUNT_ID", SEPARATE["prod"])
    monkeypatch.setenv("MODEL_PACKAGE_ARN", register(registry, "Approved"))
    monkeypatch.setattr(deploy_config, "monitor_image_uri", lambda region: "monitor-image")
    monkeypatch.setattr(
        deploy_config, "load_settings", lambda: load_settings(ENV, Standards(accounts=same))
    )
    assert deploy_config.main(["--output-dir", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: accounts.staging in org-standards.json is {BUILD_ACCOUNT}")
    assert not (tmp_path / "staging-config.json").exists()


def test_the_staging_test_invokes_as_the_staging_accounts_role() -> None:
    role = f"arn:aws:iam::{SEPARATE['staging']}:role/churn-invoke-staging"
    with mock_aws():
        caller = endpoint_test.session_as(role).client("sts").get_caller_identity()
        assert caller["Account"] == SEPARATE["staging"]
        assert caller["Arn"].endswith(":assumed-role/churn-invoke-staging/staging-endpoint-test")
        own = endpoint_test.session_as(None).client("sts").get_caller_identity()
        assert own["Account"] == BUILD_ACCOUNT
