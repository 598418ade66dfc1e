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


def test_a_batch_transform_mini_batch_is_scored_whole_one_line_per_record(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchStrategy MultiRecord with SplitType Line sends as many CSV lines as fit in
    MaxPayloadInMB (6 MB: far more than an endpoint request's MAX_ROWS) in one request, in a
    container where SageMaker sets SAGEMAKER_BATCH=true. Each record gets its line, in order, so
    the job can join answers to inputs."""
    rows = clean_frame[schema.feature_names].sample(
        inference.MAX_ROWS + 1, replace=True, random_state=3
    )
    body = _csv(rows)
    assert len(body.encode()) < 6 * 1024 * 1024  # one mini-batch at the default MaxPayloadInMB
    endpoint = transform_fn(model_fn(str(model_dir)), body, "text/csv", "text/csv")
    assert endpoint.status == 413
    monkeypatch.setenv(inference.BATCH_VARIABLE, "true")
    model = model_fn(str(model_dir))
    answer = transform_fn(model, body, "text/csv", "text/csv")
    assert answer.status == 200, answer.body[:200]
    lines = answer.body.decode().splitlines()
    assert len(lines) == len(rows)
    expected = score(rows.head(50).values.tolist(), model)
    assert lines[:50] == render(expected, "text/csv").splitlines()


def test_the_entry_point_module_is_what_the_container_accepts() -> None:
    """The container refuses transform_fn beside input_fn/predict_fn/output_fn (UserError)."""
    assert callable(inference.transform_fn) and callable(inference.model_fn)
    for name in ("input_fn", "predict_fn", "output_fn"):
        assert not hasattr(inference, name)


# --- CSV and JSON as people send them -----------------------------------------------------------


def _error(answer: inference.Answer) -> str:
    assert answer.content_type == "application/json"
    return str(json.loads(answer.body)["error"])


def test_a_byte_order_mark_before_the_header_is_accepted(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    """Spreadsheet exports start with a UTF-8 BOM; it made the first feature 'missing'."""
    model = model_fn(str(model_dir))
    text = _csv(clean_frame[schema.feature_names].head(3), header=True)
    plain = transform_fn(model, text, "text/csv", "application/json")
    # As the container passes it: text for a bare text/csv, bytes when a charset is declared.
    for body, content_type in (
        ("\ufeff" + text, "text/csv"),
        (b"\xef\xbb\xbf" + text.encode(), "text/csv; charset=utf-8"),
    ):
        answer = transform_fn(model, body, content_type, "application/json")
        assert answer.status == 200, _error(answer)
        assert answer.body == plain.body


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolon"), ("\t", "tab")])
@pytest.mark.parametrize("header", [True, False])
def test_rows_with_another_separator_are_refused_naming_it(
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    separator: str,
    name: str,
    header: bool,
) -> None:
    model = model_fn(str(model_dir))
    rows = clean_frame[schema.feature_names].head(3)
    bodies = [rows.to_csv(index=False, header=header, sep=separator)]
    if separator == ";":  # and with decimal commas, as European spreadsheets write it
        bodies.append(rows.to_csv(index=False, header=header, sep=";", decimal=","))
    for body in bodies:
        answer = transform_fn(model, body, "text/csv", "application/json")
        assert answer.status == 400
        message = _error(answer)
        assert name in message and "','" in message, message


def test_a_semicolon_inside_a_quoted_value_is_not_a_separator() -> None:
    assert inference.foreign_separator('1,2,"a;b",4') is None
    assert inference.foreign_separator("1,2,3") is None
    assert inference.foreign_separator("1;2;3") == "';' (semicolon)"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json;q=0, text/csv", "text/csv"),
        ("text/csv;q=0.4, application/json;q=0.9", "application/json"),
        ("application/json;q=0.5, text/*", "text/csv"),
        ("*/*;q=0.1, text/csv;q=0", "application/json"),
        ("text/csv", "text/csv"),
        ("*/*", "application/json"),
        ("image/png, text/csv;q=0.5", "text/csv"),
    ],
)
def test_accept_q_values_are_honoured(accept: str, expected: str) -> None:
    assert response_type(accept) == expected


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json;q=0, text/csv;q=0", 406),
        ("*/*;q=0", 406),
        ("text/*, text/csv;q=0", 406),  # the most specific range decides
        ("text/*;q=0, application/json;q=0.0", 406),
        ("text/csv;q=2", 400),
        ("text/csv;q=high", 400),
    ],
)
def test_an_accept_that_excludes_both_types_is_refused(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema, accept: str, status: int
) -> None:
    model = model_fn(str(model_dir))
    body = _csv(clean_frame[schema.feature_names].head(1))
    answer = transform_fn(model, body, "text/csv", accept)
    assert answer.status == status
    assert "accept" in _error(answer).lower()


def test_json_duplicate_keys_are_refused_naming_the_key(model_dir: Path, schema: Schema) -> None:
    model = model_fn(str(model_dir))
    first = schema.feature_names[0]
    pairs = [f'"{name}": 1.0' for name in schema.feature_names] + [f'"{first}": 2.0']
    for body in ("{" + ", ".join(pairs) + "}", '{"instances": [], "instances": []}'):
        answer = transform_fn(model, body, "application/json", "application/json")
        assert answer.status == 400
        message = _error(answer)
        assert "twice" in message
        assert (first if "instances" not in body else "instances") in message


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "cp1252"])
def test_a_declared_charset_is_decoded(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema, charset: str
) -> None:
    model = model_fn(str(model_dir))
    text = _csv(clean_frame[schema.feature_names].head(2), header=True)
    plain = transform_fn(model, text, "text/csv", "application/json")
    answer = transform_fn(
        model, text.encode(charset), f"text/csv; charset={charset}", "application/json"
    )
    assert answer.status == 200, _error(answer)
    assert answer.body == plain.body


def test_an_unknown_charset_is_415(model_dir: Path) -> None:
    model = model_fn(str(model_dir))
    answer = transform_fn(model, b"1,2", "text/csv; charset=klingon", "application/json")
    assert answer.status == 415
    assert "klingon" in _error(answer)


@pytest.mark.parametrize("cell", ["1_0", "\u0661\u0662", "\uff11", "0x10", "1e", "--1", "1.2.3"])
def test_numbers_follow_one_rule_in_the_handler_and_the_monitor(
    model_dir: Path, schema: Schema, cell: str
) -> None:
    """Python's float() takes '1_0' and Unicode digits; the monitor counted them non-numeric."""
    from {{ cookiecutter.package_name }}.monitor import Thresholds, check_feature

    model = model_fn(str(model_dir))
    row = ",".join(["1"] * (len(schema.feature_names) - 1) + [cell])
    answer = transform_fn(model, row, "text/csv", "application/json")
    assert answer.status == 400
    assert "expected a number" in _error(answer)
    base = {"min": 0.0, "max": 1.0, "sample": [0.5] * 10, "quantile_edges": [0.0, 1.0]}
    report = check_feature("x", base, pd.Series([cell, "0.5"], dtype=object), Thresholds())
    assert any("non-numeric" in problem for problem in report.problems)


@pytest.mark.parametrize("cell", ["12", "-0.5", ".5", "5.", "+1e-3", " 2.5 ", "1E5"])
def test_decimal_notation_is_a_number_everywhere(cell: str) -> None:
    from {{ cookiecutter.package_name }}.monitor import numeric_values

    assert inference.as_number(cell) == float(cell)
    assert numeric_values(pd.Series([cell], dtype=object)).tolist() == [float(cell)]
