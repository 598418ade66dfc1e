"""Batch prediction of CSV files with the endpoint's own parsing and scoring.

    python -m <package>.predict --input data/processed/test/test.csv            # to standard output
    python -m <package>.predict --input data/processed --output-dir build/predictions

Each input is a CSV file with a header row; columns the model does not take (the target, ids) are
ignored. A folder means every ``*.csv`` below it; ``<folder>/a/b.csv`` is written to
``<output-dir>/a/b.csv``, one line per input row. Offline there is no request-size limit: files are
read with the csv module and scored in chunks of ``CHUNK_ROWS``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .inference import InvalidInputError, Model, foreign_separator, model_fn, score

CHUNK_ROWS = 10_000


class BatchInputError(ValueError):
    """A file that cannot be scored; the message names the file and the row or column."""


def input_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.csv"))
        if not files:
            raise BatchInputError(f"{path}: no .csv file in this folder")
        return files
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file or folder")
    return [path]


def feature_chunks(source: TextIO, model: Model, name: str) -> Iterator[tuple[int, list[Any]]]:
    """``(first row number, rows)`` of the model's feature columns, ``CHUNK_ROWS`` at a time."""
    reader = csv.reader(source)
    try:
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        raise BatchInputError(f"{name}: the file is empty; expected a header row") from None
    except csv.Error as error:
        raise BatchInputError(f"{name}: not valid CSV: {error}") from None
    missing = [feature for feature in model.features if feature not in header]
    separator = foreign_separator(header[0]) if missing and len(header) == 1 else None
    if separator:
        raise BatchInputError(
            f"{name}: the columns are separated by {separator}; save the file with ',' (comma) "
            "between values and '.' as the decimal point"
        )
    if missing:
        raise BatchInputError(f"{name}: no column '{missing[0]}' in the header")
    columns = [header.index(feature) for feature in model.features]
    chunk: list[Any] = []
    first = 1
    try:
        for number, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise BatchInputError(
                    f"{name}: row {number}: expected {len(header)} values, got {len(row)}"
                )
            if not chunk:
                first = number
            chunk.append([row[index] for index in columns])
            if len(chunk) == CHUNK_ROWS:
                yield first, chunk
                chunk = []
    except csv.Error as error:
        raise BatchInputError(f"{name}: not valid CSV: {error}") from None
    if chunk:
        yield first, chunk


def score_file(path: Path, model: Model, output: TextIO, accept: str) -> int:
    """Score one file into ``output``; returns the number of rows."""
    predictions: list[dict[str, Any]] = []
    rows = 0
    with path.open(newline="", encoding="utf-8-sig") as source:
        for first, chunk in feature_chunks(source, model, str(path)):
            try:
                scored = score(chunk, model, first_row=first)
            except InvalidInputError as error:
                raise BatchInputError(f"{path}: {error}") from None
            rows += len(scored)
            if accept == "application/json":
                predictions += scored
                continue
            writer = csv.writer(output, lineterminator="\n")
            if rows == len(scored):
                writer.writerow(scored[0].keys())
            writer.writerows(record.values() for record in scored)
    if accept == "application/json":
        output.write(json.dumps({"predictions": predictions}) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--input", type=Path, required=True, help="a CSV file or a folder of them")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write one file per input here (needed for a folder); default: standard output",
    )
    parser.add_argument("--accept", default="text/csv", choices=["text/csv", "application/json"])
    args = parser.parse_args(argv)
    path = args.input
    try:
        files = input_files(args.input)
        if args.output_dir is None and args.input.is_dir():
            raise BatchInputError(f"{args.input} is a folder: name an --output-dir for its files")
        model = model_fn(str(args.model_dir))
        suffix = ".json" if args.accept == "application/json" else ".csv"
        for path in files:
            if args.output_dir is None:
                score_file(path, model, sys.stdout, args.accept)
                continue
            relative = path.relative_to(args.input) if args.input.is_dir() else Path(path.name)
            target = (args.output_dir / relative).with_suffix(suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            try:
                with partial.open("w", newline="", encoding="utf-8") as output:
                    rows = score_file(path, model, output, args.accept)
            except BaseException:
                partial.unlink(missing_ok=True)  # a failed file leaves no half-written output
                raise
            partial.replace(target)
            print(f"{path}: {rows} rows -> {target}", file=sys.stderr)
    except UnicodeDecodeError:
        print(f"error: {path}: not UTF-8 text", file=sys.stderr)
        return 2
    except (BatchInputError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
