"""Champion and challenger on AWS: shadow and A/B deploys, promotion and discard.

Each deploy is built against a loopback registry (moto) and then applied to it as CloudFormation
would (the models, a new endpoint configuration, the endpoint moved onto it), so that the next
deploy reads what the live endpoint serves, as the deploy build does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_setup import register, write, written_parameters

from pipelines import deploy_config, endpoint_requests, rollout

pytestmark = pytest.mark.usefixtures("fake_aws")


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
    parameters = written_parameters(output, stage)
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


def deploy_new_version(tmp_path: Path, sagemaker: Any, number: int) -> tuple[str, str]:
    """Register version ``number`` Approved, write its deploy into ``tmp_path/<number>`` and
    apply it; its ARN and the deploy's one-line summary."""
    arn = register(
        sagemaker, "Approved", model_data=f"s3://artifacts/churn/run-{number}/model.tar.gz"
    )
    _, line = write(tmp_path / str(number), sagemaker, arn)
    apply(tmp_path / str(number), sagemaker, number)
    return arn, line


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
    v1, line = deploy_new_version(tmp_path, registry, 1)
    assert "prod: version 1 serves alone (nothing else serves yet to be its champion)" in line

    v2, line = deploy_new_version(tmp_path, registry, 2)
    assert "prod: version 2 as the shadow challenger of version 1 (variants change" in line
    _, requests = stage_requests(tmp_path / "2", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 1}
    assert variants_of(requests, "ShadowProductionVariants") == {CHALLENGER: 1}
    # Entering shadow adds a variant: no DeploymentConfig (guardrails need the same names).
    assert "DeploymentConfig" not in requests["UpdateEndpoint"]
    # Data capture covers the endpoint, the shadow's answers included.
    assert requests["CreateEndpointConfig"]["DataCaptureConfig"]["EnableCapture"] is True
    parameters = written_parameters(tmp_path / "2", "prod")
    assert (parameters["ModelPackageArn"], parameters["ChallengerPackageArn"]) == (v1, v2)
    # Monitoring compares live inputs with the baseline of the champion that answers them.
    assert parameters["ModelDataUri"] == "s3://artifacts/churn/run-1/model.tar.gz"

    # A newer challenger replaces the old one: same variants, so a guarded update.
    v3, line = deploy_new_version(tmp_path, registry, 3)
    assert "prod: version 3 as the shadow challenger of version 1;" in line + ";"
    stack, requests = stage_requests(tmp_path / "3", "prod")
    assert requests["UpdateEndpoint"]["DeploymentConfig"]["AutoRollbackConfiguration"]
    assert stack.properties("ChallengerModel")["Containers"] == [{"ModelPackageName": v3}]

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
    v1, _ = deploy_new_version(tmp_path, registry, 1)
    _, line = deploy_new_version(tmp_path, registry, 2)
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
    deploy_new_version(tmp_path, registry, 1)
    v2, _ = deploy_new_version(tmp_path, registry, 2)
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
    # Only the A/B settings are undone afterwards: monkeypatch.undo() would also undo fake_aws,
    # restoring the build's own AWS settings (credentials, endpoint) in the middle of the test.
    with monkeypatch.context() as ab:
        with_deployment(ab, Mode="ab", ChallengerPercent=10)
        deploy_new_version(tmp_path, registry, 1)
        deploy_new_version(tmp_path, registry, 2)
    _, line = deploy_new_version(tmp_path, registry, 3)
    assert "prod: version 3 serves alone (variants change" in line
    _, requests = stage_requests(tmp_path / "3", "prod")
    assert variants_of(requests, "ProductionVariants") == {CHAMPION: 1}
