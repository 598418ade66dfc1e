"""The data-drift alarms the deploy build writes: do they fire, for every feature, and stay fired?

The alarms come from the deploy build's own output (``deploy_config.write_configs`` against moto's
registry), are created in moto's CloudWatch through boto3 (botocore validates each PutMetricAlarm
request), and fed the metrics Model Monitor publishes after a run: one
``feature_baseline_drift_<feature>`` datapoint per feature, in ``aws/sagemaker/Endpoints/
data-metrics`` with the Endpoint and MonitoringSchedule dimensions. The drift values are the
two-sample Kolmogorov-Smirnov distance (0..1) between the training data and a batch, standing in
for the distance the Model Monitor container computes; the container itself does not run here.
The alarms are then evaluated with CloudWatch's rules (``cloudwatch_rules``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.validate import ParamValidator
from cloudwatch_rules import composite_state, evaluate, period_values
from moto import mock_aws
from moto.events.models import EventPattern
from scipy import stats

from pipelines import deploy_config, drift_alarms
from pipelines.settings import Standards, load_settings

pytestmark = pytest.mark.usefixtures("fake_aws")
PROJECT = "churn"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ENV = {
    "SAGEMAKER_PROJECT_NAME": PROJECT,
    "SAGEMAKER_PROJECT_ID": "p-1",
    "ARTIFACT_BUCKET": "artifacts",
    "AWS_REGION": REGION,
    "SAGEMAKER_PIPELINE_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/pipeline",
}
HOUR = timedelta(hours=1)
# The package's constraints.json: Model Monitor's drift comparison at 0.1 for every feature.
CONSTRAINTS = {
    "version": 0.0,
    "features": [
        {"name": name, "inferred_type": "Fractional"} for name in deploy_config.features()
    ],
    "monitoring_config": {
        "emit_metrics": "Enabled",
        "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1},
    },
}


@pytest.fixture(scope="module")
def deploy_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the deploy build writes for an approved package with a baseline."""
    output = tmp_path_factory.mktemp("deploy")
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=PROJECT)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(
            Bucket="artifacts",
            Key="churn/executions/run-1/baseline/c.json",
            Body=json.dumps(CONSTRAINTS).encode(),
        )
        prefix = "s3://artifacts/churn/executions/run-1/baseline"
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=PROJECT,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": "img"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            DriftCheckBaselines={
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"{prefix}/s.json"},
                    "Constraints": {"ContentType": "application/json", "S3Uri": f"{prefix}/c.json"},
                }
            },
        )["ModelPackageArn"]
        deploy_config.write_configs(
            output,
            load_settings(ENV, standards=Standards()),
            (sagemaker, s3),
            f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k",
            "monitor-image",
            arn,
        )
    return output


def prod(deploy_output: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    template = deploy_config.load_template(deploy_output / "endpoint.yaml")
    parameters = json.loads((deploy_output / "prod-config.json").read_text())["Parameters"]
    return template, parameters


def resolve(value: Any, template: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """CloudFormation's Ref, Fn::Sub and Fn::GetAtt, for the attributes the alarms use."""
    if isinstance(value, list):
        return [resolve(item, template, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return parameters[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        for name, parameter in parameters.items():
            text = text.replace("${" + name + "}", str(parameter))
        return text
    if set(value) == {"Fn::GetAtt"}:
        resource, attribute = value["Fn::GetAtt"]
        properties = template["Resources"][resource]["Properties"]
        if attribute == "Arn":  # an alarm's ARN
            name = resolve(properties["AlarmName"], template, parameters)
            return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        return resolve(properties[attribute], template, parameters)
    return {key: resolve(item, template, parameters) for key, item in value.items()}


def metric_alarm_requests(deploy_output: Path) -> list[dict[str, Any]]:
    template, parameters = prod(deploy_output)
    requests = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm" or resource.get("Condition") != "IsProd":
            continue
        request = resolve(resource["Properties"], template, parameters)
        request["Threshold"] = float(request["Threshold"])
        requests.append(request)
    return requests


def publish_run(cloudwatch: Any, distances: dict[str, float], at: datetime) -> None:
    """What a Model Monitor run publishes: one drift datapoint per feature."""
    dimensions = [
        {"Name": "Endpoint", "Value": f"{PROJECT}-prod"},
        {"Name": "MonitoringSchedule", "Value": f"{PROJECT}-data-quality"},
    ]
    data = [
        {
            "MetricName": drift_alarms.METRIC_PREFIX + feature,
            "Dimensions": dimensions,
            "Timestamp": at,
            "Value": distance,
        }
        for feature, distance in distances.items()
    ]
    cloudwatch.put_metric_data(Namespace=drift_alarms.NAMESPACE, MetricData=data)


def distances(training: pd.DataFrame, batch: pd.DataFrame) -> dict[str, float]:
    return {
        name: float(stats.ks_2samp(training[name], batch[name]).statistic)
        for name in training.columns
    }


def test_a_drift_in_any_feature_fires_its_alarm_and_the_retraining_alarm(
    deploy_output: Path, clean_frame: pd.DataFrame
) -> None:
    features = deploy_config.features()
    training = clean_frame[features]
    drifted_feature = features[-1]  # not the first: the old single alarm watched that one only
    clean = training.sample(200, replace=True, random_state=0)
    drifted = training.sample(200, replace=True, random_state=1)
    drifted[drifted_feature] = drifted[drifted_feature] + 1.5 * training[drifted_feature].std()
    template, parameters = prod(deploy_output)
    composite = resolve(template["Resources"]["DriftAlarm"]["Properties"], template, parameters)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 8 * HOUR

    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        silent = drift_alarms.silence_alarm_name(PROJECT)
        for request in metric_alarm_requests(deploy_output):
            if request["MetricName"].startswith(drift_alarms.METRIC_PREFIX):
                cloudwatch.put_metric_alarm(**request)  # botocore validates the request
        shape = cloudwatch.meta.service_model.operation_model("PutCompositeAlarm").input_shape
        report = ParamValidator().validate(composite, shape)
        assert not report.has_errors(), report.generate_report()
        alarms = [
            alarm
            for alarm in cloudwatch.describe_alarms()["MetricAlarms"]
            if alarm["AlarmName"] != silent
        ]
        # Every feature of the data contract has its alarm, and the composite names each one.
        assert sorted(a["MetricName"] for a in alarms) == sorted(
            drift_alarms.METRIC_PREFIX + f for f in features
        )
        states = {alarm["AlarmName"]: "INSUFFICIENT_DATA" for alarm in alarms}

        def hour(offset: int, batch: pd.DataFrame | None) -> str:
            """A monitoring run (or an hour without one), then every alarm evaluated."""
            at = start + offset * HOUR
            if batch is not None:
                publish_run(cloudwatch, distances(training, batch), at + timedelta(minutes=20))
            for alarm in alarms:
                values = period_values(cloudwatch, alarm, at + HOUR)
                states[alarm["AlarmName"]] = evaluate(alarm, values, states[alarm["AlarmName"]])
            return composite_state(composite["AlarmRule"], states)

        drifted_alarm = drift_alarms.feature_alarm_name(PROJECT, drifted_feature)
        assert hour(0, clean) == "OK"
        assert set(states.values()) == {"OK"}
        assert hour(1, drifted) == "ALARM"
        assert [name for name, state in states.items() if state == "ALARM"] == [drifted_alarm]
        # Hours without traffic publish nothing: the drift stays reported until data recovers.
        assert hour(2, None) == "ALARM"
        assert hour(3, None) == "ALARM"
        assert hour(4, None) == "ALARM"
        assert hour(5, clean) == "OK"

    # The composite's state change is what the retraining rule listens for.
    retrain = resolve(
        template["Resources"]["RetrainOnAlarmRule"]["Properties"]["EventPattern"],
        template,
        parameters,
    )
    composite_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{composite['AlarmName']}"
    event = {
        "version": "0",
        "id": "c4c1c1c9-0000-0000-0000-000000000000",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": start.isoformat(),
        "region": REGION,
        "resources": [composite_arn],
        "detail": {"alarmName": composite["AlarmName"], "state": {"value": "ALARM"}},
    }
    assert EventPattern.load(json.dumps(retrain)).matches_event(event)
    event["detail"]["state"] = {"value": "OK"}
    assert not EventPattern.load(json.dumps(retrain)).matches_event(event)


def test_the_default_threshold_stays_above_the_noise_of_clean_hourly_batches(
    clean_frame: pd.DataFrame,
) -> None:
    """20 clean 200-row batches: no feature's distance reaches 0.2; 0.1 would fire on some."""
    training = clean_frame[deploy_config.features()]
    threshold = float(
        json.loads((deploy_config.INFRASTRUCTURE / "prod-config.json").read_text())["Parameters"][
            "DriftThreshold"
        ]
    )
    worst = [
        max(distances(training, training.sample(200, replace=True, random_state=seed)).values())
        for seed in range(20)
    ]
    assert max(worst) < threshold
    assert max(worst) > 0.1


def test_a_day_without_drift_data_fires_the_silence_alarm(deploy_output: Path) -> None:
    """Monitoring that publishes nothing cannot fire a drift alarm; this one says so."""
    (request,) = [
        r
        for r in metric_alarm_requests(deploy_output)
        if r["AlarmName"] == drift_alarms.silence_alarm_name(PROJECT)
    ]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 60 * HOUR
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.put_metric_alarm(**request)
        (alarm,) = cloudwatch.describe_alarms()["MetricAlarms"]
        publish_run(cloudwatch, dict.fromkeys(deploy_config.features(), 0.05), start)
        state = "INSUFFICIENT_DATA"
        states = []
        for hour in range(1, 50):
            at = start + hour * HOUR
            state = evaluate(alarm, period_values(cloudwatch, alarm, at), state)
            states.append(state)
        # OK while the last run is within the day, ALARM from the first full day without one.
        assert states[:23] == ["OK"] * 23
        assert set(states[24:]) == {"ALARM"}
        publish_run(cloudwatch, dict.fromkeys(deploy_config.features(), 0.05), start + 49 * HOUR)
        assert evaluate(alarm, period_values(cloudwatch, alarm, start + 50 * HOUR), state) == "OK"


@pytest.mark.slow
def test_the_deploy_template_passes_cfn_lint(deploy_output: Path) -> None:
    """The alarms the deploy build adds are valid against CloudFormation's resource schemas."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(deploy_output / "endpoint.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_feature_lists_the_alarms_cannot_cover_are_refused() -> None:
    with pytest.raises(drift_alarms.DriftAlarmError, match="at most 100"):
        drift_alarms.composite_rule(PROJECT, [f"f{i}" for i in range(101)])
    with pytest.raises(drift_alarms.DriftAlarmError, match="quote"):
        drift_alarms.feature_alarms(PROJECT, ['bad"name'])
    with pytest.raises(drift_alarms.DriftAlarmError, match="no features"):
        drift_alarms.composite_rule(PROJECT, [])
    with pytest.raises(drift_alarms.DriftAlarmError, match="10240"):
        drift_alarms.composite_rule(PROJECT, [f"{'x' * 120}{i}" for i in range(90)])
