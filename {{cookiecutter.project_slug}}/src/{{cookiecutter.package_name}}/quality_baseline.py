"""The data-quality baseline of the training data, in Model Monitor's own file formats.

Writes ``statistics.json`` and ``constraints.json`` as AWS documents them for Model Monitor
("Schema for Statistics" / "Schema for Constraints", docs.aws.amazon.com/sagemaker/latest/dg/
model-monitor-byoc-statistics.html and model-monitor-byoc-constraints.html). The pipeline runs
this on the training split and registers both files as the model package's drift-check
baseline, so a data-quality monitoring schedule compares live traffic with them.

A numeric feature is ``Fractional`` with its KLL distribution; a categorical one (``"dtype":
"category"`` in schema.json) is ``String`` with its category counts (``drift.category_counts``, the
counts the local monitor compares with) and, as its domain, the schema's allowed values or else the
categories seen in training. Model Monitor compares a string feature's live category shares with
these by the L-infinity distance (``categorical_drift_method``), the distance ``drift`` computes
locally, and publishes it as ``feature_baseline_drift_<feature>`` like a numeric feature's; the
same CloudWatch alarm per feature watches both (``pipelines/drift_alarms.py``).

Each feature's ``completeness`` constraint (the least share of non-missing values Model Monitor
accepts) is the training data's completeness less ``missing_shift`` (``params.yaml``
``monitor.missing_shift``, which the pipeline passes): a feature 20% missing in training may be
20% missing in traffic, as the local monitor judges it too.

    python -m <package>.quality_baseline --data-dir data/processed/train \
        --output-dir reports/baseline --missing-shift 0.1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlops_platform.drift import category_counts

from .data import (
    SCHEMA_PATH,
    DataValidationError,
    FeatureSpec,
    Schema,
    load_schema,
    read_csv_dir,
    validate,
)

BUCKETS = 10  # Model Monitor materialises distributions in 10 buckets
KLL_PARAMETERS = {"c": 0.64, "k": 2048.0}
# Model Monitor's comparison settings (constraints.json monitoring_config). For string features
# LInfinity: its drift metric is then a distance from 0 to 1 that grows with drift, like the numeric
# one, so one alarm rule (distance > DriftThreshold) fits every feature. (ChiSquared would make
# the comparison a significance test instead.)
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


def _numerical(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype=float)
    low, high = float(present.min()), float(present.max())
    counts, edges = np.histogram(present, bins=BUCKETS, range=(low, high))
    return {
        "common": {"num_present": int(present.size), "num_missing": int(values.isna().sum())},
        "mean": float(present.mean()),
        "sum": float(present.sum()),
        "std_dev": float(present.std()),
        "min": low,
        "max": high,
        "distribution": {
            "kll": {
                "buckets": [
                    {"lower_bound": float(a), "upper_bound": float(b), "count": float(c)}
                    for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
                ],
                # An exact sketch: one level holding every value (small data needs no compaction).
                "sketch": {"parameters": KLL_PARAMETERS, "data": [sorted(present.tolist())]},
            }
        },
    }


def _string(values: pd.Series) -> dict[str, Any]:
    counts = category_counts(values)
    return {
        "common": {
            "num_present": int(values.notna().sum()),
            "num_missing": int(values.isna().sum()),
        },
        "distinct_count": float(len(counts)),
        "distribution": {
            "categorical": {
                "buckets": [{"value": value, "count": count} for value, count in counts.items()]
            }
        },
    }


def _feature_statistics(frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    if spec.categorical:
        return {
            "name": spec.name,
            "inferred_type": "String",
            "string_statistics": _string(frame[spec.name]),
        }
    return {
        "name": spec.name,
        "inferred_type": "Fractional",
        "numerical_statistics": _numerical(frame[spec.name]),
    }


def _feature_constraints(
    frame: pd.DataFrame, spec: FeatureSpec, missing_shift: float
) -> dict[str, Any]:
    values = frame[spec.name]
    completeness = max(0.0, float(values.notna().mean()) - missing_shift)
    common = {"name": spec.name, "completeness": completeness}
    if spec.categorical:
        domain = list(spec.allowed) if spec.allowed is not None else list(category_counts(values))
        return common | {"inferred_type": "String", "string_constraints": {"domains": domain}}
    return common | {
        "inferred_type": "Fractional",
        "num_constraints": {"is_non_negative": bool((values.dropna() >= 0).all())},
    }


def statistics(frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    return {
        "version": 0.0,
        "dataset": {"item_count": len(frame)},
        "features": [_feature_statistics(frame, spec) for spec in schema.features],
    }


def constraints(frame: pd.DataFrame, schema: Schema, missing_shift: float) -> dict[str, Any]:
    return {
        "version": 0.0,
        "features": [_feature_constraints(frame, spec, missing_shift) for spec in schema.features],
        "monitoring_config": MONITORING_CONFIG,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/opt/ml/processing/input/train"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/baseline"))
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    parser.add_argument(
        "--missing-shift",
        type=float,
        required=True,
        help="how far a feature's missing fraction may rise above training's (monitor section)",
    )
    args = parser.parse_args(argv)
    schema = load_schema(args.schema)
    try:
        frame = validate(read_csv_dir(args.data_dir, schema.text_columns), schema)
    except DataValidationError as error:
        print(f"error: invalid baseline data in {args.data_dir}: {error}", file=sys.stderr)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (
        ("statistics.json", statistics(frame, schema)),
        ("constraints.json", constraints(frame, schema, args.missing_shift)),
    ):
        (args.output_dir / name).write_text(json.dumps(content) + "\n")
    print(f"data-quality baseline of {len(frame)} rows written to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
