"""CloudWatch's alarm evaluation, for alarms stored in (and read back from) moto's CloudWatch.

moto stores alarms and aggregates metric statistics but never evaluates an alarm, so the tests do
that here, with the rules the CloudWatch user guide gives ("Configuring how CloudWatch alarms
treat missing data"): an alarm looks at its last EvaluationPeriods periods and goes to ALARM when
at least DatapointsToAlarm of them breach the threshold; a missing period counts as breaching
(``breaching``), as within the threshold (``notBreaching``), keeps the current state when every
period is missing (``ignore``), or turns the alarm INSUFFICIENT_DATA when every period is missing
(``missing``). CloudWatch's look-back beyond the evaluation range for partly missing data is not
modelled.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def period_values(cloudwatch: Any, alarm: dict[str, Any], at: datetime) -> list[float | None]:
    """The alarm's statistic for each of its evaluation periods ending at ``at``, oldest first."""
    period = int(alarm["Period"])
    count = int(alarm["EvaluationPeriods"])
    start = at - timedelta(seconds=period * count)
    response = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Dimensions=alarm["Dimensions"],
        StartTime=start,
        EndTime=at,
        Period=period,
        Statistics=[alarm["Statistic"]],
    )
    by_period: dict[int, float] = {}
    for point in response["Datapoints"]:
        index = int((point["Timestamp"] - start).total_seconds() // period)
        by_period[index] = float(point[alarm["Statistic"]])
    return [by_period.get(index) for index in range(count)]


def evaluate(alarm: dict[str, Any], values: list[float | None], state: str) -> str:
    """The state a metric alarm moves to, given its periods' values and its current state."""
    needed = int(alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"])
    breaches = COMPARISONS[alarm["ComparisonOperator"]]
    treat = alarm.get("TreatMissingData", "missing")
    present = [value for value in values if value is not None]
    missing = len(values) - len(present)
    breaching = sum(breaches(value, float(alarm["Threshold"])) for value in present)
    if treat == "breaching":
        breaching += missing
    elif not present and treat == "ignore":
        return state
    elif not present and treat == "missing":
        return "INSUFFICIENT_DATA"
    return "ALARM" if breaching >= needed else "OK"
