"""Deploy configuration of a serverless endpoint, built against a loopback registry (moto).

The stage stack's model and endpoint configuration are resolved with each stage's parameters
(``pipelines/endpoint_requests.py``, as CloudFormation resolves them) and sent to the registry:
botocore validates each request against the SageMaker service model before moto stores it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cloudwatch_rules import evaluate
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
        assert not {"DataCaptureUri", "SubnetIds", "ModelDataUri"} & set(parameters)


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
            arn,
        )


# --- the endpoint's alarms, on the metrics SageMaker publishes for serverless endpoints ------

# The invocation metrics SageMaker publishes for a serverless endpoint: the SageMaker Developer
# Guide's "Alarms and logs for tracking metrics from serverless endpoints" (an exhaustive list:
# "any metric not listed is not published for serverless endpoints"), with each metric's valid
# statistics and whether it counts the cold start from "Monitor Amazon SageMaker AI with Amazon
# CloudWatch" (endpoint invocation metrics: namespace AWS/SageMaker, dimensions EndpointName and
# VariantName; latencies in microseconds). OverheadLatency "includes the cold start time";
# ModelSetupTime is the cold start itself; ModelLatency is the container's answer time.
PERCENTILE = "pNN"
SERVERLESS_METRICS: dict[str, tuple[frozenset[str], bool]] = {
    "Invocations": (frozenset({"Sum", "SampleCount"}), False),
    "Invocation4XXErrors": (frozenset({"Average", "Sum"}), False),
    "Invocation5XXErrors": (frozenset({"Average", "Sum"}), False),
    "ModelLatency": (
        frozenset({"Average", "Sum", "Minimum", "Maximum", "SampleCount", PERCENTILE}),
        False,
    ),
    "OverheadLatency": (
        frozenset({"Average", "Sum", "Minimum", "Maximum", "SampleCount", PERCENTILE}),
        True,
    ),
    "ModelSetupTime": (
        frozenset({"Average", "Minimum", "Maximum", "SampleCount", PERCENTILE}),
        True,
    ),
}
NAMESPACE = "AWS/SageMaker"
REQUESTS = 400  # per period: a modest, steady load


def stored_alarms(output: Path, stage: str) -> tuple[list[dict[str, Any]], str, str]:
    """The stage stack's alarms as CloudWatch stores them (moto; botocore validates the
    PutMetricAlarm requests), with the endpoint name and variant the stack gives its endpoint."""
    import boto3

    template = deploy_config.load_template(output / "endpoint.yaml")
    stack = endpoint_requests.Resolver(template, written_parameters(output, stage))
    alarms = [
        stack.properties(logical)
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    endpoint = stack.properties("Endpoint")["EndpointName"]
    (variant,) = stack.properties("EndpointConfig")["ProductionVariants"]
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    shape = cloudwatch.meta.service_model.operation_model("PutMetricAlarm").input_shape
    for alarm in alarms:
        cloudwatch.put_metric_alarm(**endpoint_requests._coerce(alarm, shape))
    names = [alarm["AlarmName"] for alarm in alarms]
    stored = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    assert len(stored) == len(alarms) == 2, names  # errors and latency
    return stored, endpoint, variant["VariantName"]


def statistic_of(alarm: dict[str, Any]) -> str:
    return str(alarm.get("Statistic") or alarm["ExtendedStatistic"])


def period_statistic(values: np.ndarray | None, statistic: str) -> float | None:
    """What CloudWatch computes for one period of per-request values (None: no request, so
    SageMaker published no datapoint)."""
    if values is None:
        return None
    if statistic == "Sum":
        return float(values.sum())
    if statistic == "Average":
        return float(values.mean())
    if statistic.startswith("p"):
        return float(np.percentile(values, float(statistic[1:])))
    raise ValueError(f"statistic {statistic} is not modelled")


def traffic(alarm: dict[str, Any], generator: np.random.Generator) -> dict[str, tuple[Any, str]]:
    """Per-request values of the alarm's metric for each evaluation period, by scenario, with
    the verdict CloudWatch must reach: failing or slow traffic fires, healthy traffic, a single
    slow period (one burst of cold starts) and no traffic at all (scaled to zero) do not."""
    periods = int(alarm["EvaluationPeriods"])
    quiet: list[np.ndarray | None] = [None] * periods
    if alarm["MetricName"] == "Invocation5XXErrors":  # 1 per failed request, 0 otherwise
        failing = np.zeros(REQUESTS)
        failing[: max(1, int(np.ceil(float(alarm["Threshold"]))))] = 1.0
        return {
            "failing": ([failing] * periods, "ALARM"),
            "healthy": ([np.zeros(REQUESTS)] * periods, "OK"),
            "no traffic": (quiet, "OK"),
        }
    limit = float(alarm["Threshold"])  # ModelLatency: microseconds
    slow = generator.normal(limit * 1.5, limit * 0.1, REQUESTS)
    fast = generator.normal(limit * 0.3, limit * 0.05, REQUESTS)
    burst = [fast] * periods
    burst[-1] = slow
    gap: list[np.ndarray | None] = [slow] * periods
    gap[0] = None
    return {
        "slow": ([slow] * periods, "ALARM"),
        "slow, one period without requests": (gap, "ALARM"),
        "healthy": ([fast] * periods, "OK"),
        "one slow period": (burst, "OK"),
        "no traffic": (quiet, "OK"),
    }


def wrong_verdicts(alarm: dict[str, Any], scenarios: dict[str, tuple[Any, str]]) -> list[str]:
    """The scenarios on which CloudWatch's rules give the alarm the wrong verdict."""
    wrong = []
    for scenario, (periods, verdict) in scenarios.items():
        values = [period_statistic(p, statistic_of(alarm)) for p in periods]
        if evaluate(alarm, values, "OK") != verdict:
            wrong.append(scenario)
    return wrong


def test_serverless_alarms_fire_on_failing_or_slow_traffic_only(
    tmp_path: Path, registry: Any
) -> None:
    """Each stage's error and latency alarms watch metrics SageMaker publishes for serverless
    endpoints, on this endpoint's variant, with a valid statistic; evaluated with CloudWatch's
    rules they fire on failing or slow traffic and stay OK on healthy traffic, on one slow period
    and on no traffic (a serverless endpoint scales to zero; a quiet night is not an outage)."""
    write(tmp_path, registry, register(registry, "Approved"))
    for stage in deploy_config.STAGES:
        alarms, endpoint, variant = stored_alarms(tmp_path, stage)
        for alarm in alarms:
            name = alarm["AlarmName"]
            assert alarm["Namespace"] == NAMESPACE, name
            assert alarm["MetricName"] in SERVERLESS_METRICS, name
            valid, _ = SERVERLESS_METRICS[alarm["MetricName"]]
            statistic = statistic_of(alarm)
            assert statistic in valid or (statistic.startswith("p") and PERCENTILE in valid), name
            dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
            assert dimensions == {"EndpointName": endpoint, "VariantName": variant}, name
            scenarios = traffic(alarm, np.random.default_rng(0))
            assert wrong_verdicts(alarm, scenarios) == [], name
        assert {alarm["MetricName"] for alarm in alarms} == {"Invocation5XXErrors", "ModelLatency"}


# Changes to a real alarm, each with the scenario that must then get the wrong verdict.
MISCONFIGURATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("Invocation5XXErrors", {"ComparisonOperator": "LessThanThreshold"}, "failing"),
    ("Invocation5XXErrors", {"TreatMissingData": "breaching"}, "no traffic"),
    ("ModelLatency", {"DatapointsToAlarm": 1}, "one slow period"),
    ("ModelLatency", {"Threshold": 2e9}, "slow"),
    ("ModelLatency", {"ComparisonOperator": "LessThanThreshold"}, "healthy"),
    ("ModelLatency", {"TreatMissingData": "missing"}, "no traffic"),
]


def test_the_verdicts_catch_a_misconfigured_alarm(tmp_path: Path, registry: Any) -> None:
    """The scenarios are not vacuous: each change to a real alarm gets a wrong verdict."""
    write(tmp_path, registry, register(registry, "Approved"))
    alarms = {alarm["MetricName"]: alarm for alarm in stored_alarms(tmp_path, "prod")[0]}
    for metric, change, caught in MISCONFIGURATIONS:
        scenarios = traffic(alarms[metric], np.random.default_rng(0))
        assert caught in wrong_verdicts(alarms[metric] | change, scenarios), (metric, change)


def test_an_alarm_that_claims_cold_starts_watches_a_metric_that_counts_them(
    tmp_path: Path, registry: Any
) -> None:
    """ModelLatency leaves the cold start out (it shows in OverheadLatency and ModelSetupTime):
    an alarm on it must not say it includes them."""
    write(tmp_path, registry, register(registry, "Approved"))
    for stage in deploy_config.STAGES:
        for alarm in stored_alarms(tmp_path, stage)[0]:
            _, counts_cold_starts = SERVERLESS_METRICS[alarm["MetricName"]]
            claims = re.search(r"cold starts? included", alarm.get("AlarmDescription", ""))
            assert counts_cold_starts or not claims, alarm["AlarmName"]
