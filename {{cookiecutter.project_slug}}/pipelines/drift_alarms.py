"""The data-drift alarms: one CloudWatch alarm per feature of the data contract, one composite.

The project's own monitor (``<package>/monitor.py``, the code ``make monitor`` runs) runs as a
scheduled SageMaker job (``pipelines/monitoring.py``) and publishes, per feature, ``Drift`` (1 when
the feature drifted by the monitor's rule, PSI and KS or chi-square against the training baseline,
else 0) into the project's namespace (:func:`namespace`) with the dimensions ``Stage`` and
``Feature``. The drift decision is the monitor's; an alarm only says that it was made. Which alarm
shape covers every feature is set by CloudWatch's limits:

- a metric-math alarm may reference at most 10 metrics (a hard limit, CloudWatch user guide,
  "Limits that apply to alarms based on metric math expressions"), so a ``MAX`` over 30 features
  needs several alarms anyway, and they would have to be regrouped whenever the schema changes;
- a Metrics Insights query over ``Drift`` grouped by ``Feature`` would do, but an alarm on it
  cannot say which feature drifted.

So each feature gets its own alarm (its name says which feature drifted), and a composite alarm,
``ALARM(a) OR ALARM(b) OR ...``, is what starts retraining: one retraining run per drift episode,
however many features drift in the same monitoring run. A composite rule may name at most 100
alarms (PutCompositeAlarm) and be at most 10,240 characters long (the AlarmRule limit in the
CloudFormation schema of AWS::CloudWatch::CompositeAlarm); a schema beyond that is refused.

Drift alarms cannot fire on data that never arrives, so a silence alarm,
``<project>-drift-monitoring-silent``, goes to ALARM after a day without any drift datapoint (it
does not start retraining). The monitor leaves the per-feature figures out of a window too small
to judge (``monitor.min_rows``), so a day without enough traffic counts as silence too.

The feature list is the data contract (``src/<package>/schema.json``), read when the deploy build
runs, so a team that brings its own data gets alarms for its own columns. The alarms are added to
the copy of ``infrastructure/endpoint.yaml`` the deploy build writes; the template itself carries
the monitoring job's schedule, the composite and the retraining rule (``templates/retraining.j2``
of the cookiecutter template, shared by the realtime and batch stage stacks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

DRIFT_METRIC = "Drift"  # monitor.DRIFT_METRIC: what the monitoring job publishes per feature
MAX_ALARMS_IN_RULE = 100  # PutCompositeAlarm: "as many as 100 underlying alarms"
MAX_RULE_LENGTH = 10240  # AWS::CloudWatch::CompositeAlarm AlarmRule maxLength
MAX_NAME_LENGTH = 255  # AlarmName and dimension value maxLength
# The monitoring job runs hourly (its schedule in the stage stack); one datapoint per feature.
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


def namespace(project: str) -> str:
    """The project's CloudWatch namespace: what its monitoring job may publish to (the
    ``cloudwatch:namespace`` condition of its role) and what its alarms watch."""
    return f"{project}/monitoring"


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
        for name in (feature_alarm_name(project, feature), feature):
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


def _metric(project: str, feature: str) -> dict[str, Any]:
    return {
        "Namespace": namespace(project),
        "MetricName": DRIFT_METRIC,
        "Dimensions": [
            {"Name": "Stage", "Value": {"Ref": "StageName"}},
            {"Name": "Feature", "Value": feature},
        ],
        "Statistic": "Maximum",
        "Period": PERIOD_SECONDS,
    }


def feature_alarms(project: str, features: Sequence[str]) -> dict[str, dict[str, Any]]:
    """CloudFormation resources, one drift alarm per feature, created with the prod schedule."""
    _check(project, features)
    return {
        f"FeatureDriftAlarm{index}": {
            "Type": "AWS::CloudWatch::Alarm",
            "Condition": "IsProd",
            "Properties": {
                "AlarmName": feature_alarm_name(project, feature),
                "AlarmDescription": (
                    f"The monitoring job found feature {feature} drifted from its training "
                    "baseline (params.yaml monitor: PSI and KS or chi-square)."
                ),
                **_metric(project, feature),
                "EvaluationPeriods": EVALUATION_PERIODS,
                "DatapointsToAlarm": DATAPOINTS_TO_ALARM,
                "Threshold": 0,  # Drift is 1 for a drifted feature, 0 otherwise
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": TREAT_MISSING_DATA,
            },
        }
        for index, feature in enumerate(features)
    }


def silence_alarm(project: str, features: Sequence[str]) -> dict[str, dict[str, Any]]:
    """An alarm for a day without drift data: the feature alarms cannot fire on what never comes.

    It watches the first feature's drift metric (every judged run publishes all of them
    together); ``Drift`` is never below zero, so only missing periods, counted as breaching, can
    fire it. It does not start retraining: new data is not the remedy for an endpoint without
    traffic, a batch pipeline that did not run, or a broken monitoring job. A day is the longest
    CloudWatch lets an alarm look back (Period times EvaluationPeriods at most 86,400 s, as
    PutMetricAlarm's text in the locked botocore model says), so batch inference must run at
    least daily for silence to mean something is wrong.
    """
    _check(project, features)
    return {
        "DriftMonitoringSilentAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Condition": "IsProd",
            "Properties": {
                "AlarmName": silence_alarm_name(project),
                "AlarmDescription": (
                    "No drift data for a day: too little to monitor (traffic below "
                    "monitor.min_rows, no batch run), or a failing monitoring job. The drift "
                    "alarms cannot fire."
                ),
                **_metric(project, features[0]),
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
