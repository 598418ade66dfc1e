"""SageMaker inference entry point: ``model_fn`` and ``transform_fn``.

The SageMaker scikit-learn container serves ``<model>/code/inference.py`` through
sagemaker-containers' ``Transformer`` (Flask behind gunicorn). There, any exception raised by a
user ``input_fn``/``predict_fn``/``output_fn`` is re-raised as ``ClientError`` and answered with
HTTP 500, whatever it says; a ``transform_fn`` that returns a response object is answered with that
object, status included. So this module defines ``transform_fn`` - and no ``input_fn``,
``predict_fn`` or ``output_fn``, which the container refuses beside it - and turns every malformed
payload into its 4xx itself. The local server (``serve``) calls this same ``transform_fn`` with the
arguments the container passes, so a payload gets the same status on a laptop and on an endpoint.
Batch scoring (``predict``) uses ``parse_rows`` and ``score`` without the per-request limits, and so
does a batch transform job: SageMaker sets ``SAGEMAKER_BATCH=true`` in its container and, with
``BatchStrategy`` MultiRecord and ``SplitType`` Line, sends as many CSV lines per request as fit in
``MaxPayloadInMB`` (6 MB holds far more than an endpoint's ``MAX_ROWS``); the answer has one line
per record, in order, which is what its ``JoinSource`` needs.

This file is copied alone into the model artifact (``train --bundle-inference-code``): it imports
nothing from its package.

Answers: ``prediction`` per row (the label, as the schema declares it: an integer or text), and for
a classifier ``probability`` (the predicted label's) and ``probability_<label>`` for every label,
in the order of ``model_meta.json`` ``classes``. CSV answers have no header: the prediction first.

Accepted payloads:
- ``text/csv``: one row per line, values separated by commas, features in schema order; an optional
  header row of feature names, which may start with a UTF-8 byte-order mark (as spreadsheet exports
  write it). Rows separated by ``;`` or tabs are refused with a message naming the separator.
- ``application/json``: ``{"instances": [[...], ...]}``, ``[[...], ...]``, ``[{"feature": value}]``
  or a single record ``{"feature": value, ...}``; an object naming a key twice is refused.

The body is UTF-8 unless the content type declares another ``charset`` that Python's codecs know
(``latin-1``, ``utf-16``, ``cp1252``, ...): that one is decoded; an unknown charset is a 415. The
answer is JSON or CSV as the ``Accept`` header prefers, q-values included (``q=0`` excludes a type);
406 when it accepts neither.

A number is what ``as_number`` accepts - one rule, which the monitor applies to the same values.

Numeric features take numbers; categorical features (``model_meta.json`` ``categorical_features``)
take text - a JSON string, or the CSV cell as written. A missing value (an empty cell, JSON ``null``
or ``NaN``, or another spelling ``pandas.read_csv`` reads as missing: ``MISSING_SPELLINGS``) is
scored for a feature the schema declares ``nullable`` (``model_meta.json``
``nullable_features``): the model imputes it as it did in training. For any other feature it is
refused, naming the column. A category the model never saw in training is scored (the model's
encoder ignores it), not refused; the monitor reports how often that happens.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
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
# Rows per HTTP request (the endpoint's limit); batch scoring and batch transform have none.
MAX_ROWS = 10_000
# Set to "true" by SageMaker in a batch transform job's container.
BATCH_VARIABLE = "SAGEMAKER_BATCH"
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
        # A batch transform's mini-batch is bounded by its MaxPayloadInMB, not by rows.
        self.max_rows: int | None = (
            None if os.environ.get(BATCH_VARIABLE, "").lower() == "true" else MAX_ROWS
        )


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


# What a number is in a payload, for the endpoint and the monitor alike: ASCII decimal notation
# with an optional sign, fraction and exponent ("12", "-0.5", ".5", "1e-3"), spaces around it
# allowed. Python's float() alone also takes Unicode digits ("\u0661\u0662"), underscores
# ("1_0") and the words inf/nan, which pandas (the monitor's reader) does not: a value the
# endpoint scored would then count as non-numeric in the monitor's report.
NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
# Written like a number but not finite: refused with that reason rather than "expected a number".
NON_FINITE = re.compile(r"\s*[+-]?(?:inf|infinity|nan)\s*", re.IGNORECASE)


def _as_float(value: Any) -> float | None:
    """``value`` as a float, finite or not, when the number rule accepts its notation."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int | np.integer):
        try:
            return float(int(value))
        except OverflowError:  # an integer beyond the float range
            return math.inf
    if isinstance(value, str) and (NUMBER.fullmatch(value) or NON_FINITE.fullmatch(value)):
        return float(value)  # digits beyond the float range give inf
    return None


def as_number(value: Any) -> float | None:
    """The one rule for a feature value: the finite float it is, or None when it is none.

    A JSON number or a text in ``NUMBER`` notation whose value is a finite 64-bit float.
    """
    number = _as_float(value)
    return number if number is not None and math.isfinite(number) else None


def _number(value: Any, row: int, column: str) -> float:
    number = as_number(value)
    if number is not None:
        return number
    where = f"row {row}, column '{column}'"
    if _as_float(value) is None:
        raise InvalidInputError(f"{where}: expected a number, got {_shown(value)}")
    raise InvalidInputError(f"{where}: {_shown(value)} is not a finite 64-bit number")


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


def _parameters(header: str) -> dict[str, str]:
    """The ``name=value`` parameters of a media type or media range, names lowercased."""
    parameters = {}
    for parameter in header.split(";")[1:]:
        name, _, value = parameter.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"')
    return parameters


def _decode(body: bytes | str, content_type: str) -> str:
    """The body as text: UTF-8 unless the content type declares a charset Python's codecs know.

    The container's worker hands over text already (decoded as UTF-8) exactly when the content
    type is bare ``text/csv`` or ``application/json``; with a declared charset it passes bytes.
    """
    if isinstance(body, str):
        text = body
    else:
        charset = _parameters(content_type).get("charset") or "utf-8"
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            raise InvalidInputError(
                f"unknown charset {charset[:40]!r}; send UTF-8 or name a standard charset",
                status=415,
            ) from None
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            raise InvalidInputError(
                f"the body is not valid {charset[:40]}; send UTF-8 or declare its charset"
            ) from None
    # A byte-order mark before the first row (spreadsheet exports write one) is not data.
    return text.removeprefix("\ufeff")


# Separators spreadsheets write instead of the comma, by name.
FOREIGN_SEPARATORS = {";": "';' (semicolon)", "\t": "tab"}
_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def foreign_separator(line: str) -> str | None:
    """The name of the separator a CSV line uses when it is not the comma, else None.

    Outside quoted values, a separator that occurs at least as often as the commas, less the
    decimal commas of a row that also writes "1,5" for 1.5: a ``;`` inside a comma-separated
    value stays allowed.
    """
    bare = _QUOTED.sub("", line)
    commas = bare.count(",")
    for separator, name in FOREIGN_SEPARATORS.items():
        found = bare.count(separator)
        if found and found + 1 >= commas:
            return name
    return None


def _refuse_foreign_separator(text: str) -> None:
    # The first non-blank line, without splitting a body of up to 6 MB into a list of lines.
    first = next((line for line in io.StringIO(text) if line.strip()), "")
    name = foreign_separator(first)
    if name:
        raise InvalidInputError(
            f"the rows are separated by {name}; send values separated by ',' (comma), "
            "with '.' as the decimal point"
        )


def _parse_csv(text: str, features: Sequence[str] | None = None) -> list[Any]:
    _refuse_foreign_separator(text)
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
    return _as_float(cell) is not None


def _json_integer(digits: str) -> float:
    # Features are floats. Converting the digits directly avoids Python's 4,300-digit limit on
    # int() and the OverflowError of float(int): a huge integer becomes inf, refused as such.
    return float(digits)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a repeated key would silently lose a value."""
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidInputError(
                    f"the JSON object names the key {_shown(key)} twice; send each key once"
                )
            seen.add(key)
    return record


def _parse_json(text: str) -> list[Any]:
    try:
        payload = json.loads(text, parse_int=_json_integer, object_pairs_hook=_unique_keys)
    except InvalidInputError:
        raise
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
    text = _decode(body, content_type)
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


def _quality(media_range: str) -> float:
    text = _parameters(media_range).get("q", "1")
    try:
        quality = float(text)
    except ValueError:
        quality = math.nan
    if not 0 <= quality <= 1:  # NaN too
        raise InvalidInputError(
            f"Accept: q={text[:20]!r} is not a weight between 0 and 1", status=400
        )
    return quality


def response_type(accept: str) -> str:
    """The answer's media type for an Accept header, as RFC 9110 section 12.5.1 ranks them.

    Each type this handler writes takes the weight (q, default 1) of the most specific range
    that matches it (``text/csv`` before ``text/*`` before ``*/*``); ``q=0`` means "not this".
    The heavier type wins; on a tie, the one whose range comes first, then JSON.
    """
    weights: dict[str, tuple[int, float, int]] = {}  # type -> (specificity, q, position)
    for position, media_range in enumerate((accept or JSON).split(",")):
        media_type = _media_type(media_range)
        if not media_type:
            continue
        for candidate in CONTENT_TYPES:
            kind = candidate.split("/")[0]
            specificity = {candidate: 2, f"{kind}/*": 1, "*/*": 0}.get(media_type)
            if specificity is None:
                continue
            known = weights.get(candidate)
            if known is None or specificity > known[0]:
                weights[candidate] = (specificity, _quality(media_range), position)
    acceptable = [
        (-q, position, candidate != JSON, candidate)
        for candidate, (_, q, position) in weights.items()
        if q > 0
    ]
    if not acceptable:
        raise InvalidInputError(
            f"unsupported accept type {accept[:80]!r}; use application/json or text/csv",
            status=406,
        )
    return min(acceptable)[-1]


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
        if model.max_rows is not None and len(rows) > model.max_rows:
            raise InvalidInputError(
                f"the payload has {len(rows)} rows; at most {model.max_rows} per request",
                status=413,
            )
        media_type = response_type(accept)
        body = render(score(rows, model), media_type)
    except InvalidInputError as error:
        return error_answer(error.status, str(error))
    return Answer(HTTPStatus.OK, body, media_type)
