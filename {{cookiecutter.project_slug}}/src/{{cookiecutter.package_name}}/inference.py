"""SageMaker inference handler: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

The SageMaker scikit-learn container imports this module as the entry point of an endpoint; the
local server (``serve``) and batch prediction (``predict``) call the same four functions, so a
payload behaves the same on a laptop and on an endpoint.

Accepted payloads:
- ``text/csv``: one row per line, features in schema order; an optional header row of feature names.
- ``application/json``: ``{"instances": [[...], ...]}``, ``[[...], ...]``, ``[{"feature": value}]``
  or a single record ``{"feature": value, ...}``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

MODEL_FILE = "model.joblib"
META_FILE = "model_meta.json"
MAX_ROWS = 10_000


class InvalidInputError(ValueError):
    """A payload the model cannot score; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Model:
    """The fitted pipeline and what it expects, as returned by ``model_fn``."""

    def __init__(self, pipeline: Any, meta: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.meta = meta
        self.features: list[str] = list(meta["features"])


def load_model(model_dir: Path) -> tuple[Any, dict[str, Any]]:
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / META_FILE).read_text())
    return joblib.load(model_dir / MODEL_FILE), meta


def model_fn(model_dir: str) -> Model:
    pipeline, meta = load_model(Path(model_dir))
    return Model(pipeline, meta)


def _number(value: Any, row: int, column: str) -> float:
    if isinstance(value, bool) or value is None:
        raise InvalidInputError(f"row {row}, column '{column}': expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"row {row}, column '{column}': expected a number, got {str(value)[:40]!r}"
        ) from None
    if not math.isfinite(number):
        raise InvalidInputError(f"row {row}, column '{column}': {value!r} is not a finite number")
    return number


def _decode(body: bytes | str) -> str:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("the body is not valid UTF-8") from None
    return body


def _parse_csv(text: str) -> list[list[str]] | list[dict[str, Any]]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(c.strip() for c in row)]
    except csv.Error as error:  # stray carriage returns, NUL bytes, unbalanced quotes
        raise InvalidInputError(f"the body is not valid CSV: {error}") from None
    if rows and any(cell.strip() and not _looks_numeric(cell) for cell in rows[0]):
        header = [cell.strip() for cell in rows[0]]
        if len(set(header)) == len(header) and all(not _looks_numeric(c) for c in header):
            return [
                dict(zip(header, row, strict=False)) | {"__width__": len(row)} for row in rows[1:]
            ]
    return rows


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_json(text: str) -> list[Any]:
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InvalidInputError(f"the body is not valid JSON: {str(error)[:80]}") from None
    if isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    elif isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise InvalidInputError('JSON must be {"instances": [...]}, a list of rows or a record')
    return payload


def input_fn(request_body: bytes | str, request_content_type: str) -> list[Any]:
    """Parse the payload into rows (lists or records); shape is checked in ``predict_fn``."""
    content_type = (request_content_type or "").split(";")[0].strip().lower()
    text = _decode(request_body)
    if content_type == "text/csv":
        rows: list[Any] = _parse_csv(text)
    elif content_type == "application/json":
        rows = _parse_json(text)
    else:
        raise InvalidInputError(
            f"unsupported content type {content_type or '(none)'!r}; use text/csv or "
            "application/json",
            status=415,
        )
    if not rows:
        raise InvalidInputError("the payload has no rows")
    if len(rows) > MAX_ROWS:
        raise InvalidInputError(
            f"the payload has {len(rows)} rows; at most {MAX_ROWS} per request", status=413
        )
    return rows


def to_frame(rows: list[Any], features: list[str]) -> pd.DataFrame:
    """Check every row against the model's features and build the frame it scores."""
    matrix = np.empty((len(rows), len(features)), dtype=float)
    for index, row in enumerate(rows, start=1):
        if isinstance(row, dict):
            width = row.pop("__width__", None)
            if width is not None and width != len(features):
                raise InvalidInputError(
                    f"row {index}: expected {len(features)} values, got {width}"
                )
            missing = [name for name in features if name not in row]
            if missing:
                raise InvalidInputError(f"row {index}: missing feature '{missing[0]}'")
            unknown = [name for name in row if name not in features]
            if unknown:
                raise InvalidInputError(f"row {index}: unknown feature {str(unknown[0])[:40]!r}")
            values = [row[name] for name in features]
        elif isinstance(row, list):
            if len(row) != len(features):
                raise InvalidInputError(
                    f"row {index}: expected {len(features)} values, got {len(row)}"
                )
            values = row
        else:
            raise InvalidInputError(f"row {index}: expected a list of values or a record")
        matrix[index - 1] = [
            _number(v, index, name) for v, name in zip(values, features, strict=True)
        ]
    return pd.DataFrame(matrix, columns=features)


def predict_fn(input_data: list[Any], model: Model) -> list[dict[str, Any]]:
    frame = to_frame(input_data, model.features)
    if model.meta["problem_type"] != "classification":
        return [{"prediction": float(value)} for value in model.pipeline.predict(frame)]
    # One pass over the trees: the label is the most probable class (what predict() returns).
    probabilities = model.pipeline.predict_proba(frame)
    labels = model.pipeline.classes_[probabilities.argmax(axis=1)]
    return [
        {"prediction": int(label), "probability": float(row.max())}
        for label, row in zip(labels, probabilities, strict=True)
    ]


def output_fn(
    prediction: list[dict[str, Any]], accept: str = "application/json"
) -> tuple[str, str]:
    accept = (accept or "application/json").split(";")[0].strip().lower()
    if accept in ("application/json", "*/*"):
        return json.dumps({"predictions": prediction}), "application/json"
    if accept == "text/csv":
        lines = [",".join(str(v) for v in record.values()) for record in prediction]
        return "\n".join(lines) + "\n", "text/csv"
    raise InvalidInputError(
        f"unsupported accept type {accept!r}; use application/json or text/csv", status=406
    )
