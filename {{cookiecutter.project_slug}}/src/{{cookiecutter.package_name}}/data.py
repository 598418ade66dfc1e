"""Load raw data, check it against the data contract (``schema.json``) and split it.

Command line (a SageMaker Processing step runs the same)::

    python -m <package>.data --input-dir data/raw --output-dir data/processed
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

SCHEMA_PATH = Path(__file__).with_name("schema.json")


class DataValidationError(ValueError):
    """The data breaks the contract; the message names the column and the rule."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False


@dataclass(frozen=True)
class Schema:
    problem_type: str
    target: str
    features: tuple[FeatureSpec, ...]
    target_allowed: tuple[int, ...] | None = None
    target_minimum: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]


def load_schema(path: Path = SCHEMA_PATH) -> Schema:
    raw = json.loads(Path(path).read_text())
    target = raw["target"]
    return Schema(
        problem_type=raw["problem_type"],
        target=target["name"],
        features=tuple(
            FeatureSpec(name, spec.get("min"), spec.get("max"), spec.get("nullable", False))
            for name, spec in raw["features"].items()
        ),
        target_allowed=tuple(target["allowed"]) if "allowed" in target else None,
        target_minimum=target.get("min"),
    )


def read_csv_dir(path: Path) -> pd.DataFrame:
    """Read one CSV file, or every CSV under a folder, nested too (what SageMaker hands jobs)."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"no such file or folder: {path}")
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise DataValidationError(f"no CSV file found in {path}")
    try:
        return pd.concat([pd.read_csv(file) for file in files], ignore_index=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataValidationError(f"cannot parse CSV in {path}: {error}") from error


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        example = frame.loc[bad, column].iloc[0]
        raise DataValidationError(
            f"column '{column}': {int(bad.sum())} non-numeric value(s), e.g. {example!r}"
        )
    if np.isinf(values).any():
        raise DataValidationError(f"column '{column}': infinite values are not allowed")
    return values.astype(float)


def validate(frame: pd.DataFrame, schema: Schema, *, with_target: bool = True) -> pd.DataFrame:
    """Return the frame with contract columns only, as floats; raise on the first broken rule."""
    expected = schema.feature_names + ([schema.target] if with_target else [])
    missing = [column for column in expected if column not in frame.columns]
    if missing:
        raise DataValidationError(f"column '{missing[0]}': required by the schema but missing")
    if frame.empty:
        raise DataValidationError("the data has no rows")
    checked = pd.DataFrame(index=frame.index)
    for spec in schema.features:
        values = _numeric(frame, spec.name)
        if not spec.nullable and values.isna().any():
            count = int(values.isna().sum())
            raise DataValidationError(
                f"column '{spec.name}': {count} missing value(s), not nullable"
            )
        present = values.dropna()
        if spec.minimum is not None and (present < spec.minimum).any():
            raise DataValidationError(
                f"column '{spec.name}': value {present.min():g} below the minimum {spec.minimum:g}"
            )
        if spec.maximum is not None and (present > spec.maximum).any():
            raise DataValidationError(
                f"column '{spec.name}': value {present.max():g} above the maximum {spec.maximum:g}"
            )
        checked[spec.name] = values
    if with_target:
        checked[schema.target] = _validate_target(frame, schema)
    return checked


def _validate_target(frame: pd.DataFrame, schema: Schema) -> pd.Series:
    target = _numeric(frame, schema.target)
    if target.isna().any():
        raise DataValidationError(f"column '{schema.target}': the target has missing values")
    if schema.target_allowed is not None:
        unknown = sorted(set(target.unique()) - set(schema.target_allowed))
        if unknown:
            allowed = list(schema.target_allowed)
            raise DataValidationError(
                f"column '{schema.target}': label {unknown[0]:g} not in {allowed}"
            )
        return target.astype(int)
    if schema.target_minimum is not None and (target < schema.target_minimum).any():
        raise DataValidationError(
            f"column '{schema.target}': value {target.min():g} below the minimum "
            f"{schema.target_minimum:g}"
        )
    return target


def split(
    frame: pd.DataFrame, schema: Schema, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = frame[schema.target] if schema.problem_type == "classification" else None
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=stratify)
    return train, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    schema = load_schema(args.schema)
    try:
        frame = validate(read_csv_dir(args.input_dir), schema)
    except DataValidationError as error:
        print(f"error: invalid data in {args.input_dir}: {error}", file=sys.stderr)
        return 2
    train, test = split(frame, schema, args.test_size, args.seed)
    for name, part in (("train", train), ("test", test)):
        out = args.output_dir / name
        out.mkdir(parents=True, exist_ok=True)
        part.to_csv(out / f"{name}.csv", index=False)
    print(f"prepared {len(train)} training and {len(test)} test rows in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
