"""Deploy configuration of a serverless endpoint, built against a loopback registry (moto).

The stage stack's model and endpoint configuration are resolved with each stage's parameters
(``pipelines/endpoint_requests.py``, as CloudFormation resolves them) and sent to the registry:
botocore validates each request against the SageMaker service model before moto stores it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deploy_setup import KMS, project_settings, register, write, written_parameters

from pipelines import deploy_config, endpoint_requests
from pipelines.settings import Standards

pytestmark = pytest.mark.usefixtures("fake_aws")


def stack_requests(output: Path, stage: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The CreateModel and CreateEndpointConfig requests of one stage's stack, resolved as
    CloudFormation resolves them and typed by SageMaker's service model."""
    template = deploy_config.load_template(output / "endpoint.yaml")
    stack = endpoint_requests.Resolver(template, written_parameters(output, stage))
    config = endpoint_requests.validate(
        "CreateEndpointConfig",
        {"EndpointConfigName": f"churn-{stage}", **stack.properties("EndpointConfig")},
    )
    model_name = config["ProductionVariants"][0]["ModelName"]
    model = endpoint_requests.validate(
        "CreateModel", {"ModelName": model_name, **stack.properties("Model")}
    )
    return model, config


def test_each_stage_gets_a_serverless_endpoint_config_the_service_accepts(
    tmp_path: Path, registry: Any
) -> None:
    arn = register(registry, "Approved")
    write(tmp_path, registry, arn)
    settings = {stage: written_parameters(tmp_path, stage) for stage in deploy_config.STAGES}
    for stage in deploy_config.STAGES:
        model, request = stack_requests(tmp_path, stage)
        (variant,) = request["ProductionVariants"]
        assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
        assert "DataCaptureConfig" not in request
        assert not {"VpcConfig", "EnableNetworkIsolation"} & set(model)
        if stage == deploy_config.STAGES[0]:
            registry.create_model(**model)
        registry.create_endpoint_config(**request)  # botocore validates, moto stores
        stored = registry.describe_endpoint_config(EndpointConfigName=f"churn-{stage}")
        serverless = stored["ProductionVariants"][0]["ServerlessConfig"]
        assert serverless["MemorySizeInMB"] == int(settings[stage]["MemorySizeInMB"])
        assert serverless["MaxConcurrency"] == int(settings[stage]["MaxConcurrency"])
        provisioned = int(settings[stage]["ProvisionedConcurrency"])
        assert serverless.get("ProvisionedConcurrency", 0) == provisioned
    # Prod keeps a worker warm; staging runs on demand only.
    assert int(settings["prod"]["ProvisionedConcurrency"]) > 0
    assert int(settings["staging"]["ProvisionedConcurrency"]) == 0


def test_no_monitoring_or_network_parameters_reach_a_serverless_stack(
    tmp_path: Path, registry: Any
) -> None:
    """The endpoint stack asks for none, so the deploy build writes none (and no drift alarms)."""
    write(tmp_path, registry, register(registry, "Approved"))
    template = deploy_config.load_template(tmp_path / "endpoint.yaml")
    types = {resource["Type"] for resource in template["Resources"].values()}
    assert types == {
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::CloudWatch::Alarm",
    }
    for stage in deploy_config.STAGES:
        parameters = written_parameters(tmp_path, stage)
        assert not {"DataCaptureUri", "SubnetIds", "MonitorImageUri"} & set(parameters)


def test_provisioned_concurrency_above_the_maximum_is_refused_before_deploying(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    infrastructure = tmp_path / "infrastructure"
    infrastructure.mkdir()
    for name in ("endpoint.yaml", "staging-config.json", "prod-config.json"):
        (infrastructure / name).write_text((deploy_config.INFRASTRUCTURE / name).read_text())
    prod = json.loads((infrastructure / "prod-config.json").read_text())
    prod["Parameters"] |= {"MaxConcurrency": "2", "ProvisionedConcurrency": "3"}
    (infrastructure / "prod-config.json").write_text(json.dumps(prod))
    monkeypatch.setattr(deploy_config, "INFRASTRUCTURE", infrastructure)
    with pytest.raises(deploy_config.DeployConfigError, match="ProvisionedConcurrency 3 is more"):
        write(tmp_path / "out", registry, register(registry, "Approved"))


@pytest.mark.parametrize(
    "standards",
    [
        Standards(network_isolation=True),
        Standards(subnets=("subnet-0a",), security_groups=("sg-0b",)),
    ],
)
def test_standards_a_serverless_endpoint_cannot_meet_are_refused(
    tmp_path: Path, registry: Any, standards: Standards
) -> None:
    arn = register(registry, "Approved")
    with pytest.raises(deploy_config.DeployConfigError, match="serverless endpoints do not"):
        deploy_config.write_configs(
            tmp_path,
            project_settings(standards),
            (registry, None),
            KMS,
            "monitor-image",
            arn,
        )
