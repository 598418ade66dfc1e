from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import inference
from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.inference import (
    InvalidInputError,
    model_fn,
    parse_rows,
    render,
    response_type,
    score,
    transform_fn,
)


def _csv(frame: pd.DataFrame, header: bool = False) -> str:
    return frame.to_csv(index=False, header=header)


def test_csv_and_json_give_the_same_predictions(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    model = model_fn(str(model_dir))
    rows = clean_frame[schema.feature_names].head(5)
    from_csv = score(parse_rows(_csv(rows), "text/csv"), model)
    from_header_csv = score(parse_rows(_csv(rows, header=True), "text/csv"), model)
    from_lists = score(
        parse_rows(json.dumps({"instances": rows.values.tolist()}), "application/json"), model
    )
    from_records = score(parse_rows(rows.to_json(orient="records"), "application/json"), model)
    assert from_csv == from_header_csv == from_lists == from_records
    assert len(from_csv) == 5


def test_single_record(model_dir: Path, clean_frame: pd.DataFrame, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    record = clean_frame[schema.feature_names].iloc[0].to_dict()
    (result,) = score(parse_rows(json.dumps(record), "application/json; charset=utf-8"), model)
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
        # The content type is judged before the body is decoded (issue 14).
        (b"\x93NUMPY\x01\x00\xff\xfe", "application/x-npy", 415, "unsupported content type"),
        (b"\xff\xfe", "text/csv", 400, "UTF-8"),
    ],
)
def test_bad_payloads_are_rejected(
    model_dir: Path, body: str | bytes, content_type: str, status: int, message: str
) -> None:
    model = model_fn(str(model_dir))
    with pytest.raises(InvalidInputError, match=message) as caught:
        score(parse_rows(body, content_type), model)
    assert caught.value.status == status


def test_non_numeric_and_non_finite_values(model_dir: Path, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    width = len(schema.feature_names)
    for cell, message in (
        ("abc", "expected a number"),
        # NaN is how pandas writes a missing value: refused for a feature that is not nullable.
        ("nan", "column '{last}': missing value, and the feature is not nullable"),
        ("inf", "not a finite"),
        ("9" * 400, "not a finite 64-bit number"),
    ):
        row = ",".join(["1"] * (width - 1) + [cell])
        with pytest.raises(InvalidInputError, match=message.format(last=schema.feature_names[-1])):
            score(parse_rows(row, "text/csv"), model)
    record = dict.fromkeys(schema.feature_names, 1.0) | {schema.feature_names[0]: True}
    with pytest.raises(InvalidInputError, match="expected a number"):
        score(parse_rows(json.dumps([record]), "application/json"), model)


@pytest.mark.parametrize("digits", [400, 5_000])
def test_huge_json_integers_are_refused_with_a_message(
    model_dir: Path, schema: Schema, digits: int
) -> None:
    """400 digits overflowed float(int); 5,000 exceeded int()'s digit limit: both crashed."""
    model = model_fn(str(model_dir))
    width = len(schema.feature_names)
    body = "[[" + ", ".join(["1"] * (width - 1) + ["7" * digits]) + "]]"
    answer = transform_fn(model, body, "application/json", "application/json")
    assert answer.status == 400
    message = json.loads(answer.body)["error"]
    assert "not a finite 64-bit number" in message
    assert f"column '{schema.feature_names[-1]}'" in message
    assert len(message) < 200  # the number is shortened, not echoed


def test_records_must_match_the_features(model_dir: Path, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    record = dict.fromkeys(schema.feature_names, 1.0)
    with pytest.raises(InvalidInputError, match="missing feature"):
        score(
            parse_rows(
                json.dumps([{k: v for k, v in list(record.items())[1:]}]), "application/json"
            ),
            model,
        )
    with pytest.raises(InvalidInputError, match="unknown feature"):
        score(parse_rows(json.dumps([record | {"extra": 1}]), "application/json"), model)


def test_output_formats() -> None:
    prediction = [{"prediction": 1, "probability": 0.9}]
    assert render(prediction, "text/csv") == "1,0.9\n"
    assert json.loads(render(prediction, "application/json")) == {"predictions": prediction}
    assert response_type("text/csv") == "text/csv"
    assert response_type("image/png, text/csv;q=0.5") == "text/csv"
    assert response_type("*/*") == "application/json"
    with pytest.raises(InvalidInputError) as caught:
        response_type("image/png")
    assert caught.value.status == 406


def test_transform_fn_answers_every_bad_request_itself(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    """The container sends transform_fn's answer as it is; an exception would be a 500 there."""
    model = model_fn(str(model_dir))
    good = _csv(clean_frame[schema.feature_names].head(2))
    cases = [
        (good, "text/csv", "text/csv", 200),
        (good, "text/csv", "image/png", 406),
        (good, "application/x-npy", "application/json", 415),
        ("1,2", "text/csv", "application/json", 400),
        ("1\n" * (inference.MAX_ROWS + 1), "text/csv", "application/json", 413),
    ]
    for body, content_type, accept, status in cases:
        answer = transform_fn(model, body, content_type, accept)
        assert answer.status == status, (content_type, accept)
        if status != 200:
            assert answer.content_type == "application/json"
            assert json.loads(answer.body)["error"]


def test_the_entry_point_module_is_what_the_container_accepts() -> None:
    """The container refuses transform_fn beside input_fn/predict_fn/output_fn (UserError)."""
    assert callable(inference.transform_fn) and callable(inference.model_fn)
    for name in ("input_fn", "predict_fn", "output_fn"):
        assert not hasattr(inference, name)
