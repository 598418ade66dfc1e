"""The data-quality baseline of the training data, in Model Monitor's own file formats.

Writes ``statistics.json`` and ``constraints.json`` as AWS documents them for Model Monitor
("Schema for Statistics" / "Schema for Constraints", docs.aws.amazon.com/sagemaker/latest/dg/
model-monitor-byoc-statistics.html and model-monitor-byoc-constraints.html). The pipeline runs
this on the training split and registers both files as the model package's drift-check
baseline, so a data-quality monitoring schedule compares live traffic with them.

    python -m <package>.quality_baseline --data-dir data/processed/train \
        --output-dir reports/baseline
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import SCHEMA_PATH, DataValidationError, Schema, load_schema, read_csv_dir, validate

BUCKETS = 10  # Model Monitor materialises distributions in 10 buckets
KLL_PARAMETERS = {"c": 0.64, "k": 2048.0}
# Model Monitor's comparison settings for numeric features (constraints.json monitoring_config).
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
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


def statistics(frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    return {
        "version": 0.0,
        "dataset": {"item_count": len(frame)},
        "features": [
            {
                "name": name,
                "inferred_type": "Fractional",
                "numerical_statistics": _numerical(frame[name]),
            }
            for name in schema.feature_names
        ],
    }


def constraints(frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    return {
        "version": 0.0,
        "features": [
            {
                "name": name,
                "inferred_type": "Fractional",
                "completeness": float(frame[name].notna().mean()),
                "num_constraints": {"is_non_negative": bool((frame[name].dropna() >= 0).all())},
            }
            for name in schema.feature_names
        ],
        "monitoring_config": MONITORING_CONFIG,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/opt/ml/processing/input/train"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/baseline"))
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    schema = load_schema(args.schema)
    try:
        frame = validate(read_csv_dir(args.data_dir, schema.categorical_features), schema)
    except DataValidationError as error:
        print(f"error: invalid baseline data in {args.data_dir}: {error}", file=sys.stderr)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (
        ("statistics.json", statistics(frame, schema)),
        ("constraints.json", constraints(frame, schema)),
    ):
        (args.output_dir / name).write_text(json.dumps(content) + "\n")
    print(f"data-quality baseline of {len(frame)} rows written to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
