"""Compare a batch of new data with the training baseline: drift, missing, out-of-range, schema.

    python -m <package>.monitor --baseline models/baseline.json --data <csv | capture folder> \
        --params params.yaml --output-dir reports/monitor

``--data`` is a CSV file or folder, or a folder of SageMaker data-capture JSON lines (what an
endpoint, or ``make serve``, wrote). Per numeric feature it computes the population stability index
against the baseline's deciles and a two-sample Kolmogorov-Smirnov test against the baseline
sample; a feature drifts when both cross their thresholds, which keeps false alarms rare across
many features. Per categorical feature (``drift.py``) it computes the PSI over the training
categories (plus one bin for unseen ones) and a chi-square test of the category counts, under the
same rule (PSI above ``psi_threshold`` and p-value below ``chi2_p_value``), the L-infinity distance
Model Monitor publishes for the feature on AWS, and the share of values in categories training
never saw (a violation above ``max_new_category_fraction``). A feature's missing
fraction is a violation when it rises more than ``missing_shift`` above the training baseline's
(Model Monitor's ``completeness`` constraint says the same on AWS: ``quality_baseline``). Writes
``report.json`` and ``report.html`` (with a plot per drifted feature) and exits 1 when a
threshold is crossed, so CI or a schedule can start retraining.

Below ``min_rows`` rows (``params.yaml``) a batch is too small to judge: with a handful of rows the
PSI of ten bins and the KS test flag nearly every feature, and one odd value is a large fraction.
Such a batch is reported as "not enough rows to judge drift" and does not fail; only what a single
row proves (a missing column, a non-numeric value) still counts.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .capture import payload_text, read_records
from .drift import category_counts, category_drift, psi_of_shares
from .evaluate import Gate, compute_metrics, metric_value
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
    # The distance Model Monitor publishes as feature_baseline_drift_<name> (KS statistic for a
    # numeric feature, largest change of a category's share for a categorical one).
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
    # The largest gap between the two cumulative distributions: the distance Model Monitor
    # publishes for a numeric feature.
    report.linf_distance = float(ks.statistic)
    report.drifted = report.psi > limits.psi_threshold and report.ks_p_value < limits.ks_p_value
    if report.drifted:
        report.problems.append(f"drift: PSI {report.psi:.3f}, KS p-value {report.ks_p_value:.2g}")
    return report


def check_category(
    name: str, base: dict[str, Any], column: pd.Series, limits: Thresholds
) -> FeatureReport:
    """A categorical feature against its training category counts (statistics: ``drift.py``)."""
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


def model_quality(
    model_dir: Path, batch: pd.DataFrame, gate: Gate, training_metrics: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Metrics on a labelled batch, judged by the training gate; None when there are no labels."""
    model, meta = load_model(model_dir)
    if meta["target"] not in batch.columns:
        return None
    labelled = batch.dropna(subset=[meta["target"]])
    report = compute_metrics(model, meta, labelled)
    value = metric_value(report, gate.metric)
    return {
        "rows": len(labelled),
        "metric": gate.metric,
        "value": value,
        "training_value": metric_value(training_metrics, gate.metric) if training_metrics else None,
        "threshold": gate.threshold,
        "passed": gate.passes(value),
        "metrics": report,
    }


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
        image = _plot(name, baseline["features"][name], batch[name])
        (output / f"drift-{name}.png").write_bytes(base64.b64decode(image))
        parts.append(f'<h2>{html.escape(name)}</h2><img src="data:image/png;base64,{image}">')
    (output / "report.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Data monitor</title>" + "".join(parts)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, default=Path("models/baseline.json"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--params", type=Path, help="params.yaml; its 'monitor' section")
    parser.add_argument("--output-dir", type=Path, default=Path("reports/monitor"))
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("models"),
        help="with a labelled batch: also check model quality against the gate",
    )
    parser.add_argument("--training-metrics", type=Path, default=Path("reports/metrics.json"))
    args = parser.parse_args(argv)
    baseline = json.loads(args.baseline.read_text())
    limits = Thresholds(**load_params(args.params, "monitor")) if args.params else Thresholds()
    try:
        batch = read_batch(args.data, list(baseline["features"]), categorical_features(baseline))
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        print(f"error: cannot read {args.data}: {error}", file=sys.stderr)
        return 2
    result = monitor(baseline, batch, limits)
    if args.params and (args.model_dir / "model.joblib").exists():
        training = (
            json.loads(args.training_metrics.read_text())
            if args.training_metrics.exists()
            else None
        )
        gate = Gate(**load_params(args.params, "gate"))
        quality = model_quality(args.model_dir, batch, gate, training)
        if quality is not None and not result["insufficient_rows"]:
            result["model_quality"] = quality
            if not quality["passed"]:
                result["failed"] = True
                result["violations"].append(gate.describe(quality["value"]))
    write_reports(result, baseline, batch, args.output_dir)
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
        return 1
    if result["insufficient_rows"]:
        print(f"monitor: {result['insufficient_rows']}; nothing judged, not failing")
        return 0
    print(f"monitor passed: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
