"""The data-drift alarms: one alarm for the whole data contract, however many features it has.

The project's own monitor (``<package>/monitor.py``, the code ``make monitor`` runs) runs as a
scheduled SageMaker job (``pipelines/monitoring.py``) and publishes into the project's namespace
(:func:`namespace`), per feature (dimensions ``Stage`` and ``Feature``), ``Drift`` (1 when the
feature drifted by the monitor's rule, PSI and KS or chi-square against the training baseline,
else 0) and, per judged run, ``DriftedFeatures`` (dimension ``Stage``: how many drifted). The
drift decision is the monitor's; an alarm only says that it was made.

The stage stack's drift alarm (``templates/retraining.j2`` of the cookiecutter template, shared by
the realtime and batch stage stacks) watches ``DriftedFeatures``, and its change to ALARM starts
retraining: one retraining run per drift episode, however many features drift in the same run.
The features it names are in the job's report and in ``Drift``. Other shapes grow with the schema
and stop at CloudWatch's or CloudFormation's limits:

- one alarm per feature under a composite alarm made the stage template grow by about 790 bytes
  per feature, past the 51,200 bytes of a template body passed inline (CloudFormation quotas) at
  33 features; its rule, a stack parameter, passed the 4,096 bytes a parameter value may have at
  52 (with the longest project name), and a composite alarm names at most 100 alarms;
- a metric-math alarm references at most 10 metrics, and an alarm cannot use SEARCH;
- a Metrics Insights alarm over all features evaluates only the latest 3 hours of data, so it
  could not notice a day of silence, and an account has 200 such alarms by default.

So the stage template is the same for every data contract, and the deploy build adds nothing to
it. Drift alarms cannot fire on data that never arrives, so a silence alarm,
``<project>-drift-monitoring-silent`` (``templates/monitoring.j2``), goes to ALARM after a day
without a judged run: the monitor publishes no per-feature figures and no ``DriftedFeatures``
for a window too small to judge (``monitor.min_rows``), so a day without enough traffic counts as
silence too.
"""

from __future__ import annotations

from collections.abc import Sequence

# PutMetricData: a dimension value is at most 1,024 characters (botocore's CloudWatch model).
MAX_DIMENSION_VALUE = 1024


class DriftAlarmError(ValueError):
    """A feature list the monitoring metrics cannot cover."""


def namespace(project: str) -> str:
    """The project's CloudWatch namespace: what its monitoring job may publish to (the
    ``cloudwatch:namespace`` condition of its role) and what its alarms watch."""
    return f"{project}/monitoring"


def check_features(features: Sequence[str]) -> None:
    """Refuse a data contract whose drift the monitoring job could not publish."""
    if not features:
        raise DriftAlarmError("schema.json lists no features: there is nothing to watch for drift")
    for feature in features:
        if not feature or len(feature) > MAX_DIMENSION_VALUE:
            raise DriftAlarmError(
                f"feature name {feature[:40]!r}... is empty or longer than {MAX_DIMENSION_VALUE} "
                "characters, which a CloudWatch dimension value cannot be: rename it in "
                "schema.json"
            )
