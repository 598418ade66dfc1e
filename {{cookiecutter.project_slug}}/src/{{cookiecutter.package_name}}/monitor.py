"""Compare a batch of new data with the training baseline: drift, missing, out-of-range, schema.

    python -m <package>.monitor --baseline models/baseline.json --data <csv | capture folder> \
        --params params.yaml --output-dir reports/monitor

``--data`` is a CSV file or folder, or a folder of SageMaker data-capture JSON lines (what an
endpoint, or ``make serve``, wrote). Per numeric feature it computes the population stability index
against the baseline's deciles and a two-sample Kolmogorov-Smirnov test against the baseline
sample; a feature drifts when both cross their thresholds, which keeps false alarms rare across
many features. Per categorical feature (``drift``) it computes the PSI over the training
categories (plus one bin for unseen ones) and a chi-square test of the category counts, under the
same rule (PSI above ``psi_threshold`` and p-value below ``chi2_p_value``), the L-infinity distance
(the largest change of a category's share), and the share of values in categories training
never saw (a violation above ``max_new_category_fraction``). A feature's missing
fraction is a violation when it rises more than ``missing_shift`` above the training baseline's.
Writes ``report.json`` and ``report.html`` (with a plot per drifted feature) and exits 1 when a
threshold is crossed, so CI or a schedule can start retraining.

On AWS the same module runs as a scheduled SageMaker processing job (``pipelines/monitoring.py``)
over the endpoint's captured requests or the batch pipeline's input, and with
``--publish-metrics`` it puts its findings into CloudWatch (:func:`metric_data`): per feature
(dimensions ``Stage`` and ``Feature``) ``Drift`` (1 when the feature drifted by the rule above, else
0), ``PSI`` and ``MissingFraction``; per stage ``Rows``, ``Violations``, ``DriftedFeatures`` (how
many features drifted) and, once ground truth arrives for captured requests (``--ground-truth``),
the gate's metric. The stage stack's alarms
watch those metrics, so the drift decision is made here, once, on a laptop and in the cloud.

Below ``min_rows`` rows (``params.yaml``) a batch is too small to judge: with a handful of rows the
PSI of ten bins and the KS test flag nearly every feature, and one odd value is a large fraction.
Such a batch is reported as "not enough rows to judge drift" and does not fail; only what a single
row proves (a missing column, a non-numeric value) still counts.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlops_platform.capture import download_prefix, payload_text, read_records
from mlops_platform.drift import category_counts, category_drift, psi_of_shares
from scipy import stats

from .evaluate import (
    Gate,
    compute_metrics,
    metric_value,
    metrics_from_predictions,
    unpack_model_dir,
)
from .inference import InvalidInputError, as_number, is_missing, load_model, parse_rows
from .params import load_params


@dataclass
class Thresholds:
    psi_threshold: float = 0.2
    ks_p_value: float = 0.01
    # How far a feature's missing fraction may rise above its training baseline's.
    missing_shift: float = 0.1
    max_out_of_range_fraction: float = 0.05
    min_drifted_features: int = 1
    min_rows: int = 50
    chi2_p_value: float = 0.01
    max_new_category_fraction: float = 0.05


@dataclass
class FeatureReport:
    name: str
    kind: str = "numeric"
    psi: float | None = None
    ks_p_value: float | None = None
    missing_fraction: float = 0.0
    out_of_range_fraction: float = 0.0
    # The largest distance between the two distributions (KS statistic for a numeric feature,
    # largest change of a category's share for a categorical one), on one 0..1 scale.
    linf_distance: float | None = None
    # Categorical features: the chi-square p-value and the categories unseen in training.
    chi2_p_value: float | None = None
    new_category_rate: float | None = None
    new_categories: dict[str, int] = field(default_factory=dict)
    drifted: bool = False
    problems: list[str] = field(default_factory=list)


def psi(expected_edges: list[float], baseline_sample: np.ndarray, current: np.ndarray) -> float:
    """Population stability index over the baseline's quantile bins."""
    edges = np.unique(np.asarray(expected_edges, dtype=float))
    if edges.size < 2:
        return 0.0
    inner = edges[1:-1]
    expected = np.bincount(
        np.searchsorted(inner, baseline_sample, side="right"), minlength=inner.size + 1
    ) / max(baseline_sample.size, 1)
    actual = np.bincount(
        np.searchsorted(inner, current, side="right"), minlength=inner.size + 1
    ) / max(current.size, 1)
    return psi_of_shares(expected, actual)


def read_capture(
    folder: Path, features: list[str], categorical: Sequence[str] = ()
) -> pd.DataFrame:
    """Requests from SageMaker data-capture JSON lines, as a frame of the model's features."""
    rows: list[Any] = []
    for _, event in read_records(folder):
        record = event["captureData"]["endpointInput"]
        try:
            rows += parse_rows(
                payload_text(record),
                record["observedContentType"],
                features if categorical else None,
            )
        except InvalidInputError:
            continue  # requests the endpoint refused never reached the model
    records = [
        row if isinstance(row, dict) else dict(zip(features, row, strict=False)) for row in rows
    ]
    for record in records:
        record.pop("__width__", None)
    # A missing value as the request spelled it (an empty CSV cell) is missing here too.
    records = [{k: None if is_missing(v) else v for k, v in record.items()} for record in records]
    return pd.DataFrame.from_records(records, columns=features)


def read_batch(path: Path, features: list[str], categorical: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV file or folder, or data-capture JSON lines; categorical columns are read as text."""
    if path.is_dir() and any(path.rglob("*.jsonl")):
        return read_capture(path, features, categorical)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no CSV or capture files in {path}")
    text = dict.fromkeys(categorical, str)
    return pd.concat([pd.read_csv(file, dtype=text) for file in files], ignore_index=True)


def categorical_features(baseline: dict[str, Any]) -> list[str]:
    return [
        name for name, base in baseline["features"].items() if base.get("kind") == "categorical"
    ]


def numeric_values(column: pd.Series) -> pd.Series:
    """The column's numbers by the endpoint's rule (``inference.as_number``), NaN elsewhere."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.astype(float)
        return values.where(np.isfinite(values))
    return pd.Series([as_number(value) for value in column], index=column.index, dtype=float)


def check_missing(report: FeatureReport, base: dict[str, Any], limits: Thresholds) -> None:
    """Flag a missing fraction risen more than ``missing_shift`` above the training baseline's:
    a feature that was 20% missing in training may be 20% missing now, not 40%."""
    expected = float(base.get("missing_fraction", 0.0))
    if report.missing_fraction > expected + limits.missing_shift:
        report.problems.append(
            f"missing fraction {report.missing_fraction:.3f} > training's {expected:.3f} "
            f"+ {limits.missing_shift} (monitor.missing_shift)"
        )


def check_feature(
    name: str, base: dict[str, Any], column: pd.Series, limits: Thresholds
) -> FeatureReport:
    report = FeatureReport(name)
    values = numeric_values(column)
    non_numeric = int((values.isna() & column.notna()).sum())
    if non_numeric:
        report.problems.append(f"{non_numeric} non-numeric value(s) (new category?)")
    report.missing_fraction = float(column.isna().mean())
    check_missing(report, base, limits)
    present = values.dropna().to_numpy(dtype=float)
    if present.size == 0:
        report.problems.append("no numeric values")
        return report
    outside = (present < base["min"]) | (present > base["max"])
    report.out_of_range_fraction = float(outside.mean())
    if report.out_of_range_fraction > limits.max_out_of_range_fraction:
        report.problems.append(
            f"{report.out_of_range_fraction:.3f} of values outside the "
            f"training range [{base['min']:g}, {base['max']:g}]"
        )
    sample = np.asarray(base["sample"], dtype=float)
    report.psi = psi(base["quantile_edges"], sample, present)
    ks = stats.ks_2samp(sample, present)
    report.ks_p_value = float(ks.pvalue)
    # The largest gap between the two cumulative distributions.
    report.linf_distance = float(ks.statistic)
    report.drifted = report.psi > limits.psi_threshold and report.ks_p_value < limits.ks_p_value
    if report.drifted:
        report.problems.append(f"drift: PSI {report.psi:.3f}, KS p-value {report.ks_p_value:.2g}")
    return report


def check_category(
    name: str, base: dict[str, Any], column: pd.Series, limits: Thresholds
) -> FeatureReport:
    """A categorical feature against its training category counts (statistics: ``drift``)."""
    report = FeatureReport(name, kind="categorical")
    report.missing_fraction = float(column.isna().mean())
    check_missing(report, base, limits)
    current = category_counts(column)
    if not current:
        report.problems.append("no values")
        return report
    result = category_drift(base["categories"], current)
    report.psi = result.psi
    report.chi2_p_value = result.chi2_p_value
    report.linf_distance = result.linf_distance
    report.new_category_rate = result.new_category_rate
    report.new_categories = dict(list(result.new_categories.items())[:20])
    if result.new_category_rate > limits.max_new_category_fraction:
        shown = ", ".join(repr(c) for c in list(result.new_categories)[:3])
        report.problems.append(
            f"{result.new_category_rate:.3f} of values in categories unseen in training "
            f"> {limits.max_new_category_fraction} ({shown})"
        )
    report.drifted = result.psi > limits.psi_threshold and result.chi2_p_value < limits.chi2_p_value
    if report.drifted:
        report.problems.append(
            f"drift: PSI {result.psi:.3f}, chi-square p-value {result.chi2_p_value:.2g}"
        )
    return report


def too_few_rows(rows: int, limits: Thresholds) -> str | None:
    """The message for a batch too small to judge, or None when it is large enough."""
    if rows >= limits.min_rows:
        return None
    return f"not enough rows to judge drift (n={rows} < {limits.min_rows}, monitor.min_rows)"


def monitor(baseline: dict[str, Any], batch: pd.DataFrame, limits: Thresholds) -> dict[str, Any]:
    features: dict[str, Any] = baseline["features"]
    missing = [name for name in features if name not in batch.columns]
    reports = [
        (check_category if base.get("kind") == "categorical" else check_feature)(
            name, base, batch[name], limits
        )
        for name, base in features.items()
        if name in batch.columns
    ]
    insufficient = too_few_rows(len(batch), limits)
    if insufficient:
        # Statistics of a tiny batch are noise; keep only what one row proves.
        for report in reports:
            report.drifted = False
            report.problems = [p for p in report.problems if "non-numeric" in p]
    drifted = [r.name for r in reports if r.drifted]
    violations = [f"{name}: column missing from the data" for name in missing]
    violations += [
        f"{r.name}: {problem}"
        for r in reports
        for problem in r.problems
        if not problem.startswith("drift:")
    ]
    failed = bool(violations) or len(drifted) >= limits.min_drifted_features
    return {
        "rows": len(batch),
        "failed": failed,
        "insufficient_rows": insufficient,
        "drifted_features": drifted,
        "missing_columns": missing,
        "violations": violations,
        "thresholds": asdict(limits),
        "features": [asdict(r) for r in reports],
    }


def quality_verdict(
    report: dict[str, Any], rows: int, gate: Gate, training_metrics: dict[str, Any] | None
) -> dict[str, Any]:
    """A labelled batch's metrics judged by the training gate, beside the training value."""
    value = metric_value(report, gate.metric)
    return {
        "rows": rows,
        "metric": gate.metric,
        "value": value,
        "training_value": metric_value(training_metrics, gate.metric) if training_metrics else None,
        "threshold": gate.threshold,
        "passed": gate.passes(value),
        "metrics": report,
    }


def model_quality(
    model_dir: Path, batch: pd.DataFrame, gate: Gate, training_metrics: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Metrics on a labelled batch, judged by the training gate; None when there are no labels."""
    model, meta = load_model(model_dir)
    if meta["target"] not in batch.columns:
        return None
    labelled = batch.dropna(subset=[meta["target"]])
    report = compute_metrics(model, meta, labelled)
    return quality_verdict(report, len(labelled), gate, training_metrics)


def _label(value: Any) -> str:
    """A label as text, so that ``1``, ``1.0`` and ``"1"`` from JSON, CSV and ground truth agree."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def answered(output: dict[str, Any]) -> list[tuple[str, float | None]]:
    """The (prediction, probability) of each row a captured answer holds, in any answer type the
    endpoint gives (``inference.render``): JSON ``{"predictions": [{"prediction": ...,
    "probability": ..., "probability_<label>": ...}]}`` (no ``Accept``, or ``application/json``)
    or headerless CSV ``prediction[,probability,...]`` rows (``text/csv``, a text label quoted as
    the csv module writes it). A refusal's answer holds none."""
    text = payload_text(output)
    kind = str(output.get("observedContentType", "")).split(";")[0].strip().lower()
    rows: list[tuple[str, float | None]] = []
    if kind == "application/json":
        try:
            predictions = json.loads(text).get("predictions", [])
        except (ValueError, AttributeError):
            return []
        for item in predictions:
            if isinstance(item, dict) and "prediction" in item:
                probability = item.get("probability")
                rows.append(
                    (str(item["prediction"]), None if probability is None else float(probability))
                )
        return rows
    for cells in csv.reader(io.StringIO(text)):
        if cells and cells[0].strip():
            probability = cells[1].strip() if len(cells) > 1 else ""
            rows.append((cells[0].strip(), float(probability) if probability else None))
    return rows


def read_ground_truth(folder: Path) -> dict[str, str]:
    """Labels by inference id, from the ground-truth JSON lines ``capture`` writes."""
    labels: dict[str, str] = {}
    for _, record in read_records(folder):
        labels[str(record["eventMetadata"]["eventId"])] = str(record["groundTruthData"]["data"])
    return labels


def captured_quality(
    captures: Path,
    ground_truth: Path,
    meta: dict[str, Any],
    gate: Gate,
    training_metrics: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The gate's metric on captured answers whose label has arrived; None when none has.

    Requests are joined to their labels by inference id (``InvokeEndpoint(InferenceId=...)``, the
    ground truth's ``eventId``), as model-quality monitoring joins them; a request of several rows
    has one id for all of them, so only single-row requests can be scored. Only the serving
    variant's captures are read (the job is pointed at its folder).
    """
    labels = read_ground_truth(ground_truth) if ground_truth.is_dir() else {}
    truth: list[str] = []
    predicted: list[str] = []
    probability: list[float | None] = []
    for _, event in read_records(captures):
        inference_id = event.get("eventMetadata", {}).get("inferenceId")
        if inference_id not in labels:
            continue
        rows = answered(event["captureData"]["endpointOutput"])
        if len(rows) != 1:
            continue
        truth.append(labels[inference_id])
        predicted.append(rows[0][0])
        probability.append(rows[0][1])
    if not truth:
        return None
    classes = list(meta.get("classes", []))
    if meta["problem_type"] == "regression":
        y_true: list[Any] = [float(v) for v in truth]
        y_pred: list[Any] = [float(v) for v in predicted]
    else:
        # Each label as the model's own class (an int for 0/1 labels), whatever text it came as.
        known = {_label(c): c for c in classes}
        y_true = [known.get(_label(v), _label(v)) for v in truth]
        y_pred = [known.get(_label(v), _label(v)) for v in predicted]
    positive = None
    if len(classes) == 2 and all(p is not None for p in probability):
        # The answer carries the winning class's probability; AUC needs the positive class's.
        shares = [
            float(p) if label == classes[1] else 1.0 - float(p)  # type: ignore[arg-type]
            for label, p in zip(y_pred, probability, strict=True)
        ]
        positive = lambda: shares  # noqa: E731
    report = metrics_from_predictions(
        meta["problem_type"], y_true, y_pred, classes, positive_probability=positive
    )
    return quality_verdict(report, len(truth), gate, training_metrics)


# What the stage stack's alarms watch (pipelines/drift_alarms.py): per feature with the Stage and
# Feature dimensions, per stage with Stage alone.
DRIFT_METRIC = "Drift"
# Per stage: how many features drifted in a judged run (the drift and silence alarms watch it).
DRIFTED_FEATURES_METRIC = "DriftedFeatures"
FEATURE_METRICS = {DRIFT_METRIC: "drifted", "PSI": "psi", "MissingFraction": "missing_fraction"}
# PutMetricData takes at most 1,000 metrics per call (botocore's CloudWatch service model).
MAX_METRICS_PER_CALL = 1000


def metric_data(result: dict[str, Any], stage: str, when: datetime) -> list[dict[str, Any]]:
    """The report as CloudWatch datapoints (PutMetricData ``MetricData``).

    Per-feature figures are left out of a batch too small to judge: a drift alarm keeps its
    state through such hours (its missing data is ignored), and the silence alarm notices a day
    of them.
    """
    stage_only = [{"Name": "Stage", "Value": stage}]
    data: list[dict[str, Any]] = [
        {
            "MetricName": "Rows",
            "Dimensions": stage_only,
            "Value": float(result["rows"]),
            "Unit": "Count",
            "Timestamp": when,
        },
        {
            "MetricName": "Violations",
            "Dimensions": stage_only,
            "Value": float(len(result["violations"])),
            "Unit": "Count",
            "Timestamp": when,
        },
    ]
    if not result.get("insufficient_rows"):
        data.append(
            {
                "MetricName": DRIFTED_FEATURES_METRIC,
                "Dimensions": stage_only,
                "Value": float(len(result["drifted_features"])),
                "Unit": "Count",
                "Timestamp": when,
            }
        )
        for feature in result["features"]:
            dimensions = [*stage_only, {"Name": "Feature", "Value": feature["name"]}]
            for metric, key in FEATURE_METRICS.items():
                value = feature[key]
                if value is None:
                    continue
                data.append(
                    {
                        "MetricName": metric,
                        "Dimensions": dimensions,
                        "Value": float(value),
                        "Timestamp": when,
                    }
                )
    quality = result.get("model_quality")
    if quality is not None:
        data.append(
            {
                "MetricName": quality["metric"],
                "Dimensions": stage_only,
                "Value": float(quality["value"]),
                "Timestamp": when,
            }
        )
    return data


def publish_metrics(cloudwatch: Any, namespace: str, data: list[dict[str, Any]]) -> int:
    """Put the datapoints into ``namespace``; return how many were sent."""
    for start in range(0, len(data), MAX_METRICS_PER_CALL):
        cloudwatch.put_metric_data(
            Namespace=namespace, MetricData=data[start : start + MAX_METRICS_PER_CALL]
        )
    return len(data)


def hour_prefixes(uri: str, hours: int, now: datetime) -> list[str]:
    """The hourly capture folders (``yyyy/mm/dd/hh``) of the last ``hours`` hours below ``uri``."""
    base = uri.rstrip("/")
    return [
        f"{base}/{(now - timedelta(hours=back)).strftime('%Y/%m/%d/%H')}/" for back in range(hours)
    ]


def fetch_data(uri: str, target: Path, hours: int | None, now: datetime) -> Path:
    """What ``--data s3://...`` names, copied below ``target``: the captures of the last
    ``hours`` hours under a capture prefix, or the CSV files of the prefix a batch input pointer
    (``.../newest.json``, ``{"uri": ...}``) names."""
    if uri.endswith(".json"):
        import boto3

        bucket, _, key = uri[5:].partition("/")
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return download_prefix(str(json.loads(body)["uri"]), target, (".csv",))
    base = uri.rstrip("/")
    for prefix in hour_prefixes(base, hours, now) if hours else [f"{base}/"]:
        download_prefix(prefix, target / prefix[len(base) + 1 :])
    return target


def read_batch_input(folder: Path, features: list[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The batch pipeline's input: headerless CSV, the record id first, then the features in
    schema order (``pipelines/batch.py``)."""
    files = sorted(folder.rglob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV files in {folder}")
    text = dict.fromkeys(categorical, str)
    frames = [
        pd.read_csv(file, header=None, names=["__id__", *features], dtype=text) for file in files
    ]
    return pd.concat(frames, ignore_index=True).drop(columns="__id__")


def log_to_mlflow(result: dict[str, Any], output: Path, stage: str) -> dict[str, str] | None:
    """The report as an MLflow run, when a tracking server is configured (``tracking.py``)."""
    from . import tracking

    target = tracking.destination(local=False, default_experiment=tracking.default_experiment())
    if target is None:
        return None
    metrics = {
        "rows": float(result["rows"]),
        "violations": float(len(result["violations"])),
        "drifted_features": float(len(result["drifted_features"])),
    }
    for feature in result["features"]:
        if feature["psi"] is not None:
            metrics[f"psi.{feature['name']}"] = float(feature["psi"])
    if result.get("model_quality"):
        metrics[f"live.{result['model_quality']['metric']}"] = float(
            result["model_quality"]["value"]
        )
    record = tracking.RunRecord(
        params={"stage": stage, **{f"monitor.{k}": v for k, v in result["thresholds"].items()}},
        metrics=metrics,
        tags={"monitor.result": "failed" if result["failed"] else "passed"},
        artifacts=[
            path for path in (output / "report.json", output / "report.html") if path.exists()
        ],
    )
    return tracking.log_run(target, record, run_name=f"monitor-{stage}")


def _plot(name: str, base: dict[str, Any], current: pd.Series) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3))
    if base.get("kind") == "categorical":
        # The shares of the training categories and of the batch's unseen ones, side by side.
        counts = category_counts(current)
        categories = list(base["categories"])[:15]
        categories += [c for c in counts if c not in base["categories"]][:5]
        positions = np.arange(len(categories))
        for offset, (label, table) in enumerate(
            (("training baseline", base["categories"]), ("current batch", counts))
        ):
            total = max(sum(table.values()), 1)
            shares = [table.get(c, 0) / total for c in categories]
            axis.bar(positions + 0.4 * offset, shares, width=0.4, alpha=0.7, label=label)
        axis.set_xticks(positions + 0.2, categories, rotation=45, ha="right", fontsize=7)
    else:
        axis.hist(base["sample"], bins=20, alpha=0.6, density=True, label="training baseline")
        axis.hist(
            numeric_values(current).dropna(),
            bins=20,
            alpha=0.6,
            density=True,
            label="current batch",
        )
    axis.set_title(name)
    axis.legend()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def write_reports(
    result: dict[str, Any], baseline: dict[str, Any], batch: pd.DataFrame, output: Path
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    status = "FAILED" if result["failed"] else "passed"
    parts = [f"<h1>Data monitor: {status}</h1>", f"<p>{result['rows']} rows checked.</p>"]
    if result.get("insufficient_rows"):
        parts.append(f"<p>{html.escape(result['insufficient_rows'])}</p>")
    if result["violations"]:
        items = "".join(f"<li>{html.escape(v)}</li>" for v in result["violations"])
        parts.append(f"<h2>Violations</h2><ul>{items}</ul>")
    rows = "".join(
        f"<tr><td>{html.escape(f['name'])}</td><td>{f['kind']}</td><td>{_number(f['psi'])}</td>"
        f"<td>{_number(f['ks_p_value'] if f['kind'] == 'numeric' else f['chi2_p_value'])}</td>"
        f"<td>{_number(f['linf_distance'])}</td><td>{_number(f['new_category_rate'])}</td>"
        f"<td>{f['missing_fraction']:.3f}</td><td>{'yes' if f['drifted'] else ''}</td></tr>"
        for f in result["features"]
    )
    parts.append(
        "<table><tr><th>feature</th><th>kind</th><th>PSI</th><th>p-value (KS / chi-square)</th>"
        "<th>L-infinity</th><th>new categories</th><th>missing</th>"
        f"<th>drifted</th></tr>{rows}</table>"
    )
    for name in result["drifted_features"]:
        try:
            image = _plot(name, baseline["features"][name], batch[name])
        except ImportError:  # a job without the plots group: the table says what drifted
            continue
        (output / f"drift-{name}.png").write_bytes(base64.b64decode(image))
        parts.append(f'<h2>{html.escape(name)}</h2><img src="data:image/png;base64,{image}">')
    (output / "report.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Data monitor</title>" + "".join(parts)
    )


def _now() -> datetime:
    """The run's time: its hourly capture window ends here and its datapoints carry it."""
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--baseline", type=Path, help="default: baseline.json in --model-dir (its model.tar.gz)"
    )
    parser.add_argument(
        "--data",
        required=True,
        help="CSV file or folder, capture folder, or s3:// capture prefix or batch input pointer",
    )
    parser.add_argument("--params", type=Path, help="params.yaml; its 'monitor' section")
    parser.add_argument("--output-dir", type=Path, default=Path("reports/monitor"))
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("models"),
        help="with a labelled batch: also check model quality against the gate",
    )
    parser.add_argument("--training-metrics", type=Path, default=Path("reports/metrics.json"))
    parser.add_argument(
        "--params-json",
        help="the 'monitor' and 'gate' sections as JSON, instead of --params (the scheduled job)",
    )
    parser.add_argument(
        "--data-format",
        choices=("auto", "batch-input"),
        default="auto",
        help="batch-input: the batch pipeline's input, headerless CSV with the record id first",
    )
    parser.add_argument(
        "--hours", type=int, help="with an s3:// capture prefix: read its last HOURS hourly folders"
    )
    parser.add_argument(
        "--ground-truth", help="folder or s3:// prefix of ground-truth JSON lines (capture.py)"
    )
    parser.add_argument(
        "--publish-metrics",
        metavar="NAMESPACE",
        help="put the findings into this CloudWatch namespace (the scheduled job does)",
    )
    parser.add_argument("--stage", default="local", help="the Stage dimension of the metrics")
    args = parser.parse_args(argv)
    now = _now()
    with tempfile.TemporaryDirectory(prefix="monitor-") as scratch:
        try:
            data = (
                fetch_data(args.data, Path(scratch) / "data", args.hours, now)
                if args.data.startswith("s3://")
                else Path(args.data)
            )
            truth = (
                fetch_data(args.ground_truth, Path(scratch) / "truth", args.hours, now)
                if args.ground_truth and args.ground_truth.startswith("s3://")
                else Path(args.ground_truth or Path(scratch) / "none")
            )
        except (OSError, ValueError, KeyError) as error:
            print(f"error: cannot read {args.data}: {error}", file=sys.stderr)
            return 2
        return run(args, data, truth, now)


def run(args: argparse.Namespace, data: Path, truth: Path, now: datetime) -> int:
    """The monitor over local files: report, exit status, and (when asked) metrics and a run."""
    model_dir = unpack_model_dir(args.model_dir)
    baseline_file = args.baseline or model_dir / "baseline.json"
    baseline = json.loads(baseline_file.read_text())
    sections = json.loads(args.params_json) if args.params_json else {}

    def section(name: str) -> dict[str, Any]:
        return dict(sections.get(name, {})) if args.params_json else load_params(args.params, name)

    configured = bool(args.params or args.params_json)
    limits = Thresholds(**section("monitor")) if configured else Thresholds()
    names, categorical = list(baseline["features"]), categorical_features(baseline)
    try:
        if args.data_format == "batch-input":
            batch = read_batch_input(data, names, categorical)
        elif data.is_dir() and not any(data.rglob("*")):
            batch = pd.DataFrame(columns=names)  # no traffic in the window
        else:
            batch = read_batch(data, names, categorical)
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        print(f"error: cannot read {args.data}: {error}", file=sys.stderr)
        return 2
    result = monitor(baseline, batch, limits)
    if configured and (model_dir / "model.joblib").exists():
        training = (
            json.loads(args.training_metrics.read_text())
            if args.training_metrics.exists()
            else None
        )
        gate = Gate(**section("gate"))
        if truth.is_dir() and data.is_dir():
            meta = json.loads((model_dir / "model_meta.json").read_text())
            quality = captured_quality(data, truth, meta, gate, training)
        else:
            quality = model_quality(model_dir, batch, gate, training)
        if quality is not None and (truth.is_dir() or not result["insufficient_rows"]):
            result["model_quality"] = quality
            if not quality["passed"]:
                result["failed"] = True
                result["violations"].append(gate.describe(quality["value"]))
    write_reports(result, baseline, batch, args.output_dir)
    if args.publish_metrics:
        import boto3

        sent = publish_metrics(
            boto3.client("cloudwatch"), args.publish_metrics, metric_data(result, args.stage, now)
        )
        print(f"published {sent} datapoints to CloudWatch namespace {args.publish_metrics}")
    run_ids = log_to_mlflow(result, args.output_dir, args.stage)
    if run_ids:
        print(f"report logged to MLflow run {run_ids['run_id']}")
    summary = (
        f"{len(result['drifted_features'])} drifted feature(s), "
        f"{len(result['violations'])} violation(s) in {result['rows']} rows"
    )
    if result["failed"]:
        print(f"monitor FAILED: {summary}; see {args.output_dir / 'report.html'}", file=sys.stderr)
        for violation in result["violations"][:10]:
            print(f"  {violation}", file=sys.stderr)
        for name in result["drifted_features"]:
            print(f"  drift: {name}", file=sys.stderr)
        # The scheduled job's findings are its metrics; a finding is not a failed job.
        return 0 if args.publish_metrics else 1
    if result["insufficient_rows"]:
        print(f"monitor: {result['insufficient_rows']}; nothing judged, not failing")
        return 0
    print(f"monitor passed: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
