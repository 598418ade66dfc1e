from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import data
from {{ cookiecutter.package_name }}.data import DataValidationError, Schema, validate


def test_sample_data_meets_the_contract(raw_frame: pd.DataFrame, schema: Schema) -> None:
    checked = validate(raw_frame, schema)
    assert list(checked.columns) == [*schema.feature_names, schema.target]
    assert len(checked) == len(raw_frame) > 100


def test_missing_column_is_named(raw_frame: pd.DataFrame, schema: Schema) -> None:
    column = schema.feature_names[0]
    with pytest.raises(DataValidationError, match=f"column '{column}': required"):
        validate(raw_frame.drop(columns=column), schema)


def test_non_numeric_value_is_named(raw_frame: pd.DataFrame, schema: Schema) -> None:
    bad = raw_frame.copy()
    column = schema.feature_names[1]
    bad[column] = bad[column].astype(object)
    bad.loc[3, column] = "twelve"
    with pytest.raises(DataValidationError, match=f"column '{column}': 1 non-numeric.*twelve"):
        validate(bad, schema)


def test_missing_value_in_non_nullable_column(raw_frame: pd.DataFrame, schema: Schema) -> None:
    bad = raw_frame.copy()
    column = schema.feature_names[2]
    bad.loc[[0, 5], column] = None
    with pytest.raises(DataValidationError, match=f"column '{column}': 2 missing value"):
        validate(bad, schema)


@pytest.mark.parametrize(
    ("factor", "rule"), [(1000.0, "above the maximum"), (-1000.0, "below the minimum")]
)
def test_out_of_range_value(
    raw_frame: pd.DataFrame, schema: Schema, factor: float, rule: str
) -> None:
    bad = raw_frame.copy()
    spec = schema.features[0]
    assert spec.maximum is not None
    bad.loc[0, spec.name] = spec.maximum * factor
    with pytest.raises(DataValidationError, match=f"column '{spec.name}'.*{rule}"):
        validate(bad, schema)


def test_infinite_value_rejected(raw_frame: pd.DataFrame, schema: Schema) -> None:
    bad = raw_frame.copy()
    column = schema.feature_names[0]
    bad[column] = bad[column].astype(float)  # an integer column cannot hold infinity
    bad.loc[0, column] = float("inf")
    with pytest.raises(DataValidationError, match="infinite"):
        validate(bad, schema)


def test_bad_target(raw_frame: pd.DataFrame, schema: Schema) -> None:
    bad = raw_frame.copy()
    bad.loc[0, schema.target] = -7
    with pytest.raises(DataValidationError, match=f"column '{schema.target}'"):
        validate(bad, schema)


def test_empty_frame_rejected(raw_frame: pd.DataFrame, schema: Schema) -> None:
    with pytest.raises(DataValidationError, match="no rows"):
        validate(raw_frame.iloc[0:0], schema)


def test_unparsable_csv(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataValidationError, match="cannot parse CSV"):
        data.read_csv_dir(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no CSV file"):
        data.read_csv_dir(tmp_path)


def test_prepare_cli_writes_splits(tmp_path: Path, raw_frame: pd.DataFrame) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    raw_frame.to_csv(raw / "part.csv", index=False)
    assert (
        data.main(
            ["--input-dir", str(raw), "--output-dir", str(tmp_path / "out"), "--test-size", "0.25"]
        )
        == 0
    )
    train = pd.read_csv(tmp_path / "out" / "train" / "train.csv")
    test = pd.read_csv(tmp_path / "out" / "test" / "test.csv")
    assert len(train) + len(test) == len(raw_frame)
    # Each row's side is its hash's: the test share is test_size up to sampling noise.
    assert len(test) / len(raw_frame) == pytest.approx(0.25, abs=0.05)


def test_a_rows_side_of_the_split_does_not_depend_on_order_or_parts(
    tmp_path: Path, raw_frame: pd.DataFrame
) -> None:
    """The split is decided per row (a hash of its content), so shuffled rows read from three
    part files (what hosts sharing the data each hold) give the same train and test files."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    (parts / "nested").mkdir(parents=True)
    whole.mkdir()
    raw_frame.to_csv(whole / "data.csv", index=False)
    shuffled = raw_frame.sample(frac=1, random_state=7)
    third = len(shuffled) // 3
    for number, name in enumerate(("part-0.csv", "part-1.csv", "nested/part-2.csv")):
        end = None if number == 2 else (number + 1) * third
        shuffled.iloc[number * third : end].to_csv(parts / name, index=False)
    outputs = {}
    for source in (whole, parts):
        out = tmp_path / f"out-{source.name}"
        assert data.main(["--input-dir", str(source), "--output-dir", str(out)]) == 0
        outputs[source.name] = {
            name: (out / name / f"{name}.csv").read_bytes() for name in ("train", "test")
        }
    assert outputs["whole"] == outputs["parts"]
    reseeded = tmp_path / "reseeded"
    assert data.main(["--input-dir", str(whole), "--output-dir", str(reseeded), "--seed", "7"]) == 0
    assert (reseeded / "test" / "test.csv").read_bytes() != outputs["whole"]["test"]


def test_prepare_cli_reports_bad_data(
    tmp_path: Path, raw_frame: pd.DataFrame, schema: Schema, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    raw_frame.drop(columns=schema.feature_names[0]).to_csv(raw / "part.csv", index=False)
    assert data.main(["--input-dir", str(raw), "--output-dir", str(tmp_path / "out")]) == 2
    assert f"column '{schema.feature_names[0]}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_broken_rule_of_a_batch_is_reported_at_once(
    raw_frame: pd.DataFrame, schema: Schema
) -> None:
    """Not only the first: each rule with its column and how many rows break it, on one line."""
    bad = raw_frame.copy()
    first, second, third = schema.feature_names[:3]
    bad[first] = bad[first].astype(object)
    bad.loc[bad.index[:2], first] = "n/a"
    bad.loc[bad.index[2:5], second] = None
    bad.loc[bad.index[5:12], third] = -1.0
    bad.loc[bad.index[0], schema.target] = None
    with pytest.raises(DataValidationError) as raised:
        validate(bad, schema)
    message = str(raised.value)
    assert message.startswith("4 rules broken: ") and "\n" not in message
    for expected in (
        f"column '{first}': 2 non-numeric value(s), e.g. 'n/a'",
        f"column '{second}': 3 missing value(s), not nullable",
        f"column '{third}': 7 value(s) below the minimum",
        f"column '{schema.target}': the target has 1 missing value(s)",
    ):
        assert expected in message
