"""The data-drift alarms: one CloudWatch alarm per feature of the data contract, one composite.

Model Monitor's data-quality job publishes ``feature_baseline_drift_<feature>`` (the distance
between the feature's live distribution and the package's baseline) for every feature, once per
monitoring run. Which alarm shape covers every feature is set by CloudWatch's limits:

- a metric-math alarm may reference at most 10 metrics (a hard limit, CloudWatch user guide,
  "Limits that apply to alarms based on metric math expressions"), so a ``MAX`` over 30 features
  needs several alarms anyway, and they would have to be regrouped whenever the schema changes;
- a Metrics Insights query aggregates one metric name only, and every feature is its own name.

So each feature gets its own alarm (its name says which feature drifted), and a composite alarm,
``ALARM(a) OR ALARM(b) OR ...``, is what starts retraining: one retraining run per drift episode,
however many features drift in the same monitoring run. A composite rule may name at most 100
alarms (PutCompositeAlarm) and be at most 10,240 characters long (the AlarmRule limit in the
CloudFormation schema of AWS::CloudWatch::CompositeAlarm); a schema beyond that is refused.

Drift alarms cannot fire on data that never arrives, so a silence alarm,
``<project>-drift-monitoring-silent``, goes to ALARM after a day without any drift datapoint (it
does not start retraining).

The feature list is the data contract (``src/<package>/schema.json``), read when the deploy build
runs, so a team that brings its own data gets alarms for its own columns. The alarms are added to
the copy of ``infrastructure/endpoint.yaml`` the deploy build writes; the template itself carries
the schedule, the composite and the retraining rule (``templates/retraining.j2`` of the cookiecutter
template, shared by the realtime and batch stage stacks).

Where the metrics are depends on what is monitored (:data:`MONITORED_METRICS`, by inference mode).
Model Monitor publishes the same ``feature_baseline_drift_<feature>`` names for an endpoint in
``aws/sagemaker/Endpoints/data-metrics`` with the ``Endpoint`` and ``MonitoringSchedule``
dimensions, and for batch transform capture in ``aws/sagemaker/ModelMonitoring/data-metrics``
with the ``MonitoringSchedule`` dimension alone (SageMaker Developer Guide, "CloudWatch Metrics
for Bring Your Own Containers" and "CloudWatch Metrics" of Model Monitor; the SageMaker Python
SDK's data-quality dashboard, ``sagemaker/dashboard/data_quality_dashboard.py``, spells both
namespaces without a leading slash). The alarms, their thresholds and the missing-data rules are
the same for both: one definition. What the container really publishes cannot be observed offline,
and the sources are not unanimous (that dashboard also searches a ``Feature`` dimension): an alarm
whose dimensions miss the published ones never fires, and then the silence alarm, which watches
the same metric, goes to ALARM after a day and says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

METRIC_PREFIX = "feature_baseline_drift_"
MAX_ALARMS_IN_RULE = 100  # PutCompositeAlarm: "as many as 100 underlying alarms"
MAX_RULE_LENGTH = 10240  # AWS::CloudWatch::CompositeAlarm AlarmRule maxLength
MAX_NAME_LENGTH = 255  # AlarmName and MetricName maxLength
# Model Monitor runs hourly (the schedule's cron); one datapoint per feature and run.
PERIOD_SECONDS = 3600
# Two periods, one breaching datapoint is enough: a run's datapoint may be stamped in the hour
# before the one being evaluated, and it still counts.
EVALUATION_PERIODS = 2
DATAPOINTS_TO_ALARM = 1
# Hours without monitoring output (no traffic, or a failed run) keep the alarm where it is:
# a drifted feature stays in ALARM until a run shows it back within the threshold. With
# notBreaching, a quiet hour would turn a real drift back to OK.
TREAT_MISSING_DATA = "ignore"
# A day without any drift datapoint (no traffic, monitoring failing, or metrics the alarms do not
# recognise) turns the silence alarm to ALARM: 24 one-hour periods, the longest an alarm evaluates.
SILENT_PERIODS = 24
# The notification topic of the account the stack runs in (templates/notifications.j2 names it).
NOTIFICATION_TOPIC = (
    "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:"
    "${SageMakerProjectName}-notifications"
)
# Characters that would break the composite rule's quoting or CloudFormation's ${} syntax.
_UNSAFE = re.compile(r'["\\$\x00-\x1f]')


class DriftAlarmError(ValueError):
    """A feature list the alarms cannot cover."""


@dataclass(frozen=True)
class MonitoredMetrics:
    """Where a data-quality monitoring schedule's per-feature metrics are published.

    ``dimensions``: (dimension name, logical id of the stage stack's resource, its attribute that
    is the dimension's value), in the order Model Monitor names them.
    """

    namespace: str
    dimensions: tuple[tuple[str, str, str], ...]


_SCHEDULE = ("MonitoringSchedule", "MonitoringSchedule", "MonitoringScheduleName")
ENDPOINT_METRICS = MonitoredMetrics(
    "aws/sagemaker/Endpoints/data-metrics", (("Endpoint", "Endpoint", "EndpointName"), _SCHEDULE)
)
BATCH_METRICS = MonitoredMetrics("aws/sagemaker/ModelMonitoring/data-metrics", (_SCHEDULE,))
# Inference modes whose prod stage runs Model Monitor's data-quality job (serverless: none).
MONITORED_METRICS = {"realtime": ENDPOINT_METRICS, "batch": BATCH_METRICS}


def feature_alarm_name(project: str, feature: str) -> str:
    return f"{project}-data-drift-{feature}"


def silence_alarm_name(project: str) -> str:
    return f"{project}-drift-monitoring-silent"


def _check(project: str, features: Sequence[str]) -> None:
    if not features:
        raise DriftAlarmError("schema.json lists no features: there is nothing to watch for drift")
    if len(features) > MAX_ALARMS_IN_RULE:
        raise DriftAlarmError(
            f"{len(features)} features: a composite alarm covers at most {MAX_ALARMS_IN_RULE}"
        )
    for feature in features:
        if _UNSAFE.search(feature):
            raise DriftAlarmError(f"feature name {feature!r} has a quote, backslash, $ or control")
        for name in (feature_alarm_name(project, feature), METRIC_PREFIX + feature):
            if len(name) > MAX_NAME_LENGTH:
                raise DriftAlarmError(f"{name!r} is longer than {MAX_NAME_LENGTH} characters")


def composite_rule(project: str, features: Sequence[str]) -> str:
    """The composite alarm's rule: in ALARM while any feature's drift alarm is."""
    _check(project, features)
    rule = " OR ".join(f'ALARM("{feature_alarm_name(project, f)}")' for f in features)
    if len(rule) > MAX_RULE_LENGTH:
        raise DriftAlarmError(
            f"the drift alarm rule for {len(features)} features is {len(rule)} characters; "
            f"CloudWatch allows {MAX_RULE_LENGTH}"
        )
    return rule


def _metric(feature: str, metrics: MonitoredMetrics) -> dict[str, Any]:
    return {
        "Namespace": metrics.namespace,
        "MetricName": METRIC_PREFIX + feature,
        "Dimensions": [
            {"Name": name, "Value": {"Fn::GetAtt": [resource, attribute]}}
            for name, resource, attribute in metrics.dimensions
        ],
        "Statistic": "Maximum",
        "Period": PERIOD_SECONDS,
    }


def feature_alarms(
    project: str, features: Sequence[str], metrics: MonitoredMetrics
) -> dict[str, dict[str, Any]]:
    """CloudFormation resources, one drift alarm per feature, created with the prod schedule."""
    _check(project, features)
    return {
        f"FeatureDriftAlarm{index}": {
            "Type": "AWS::CloudWatch::Alarm",
            "Condition": "IsProd",
            "Properties": {
                "AlarmName": feature_alarm_name(project, feature),
                "AlarmDescription": (
                    f"Model Monitor's baseline drift of feature {feature} crossed DriftThreshold."
                ),
                **_metric(feature, metrics),
                "EvaluationPeriods": EVALUATION_PERIODS,
                "DatapointsToAlarm": DATAPOINTS_TO_ALARM,
                "Threshold": {"Ref": "DriftThreshold"},
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": TREAT_MISSING_DATA,
            },
        }
        for index, feature in enumerate(features)
    }


def silence_alarm(
    project: str, features: Sequence[str], metrics: MonitoredMetrics
) -> dict[str, dict[str, Any]]:
    """An alarm for a day without drift data: the feature alarms cannot fire on what never comes.

    It watches the first feature's drift metric (every run publishes all of them together); a
    distance is never below zero, so only missing periods, counted as breaching, can fire it. It
    does not start retraining: new data is not the remedy for an endpoint without traffic, a batch
    pipeline that did not run, or a broken monitoring job. A day is the longest CloudWatch lets an
    alarm look back (Period times EvaluationPeriods at most 86,400 s, as PutMetricAlarm's text in
    the locked botocore model says), so batch inference must run at least daily for silence to
    mean something is wrong.
    """
    _check(project, features)
    return {
        "DriftMonitoringSilentAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Condition": "IsProd",
            "Properties": {
                "AlarmName": silence_alarm_name(project),
                "AlarmDescription": (
                    "No Model Monitor drift data for a day: nothing to monitor (no traffic, no "
                    "batch run), a failing monitoring job, or features the baseline does not "
                    "name. The drift alarms cannot fire."
                ),
                **_metric(features[0], metrics),
                "EvaluationPeriods": SILENT_PERIODS,
                "DatapointsToAlarm": SILENT_PERIODS,
                "Threshold": 0,
                "ComparisonOperator": "LessThanThreshold",
                "TreatMissingData": "breaching",
                # People hear of it (and of its end) on the project's topic in the stage's
                # account, the one infrastructure/foundation.yaml or target-account.yaml creates.
                # (a Fn::Sub each: one object twice would be a YAML alias in the template)
                "AlarmActions": [{"Fn::Sub": NOTIFICATION_TOPIC}],
                "OKActions": [{"Fn::Sub": NOTIFICATION_TOPIC}],
            },
        }
    }
