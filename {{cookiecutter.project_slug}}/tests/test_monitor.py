"""Drift and data-quality monitoring against the training baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlops_platform.capture import CaptureWriter

from {{ cookiecutter.package_name }} import evaluate, monitor
from {{ cookiecutter.package_name }}.data import Schema


@pytest.fixture(scope="module")
def baseline(model_dir: Path) -> dict[str, Any]:
    return dict(json.loads((model_dir / "baseline.json").read_text()))


def features(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    return frame[schema.feature_names].copy()


def test_undrifted_resamples_are_not_flagged(
    baseline: dict[str, Any], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    """False-positive check: 20 bootstrap resamples of the training data, none may fail."""
    flagged = 0
    for seed in range(20):
        batch = features(clean_frame, schema).sample(200, replace=True, random_state=seed)
        flagged += monitor.monitor(baseline, batch, monitor.Thresholds())["failed"]
    assert flagged == 0


def test_shifted_mean_is_flagged_by_name(
    baseline: dict[str, Any], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    batch = features(clean_frame, schema)
    name = schema.feature_names[0]
    batch[name] = batch[name] + 1.5 * batch[name].std()
    result = monitor.monitor(baseline, batch, monitor.Thresholds())
    assert result["failed"]
    assert result["drifted_features"] == [name]


def test_missing_column_and_new_category(
    baseline: dict[str, Any], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    batch = features(clean_frame, schema).drop(columns=schema.feature_names[1])
    other = schema.feature_names[2]
    batch[other] = batch[other].astype(object)
    batch.loc[batch.index[:10], other] = "unseen-category"
    result = monitor.monitor(baseline, batch, monitor.Thresholds())
    assert result["failed"]
    assert result["missing_columns"] == [schema.feature_names[1]]
    assert any(v.startswith(f"{other}: 10 non-numeric") for v in result["violations"])


def test_missing_and_out_of_range_values(
    baseline: dict[str, Any], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    batch = features(clean_frame, schema)
    first, second = schema.feature_names[:2]
    # Training had none missing; 100 of 569 (0.18) is more than monitor.missing_shift above that.
    batch.loc[batch.index[:100], first] = np.nan
    batch.loc[batch.index[:50], second] = baseline["features"][second]["max"] * 10
    result = monitor.monitor(baseline, batch, monitor.Thresholds())
    assert any(v.startswith(f"{first}: missing fraction") for v in result["violations"])
    assert any(
        v.startswith(f"{second}:") and "outside the training range" in v
        for v in result["violations"]
    )


def test_capture_round_trip_and_reports(
    tmp_path: Path,
    model_dir: Path,
    baseline: dict[str, Any],
    clean_frame: pd.DataFrame,
    schema: Schema,
) -> None:
    capture = CaptureWriter(tmp_path / "capture")
    rows = features(clean_frame, schema).head(150)
    for start in range(0, len(rows), 10):
        body = rows.iloc[start : start + 10].to_csv(index=False, header=False)
        capture.write(body, "text/csv", '{"predictions": []}', "application/json")
    capture.write('{"instances": [[1, 2]]}', "application/json", "{}", "application/json")
    seen = monitor.read_capture(tmp_path / "capture", schema.feature_names)
    assert len(seen) == 151  # every captured row, including the malformed request's
    assert list(seen.columns) == schema.feature_names

    shifted = tmp_path / "shifted.csv"
    drifted = features(clean_frame, schema)
    drifted[schema.feature_names[0]] *= 3
    drifted.to_csv(shifted, index=False)
    out = tmp_path / "report"
    code = monitor.main(
        [
            "--baseline",
            str(model_dir / "baseline.json"),
            "--data",
            str(shifted),
            "--output-dir",
            str(out),
        ]
    )
    assert code == 1
    assert json.loads((out / "report.json").read_text())["failed"] is True
    assert (out / "report.html").stat().st_size > 1000
    assert (out / f"drift-{schema.feature_names[0]}.png").stat().st_size > 1000


def test_psi_is_zero_for_identical_samples() -> None:
    sample = np.linspace(0, 1, 500)
    edges = list(np.quantile(sample, np.linspace(0, 1, 11)))
    assert monitor.psi(edges, sample, sample) == pytest.approx(0.0, abs=1e-9)
    assert monitor.psi(edges, sample, sample + 0.5) > 0.5


def test_model_quality_on_a_labelled_batch(
    tmp_path: Path, model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    metric = "accuracy" if schema.problem_type == "classification" else "rmse"
    strict = 1.01 if metric == "accuracy" else 0.001
    lenient = 0.0 if metric == "accuracy" else 1e9
    good = monitor.model_quality(model_dir, clean_frame, evaluate.Gate(metric, lenient), None)
    assert good is not None and good["passed"] and good["rows"] == len(clean_frame)
    failing = monitor.model_quality(model_dir, clean_frame, evaluate.Gate(metric, strict), None)
    assert failing is not None and not failing["passed"]
    unlabelled = features(clean_frame, schema)
    assert monitor.model_quality(model_dir, unlabelled, evaluate.Gate(metric, strict), None) is None

    labelled = tmp_path / "labelled.csv"
    clean_frame.to_csv(labelled, index=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"gate": {"metric": metric, "threshold": strict}}))
    out = tmp_path / "quality"
    code = monitor.main(
        [
            "--baseline",
            str(model_dir / "baseline.json"),
            "--data",
            str(labelled),
            "--params",
            str(params),
            "--model-dir",
            str(model_dir),
            "--output-dir",
            str(out),
        ]
    )
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    assert report["model_quality"]["passed"] is False
    assert any("quality gate FAILED" in v for v in report["violations"])


def test_a_batch_below_min_rows_is_reported_not_judged(
    tmp_path: Path,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nine captured requests (what a short `make serve` session leaves) do not fail the monitor."""
    limits = monitor.Thresholds(**yaml.safe_load(Path("params.yaml").read_text())["monitor"])
    rows = features(clean_frame, schema).head(9)
    rows[schema.feature_names[0]] *= 3  # plainly shifted, but nine rows cannot show it
    capture = CaptureWriter(tmp_path / "capture")
    for index in range(len(rows)):
        body = rows.iloc[index : index + 1].to_csv(index=False, header=False)
        capture.write(body, "text/csv", '{"predictions": []}', "application/json")
    code = monitor.main(
        [
            "--baseline",
            str(model_dir / "baseline.json"),
            "--data",
            str(tmp_path / "capture"),
            "--params",
            "params.yaml",
            "--output-dir",
            str(tmp_path / "report"),
        ]
    )
    assert code == 0
    expected = f"not enough rows to judge drift (n=9 < {limits.min_rows}"
    assert expected in capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["failed"] is False and report["drifted_features"] == []

    # One row is enough to prove a missing column; that still fails.
    broken = monitor.monitor(
        json.loads((model_dir / "baseline.json").read_text()),
        rows.drop(columns=schema.feature_names[1]),
        limits,
    )
    assert broken["failed"] and broken["missing_columns"] == [schema.feature_names[1]]


def test_a_batch_of_min_rows_is_judged(
    baseline: dict[str, Any], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    limits = monitor.Thresholds(**yaml.safe_load(Path("params.yaml").read_text())["monitor"])
    batch = features(clean_frame, schema).head(limits.min_rows)
    name = schema.feature_names[0]
    batch[name] = batch[name] + 1.5 * clean_frame[name].std()
    result = monitor.monitor(baseline, batch, limits)
    assert result["insufficient_rows"] is None
    assert result["failed"] and name in result["drifted_features"]
