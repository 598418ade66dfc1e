"""SageMaker inference entry point: ``model_fn`` and ``transform_fn``.

The SageMaker scikit-learn container serves ``<model>/code/inference.py`` through
sagemaker-containers' ``Transformer`` (Flask behind gunicorn). There, any exception raised by a
user ``input_fn``/``predict_fn``/``output_fn`` is re-raised as ``ClientError`` and answered with
HTTP 500, whatever it says; a ``transform_fn`` that returns a response object is answered with that
object, status included. So this module defines ``transform_fn`` - and no ``input_fn``,
``predict_fn`` or ``output_fn``, which the container refuses beside it - and turns every malformed
payload into its 4xx itself. The local server (``serve``) calls this same ``transform_fn`` with the
arguments the container passes, so a payload gets the same status on a laptop and on an endpoint.
Batch scoring (``predict``) uses ``parse_rows`` and ``score`` without the per-request limits.

This file is copied alone into the model artifact (``train --bundle-inference-code``): it imports
nothing from its package.

Answers: ``prediction`` per row (the label, as the schema declares it: an integer or text), and for
a classifier ``probability`` (the predicted label's) and ``probability_<label>`` for every label,
in the order of ``model_meta.json`` ``classes``. CSV answers have no header: the prediction first.

Accepted payloads:
- ``text/csv``: one row per line, features in schema order; an optional header row of feature names.
- ``application/json``: ``{"instances": [[...], ...]}``, ``[[...], ...]``, ``[{"feature": value}]``
  or a single record ``{"feature": value, ...}``.

Numeric features take numbers; categorical features (``model_meta.json`` ``categorical_features``)
take text - a JSON string, or the CSV cell as written. A missing value (an empty cell, JSON ``null``
or ``NaN``, or another spelling ``pandas.read_csv`` reads as missing: ``MISSING_SPELLINGS``) is
scored for a feature the schema declares ``nullable`` (``model_meta.json``
``nullable_features``): the model imputes it as it did in training. For any other feature it is
refused, naming the column. A category the model never saw in training is scored (the model's
encoder ignores it), not refused; the monitor reports how often that happens.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

MODEL_FILE = "model.joblib"
META_FILE = "model_meta.json"
# Rows per HTTP request (the endpoint's limit); batch scoring has none.
MAX_ROWS = 10_000
CONTENT_TYPES = ("text/csv", "application/json")
JSON = "application/json"
# The cells pandas.read_csv reads as missing by default: training read its data so, and a payload
# spelling a missing value alike is read alike.
MISSING_SPELLINGS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)


class InvalidInputError(ValueError):
    """A payload the model cannot score; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Answer:
    """What ``transform_fn`` returns: an HTTP status, body and content type.

    It is a WSGI application because that is a response object the container's Flask worker sends
    as it is, status included (Flask turns a callable view result into a response with
    ``Response.force_type``); the local server reads the fields directly.
    """

    def __init__(self, status: int, body: str, content_type: str) -> None:
        self.status = status
        self.body = body.encode("utf-8")
        self.content_type = content_type

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start_response(
            f"{self.status} {HTTPStatus(self.status).phrase}",
            [("Content-Type", self.content_type), ("Content-Length", str(len(self.body)))],
        )
        return [self.body]


def error_answer(status: int, message: str) -> Answer:
    return Answer(status, json.dumps({"error": message}), JSON)


class Model:
    """The fitted pipeline and what it expects, as returned by ``model_fn``."""

    def __init__(self, pipeline: Any, meta: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.meta = meta
        self.features: list[str] = list(meta["features"])
        self.categorical: frozenset[str] = frozenset(meta.get("categorical_features", ()))
        # Features whose missing values the model imputes (schema.json ``nullable``).
        self.nullable: frozenset[str] = frozenset(meta.get("nullable_features", ()))
        # Tree ensembles predict tree by tree, dropping and retaking the GIL each time; concurrent
        # predictions then convoy on the GIL. One at a time serves more, sooner (bench/, 8 clients
        # on 2 cores: 59 -> ~90 requests/s, p50 136 -> 85 ms); parsing and I/O stay concurrent.
        self.predict_lock = threading.Lock()


def load_model(model_dir: Path) -> tuple[Any, dict[str, Any]]:
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / META_FILE).read_text())
    return joblib.load(model_dir / MODEL_FILE), meta


def model_fn(model_dir: str) -> Model:
    pipeline, meta = load_model(Path(model_dir))
    return Model(pipeline, meta)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, row: int, column: str) -> float:
    where = f"row {row}, column '{column}'"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInputError(f"{where}: expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    except ValueError:
        raise InvalidInputError(f"{where}: expected a number, got {_shown(value)}") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"{where}: {_shown(value)} is not a finite 64-bit number")
    return number


def is_missing(value: Any) -> bool:
    """A missing value as a payload spells it: ``null``, ``NaN``, or a cell read as missing."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip() in MISSING_SPELLINGS


def _category(value: Any, row: int, column: str) -> str | float:
    if not isinstance(value, str):
        raise InvalidInputError(
            f"row {row}, column '{column}': expected a category as text, got {_shown(value)}"
        )
    return value


def _media_type(header: str) -> str:
    return header.split(";")[0].strip().lower()


def _decode(body: bytes | str) -> str:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("the body is not valid UTF-8") from None
    return body


def _parse_csv(text: str, features: Sequence[str] | None = None) -> list[Any]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(c.strip() for c in row)]
    except csv.Error as error:  # stray carriage returns, NUL bytes, unbalanced quotes
        raise InvalidInputError(f"the body is not valid CSV: {error}") from None
    if rows and any(cell.strip() and not _looks_numeric(cell) for cell in rows[0]):
        header = [cell.strip() for cell in rows[0]]
        # With categorical features a row of data can be all text too: then only a row naming
        # a feature is a header.
        names_a_feature = features is None or any(cell in features for cell in header)
        unique = len(set(header)) == len(header)
        if unique and names_a_feature and all(not _looks_numeric(c) for c in header):
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


def _json_integer(digits: str) -> float:
    # Features are floats. Converting the digits directly avoids Python's 4,300-digit limit on
    # int() and the OverflowError of float(int): a huge integer becomes inf, refused as such.
    return float(digits)


def _parse_json(text: str) -> list[Any]:
    try:
        payload = json.loads(text, parse_int=_json_integer)
    except (ValueError, RecursionError) as error:
        raise InvalidInputError(f"the body is not valid JSON: {str(error)[:80]}") from None
    if isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    elif isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise InvalidInputError('JSON must be {"instances": [...]}, a list of rows or a record')
    return payload


def parse_rows(
    body: bytes | str, content_type: str, features: Sequence[str] | None = None
) -> list[Any]:
    """Parse a payload into rows (lists or records); their shape is checked in ``score``.

    The content type is checked before the body is decoded: a binary body of another type is a 415.
    ``features`` (for a model with categorical features) tells a CSV header from a row of text.
    """
    media_type = _media_type(content_type or "")
    if media_type not in CONTENT_TYPES:
        raise InvalidInputError(
            f"unsupported content type {media_type or '(none)'!r}; use text/csv or "
            "application/json",
            status=415,
        )
    text = _decode(body)
    rows = _parse_csv(text, features) if media_type == "text/csv" else _parse_json(text)
    if not rows:
        raise InvalidInputError("the payload has no rows")
    return rows


def to_frame(
    rows: list[Any],
    features: list[str],
    first_row: int = 1,
    categorical: frozenset[str] = frozenset(),
    nullable: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Check every row against the model's features and build the frame it scores.

    A missing value of a ``nullable`` feature is NaN, what training data held there and what the
    model imputes; one of another feature is refused.
    """
    matrix = np.empty((len(rows), len(features)), dtype=object if categorical else float)
    parsers = [_category if name in categorical else _number for name in features]
    for offset, row in enumerate(rows):
        index = first_row + offset
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
                raise InvalidInputError(f"row {index}: unknown feature {_shown(str(unknown[0]))}")
            values = [row[name] for name in features]
        elif isinstance(row, list):
            if len(row) != len(features):
                raise InvalidInputError(
                    f"row {index}: expected {len(features)} values, got {len(row)}"
                )
            values = row
        else:
            raise InvalidInputError(f"row {index}: expected a list of values or a record")
        matrix[offset] = [
            _missing(index, name, nullable) if is_missing(v) else parse(v, index, name)
            for v, name, parse in zip(values, features, parsers, strict=True)
        ]
    frame = pd.DataFrame(matrix, columns=features)
    if categorical:
        numeric = [name for name in features if name not in categorical]
        frame[numeric] = frame[numeric].astype(float)
    return frame


def _missing(row: int, column: str, nullable: frozenset[str]) -> float:
    if column not in nullable:
        raise InvalidInputError(
            f"row {row}, column '{column}': missing value, and the feature is not nullable "
            "(schema.json)"
        )
    return math.nan


def _label(label: Any) -> int | str:
    """A class label as the schema declares it: an integer, or text."""
    return label if isinstance(label, str) else int(label)


def score(rows: list[Any], model: Model, first_row: int = 1) -> list[dict[str, Any]]:
    """Predictions for checked rows; ``first_row`` numbers the rows in error messages."""
    # The frame and the result lists are built under the lock too, as before this module had
    # transform_fn: their Python loops would otherwise take the GIL from the prediction in progress.
    with model.predict_lock:
        frame = to_frame(rows, model.features, first_row, model.categorical, model.nullable)
        if model.meta["problem_type"] != "classification":
            return [{"prediction": float(value)} for value in model.pipeline.predict(frame)]
        # One pass over the trees: the label is the most probable class (what predict() returns).
        probabilities = model.pipeline.predict_proba(frame)
        classes = [_label(c) for c in model.pipeline.classes_]
        columns = [f"probability_{c}" for c in classes]
        return [
            {"prediction": classes[row.argmax()], "probability": float(row.max())}
            | dict(zip(columns, row.tolist(), strict=True))
            for row in probabilities
        ]


def response_type(accept: str) -> str:
    """The first media type of an Accept header this handler can write (``*/*``: JSON)."""
    for media_range in (accept or JSON).split(","):
        media_type = _media_type(media_range)
        if media_type in CONTENT_TYPES:
            return media_type
        if media_type in ("*/*", "application/*"):
            return JSON
        if media_type == "text/*":
            return "text/csv"
    raise InvalidInputError(
        f"unsupported accept type {accept[:80]!r}; use application/json or text/csv", status=406
    )


def render(predictions: list[dict[str, Any]], media_type: str) -> str:
    if media_type == JSON:
        return json.dumps({"predictions": predictions})
    # CSV without a header: the first column is the prediction (what monitoring reads). The csv
    # module quotes a text label holding a comma or a quote.
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(record.values() for record in predictions)
    return out.getvalue()


def transform_fn(model: Model, request_body: bytes | str, content_type: str, accept: str) -> Answer:
    """One request, start to finish: the container's (and the local server's) entry point."""
    try:
        rows = parse_rows(request_body, content_type, model.features if model.categorical else None)
        if len(rows) > MAX_ROWS:
            raise InvalidInputError(
                f"the payload has {len(rows)} rows; at most {MAX_ROWS} per request", status=413
            )
        media_type = response_type(accept)
        body = render(score(rows, model), media_type)
    except InvalidInputError as error:
        return error_answer(error.status, str(error))
    return Answer(HTTPStatus.OK, body, media_type)
