from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.inference import (
    InvalidInputError,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)


def _csv(frame: pd.DataFrame, header: bool = False) -> str:
    return frame.to_csv(index=False, header=header)


def test_csv_and_json_give_the_same_predictions(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    model = model_fn(str(model_dir))
    rows = clean_frame[schema.feature_names].head(5)
    from_csv = predict_fn(input_fn(_csv(rows), "text/csv"), model)
    from_header_csv = predict_fn(input_fn(_csv(rows, header=True), "text/csv"), model)
    from_lists = predict_fn(
        input_fn(json.dumps({"instances": rows.values.tolist()}), "application/json"), model
    )
    from_records = predict_fn(input_fn(rows.to_json(orient="records"), "application/json"), model)
    assert from_csv == from_header_csv == from_lists == from_records
    assert len(from_csv) == 5


def test_single_record(model_dir: Path, clean_frame: pd.DataFrame, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    record = clean_frame[schema.feature_names].iloc[0].to_dict()
    (result,) = predict_fn(input_fn(json.dumps(record), "application/json; charset=utf-8"), model)
    assert "prediction" in result


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("", "text/csv", 400, "no rows"),
        ("1,2,3", "text/csv", 400, "expected"),
        ("1,2\r3", "text/csv", 400, "not valid CSV"),  # found by the property tests
        ("{not json", "application/json", 400, "not valid JSON"),
        ('"a string"', "application/json", 400, "JSON must be"),
        ("[[1, 2]]", "application/json", 400, "expected"),
        ("[42]", "application/json", 400, "expected a list"),
        ("1,2", "application/xml", 415, "unsupported content type"),
        ("1,2", "", 415, "unsupported content type"),
    ],
)
def test_bad_payloads_are_rejected(
    model_dir: Path, body: str, content_type: str, status: int, message: str
) -> None:
    model = model_fn(str(model_dir))
    with pytest.raises(InvalidInputError, match=message) as caught:
        predict_fn(input_fn(body, content_type), model)
    assert caught.value.status == status


def test_non_numeric_and_non_finite_values(model_dir: Path, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    width = len(schema.feature_names)
    for cell, message in (
        ("abc", "expected a number"),
        ("nan", "not a finite"),
        ("inf", "not a finite"),
    ):
        row = ",".join(["1"] * (width - 1) + [cell])
        with pytest.raises(InvalidInputError, match=message):
            predict_fn(input_fn(row, "text/csv"), model)
    record = dict.fromkeys(schema.feature_names, 1.0) | {schema.feature_names[0]: True}
    with pytest.raises(InvalidInputError, match="expected a number"):
        predict_fn(input_fn(json.dumps([record]), "application/json"), model)


def test_records_must_match_the_features(model_dir: Path, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    record = dict.fromkeys(schema.feature_names, 1.0)
    with pytest.raises(InvalidInputError, match="missing feature"):
        predict_fn(
            input_fn(json.dumps([{k: v for k, v in list(record.items())[1:]}]), "application/json"),
            model,
        )
    with pytest.raises(InvalidInputError, match="unknown feature"):
        predict_fn(input_fn(json.dumps([record | {"extra": 1}]), "application/json"), model)


def test_invalid_utf8(model_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="UTF-8"):
        input_fn(b"\xff\xfe", "text/csv")


def test_output_formats() -> None:
    prediction = [{"prediction": 1, "probability": 0.9}]
    body, kind = output_fn(prediction, "text/csv")
    assert (body, kind) == ("1,0.9\n", "text/csv")
    body, kind = output_fn(prediction, "application/json")
    assert json.loads(body) == {"predictions": prediction}
    with pytest.raises(InvalidInputError) as caught:
        output_fn(prediction, "image/png")
    assert caught.value.status == 406
