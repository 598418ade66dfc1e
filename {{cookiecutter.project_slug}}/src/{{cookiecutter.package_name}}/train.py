"""Train the model on the prepared training split and save it with its baseline statistics.

Command line (SageMaker Training passes ``SM_CHANNEL_TRAIN`` and ``SM_MODEL_DIR``)::

    python -m <package>.train --train-dir data/processed/train --model-dir models \
        --params params.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from mlops_platform.drift import category_counts
from sklearn.pipeline import Pipeline

from . import model_code
from .data import SCHEMA_PATH, DataValidationError, Schema, load_schema, read_csv_dir, validate
from .estimator import HYPERPARAMETERS, build_estimator
from .features import build_preprocessor
from .params import load_params

MODEL_FILE = "model.joblib"
META_FILE = "model_meta.json"
BASELINE_FILE = "baseline.json"
BASELINE_BINS = 10


def label_value(label: Any) -> int | str:
    """A class label as JSON holds it: an integer, or the text the schema declares."""
    return label if isinstance(label, str) else int(label)


def build_model(schema: Schema, hyperparameters: dict[str, Any]) -> Pipeline:
    estimator = build_estimator(schema.problem_type, hyperparameters)
    return Pipeline([("features", build_preprocessor(schema)), ("model", estimator)])


def feature_baseline(frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Per-feature statistics of the training data; the monitor compares new data against them."""
    features: dict[str, Any] = {}
    for name in schema.feature_names:
        if name in schema.categorical_features:
            features[name] = {
                "kind": "categorical",
                "count": int(frame[name].notna().sum()),
                "missing_fraction": float(frame[name].isna().mean()),
                "categories": category_counts(frame[name]),
            }
            continue
        values = frame[name].dropna()
        edges = values.quantile([i / BASELINE_BINS for i in range(BASELINE_BINS + 1)]).tolist()
        features[name] = {
            "kind": "numeric",
            "count": int(values.size),
            "missing_fraction": float(frame[name].isna().mean()),
            "mean": float(values.mean()),
            "std": float(values.std(ddof=0)),
            "min": float(values.min()),
            "max": float(values.max()),
            "quantile_edges": [float(edge) for edge in edges],
            "sample": [float(v) for v in values.sample(min(500, values.size), random_state=0)],
        }
    return {"features": features, "rows": len(frame)}


def train(frame: pd.DataFrame, schema: Schema, hyperparameters: dict[str, Any]) -> Pipeline:
    model = build_model(schema, hyperparameters)
    model.fit(frame[schema.feature_names], frame[schema.target])
    return model


def save(
    model: Pipeline,
    schema: Schema,
    frame: pd.DataFrame,
    model_dir: Path,
    hyperparameters: dict[str, Any],
) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / MODEL_FILE)
    meta = {
        "problem_type": schema.problem_type,
        "features": schema.feature_names,
        # Columns the endpoint reads as text; the model encodes them (features.py).
        "categorical_features": schema.categorical_features,
        # Features whose missing values the model imputes; the endpoint scores them missing too.
        "nullable_features": [spec.name for spec in schema.features if spec.nullable],
        "target": schema.target,
        # The labels as the schema declares them (integers or text), in predict_proba's order.
        "classes": [label_value(c) for c in getattr(model, "classes_", [])],
        "hyperparameters": hyperparameters,
    }
    baseline = feature_baseline(frame, schema)
    predictions = pd.Series(model.predict(frame[schema.feature_names]))
    if schema.problem_type == "classification":
        # Each label's share of the predictions (labels may be text: no mean).
        shares = predictions.value_counts(normalize=True)
        baseline["predictions"] = {"shares": {str(k): float(v) for k, v in shares.items()}}
    else:
        baseline["predictions"] = {
            "mean": float(predictions.mean()),
            "std": float(predictions.std(ddof=0)),
        }
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (model_dir / BASELINE_FILE).write_text(json.dumps(baseline) + "\n")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--train-dir",
        type=Path,
        default=Path(os.environ.get("SM_CHANNEL_TRAIN", "data/processed/train")),
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "models"))
    )
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    parser.add_argument(
        "--params", type=Path, help="params.yaml; its 'train' section sets defaults"
    )
    parser.add_argument(
        "--bundle-inference-code",
        action="store_true",
        help="write <model-dir>/code for the SageMaker container (inference.py, requirements)",
    )
    for name, kind in HYPERPARAMETERS.items():
        # SageMaker passes hyperparameters as --name value; both spellings are accepted.
        parser.add_argument(f"--{name.replace('_', '-')}", f"--{name}", dest=name, type=kind)
    args = parser.parse_args(argv)
    hyperparameters = load_params(args.params, "train") if args.params else {}
    # A SageMaker training job started with a command passes hyperparameters in SM_HPS, as text.
    hyperparameters |= json.loads(os.environ.get("SM_HPS", "{}"))
    unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
    if unknown:
        parser.error(f"unknown hyperparameter '{unknown[0]}' in {args.params}")
    for name, kind in HYPERPARAMETERS.items():
        if getattr(args, name) is not None:
            hyperparameters[name] = getattr(args, name)
        elif name in hyperparameters:
            hyperparameters[name] = kind(hyperparameters[name])
    return args, hyperparameters


def main(argv: list[str] | None = None) -> int:
    args, hyperparameters = parse_args(argv)
    schema = load_schema(args.schema)
    try:
        frame = validate(read_csv_dir(args.train_dir, schema.text_columns), schema)
    except DataValidationError as error:
        print(f"error: invalid training data in {args.train_dir}: {error}", file=sys.stderr)
        return 2
    model = train(frame, schema, hyperparameters)
    save(model, schema, frame, args.model_dir, hyperparameters)
    if args.bundle_inference_code:
        # The SageMaker scikit-learn container serves <model>/code/inference.py (SAGEMAKER_PROGRAM)
        # after pip-installing code/ (model_code.py: the locked runtime, and under network
        # isolation the wheels to install it offline).
        model_code.write(args.model_dir / "code")
    print(f"trained {schema.problem_type} model on {len(frame)} rows -> {args.model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
