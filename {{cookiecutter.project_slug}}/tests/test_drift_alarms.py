"""The data-drift alarms the deploy build deploys: does a drift in any feature fire the drift
alarm, and stay fired? Does its state change start retraining? Does silence fire its own alarm?

The alarms come from the deploy build's own output (``deploy_config.write_configs`` against moto's
registry, for this project's inference mode), are created in moto's CloudWatch through boto3
(botocore validates each PutMetricAlarm request), and fed what the monitoring job publishes after
a run: the project's own monitor (``<package>/monitor.py``) judges a batch against the trained
model's baseline and puts its datapoints (per feature ``Drift``, per run ``DriftedFeatures``) into
moto's CloudWatch (``monitor.metric_data``, ``monitor.publish_metrics``; in one test the whole
job, reading captures from moto's S3). The alarms are then evaluated with CloudWatch's rules
(``cloudwatch_rules``). The retraining rule is created in moto's EventBridge, which matches its
pattern against the drift alarm's state change.
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
from cloudwatch_rules import evaluate, period_values
from deploy_setup import project_settings, register, write, written_parameters
from mlops_platform.capture import CaptureWriter
from moto import mock_aws

# Straight imports: isort puts them before the package's from-imports whatever its name.
import pipelines.deploy_config as deploy_config
import pipelines.drift_alarms as drift_alarms
import pipelines.endpoint_requests as endpoint_requests
from {{ cookiecutter.package_name }} import monitor
from {{ cookiecutter.package_name }}.params import load_params

pytestmark = pytest.mark.usefixtures("fake_aws")
PROJECT = "churn"
ACCOUNT = "123456789012"
REGION = "us-east-1"
HOUR = timedelta(hours=1)
SETTINGS = project_settings()
NAMESPACE = drift_alarms.namespace(PROJECT)
LIMITS = monitor.Thresholds(**load_params(deploy_config.PARAMS, "monitor"))
# Hours without a monitoring run: an endpoint without traffic, or the day between two daily
# batch runs (the batch schedule's default, cron(0 2 * * ? *)).
QUIET_HOURS = 23
DRIFT_ALARM = f"{PROJECT}-drifted-features"
SILENCE_ALARM = f"{PROJECT}-drift-monitoring-silent"


@pytest.fixture(scope="module")
def deploy_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the deploy build writes for an approved package with a baseline."""
    output = tmp_path_factory.mktemp("deploy")
    with pytest.MonkeyPatch.context() as environment, mock_aws():
        # a batch deploy builds the batch pipeline's definition, which needs a region
        environment.setenv("AWS_DEFAULT_REGION", REGION)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=PROJECT)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="artifacts")
        # its constraints.json: Model Monitor's drift comparison at 0.1 for every feature
        write(output, sagemaker, register(sagemaker, "Approved"))
    return output


class Stack(endpoint_requests.Resolver):
    """The prod stack as CloudFormation resolves it; an alarm's Arn attribute is its ARN."""

    def _getatt(self, logical: str, attribute: str) -> Any:
        resource = self.template["Resources"][logical]
        if attribute == "Arn" and resource["Type"].startswith("AWS::CloudWatch::"):
            name = self.resolve(resource["Properties"]["AlarmName"])
            return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        return super()._getatt(logical, attribute)


def prod(deploy_output: Path) -> Stack:
    template = deploy_config.load_template(deploy_output / "endpoint.yaml")
    return Stack(template, written_parameters(deploy_output, "prod"))


def metric_alarm_requests(deploy_output: Path) -> list[dict[str, Any]]:
    stack = prod(deploy_output)
    requests = []
    for logical, resource in stack.template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm" or resource.get("Condition") != "IsProd":
            continue
        request = stack.properties(logical)
        request["Threshold"] = float(request["Threshold"])
        requests.append(request)
    return requests


@pytest.fixture(scope="module")
def baseline(model_dir: Path) -> dict[str, Any]:
    """The trained model's baseline, what the monitoring job reads from its model.tar.gz."""
    return dict(json.loads((model_dir / "baseline.json").read_text()))


def judged(baseline: dict[str, Any], batch: pd.DataFrame) -> dict[str, Any]:
    """The monitor's report on a batch, with the project's thresholds (params.yaml)."""
    return monitor.monitor(baseline, batch, LIMITS)


def publish_run(cloudwatch: Any, result: dict[str, Any], at: datetime) -> None:
    """What a monitoring run publishes: the monitor's datapoints, one ``Drift`` per feature."""
    monitor.publish_metrics(cloudwatch, NAMESPACE, monitor.metric_data(result, "prod", at))


def drift_alarm_request(deploy_output: Path) -> dict[str, Any]:
    """The drift alarm (on how many features drifted), not the silence alarm on the same metric."""
    (request,) = [
        request
        for request in metric_alarm_requests(deploy_output)
        if request["AlarmName"] == DRIFT_ALARM
    ]
    return request


def published_drift(cloudwatch: Any, at: datetime) -> dict[str, float]:
    """Each feature's ``Drift`` as published for the hour before ``at``: what names the drifted
    features (with the job's report)."""
    values = {}
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName="Drift")["Metrics"]:
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        points = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName="Drift",
            Dimensions=metric["Dimensions"],
            StartTime=at - HOUR,
            EndTime=at,
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        if points:
            values[dimensions["Feature"]] = max(p["Maximum"] for p in points)
    return values


def evaluate_all(
    cloudwatch: Any, alarms: list[dict[str, Any]], states: dict[str, str], at: datetime
) -> None:
    for alarm in alarms:
        values = period_values(cloudwatch, alarm, at)
        states[alarm["AlarmName"]] = evaluate(alarm, values, states[alarm["AlarmName"]])


# The first and the last feature: each one alone fires the one alarm over all of them.
@pytest.mark.parametrize("position", [0, -1], ids=["first feature", "last feature"])
def test_a_drift_in_any_feature_fires_the_drift_alarm_until_the_data_recovers(
    deploy_output: Path, clean_frame: pd.DataFrame, baseline: dict[str, Any], position: int
) -> None:
    features = deploy_config.features()
    training = clean_frame[features]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 60 * HOUR
    clean = training.sample(200, replace=True, random_state=0)
    drifted_feature = features[position]
    drifted = training.sample(200, replace=True, random_state=1)
    drifted[drifted_feature] = drifted[drifted_feature] + 1.5 * training[drifted_feature].std()

    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.put_metric_alarm(**drift_alarm_request(deploy_output))  # botocore validates
        alarms = cloudwatch.describe_alarms(AlarmNames=[DRIFT_ALARM])["MetricAlarms"]
        states = {DRIFT_ALARM: "INSUFFICIENT_DATA"}

        def hour(offset: int, batch: pd.DataFrame | None) -> str:
            """A monitoring run (or an hour without one), then the alarm evaluated."""
            at = start + offset * HOUR
            if batch is not None:
                publish_run(cloudwatch, judged(baseline, batch), at + timedelta(minutes=20))
            evaluate_all(cloudwatch, alarms, states, at + HOUR)
            return states[DRIFT_ALARM]

        offset = 0

        def quiet() -> None:
            """Hours without a run leave the alarm where it was."""
            nonlocal offset
            before = dict(states)
            for _ in range(QUIET_HOURS):
                offset += 1
                hour(offset, None)
                assert states == before

        assert hour(offset, clean) == "OK"
        quiet()
        offset += 1
        assert hour(offset, drifted) == "ALARM"
        # the run's Drift metric names the drifted feature, and no other
        drift = published_drift(cloudwatch, start + (offset + 1) * HOUR)
        assert set(drift) == set(features)
        assert [name for name, value in drift.items() if value] == [drifted_feature]
        # Without a run the drift stays reported until a run shows the data recovered.
        quiet()
        offset += 1
        assert hour(offset, clean) == "OK"


def alarm_event(alarm_name: str, state: str) -> dict[str, Any]:
    """A CloudWatch alarm state change as EventBridge delivers it (CloudWatch user guide)."""
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-24T01:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"],
        "detail": {
            "alarmName": alarm_name,
            "state": {"value": state, "reason": "drift", "timestamp": "2026-11-24T01:00:00Z"},
            "previousState": {"value": "OK" if state == "ALARM" else "ALARM"},
        },
    }


def test_the_drift_alarm_starts_the_model_building_pipeline(deploy_output: Path) -> None:
    """The drift alarm's change to ALARM matches the rule (moto's EventBridge), and the rule's
    target starts this project's pipeline with a request SageMaker's service model accepts."""
    stack = prod(deploy_output)
    rule = stack.properties("RetrainOnAlarmRule")
    drift = stack.properties("DriftedFeaturesAlarm")["AlarmName"]
    assert drift == DRIFT_ALARM
    assert stack.active("RetrainOnAlarmRule")
    # The rule runs as the role the foundation created; the stage stack creates no role.
    assert str(rule["Targets"][0]["RoleArn"]).endswith("-retrain-on-alarm")
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        pattern = json.dumps(rule["EventPattern"])
        # The rule with its own target (botocore validates both requests against EventBridge's
        # service model), on a bus of its own: moto cannot deliver to a SageMaker pipeline.
        events.create_event_bus(Name="requests")
        events.put_rule(Name="retrain", EventPattern=pattern, EventBusName="requests")
        events.put_targets(Rule="retrain", EventBusName="requests", Targets=rule["Targets"])
        # The same pattern on the default bus, delivering to a queue: what the rule matches.
        queue = sqs.create_queue(QueueName="delivered")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        events.put_rule(Name="retrain", EventPattern=pattern)
        events.put_targets(
            Rule="retrain", Targets=[{"Id": "seen", "Arn": queue_arn["Attributes"]["QueueArn"]}]
        )

        def matches(event: dict[str, Any]) -> bool:
            entry = {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Resources": event["resources"],
                "Detail": json.dumps(event["detail"]),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
            delivered = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
            for message in delivered:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            return bool(delivered)

        assert matches(alarm_event(drift, "ALARM"))
        assert not matches(alarm_event(drift, "OK"))
        # silence is no reason to retrain: new data does not bring traffic or fix the job
        assert not matches(alarm_event(SILENCE_ALARM, "ALARM"))
    (target,) = rule["Targets"]
    pipeline = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PROJECT}-pipeline"
    assert target["Arn"] == pipeline
    # EventBridge calls StartPipelineExecution with the target's parameters (and a token of its
    # own; the SDKs fill in the idempotency token the service model requires)
    request = {
        "ClientRequestToken": alarm_event(drift, "ALARM")["id"],
        "PipelineName": pipeline.rsplit("/", 1)[1],
        "PipelineParameters": target["SageMakerPipelineParameters"]["PipelineParameterList"],
    }
    sagemaker = boto3.session.Session().client("sagemaker", region_name=REGION)
    shape = sagemaker.meta.service_model.operation_model("StartPipelineExecution").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_a_day_without_drift_data_fires_the_silence_alarm(
    deploy_output: Path, clean_frame: pd.DataFrame, baseline: dict[str, Any]
) -> None:
    """Monitoring that publishes nothing cannot fire a drift alarm; this one says so.

    Runs a day apart (an endpoint with some traffic every day, or the daily batch) keep it OK;
    the first full day without one turns it to ALARM, and the next run back to OK.
    """
    (request,) = [
        r for r in metric_alarm_requests(deploy_output) if r["AlarmName"] == SILENCE_ALARM
    ]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 120 * HOUR
    training = clean_frame[deploy_config.features()]
    clean = judged(baseline, training.sample(200, replace=True, random_state=0))
    # A window too small to judge publishes no drift: to the silence alarm, it is no run.
    tiny = judged(baseline, training.head(LIMITS.min_rows - 1))
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.put_metric_alarm(**request)
        (alarm,) = cloudwatch.describe_alarms()["MetricAlarms"]
        state = "INSUFFICIENT_DATA"
        states = []
        for hour in range(1, 98):
            when = start + hour * HOUR + timedelta(minutes=20)
            if hour in (1, 25, 49):  # daily runs, then none after the third
                publish_run(cloudwatch, clean, when)
            elif hour > 49:
                publish_run(cloudwatch, tiny, when)
            state = evaluate(alarm, period_values(cloudwatch, alarm, start + hour * HOUR), state)
            states.append(state)
        # OK from the first run until a full day has passed since the third, ALARM from then on.
        last_ok = 49 + 24
        assert states[1:last_ok] == ["OK"] * (last_ok - 1)
        assert set(states[last_ok + 1 :]) == {"ALARM"}
        publish_run(cloudwatch, clean, start + 97 * HOUR + timedelta(minutes=20))
        assert evaluate(alarm, period_values(cloudwatch, alarm, start + 99 * HOUR), state) == "OK"


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


def test_feature_lists_the_monitoring_metrics_cannot_cover_are_refused() -> None:
    with pytest.raises(drift_alarms.DriftAlarmError, match="no features"):
        deploy_config.endpoint_template([])
    with pytest.raises(drift_alarms.DriftAlarmError, match="1024"):
        deploy_config.endpoint_template(["x" * 1025])


def capture_requests(root: Path, frame: pd.DataFrame) -> None:
    """Requests of 10 rows each as an endpoint captures them (text/csv in, JSON out)."""
    writer = CaptureWriter(root)
    for start in range(0, len(frame), 10):
        body = frame.iloc[start : start + 10].to_csv(index=False, header=False)
        writer.write(body, "text/csv", '{"predictions": []}', "application/json")


def test_the_monitoring_job_publishes_drift_the_alarm_fires_and_clean_data_returns_it_to_ok(
    deploy_output: Path,
    clean_frame: pd.DataFrame,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job as the monitoring pipeline runs it (``python -m <package>.monitor --data
    s3://<capture prefix> --hours 1 --publish-metrics <namespace>``) reads an hour of captures from
    S3 and publishes; the drift alarm fires, its report and its Drift metric name the drifted
    feature and no other. The next run, over clean traffic two hours later, turns it back to
    OK."""
    features = deploy_config.features()
    training = clean_frame[features]
    drifted_feature = features[-1]
    drifted = training.sample(200, replace=True, random_state=1)
    drifted[drifted_feature] = drifted[drifted_feature] + 1.5 * training[drifted_feature].std()
    clean = training.sample(200, replace=True, random_state=2)
    first = datetime.now(UTC).replace(minute=20, second=0, microsecond=0) - 6 * HOUR
    prefix = "captures/churn-prod/champion"
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="stage-data")
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.put_metric_alarm(**drift_alarm_request(deploy_output))
        alarms = cloudwatch.describe_alarms()["MetricAlarms"]
        states = {DRIFT_ALARM: "INSUFFICIENT_DATA"}

        def run(at: datetime, frame: pd.DataFrame) -> str:
            """Traffic captured in the hour of ``at``, then the job at ``at``, then the alarms."""
            local = tmp_path / at.strftime("%H")
            capture_requests(local, frame)
            for file in local.rglob("*.jsonl"):
                hourly = f"{prefix}/{at:%Y/%m/%d/%H}/{file.name}"
                s3.upload_file(str(file), "stage-data", hourly)
            monkeypatch.setattr(monitor, "_now", lambda: at)
            code = monitor.main(
                [
                    "--data",
                    f"s3://stage-data/{prefix}",
                    "--hours",
                    "1",
                    "--model-dir",
                    str(model_dir),
                    "--params",
                    str(deploy_config.PARAMS),
                    "--output-dir",
                    str(tmp_path / "report"),
                    "--stage",
                    "prod",
                    "--publish-metrics",
                    NAMESPACE,
                ]
            )
            assert code == 0  # findings are metrics, not a failed job
            evaluate_all(cloudwatch, alarms, states, at + timedelta(minutes=30))
            return states[DRIFT_ALARM]

        assert run(first, drifted) == "ALARM"
        report = json.loads((tmp_path / "report" / "report.json").read_text())
        assert report["drifted_features"] == [drifted_feature]
        drift = published_drift(cloudwatch, first + HOUR)
        assert [name for name, value in drift.items() if value] == [drifted_feature]
        assert run(first + 2 * HOUR, clean) == "OK"
