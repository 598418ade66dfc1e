"""Load raw data, check it against the data contract (``schema.json``) and split it.

Command line (a SageMaker Processing step runs the same)::

    python -m <package>.data --input-dir data/raw --output-dir data/processed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_PATH = Path(__file__).with_name("schema.json")
# A DVC 3 object file: the MD5 of its content less the two hex digits of its folder.
DVC_OBJECT_NAME = re.compile(r"[0-9a-f]{30}")


class DataValidationError(ValueError):
    """The data breaks the contract; the message names every broken rule: column, rule, rows."""


# How schema.json declares a column's type: numbers, or categories (text labels).
NUMERIC_DTYPES = ("float", "int")
CATEGORICAL_DTYPE = "category"
INFINITE = "infinite"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    categorical: bool = False
    # A categorical column's allowed values; None accepts any text.
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Schema:
    problem_type: str
    target: str
    features: tuple[FeatureSpec, ...]
    # A classification target's labels: integers, or text when the target is categorical.
    target_allowed: tuple[int, ...] | tuple[str, ...] | None = None
    target_minimum: float | None = None
    target_categorical: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [feature.name for feature in self.features if not feature.categorical]

    @property
    def categorical_features(self) -> list[str]:
        return [feature.name for feature in self.features if feature.categorical]

    @property
    def text_columns(self) -> list[str]:
        """Columns read from CSV as text: the categorical features, and text labels."""
        return self.categorical_features + ([self.target] if self.target_categorical else [])


def _feature_spec(name: str, spec: dict[str, Any]) -> FeatureSpec:
    dtype = spec.get("dtype", "float")
    if dtype == CATEGORICAL_DTYPE and ("min" in spec or "max" in spec):
        raise DataValidationError(
            f"schema: feature '{name}': dtype 'category' has no 'min' or 'max'; list the "
            "categories in 'allowed' (or make it a number: dtype 'float')"
        )
    if dtype in NUMERIC_DTYPES and "allowed" in spec:
        raise DataValidationError(
            f"schema: feature '{name}': 'allowed' lists categories; declare \"dtype\": "
            "\"category\" (a number takes 'min' and 'max')"
        )
    if dtype == CATEGORICAL_DTYPE:
        allowed = spec.get("allowed")
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(v, str) for v in allowed)
        ):
            raise DataValidationError(
                f"schema: feature '{name}': 'allowed' must be a list of strings"
            )
        return FeatureSpec(
            name,
            nullable=spec.get("nullable", False),
            categorical=True,
            allowed=tuple(allowed) if allowed is not None else None,
        )
    if dtype not in NUMERIC_DTYPES:
        choices = ", ".join((*NUMERIC_DTYPES, CATEGORICAL_DTYPE))
        raise DataValidationError(
            f"schema: feature '{name}': dtype {dtype!r} is not one of {choices}"
        )
    return FeatureSpec(name, spec.get("min"), spec.get("max"), spec.get("nullable", False))


def _target_rules(problem_type: str, target: dict[str, Any]) -> dict[str, Any]:
    """The target's declaration, refused in one line when its rules contradict its dtype.

    Classification labels are integers (``"dtype": "int"``, ``allowed`` integers) or text
    (``"dtype": "category"``, ``allowed`` strings); a regression target is a number.
    """
    name = target["name"]
    dtype = target.get("dtype", "float" if problem_type == "regression" else "int")
    allowed = target.get("allowed")
    where = f"schema: target '{name}'"
    if dtype not in (*NUMERIC_DTYPES, CATEGORICAL_DTYPE):
        choices = ", ".join((*NUMERIC_DTYPES, CATEGORICAL_DTYPE))
        raise DataValidationError(f"{where}: dtype {dtype!r} is not one of {choices}")
    if allowed is not None and not isinstance(allowed, list):
        raise DataValidationError(f"{where}: 'allowed' must be a list of labels")
    if dtype == CATEGORICAL_DTYPE:
        if problem_type != "classification":
            raise DataValidationError(
                f"{where}: a {problem_type} target is a number; dtype 'category' is for "
                "classification labels"
            )
        if "min" in target or "max" in target:
            raise DataValidationError(
                f"{where}: dtype 'category' has no 'min' or 'max'; list the labels in 'allowed'"
            )
        if not allowed or not all(isinstance(label, str) for label in allowed):
            raise DataValidationError(
                f"{where}: dtype 'category' needs 'allowed', the labels as strings "
                '(e.g. ["bronze", "silver", "gold"])'
            )
    elif allowed is not None and not all(
        isinstance(label, int) and not isinstance(label, bool) for label in allowed
    ):
        raise DataValidationError(
            f"{where}: dtype {dtype!r} allows integer labels only; declare text labels with "
            '"dtype": "category"'
        )
    if allowed is not None and len(set(allowed)) != len(allowed):
        raise DataValidationError(f"{where}: 'allowed' lists a label twice")
    return {
        "target_allowed": tuple(allowed) if allowed is not None else None,
        "target_minimum": target.get("min"),
        "target_categorical": dtype == CATEGORICAL_DTYPE,
    }


def load_schema(path: Path = SCHEMA_PATH) -> Schema:
    raw = json.loads(Path(path).read_text())
    target = raw["target"]
    return Schema(
        problem_type=raw["problem_type"],
        target=target["name"],
        features=tuple(_feature_spec(name, spec) for name, spec in raw["features"].items()),
        **_target_rules(raw["problem_type"], target),
    )


def read_csv_dir(path: Path, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read one CSV file, or every CSV under a folder, nested too (what SageMaker hands jobs),
    or the DVC object of the data the pipeline's prepare step is handed.

    ``text_columns`` (the categorical features) are read as text, so a category spelled ``007``
    or ``1`` keeps its spelling instead of becoming a number.
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"no such file or folder: {path}")
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    if not files and path.is_dir():
        # The pipeline reads the data from the DVC remote: one object, named by its hash alone.
        files = sorted(p for p in path.iterdir() if DVC_OBJECT_NAME.fullmatch(p.name))
    if not files:
        raise DataValidationError(f"no CSV file found in {path}")
    dtype = dict.fromkeys(text_columns, str)
    try:
        return pd.concat([pd.read_csv(file, dtype=dtype) for file in files], ignore_index=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataValidationError(f"cannot parse CSV in {path}: {error}") from error


def as_categories(column: pd.Series) -> pd.Series:
    """A categorical column as text, missing values kept missing (what the encoder is fitted on)."""
    return column.where(column.isna(), column.astype(str)).astype(object)


def _type_rules(schema: Schema, columns: list[str]) -> Any:
    """Stage 1 of the contract: the columns exist and the numeric ones hold numbers."""
    import pandera.pandas as pa

    numeric = set(schema.numeric_features) | ({schema.target} - set(schema.text_columns))
    return pa.DataFrameSchema(
        {
            name: pa.Column(float if name in numeric else None, nullable=True, coerce=True)
            for name in columns
        }
    )


def _value_rules(schema: Schema, with_target: bool) -> Any:
    """Stage 2: the rules on the values, run on numbers (non-numeric cells already set aside)."""
    import pandera.pandas as pa

    columns: dict[str, Any] = {}
    for spec in schema.features:
        if spec.categorical:
            checks = []
            if spec.allowed is not None:
                checks.append(
                    pa.Check.isin(spec.allowed, error=f"not among the allowed {list(spec.allowed)}")
                )
            columns[spec.name] = pa.Column(object, checks=checks, nullable=spec.nullable)
            continue
        checks = [pa.Check.notin([np.inf, -np.inf], error=INFINITE)]
        if spec.minimum is not None:
            checks.append(pa.Check.ge(spec.minimum, error=f"below the minimum {spec.minimum:g}"))
        if spec.maximum is not None:
            checks.append(pa.Check.le(spec.maximum, error=f"above the maximum {spec.maximum:g}"))
        columns[spec.name] = pa.Column(float, checks=checks, nullable=spec.nullable)
    if with_target:
        if schema.target_allowed is not None:
            allowed = list(schema.target_allowed)
            checks = [pa.Check.isin(allowed, error=f"not in {allowed}")]
        elif schema.target_minimum is not None:
            checks = [
                pa.Check.ge(
                    schema.target_minimum, error=f"below the minimum {schema.target_minimum:g}"
                )
            ]
        else:
            checks = []
        kind = object if schema.target_categorical else float
        columns[schema.target] = pa.Column(kind, checks=checks, nullable=False)
    return pa.DataFrameSchema(columns)


def _failures(rules: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Every broken rule of ``rules`` on ``frame`` (pandera's failure cases), none when clean."""
    import pandera.errors

    try:
        rules.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return pd.DataFrame(errors.failure_cases)
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def _describe(column: str, check: str, cases: pd.DataFrame, schema: Schema) -> str:
    rows = len(cases)
    example = _shown(cases["failure_case"].iloc[0])
    if check == "column_in_dataframe":
        return f"column '{column}': required by the schema but missing"
    if check.startswith("coerce_dtype"):
        return f"column '{column}': {rows} non-numeric value(s), e.g. {example}"
    if check == INFINITE:
        return f"column '{column}': {rows} infinite value(s), not allowed"
    if check == "not_nullable":
        if column == schema.target:
            return f"column '{column}': the target has {rows} missing value(s)"
        return f"column '{column}': {rows} missing value(s), not nullable"
    return f"column '{column}': {rows} value(s) {check}, e.g. {example}"


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(frame: pd.DataFrame, schema: Schema, *, with_target: bool = True) -> pd.DataFrame:
    """Return the frame with contract columns only: numbers as floats, categories as text.

    Every broken rule of the batch is found (pandera, lazily) and reported in one message: the
    column, the rule and how many rows break it, with an example value.
    """
    expected = schema.feature_names + ([schema.target] if with_target else [])
    if frame.empty:
        raise DataValidationError("the data has no rows")
    present = [column for column in expected if column in frame.columns]
    failures = [_failures(_type_rules(schema, expected), frame)]
    checked = pd.DataFrame(index=frame.index)
    for name in present:
        if name in schema.text_columns:
            checked[name] = as_categories(frame[name])
        else:
            checked[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    # A cell that is not a number was reported in stage 1; it is not also a missing value.
    not_numbers = {
        (row.column, row.index)
        for row in failures[0].itertuples()
        if str(row.check).startswith("coerce")
    }
    stage_two = _failures(_value_rules(schema, with_target), checked)
    if not_numbers:
        repeated = [
            row.check == "not_nullable" and (row.column, row.index) in not_numbers
            for row in stage_two.itertuples()
        ]
        stage_two = stage_two[~np.array(repeated, dtype=bool)]
    failures.append(stage_two[stage_two["check"] != "column_in_dataframe"])
    found = pd.concat(failures, ignore_index=True)
    # pandera also reports the dtype a failed coercion left behind: the same cells again.
    found = found[~found["check"].astype(str).str.startswith("dtype(")]
    # An infinite value is reported as such, not also as beyond the minimum or maximum.
    infinite = found["failure_case"].map(lambda value: isinstance(value, float) and np.isinf(value))
    found = found[~infinite | (found["check"] == INFINITE)]
    if not found.empty:
        order = {name: position for position, name in enumerate(expected)}
        found = found.assign(
            column=found["column"].where(
                found["check"] != "column_in_dataframe", found["failure_case"]
            )
        )
        messages = [
            _describe(str(column), str(check), cases, schema)
            for (column, check), cases in sorted(
                found.groupby(["column", "check"], sort=False),
                key=lambda item: order.get(str(item[0][0]), len(order)),
            )
        ]
        summary = (
            messages[0]
            if len(messages) == 1
            else f"{len(messages)} rules broken: " + "; ".join(messages)
        )
        raise DataValidationError(summary)
    if with_target and schema.target_allowed is not None and not schema.target_categorical:
        checked[schema.target] = checked[schema.target].astype(int)
    return checked[expected]


def row_fractions(frame: pd.DataFrame, seed: int) -> pd.Series:
    """Each row's place in [0, 1): a SHA-256 of the seed and the row's content (its contract
    columns as ``validate`` returns them), so a row lands in the same place whatever file, part
    or position it is read from, on any number of hosts. Identical rows share a place: a
    duplicate never sits on both sides of the split."""
    salt = f"{seed}\x1e".encode()

    def fraction(values: tuple[Any, ...]) -> float:
        text = "\x1f".join("" if is_missing_value(value) else repr(value) for value in values)
        digest = hashlib.sha256(salt + text.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return pd.Series(
        [fraction(row) for row in frame.itertuples(index=False, name=None)],
        index=frame.index,
        dtype=float,
    )


def is_missing_value(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test rows, decided per row by ``row_fractions``: the rows below ``test_size`` are
    the test set. Each part is ordered by that place too, so the files written are the same
    whatever order the rows came in."""
    if not 0 < test_size < 1:
        raise DataValidationError(f"test_size {test_size} must be between 0 and 1")
    fractions = row_fractions(frame, seed)
    order = fractions.sort_values(kind="stable").index
    ordered = frame.loc[order]
    is_test = fractions.loc[order] < test_size
    return ordered[~is_test], ordered[is_test]


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
        frame = validate(read_csv_dir(args.input_dir, schema.text_columns), schema)
    except DataValidationError as error:
        print(f"error: invalid data in {args.input_dir}: {error}", file=sys.stderr)
        return 2
    try:
        train, test = split(frame, args.test_size, args.seed)
    except DataValidationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, part in (("train", train), ("test", test)):
        out = args.output_dir / name
        out.mkdir(parents=True, exist_ok=True)
        part.to_csv(out / f"{name}.csv", index=False)
    print(f"prepared {len(train)} training and {len(test)} test rows in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
