"""The local server over real HTTP on a loopback port."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.serve import make_server, serve_in_thread


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="module")
def server(model_dir: Path, capture_dir: Path) -> Iterator[tuple[str, int]]:
    capture = capture_dir
    instance = make_server(model_dir, "127.0.0.1", 0, max_body=64 * 1024, capture_dir=capture)
    serve_in_thread(instance)
    yield "127.0.0.1", instance.server_address[1]
    instance.shutdown()
    instance.server_close()


def request(
    server: tuple[str, int],
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def csv_rows(frame: pd.DataFrame, schema: Schema, count: int) -> bytes:
    return frame[schema.feature_names].head(count).to_csv(index=False, header=False).encode()


def test_ping(server: tuple[str, int]) -> None:
    assert request(server, "GET", "/ping") == (200, {"status": "healthy"})


def test_valid_csv(server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema) -> None:
    status, body = request(
        server,
        "POST",
        "/invocations",
        csv_rows(clean_frame, schema, 3),
        {"Content-Type": "text/csv"},
    )
    assert status == 200
    assert len(body["predictions"]) == 3  # type: ignore[arg-type]


def test_valid_json(server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema) -> None:
    payload = {"instances": clean_frame[schema.feature_names].head(2).values.tolist()}
    status, body = request(
        server,
        "POST",
        "/invocations",
        json.dumps(payload).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    assert len(body["predictions"]) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"", "text/csv", 400, "empty"),
        (b"1,2,3", "text/csv", 400, "expected"),
        (b"{oops", "application/json", 400, "not valid JSON"),
        (b"1,2", "application/octet-stream", 415, "unsupported content type"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(
    server: tuple[str, int], body: bytes, content_type: str, status: int, message: str
) -> None:
    got_status, got = request(server, "POST", "/invocations", body, {"Content-Type": content_type})
    assert got_status == status
    assert message in str(got["error"])


def test_non_numeric_values(server: tuple[str, int], schema: Schema) -> None:
    row = ",".join(["x"] * len(schema.feature_names)).encode()
    status, body = request(server, "POST", "/invocations", row, {"Content-Type": "text/csv"})
    assert status == 400
    assert "expected a number" in str(body["error"])


def test_oversized_body(server: tuple[str, int]) -> None:
    status, body = request(
        server, "POST", "/invocations", b"1," * 40_000, {"Content-Type": "text/csv"}
    )
    assert status == 413
    assert "exceeds the limit" in str(body["error"])


def test_unknown_route_and_method(server: tuple[str, int]) -> None:
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/nope", b"x", {"Content-Type": "text/csv"})[0] == 404
    assert request(server, "DELETE", "/invocations")[0] == 405


def test_requests_are_captured_in_sagemaker_format(
    server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema, capture_dir: Path
) -> None:
    body = csv_rows(clean_frame, schema, 1)
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "order-4711"}
    status, _ = request(server, "POST", "/invocations", body, headers)
    assert status == 200
    records = [
        json.loads(line)
        for file in capture_dir.rglob("*.jsonl")
        for line in file.read_text().splitlines()
    ]
    inputs = [r["captureData"]["endpointInput"] for r in records]
    assert {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": body.decode(),
        "encoding": "CSV",
    } in inputs
    assert all(r["captureData"]["endpointOutput"]["mode"] == "OUTPUT" for r in records)
    # The client's inference id is what ground-truth labels are joined on later.
    assert "order-4711" in [r["eventMetadata"].get("inferenceId") for r in records]
