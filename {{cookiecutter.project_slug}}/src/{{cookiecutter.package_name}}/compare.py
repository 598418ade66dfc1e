"""Compare the champion with the challenger from captured traffic: agreement, latency, gate metric.

    python -m <package>.compare --captures data/capture --params params.yaml \
        [--labels labels.csv | --labelled-data data/processed/test] --output-dir reports/compare

``--captures`` is a folder, or an ``s3://`` capture prefix of one endpoint, holding a folder per
variant (``<variant>/yyyy/mm/dd/hh/*.jsonl``: what ``make serve`` and endpoint data capture
write); the variant names come from ``variants.json``. The report says:

- **agreement**, over the requests both variants answered (shadow mode; records paired by
  ``eventId``, else by ``inferenceId``): for classification the share of rows where the two
  predict the same label and the confusion between them; for regression the mean and largest
  absolute difference (and the mean signed difference, challenger minus champion);
- **latency** of each variant from the captured ``modelLatencyMicroseconds`` (the local server
  writes it; an endpoint's captures have none: read ``ModelLatency`` per variant in CloudWatch);
- where labels exist, **each variant's gate metric** (``params.yaml`` ``gate``, computed by
  ``evaluate``) on the rows it answered, and the winner by it. Labels come from an
  ``inference_id,label`` CSV (the file ``capture --labels`` takes: one-row requests sent with an
  inference id) or from labelled data, matched to captured rows by their feature values.

It writes ``report.json`` and ``report.html`` (with a plot) and exits 0, or 2 when the captures
cannot be read or hold no answer of the champion or of the challenger.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlops_platform.capture import (
    MODEL_LATENCY_FIELD,
    clean_inference_id,
    download_prefix,
    payload_text,
    read_records,
)

from .data import DataValidationError, Schema, load_schema, read_csv_dir
from .evaluate import Gate, metric_value, metrics_from_predictions
from .inference import InvalidInputError, parse_rows, to_frame
from .params import load_params
from .variants import CHALLENGER, CHAMPION

# Captured feature values are matched to labelled rows after rounding to this many decimals, so
# a client's float formatting does not decide whether a row finds its label.
MATCH_DECIMALS = 9
# A row's identity when labels are matched by feature values.
RowKey = tuple[Any, ...]


class CompareError(ValueError):
    """Captures or labels that cannot be compared; the message says which and why."""


@dataclass
class Event:
    """One captured request of one variant: its rows, the answers, and what identifies it."""

    event_id: str
    inference_id: str | None
    features: pd.DataFrame
    predictions: list[Any]
    probabilities: list[float | None]
    latency_us: float | None


@dataclass
class VariantCaptures:
    name: str
    events: list[Event] = field(default_factory=list)
    unreadable: int = 0

    @property
    def rows(self) -> int:
        return sum(len(event.predictions) for event in self.events)


def read_answers(text: str, content_type: str) -> tuple[list[Any], list[float | None]]:
    """Predictions (and classification probabilities) from a captured response body."""
    if content_type.split(";")[0].strip().lower() == "text/csv":
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        predictions = [_label(row[0]) for row in rows]
        probabilities = [float(row[1]) if len(row) > 1 else None for row in rows]
        return predictions, probabilities
    answers = json.loads(text)["predictions"]
    return (
        [answer["prediction"] for answer in answers],
        [answer.get("probability") for answer in answers],
    )


def read_variant(
    folder: Path, name: str, features: list[str], categorical: Sequence[str] = ()
) -> VariantCaptures:
    """Every readable event of one variant; records the endpoint refused or garbled are counted.

    ``categorical`` names the features that are text categories (the schema's), read as text.
    """
    captures = VariantCaptures(name)
    for _, record in read_records(folder):
        try:
            request = record["captureData"]["endpointInput"]
            response = record["captureData"]["endpointOutput"]
            rows = parse_rows(
                payload_text(request),
                request["observedContentType"],
                features if categorical else None,
            )
            # The endpoint answered these rows: a missing value in them was one it scores.
            frame = to_frame(
                rows, features, categorical=frozenset(categorical), nullable=frozenset(features)
            )
            predictions, probabilities = read_answers(
                payload_text(response), response["observedContentType"]
            )
            if len(predictions) != len(frame):
                raise ValueError("answers and rows differ in number")
            metadata = record["eventMetadata"]
        except (InvalidInputError, KeyError, TypeError, ValueError):
            captures.unreadable += 1
            continue
        latency = metadata.get(MODEL_LATENCY_FIELD)
        captures.events.append(
            Event(
                str(metadata.get("eventId", "")),
                metadata.get("inferenceId"),
                frame,
                predictions,
                probabilities,
                float(latency) if isinstance(latency, int | float) else None,
            )
        )
    return captures


def paired_rows(
    champion: VariantCaptures, challenger: VariantCaptures
) -> tuple[str, list[Any], list[Any]]:
    """(key, champion answers, challenger answers) row by row, for requests both answered.

    The local server gives both records of a shadowed request one ``eventId``; failing any match
    on it, requests are paired by the ``inferenceId`` the client sent.
    """
    for key in ("event_id", "inference_id"):
        theirs = {getattr(e, key): e for e in challenger.events if getattr(e, key)}
        mine = [(e, theirs[getattr(e, key)]) for e in champion.events if getattr(e, key) in theirs]
        pairs = [(a, b) for a, b in mine if len(a.predictions) == len(b.predictions)]
        if pairs:
            left = [p for a, _ in pairs for p in a.predictions]
            right = [p for _, b in pairs for p in b.predictions]
            return key, left, right
    return "", [], []


def agreement(problem_type: str, left: list[Any], right: list[Any]) -> dict[str, Any]:
    if not left:
        return {
            "paired_rows": 0,
            "note": "no request answered by both variants (A/B traffic, or no shared ids)",
        }
    if problem_type == "classification":
        confusion = pd.crosstab(
            pd.Series(left, name=CHAMPION), pd.Series(right, name=CHALLENGER), dropna=False
        )
        return {
            "paired_rows": len(left),
            "agreement_rate": float(np.mean(np.asarray(left) == np.asarray(right))),
            "confusion": {
                "champion_labels": [_plain(v) for v in confusion.index],
                "challenger_labels": [_plain(v) for v in confusion.columns],
                "counts": confusion.to_numpy().tolist(),
            },
        }
    difference = np.asarray(right, dtype=float) - np.asarray(left, dtype=float)
    return {
        "paired_rows": len(left),
        "mean_absolute_difference": float(np.mean(np.abs(difference))),
        "max_absolute_difference": float(np.max(np.abs(difference))),
        "mean_difference": float(np.mean(difference)),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def latency(captures: VariantCaptures) -> dict[str, Any]:
    values = np.asarray(
        [e.latency_us for e in captures.events if e.latency_us is not None], dtype=float
    )
    if values.size == 0:
        return {"requests": 0, "note": "no modelLatencyMicroseconds in the captures"}
    return {
        "requests": int(values.size),
        "p50_ms": float(np.percentile(values, 50)) / 1000,
        "p99_ms": float(np.percentile(values, 99)) / 1000,
        "mean_ms": float(values.mean()) / 1000,
    }


def labels_by_inference_id(path: Path) -> dict[str, Any]:
    with path.open(newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    if not rows or [cell.strip().lower() for cell in rows[0]] != ["inference_id", "label"]:
        raise CompareError(f"{path}: the header must be exactly 'inference_id,label'")
    labels: dict[str, Any] = {}
    for number, row in enumerate(rows[1:], start=2):
        inference_id = clean_inference_id(row[0].strip()) if len(row) == 2 else None
        label = _label(row[1]) if inference_id and row[1].strip() else None
        if inference_id is None or label is None:
            raise CompareError(f"{path}, line {number}: expected an inference id and a label")
        labels[inference_id] = label
    return labels


def _label(text: str) -> Any:
    """A label or prediction as written in CSV: an int when it is a whole number, else text."""
    try:
        number = float(text.strip())
    except ValueError:
        return text.strip()  # a text label
    return int(number) if number.is_integer() else number


def _row_key(values: np.ndarray) -> RowKey:
    """A row's identity: numbers rounded to MATCH_DECIMALS, categories as text, missing as None."""
    return tuple(
        None
        if pd.isna(value)
        else round(float(value), MATCH_DECIMALS)
        if isinstance(value, int | float | np.number)
        else str(value)
        for value in values
    )


def labels_by_features(path: Path, schema: Schema) -> dict[RowKey, Any]:
    frame = read_csv_dir(path, schema.text_columns)
    missing = [c for c in [*schema.feature_names, schema.target] if c not in frame.columns]
    if missing:
        raise CompareError(f"{path}: no column '{missing[0]}' (labelled data needs the features)")
    features = frame[schema.feature_names].to_numpy(dtype=object)
    labels = frame[schema.target].tolist()
    found: dict[RowKey, Any] = {}
    for values, label in zip(features, labels, strict=True):
        found.setdefault(_row_key(values), _plain(label))
    return found


def labelled(
    captures: VariantCaptures,
    schema: Schema,
    by_id: dict[str, Any] | None,
    by_features: dict[RowKey, Any] | None,
) -> tuple[list[Any], list[Any], list[float | None]]:
    """(truth, prediction, probability) for every captured row whose label is known."""
    truth: list[Any] = []
    predicted: list[Any] = []
    probability: list[float | None] = []
    for event in captures.events:
        matrix = event.features[schema.feature_names].to_numpy(dtype=object)
        for row, answer, chance in zip(matrix, event.predictions, event.probabilities, strict=True):
            label = None
            if by_id is not None and event.inference_id and len(event.predictions) == 1:
                label = by_id.get(event.inference_id)
            if label is None and by_features is not None:
                label = by_features.get(_row_key(row))
            if label is not None:
                truth.append(label)
                predicted.append(answer)
                probability.append(chance)
    return truth, predicted, probability


def positive_probabilities(
    predicted: list[Any], probability: list[float | None], classes: list[Any]
) -> list[float] | None:
    """P(classes[1]) per row from the captured label and its probability (binary only)."""
    if len(classes) != 2 or any(p is None for p in probability):
        return None
    return [
        float(p) if answer == classes[1] else 1 - float(p)  # type: ignore[arg-type]
        for answer, p in zip(predicted, probability, strict=True)
    ]


def gate_metric(
    captures: VariantCaptures,
    schema: Schema,
    gate: Gate,
    by_id: dict[str, Any] | None,
    by_features: dict[RowKey, Any] | None,
) -> dict[str, Any] | None:
    truth, predicted, probability = labelled(captures, schema, by_id, by_features)
    if not truth:
        return None
    classes = sorted(schema.target_allowed or ())
    positive = positive_probabilities(predicted, probability, classes)
    report = metrics_from_predictions(
        schema.problem_type,
        truth,
        predicted,
        classes,
        len(classes) or None,
        positive_probability=(lambda: positive) if positive is not None else None,
    )
    try:
        value = metric_value(report, gate.metric)
    except KeyError:
        return {"rows": len(truth), "metric": gate.metric, "value": None, "metrics": report}
    return {
        "rows": len(truth),
        "metric": gate.metric,
        "value": value,
        "passes_gate": gate.passes(value),
        "metrics": report,
    }


def winner(gate: Gate, champion: dict[str, Any] | None, challenger: dict[str, Any] | None) -> str:
    if not champion or not challenger or champion["value"] is None or challenger["value"] is None:
        return f"undecided: no labelled rows for both variants, so no {gate.metric} to compare"
    mine, theirs = champion["value"], challenger["value"]
    if math.isclose(mine, theirs, rel_tol=1e-12, abs_tol=1e-12):
        return f"tie: {gate.metric} {mine:.4f} for both"
    challenger_better = theirs < mine if gate.lower_is_better else theirs > mine
    best = CHALLENGER if challenger_better else CHAMPION
    return f"{best} by {gate.metric}: {CHAMPION} {mine:.4f}, {CHALLENGER} {theirs:.4f}"


def compare(
    folder: Path,
    schema: Schema,
    gate: Gate,
    by_id: dict[str, Any] | None = None,
    by_features: dict[RowKey, Any] | None = None,
) -> tuple[dict[str, Any], tuple[list[Any], list[Any]], dict[str, list[float]]]:
    """The report, the paired answers and each variant's latencies (for the plot)."""
    for name in (CHAMPION, CHALLENGER):
        if not (folder / name).is_dir():
            raise CompareError(f"{folder}: no folder '{name}' (captures are kept per variant)")
    variants = {
        name: read_variant(folder / name, name, schema.feature_names, schema.categorical_features)
        for name in (CHAMPION, CHALLENGER)
    }
    for name, captures in variants.items():
        if not captures.events:
            raise CompareError(f"{folder / name}: no readable captured answers of '{name}'")
    key, left, right = paired_rows(variants[CHAMPION], variants[CHALLENGER])
    metrics = {
        name: gate_metric(captures, schema, gate, by_id, by_features)
        for name, captures in variants.items()
    }
    report = {
        "problem_type": schema.problem_type,
        "gate": {"metric": gate.metric, "threshold": gate.threshold},
        "variants": {
            name: {
                "requests": len(captures.events),
                "rows": captures.rows,
                "unreadable_records": captures.unreadable,
                "latency": latency(captures),
                "gate_metric": metrics[name],
            }
            for name, captures in variants.items()
        },
        "paired_by": key or None,
        "agreement": agreement(schema.problem_type, left, right),
        "winner": winner(gate, metrics[CHAMPION], metrics[CHALLENGER]),
    }
    latencies = {
        name: [e.latency_us / 1000 for e in captures.events if e.latency_us is not None]
        for name, captures in variants.items()
    }
    return report, (left, right), latencies


def _plot(
    problem_type: str, pairs: tuple[list[Any], list[Any]], latencies: dict[str, list[float]]
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    champion, challenger = pairs
    if champion and problem_type == "classification":
        confusion = pd.crosstab(pd.Series(champion), pd.Series(challenger))
        left.imshow(confusion.to_numpy(), cmap="Blues")
        left.set_xticks(range(len(confusion.columns)), [str(c) for c in confusion.columns])
        left.set_yticks(range(len(confusion.index)), [str(c) for c in confusion.index])
        counts = confusion.to_numpy()
        for (row, column), count in np.ndenumerate(counts):
            shade = "white" if count > counts.max() / 2 else "black"
            left.text(column, row, str(count), ha="center", va="center", color=shade)
        left.set_xlabel(f"{CHALLENGER} label")
        left.set_ylabel(f"{CHAMPION} label")
        left.set_title("Predictions on the same requests")
    elif champion:
        left.scatter(champion, challenger, s=8, alpha=0.6)
        low, high = min(champion + challenger), max(champion + challenger)
        left.plot([low, high], [low, high], color="grey", linewidth=1)
        left.set_xlabel(f"{CHAMPION} prediction")
        left.set_ylabel(f"{CHALLENGER} prediction")
        left.set_title("Predictions on the same requests")
    else:
        left.text(0.5, 0.5, "no request answered by both", ha="center", va="center")
        left.set_axis_off()
    shown = {name: values for name, values in latencies.items() if values}
    if shown:
        right.hist(list(shown.values()), bins=30, label=list(shown), alpha=0.7)
        right.set_xlabel("model latency (ms)")
        right.set_ylabel("requests")
        right.legend()
    else:
        right.text(0.5, 0.5, "no latency in the captures", ha="center", va="center")
        right.set_axis_off()
    right.set_title("Latency per variant")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def write_reports(
    report: dict[str, Any],
    pairs: tuple[list[Any], list[Any]],
    latencies: dict[str, list[float]],
    output: Path,
    model_card: Path | None = None,
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    image = _plot(report["problem_type"], pairs, latencies)
    (output / "comparison.png").write_bytes(image)
    metric = report["gate"]["metric"]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{v['requests']}</td><td>{v['rows']}</td>"
        f"<td>{_cell(v['latency'].get('p50_ms'))}</td><td>{_cell(v['latency'].get('p99_ms'))}</td>"
        f"<td>{_cell((v['gate_metric'] or {}).get('value'))}</td>"
        f"<td>{_cell((v['gate_metric'] or {}).get('rows'))}</td></tr>"
        for name, v in report["variants"].items()
    )
    agreement_items = "".join(
        f"<li>{html.escape(name)}: {_cell(value)}</li>"
        for name, value in report["agreement"].items()
        if name != "confusion"
    )
    parts = [
        f"<h1>Champion and challenger: {html.escape(report['winner'])}</h1>",
        "<table><tr><th>variant</th><th>requests</th><th>rows</th><th>p50 ms</th><th>p99 ms</th>"
        f"<th>{html.escape(metric)}</th><th>labelled rows</th></tr>{rows}</table>",
        f"<h2>Agreement</h2><ul>{agreement_items}</ul>",
        f'<img src="data:image/png;base64,{base64.b64encode(image).decode("ascii")}">',
    ]
    # The champion's model card (make model-card writes it beside the reports).
    if model_card is not None and model_card.exists():
        link = html.escape(os.path.relpath(model_card.resolve(), output.resolve()))
        parts.append(f'<p>The model card: <a href="{link}">{link}</a></p>')
    (output / "report.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Champion and challenger</title>" + "".join(parts)
    )


def argument_parser() -> argparse.ArgumentParser:
    """The command line (``make compare`` passes its variables through it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--captures",
        default="data/capture",
        help="capture folder, or s3://bucket/prefix/<endpoint>, holding a folder per variant",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--labels", type=Path, help="CSV inference_id,label (one-row requests)")
    parser.add_argument(
        "--labelled-data", type=Path, help="CSV file or folder with the features and the target"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("reports/compare"))
    parser.add_argument(
        "--model-card",
        type=Path,
        default=Path("reports/model_card.html"),
        help="the champion's model card (make model-card), linked from the report",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser()
    args = parser.parse_args(argv)
    schema = load_schema()
    gate = Gate(**load_params(args.params, "gate"))
    try:
        by_id = labels_by_inference_id(args.labels) if args.labels else None
        by_features = labels_by_features(args.labelled_data, schema) if args.labelled_data else None
        with tempfile.TemporaryDirectory(prefix="captures-") as scratch:
            folder = (
                download_prefix(args.captures, Path(scratch))
                if args.captures.startswith("s3://")
                else Path(args.captures)
            )
            report, pairs, latencies = compare(folder, schema, gate, by_id, by_features)
    except (CompareError, DataValidationError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_reports(report, pairs, latencies, args.output_dir, args.model_card)
    shared = report["agreement"]
    if "agreement_rate" in shared:
        print(f"agreement {shared['agreement_rate']:.1%} over {shared['paired_rows']} paired rows")
    elif "mean_absolute_difference" in shared:
        print(
            f"mean |difference| {shared['mean_absolute_difference']:.4g}, max "
            f"{shared['max_absolute_difference']:.4g} over {shared['paired_rows']} paired rows"
        )
    else:
        print(shared["note"])
    print(f"winner: {report['winner']}; see {args.output_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
