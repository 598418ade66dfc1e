"""Data-capture and ground-truth records in the formats SageMaker Model Monitor reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_platform import capture

WHEN = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def test_capture_record_carries_the_inference_id() -> None:
    record = capture.capture_record("1,2\n", "text/csv", "0,0.9\n", "text/csv", WHEN, "a" * 80)
    assert record["eventMetadata"]["inferenceId"] == "a" * capture.MAX_INFERENCE_ID
    assert record["eventMetadata"]["inferenceTime"] == "2026-11-22T09:30:00.000Z"
    assert record["captureData"]["endpointOutput"] == {
        "observedContentType": "text/csv",
        "mode": "OUTPUT",
        "data": "0,0.9\n",
        "encoding": "CSV",
    }


def test_binary_payloads_are_base64() -> None:
    record = capture.capture_record(b"\xff\xfe", "text/csv", b"{}", "application/json", WHEN)
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert "inferenceId" not in record["eventMetadata"]


def test_labels_become_ground_truth_lines_in_an_hourly_folder(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("inference_id,label\norder-1,1\norder-2,0\n")
    target = capture.write_ground_truth(labels, tmp_path / "gt", WHEN)
    assert target == tmp_path / "gt" / "2026" / "11" / "22" / "09" / "labels.jsonl"
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines == [
        {
            "groundTruthData": {"data": "1", "encoding": "CSV"},
            "eventMetadata": {"eventId": "order-1"},
            "eventVersion": "0",
        },
        {
            "groundTruthData": {"data": "0", "encoding": "CSV"},
            "eventMetadata": {"eventId": "order-2"},
            "eventVersion": "0",
        },
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,label\nx,1\n", "header must be exactly 'inference_id,label'"),
        ("", "header must be exactly"),
        ("inference_id,label\norder-1\n", "line 2: expected an inference id and a label"),
        ("inference_id,label\n,1\n", "line 2: expected an inference id and a label"),
    ],
)
def test_bad_label_files_are_rejected_and_write_nothing(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(content)
    code = capture.main(["--labels", str(labels), "--output-dir", str(tmp_path / "gt")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "gt").exists()


def test_cli_writes_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("inference_id,label\norder-1,1\n")
    assert capture.main(["--labels", str(labels), "--output-dir", str(tmp_path / "gt")]) == 0
    assert "GroundTruthUri" in capsys.readouterr().out
    assert len(list((tmp_path / "gt").rglob("*.jsonl"))) == 1


def _invoke_endpoint_id_rule() -> dict[str, object]:
    """InvokeEndpoint's own constraint on InferenceId, from botocore's service model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpoint").input_shape.members["InferenceId"]
    return dict(shape.metadata)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("order-4711", "order-4711"),
        ("line\nbreak\r\x00\x1b[31mred\x07", "linebreak[31mred"),
        ("  leading spaces", "leading spaces"),
        ("\x00\x01\x02", None),
        ("", None),
        ("é" * 100, "é" * 64),
    ],
)
def test_inference_ids_are_cleaned_to_what_invoke_endpoint_accepts(
    raw: str, expected: str | None
) -> None:
    rule = _invoke_endpoint_id_rule()
    assert rule["max"] == capture.MAX_INFERENCE_ID
    record = capture.capture_record("1\n", "text/csv", "0\n", "text/csv", WHEN, raw)
    cleaned = record["eventMetadata"].get("inferenceId")
    assert cleaned == expected
    if cleaned is not None:
        assert int(rule["min"]) <= len(cleaned) <= int(rule["max"])  # type: ignore[call-overload]
        assert cleaned.isprintable() and not cleaned[0].isspace()  # \A\S[\p{Print}]*\z
