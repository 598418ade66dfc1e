"""Guarded rollouts: the deploy settings, the endpoint's DeploymentConfig and its rollback alarms.

Each stage's endpoint template is resolved with the parameters the deploy build writes, and the
requests CloudFormation would make are validated against botocore's SageMaker service model. The
rollback alarms are stored in moto's CloudWatch (so PutMetricAlarm's model checks them too) and
evaluated with CloudWatch's rules (``cloudwatch_rules``) on traffic whose verdict is known.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import yaml
from cloudwatch_rules import evaluate
from deploy_setup import DEFINITIONS, KMS, package, project_settings
from moto import mock_aws

from pipelines import deploy_config, endpoint_requests, rollout

pytestmark = pytest.mark.usefixtures("fake_aws")
WHERE = "prod-config.json Deployment"


def stage_parameters(
    stage: str, deployment: rollout.Deployment, guarded: bool = True
) -> dict[str, str]:
    challenger = None if deployment.mode == "replace" else package(2)
    plan = deploy_config.StagePlan(package(1), challenger, deployment, guarded)
    config = deploy_config.stage_config(stage, project_settings(), plan, KMS, DEFINITIONS)
    return dict(config["Parameters"])


def template() -> dict[str, Any]:
    return deploy_config.endpoint_template(deploy_config.features())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"Rollout": "CANARY", "CanaryInstances": 1, "CanaryPercent": 10},
            "CanaryInstances and CanaryPercent both given",
        ),
        ({"Rollout": "LINEAR", "CanaryPercent": 10}, "CanaryPercent applies to CANARY rollouts"),
        ({"Rollout": "ALL_AT_ONCE", "LinearStepPercent": 10}, "applies to LINEAR rollouts"),
        ({"Rollout": "CANARY"}, "a CANARY rollout needs CanaryInstances or CanaryPercent"),
        ({"Rollout": "CANARY", "CanaryInstances": 2}, "SageMaker's canary is at most 50%"),
        ({"Rollout": "CANARY", "CanaryPercent": 60}, "SageMaker's canary is at most 50%"),
        ({"Rollout": "CANARY", "CanaryInstances": 0}, "SageMaker's minimum is 1"),
        ({"Rollout": "LINEAR", "LinearStepPercent": 5}, "linear step is 10% to 50%"),
        ({"Rollout": "BLUE"}, "Rollout is 'BLUE', not one of ALL_AT_ONCE, CANARY, LINEAR"),
        (
            {"Rollout": "ALL_AT_ONCE", "WaitIntervalInSeconds": 3601},
            "WaitIntervalInSeconds is 3601, SageMaker accepts 0 to 3600",
        ),
        (
            {"Rollout": "ALL_AT_ONCE", "BakingPeriodInSeconds": -1},
            "SageMaker accepts 0 to 3600 (TerminationWaitInSeconds)",
        ),
        (
            {"Rollout": "LINEAR", "LinearStepPercent": 10, "WaitIntervalInSeconds": 3600},
            "longer than SageMaker's 28800 s limit",
        ),
        ({"Mode": "canary"}, "Mode is 'canary', not one of replace, shadow, ab"),
        ({"ChallengerPercent": 20}, "ChallengerPercent applies to Mode ab, not replace"),
        ({"Mode": "ab", "ChallengerPercent": 100}, "ChallengerPercent is 100, not 1 to 99"),
        ({"ErrorRate": 5}, "ErrorRate is 5, a fraction between 0 and 1"),
        ({"Canary": 1}, "unknown setting 'Canary'"),
        ({"WaitIntervalInSeconds": "600"}, "WaitIntervalInSeconds must be a whole number"),
    ],
)
def test_settings_sagemaker_would_reject_are_refused_in_one_line(
    settings: dict[str, Any], message: str
) -> None:
    base = {"Rollout": "CANARY", "CanaryInstances": 1} if "Rollout" not in settings else {}
    with pytest.raises(rollout.RolloutError) as refused:
        rollout.read_deployment(WHERE, base | settings, instances=2)
    text = str(refused.value)
    assert message in text
    assert text.startswith(WHERE)
    assert "\n" not in text


@pytest.mark.parametrize(
    "settings",
    [{"Rollout": "CANARY", "CanaryPercent": 50}, {"Rollout": "LINEAR", "LinearStepPercent": 50}],
)
def test_a_partial_rollout_on_one_instance_is_refused_and_says_what_to_use(
    settings: dict[str, Any],
) -> None:
    with pytest.raises(rollout.RolloutError, match="use ALL_AT_ONCE or EndpointInstanceCount 2"):
        rollout.read_deployment(WHERE, settings, instances=1)


@pytest.mark.parametrize(
    "settings",
    [
        {"Rollout": "ALL_AT_ONCE", "BakingPeriodInSeconds": 0},
        {"Rollout": "CANARY", "CanaryInstances": 1, "WaitIntervalInSeconds": 0},
        {"Rollout": "CANARY", "CanaryPercent": 25},
        {"Rollout": "LINEAR", "LinearStepInstances": 1, "WaitIntervalInSeconds": 3600},
        {"Rollout": "LINEAR", "LinearStepPercent": 10, "WaitIntervalInSeconds": 2400},
    ],
)
@pytest.mark.parametrize("mode", rollout.MODES)
def test_accepted_settings_build_requests_sagemaker_accepts(
    settings: dict[str, Any], mode: str
) -> None:
    """Resolved with the stage's parameters, the stack's calls pass SageMaker's service model,
    and the traffic routing is the one the settings ask for."""
    extra = {"ChallengerPercent": 10} if mode == "ab" else {}
    deployment = rollout.read_deployment(WHERE, settings | {"Mode": mode} | extra, instances=2)
    requests = endpoint_requests.endpoint_requests(template(), stage_parameters("prod", deployment))
    config = requests["UpdateEndpoint"]["DeploymentConfig"]
    assert requests["CreateEndpoint"]["DeploymentConfig"] == config
    policy = config["BlueGreenUpdatePolicy"]
    routing = policy["TrafficRoutingConfiguration"]
    assert routing["Type"] == settings["Rollout"]
    size = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}.get(settings["Rollout"])
    assert {key for key in routing if key.endswith("Size")} == ({size} if size else set())
    if size:
        key = next(k for k in settings if k.startswith(("Canary", "LinearStep")))
        unit = "INSTANCE_COUNT" if key.endswith("Instances") else "CAPACITY_PERCENT"
        assert routing[size] == {"Type": unit, "Value": settings[key]}
    steps = deployment.steps()
    waiting = (steps - 1) * routing["WaitIntervalInSeconds"] + policy["TerminationWaitInSeconds"]
    assert policy["MaximumExecutionTimeoutInSeconds"] > waiting


def test_the_request_check_catches_what_the_settings_check_would_miss() -> None:
    """Bounds botocore's ParamValidator leaves to the service (maximums) are checked too."""
    deployment = rollout.read_deployment(WHERE, {"Rollout": "ALL_AT_ONCE"}, instances=2)
    parameters = stage_parameters("prod", deployment) | {"RolloutWaitSeconds": "4000"}
    with pytest.raises(endpoint_requests.RequestError, match="WaitIntervalInSeconds is 4000"):
        endpoint_requests.endpoint_requests(template(), parameters)
    parameters = stage_parameters("prod", deployment) | {"RolloutTimeoutSeconds": "60"}
    with pytest.raises(endpoint_requests.RequestError, match="MaximumExecutionTimeout"):
        endpoint_requests.endpoint_requests(template(), parameters)


@pytest.mark.parametrize("stage", deploy_config.STAGES)
def test_every_stage_is_guarded_by_the_same_mechanism(stage: str) -> None:
    """Staging and prod: blue/green with rollback on the same alarms, from their own settings."""
    deployment = deploy_config.stage_deployment(stage)
    requests = endpoint_requests.endpoint_requests(template(), stage_parameters(stage, deployment))
    config = requests["UpdateEndpoint"]["DeploymentConfig"]
    assert set(config) == {"BlueGreenUpdatePolicy", "AutoRollbackConfiguration"}
    names = [alarm["AlarmName"] for alarm in config["AutoRollbackConfiguration"]["Alarms"]]
    champion = rollout.CHAMPION
    assert names == [f"churn-{stage}-{champion}-5xx", f"churn-{stage}-{champion}-latency-p99"]


def test_an_update_that_changes_the_variants_goes_without_deployment_config() -> None:
    deployment = rollout.read_deployment(WHERE, {"Mode": "shadow"} | {"Rollout": "ALL_AT_ONCE"}, 2)
    requests = endpoint_requests.endpoint_requests(
        template(), stage_parameters("prod", deployment, guarded=False)
    )
    assert "DeploymentConfig" not in requests["UpdateEndpoint"]


# --- the rollback alarms, on the metrics SageMaker publishes ---------------------------------

# What SageMaker publishes for an endpoint's invocations (Monitoring SageMaker with CloudWatch,
# "Endpoint invocation metrics"): namespace, dimensions, and which statistic is meaningful.
INVOCATION_METRICS = {"Invocation5XXErrors": "Average", "ModelLatency": "p99"}
SERVING = {
    "replace": {rollout.CHAMPION},
    "shadow": {rollout.CHAMPION},  # the shadow answers no one: its alarms would guard nothing
    "ab": {rollout.CHAMPION, rollout.CHALLENGER},
}


def minute_values(per_minute: list[np.ndarray], statistic: str) -> list[float | None]:
    if statistic == "Average":
        return [float(values.mean()) for values in per_minute]
    return [float(np.percentile(values, 99)) for values in per_minute]


@pytest.mark.parametrize("mode", rollout.MODES)
def test_rollback_alarms_fire_on_a_failing_or_slow_serving_variant_only(mode: str) -> None:
    """Each serving variant has an error-rate and a p99-latency alarm on its own metrics; they
    fire on traffic that breaks the configured limits and stay OK on healthy traffic."""
    extra = {"ChallengerPercent": 10} if mode == "ab" else {}
    deployment = rollout.read_deployment(
        WHERE, {"Mode": mode, "Rollout": "CANARY", "CanaryInstances": 1} | extra, instances=2
    )
    parameters = stage_parameters("prod", deployment)
    built = template()
    alarms = endpoint_requests.rollback_alarms(built, parameters)
    endpoint = endpoint_requests.Resolver(built, parameters).properties("Endpoint")["EndpointName"]
    covered: set[tuple[str, str]] = set()
    generator = np.random.default_rng(0)
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        for alarm in alarms:
            cloudwatch.put_metric_alarm(
                **endpoint_requests._coerce(
                    alarm,
                    cloudwatch.meta.service_model.operation_model("PutMetricAlarm").input_shape,
                )
            )
        stored = cloudwatch.describe_alarms()["MetricAlarms"]
    assert len(stored) == len(alarms)
    for alarm in stored:
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert set(dimensions) == {"EndpointName", "VariantName"}
        assert dimensions["EndpointName"] == endpoint
        statistic = alarm.get("Statistic") or alarm["ExtendedStatistic"]
        assert INVOCATION_METRICS[alarm["MetricName"]] == statistic
        covered.add((alarm["MetricName"], dimensions["VariantName"]))
        if alarm["MetricName"] == "Invocation5XXErrors":
            limit = deployment.error_rate
            bad = [(generator.random(1000) < limit * 3).astype(float) for _ in range(3)]
            good = [(generator.random(1000) < limit / 5).astype(float) for _ in range(3)]
        else:
            limit_us = deployment.latency_p99_ms * 1000
            bad = [generator.normal(limit_us * 1.5, limit_us * 0.1, 1000) for _ in range(3)]
            good = [generator.normal(limit_us * 0.3, limit_us * 0.05, 1000) for _ in range(3)]
        assert evaluate(alarm, minute_values(bad, statistic), "OK") == "ALARM", alarm["AlarmName"]
        assert evaluate(alarm, minute_values(good, statistic), "OK") == "OK", alarm["AlarmName"]
        # No traffic (a quiet night) never rolls an update back.
        assert evaluate(alarm, [None, None, None], "OK") == "OK"
    assert covered == {(metric, v) for metric in INVOCATION_METRICS for v in SERVING[mode]}


def test_settings_without_deployment_section_fall_back_to_a_canary() -> None:
    """A stage config without the Deployment section gets SageMaker's canary, which one instance
    cannot take: the refusal names the fix."""
    config = deploy_config.read_stage_settings("staging")
    config.pop("Deployment")
    config["Parameters"]["EndpointInstanceCount"] = "1"
    with pytest.raises(rollout.RolloutError, match="needs CanaryInstances or CanaryPercent"):
        deploy_config.stage_deployment("staging", config)
    config["Deployment"] = {"CanaryInstances": 1}
    with pytest.raises(rollout.RolloutError, match="use ALL_AT_ONCE or EndpointInstanceCount 2"):
        deploy_config.stage_deployment("staging", config)
    config["Parameters"]["EndpointInstanceCount"] = "4"
    assert dataclasses.asdict(deploy_config.stage_deployment("staging", config))["step"] == {
        "unit": "INSTANCE_COUNT",
        "value": 1,
    }


@pytest.mark.slow  # one cfn-lint run, about 10 s
def test_the_built_template_lints_clean_with_every_stage_and_mode_parameters(
    tmp_path: Path,
) -> None:
    """cfn-lint resolves the conditions and checks each parameter set's values (ranges, allowed
    values, patterns) against the template the deploy build writes; a set SageMaker's ranges
    refuse is reported, so the check is not vacuous."""
    built = tmp_path / "endpoint.yaml"
    built.write_text(yaml.safe_dump(template(), sort_keys=False, width=1000))
    files = []
    for stage in deploy_config.STAGES:
        for mode in rollout.MODES:
            settings = deploy_config.read_stage_settings(stage).get("Deployment", {})
            extra = {"ChallengerPercent": 10} if mode == "ab" else {}
            instances = int(
                deploy_config.read_stage_settings(stage)["Parameters"]["EndpointInstanceCount"]
            )
            deployment = rollout.read_deployment(
                WHERE, settings | {"Mode": mode} | extra, instances
            )
            for guarded in (True, False):
                parameters = stage_parameters(stage, deployment, guarded)
                files.append(tmp_path / f"{stage}-{mode}-{guarded}.json")
                files[-1].write_text(json.dumps(cfn_lint_parameters(parameters)))
    broken = stage_parameters("prod", deployment) | {"RolloutWaitSeconds": "5000"}
    (tmp_path / "broken.json").write_text(json.dumps(cfn_lint_parameters(broken)))
    result = subprocess.run(
        [
            tool("cfn-lint"),
            str(built),
            "--parameter-files",
            *map(str, files),
            str(tmp_path / "broken.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [line for line in result.stdout.splitlines() if re.match(r"^[EW]\d{4} ", line)]
    assert findings, result.stdout + result.stderr
    assert all("broken.json" in line and "RolloutWaitSeconds" in line for line in findings), (
        result.stdout
    )


def cfn_lint_parameters(parameters: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()]


def tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))
