"""The local server over real HTTP on a loopback port."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlops_platform.capture import MAX_INFERENCE_ID

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
        (b"", "text/csv", 400, "no rows"),
        (b"1,2,3", "text/csv", 400, "expected"),
        (b"{oops", "application/json", 400, "not valid JSON"),
        (b"1,2", "application/octet-stream", 415, "unsupported content type"),
        # A binary body of another type is judged by its type, not by its bytes (issue 14).
        (b"\x93NUMPY\x01\x00v\x00\xff\xfe", "application/x-npy", 415, "unsupported content"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(
    server: tuple[str, int], body: bytes, content_type: str, status: int, message: str
) -> None:
    got_status, got = request(server, "POST", "/invocations", body, {"Content-Type": content_type})
    assert got_status == status
    assert message in str(got["error"])


@pytest.mark.parametrize(
    ("digits", "content_type"), [(5_000, "application/json"), (400, "text/csv")]
)
def test_huge_numbers_get_400_with_a_message(
    server: tuple[str, int], schema: Schema, digits: int, content_type: str
) -> None:
    """5,000 JSON digits hit int()'s limit and closed the connection without an answer."""
    cells = ["1"] * (len(schema.feature_names) - 1) + ["7" * digits]
    row = ",".join(cells)
    body = (f"[[{row}]]" if content_type == "application/json" else row).encode()
    status, got = request(server, "POST", "/invocations", body, {"Content-Type": content_type})
    assert status == 400
    assert "not a finite 64-bit number" in str(got["error"])


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


def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(server: tuple[str, int]) -> None:
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/nope", b"x", {"Content-Type": "text/csv"})[0] == 404
    for method, path, allowed in (
        ("GET", "/invocations", "POST"),
        ("DELETE", "/invocations", "POST"),
        ("POST", "/ping", "GET, HEAD"),
    ):
        connection = http.client.HTTPConnection(*server, timeout=10)
        try:
            connection.request(method, path, body=b"1" if method == "POST" else None)
            response = connection.getresponse()
            body = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 405, (method, path)
        assert response.getheader("Allow") == allowed
        assert method in body["error"]


def raw_exchange(
    server: tuple[str, int], data: bytes, half_close: bool = False, wait: float = 10
) -> bytes:
    """Send raw bytes, optionally half-close, and read until the server closes the connection."""
    with socket.create_connection(server, timeout=wait) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_body_without_content_length_is_411(server: tuple[str, int]) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\n1,2\r\n0\r\n\r\n"
    )
    answer = raw_exchange(server, head)
    assert answer.startswith(b"HTTP/1.1 411 "), answer[:80]
    assert b"Content-Length" in answer


def test_a_body_shorter_than_its_content_length_is_refused(
    server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    """The client half-closes after part of the body: that part must not be scored (issue 14)."""
    body = csv_rows(clean_frame, schema, 1)
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body) + 20}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, head + body, half_close=True)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"the body ended after" in answer
    assert b"predictions" not in answer


@pytest.fixture()
def impatient_server(model_dir: Path) -> Iterator[tuple[str, int]]:
    instance = make_server(model_dir, "127.0.0.1", 0, request_timeout=1.0)
    serve_in_thread(instance)
    yield "127.0.0.1", instance.server_address[1]
    instance.shutdown()
    instance.server_close()


def test_stalled_requests_are_closed_in_bounded_time_while_others_are_served(
    impatient_server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    """Real sockets: one client stalls in its headers, one in its body, a third keeps scoring."""
    body = csv_rows(clean_frame, schema, 1)
    stalls = {
        "headers": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n",
        "body": (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 1000\r\n\r\n" + body
        ),
    }
    answers: dict[str, tuple[bytes, float]] = {}

    def stall(name: str) -> None:
        start = time.monotonic()
        received = b""
        with socket.create_connection(impatient_server, timeout=6) as sock:
            sock.sendall(stalls[name])  # ... and nothing more, without closing
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except TimeoutError:
                pass  # the server kept the connection open
        answers[name] = (received, time.monotonic() - start)

    threads = [threading.Thread(target=stall, args=(name,)) for name in stalls]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    served = [
        request(impatient_server, "POST", "/invocations", body, {"Content-Type": "text/csv"})[0]
        for _ in range(5)
    ]
    still_waiting = all(thread.is_alive() for thread in threads)
    for thread in threads:
        thread.join(timeout=15)
    assert served == [200] * 5
    assert still_waiting  # the others were served while both stalled requests were open
    for name, (received, elapsed) in answers.items():
        assert received.startswith(b"HTTP/1.1 408 "), (name, received[:80])
        assert elapsed < 5, name


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


def test_a_hostile_inference_id_is_cleaned_before_it_is_captured(
    server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema, capture_dir: Path
) -> None:
    body = csv_rows(clean_frame, schema, 1)
    hostile = b"\x1b[2J\x00forged\x07\x08\x7f-" + b"x" * 200
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Connection: close\r\nX-Amzn-SageMaker-Inference-Id: " + hostile + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    assert raw_exchange(server, head + body).startswith(b"HTTP/1.1 200 ")
    ids = [
        json.loads(line)["eventMetadata"].get("inferenceId")
        for file in capture_dir.rglob("*.jsonl")
        for line in file.read_text().splitlines()
    ]
    cleaned = [value for value in ids if value and "forged" in value]
    assert cleaned == [("[2Jforged-" + "x" * 200)[:MAX_INFERENCE_ID]]


# --- CSV and JSON as people send them, over HTTP -----------------------------------------------


def exchange(
    server: tuple[str, int], body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    """POST /invocations; the status, content type and raw body of the answer."""
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def test_messy_csv_is_scored_or_refused_with_what_to_change(
    server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    rows = clean_frame[schema.feature_names].head(2)
    text = rows.to_csv(index=False)
    ok, _, plain = exchange(server, text.encode(), {"Content-Type": "text/csv"})
    assert ok == 200
    # A UTF-8 byte-order mark before the header, as spreadsheet exports write it.
    answer = exchange(server, b"\xef\xbb\xbf" + text.encode(), {"Content-Type": "text/csv"})
    assert answer[0] == 200 and answer[2] == plain, answer
    # Another charset, declared.
    latin = exchange(server, text.encode("utf-16"), {"Content-Type": "text/csv; charset=utf-16"})
    assert latin[0] == 200 and latin[2] == plain, latin
    unknown = exchange(server, text.encode(), {"Content-Type": "text/csv; charset=x-nope"})
    assert unknown[0] == 415 and b"x-nope" in unknown[2]
    # Semicolons and tabs: the message names the separator found and the one expected.
    for separator, name in ((";", b"semicolon"), ("\t", b"tab")):
        body = rows.to_csv(index=False, sep=separator).encode()
        status, _, got = exchange(server, body, {"Content-Type": "text/csv"})
        assert status == 400 and name in got and b"','" in got, got


def test_accept_q_values_choose_the_answer_type(
    server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    body = csv_rows(clean_frame, schema, 2)
    csv_type = {"Content-Type": "text/csv", "Accept": "application/json;q=0, text/csv"}
    status, content_type, got = exchange(server, body, csv_type)
    assert (status, content_type) == (200, "text/csv"), got
    assert len(got.decode().splitlines()) == 2
    neither = {"Content-Type": "text/csv", "Accept": "application/json;q=0, text/csv;q=0"}
    status, _, got = exchange(server, body, neither)
    assert status == 406 and b"accept" in got


def test_json_with_a_repeated_key_is_refused(server: tuple[str, int], schema: Schema) -> None:
    first = schema.feature_names[0]
    pairs = [f'"{name}": 1.0' for name in schema.feature_names] + [f'"{first}": 2.0']
    body = ("{" + ", ".join(pairs) + "}").encode()
    status, _, got = exchange(server, body, {"Content-Type": "application/json"})
    assert status == 400
    assert first.encode() in got and b"twice" in got


@pytest.mark.parametrize("lengths", [(5, 6), (5, 5, 6)])
def test_conflicting_content_lengths_are_400(
    server: tuple[str, int], lengths: tuple[int, ...]
) -> None:
    """RFC 9112 section 6.3: where the body ends is ambiguous; never guess."""
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
    head += b"".join(f"Content-Length: {length}\r\n".encode() for length in lengths)
    answer = raw_exchange(server, head + b"\r\n1,2,3", half_close=True)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"conflicting Content-Length" in answer


def test_repeated_equal_content_lengths_are_one(
    server: tuple[str, int], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    body = csv_rows(clean_frame, schema, 1)
    head = (
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, head + body)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


# --- load: no connection is ever dropped --------------------------------------------------------

FRESH_CLIENTS = 32
FRESH_PER_CLIENT = 60
KEEP_ALIVE_CLIENTS = 8
KEEP_ALIVE_REQUESTS = 2_000


def _client(
    server: tuple[str, int], body: bytes, count: int, fresh: bool, errors: list[str]
) -> None:
    """``count`` requests, each on a new connection when ``fresh``; errors are recorded."""
    connection = None
    for _ in range(count):
        try:
            if connection is None:
                connection = http.client.HTTPConnection(*server, timeout=30)
            connection.request(
                "POST", "/invocations", body=body, headers={"Content-Type": "text/csv"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
        except OSError as error:  # ConnectionResetError, refused, timed out
            errors.append(repr(error))
            connection = None
        if fresh and connection is not None:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


@pytest.mark.slow
def test_no_connection_is_dropped_under_load(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    """32 clients x 60 fresh connections, then 2,000 keep-alive requests: zero errors.

    With the listen backlog at socketserver's default of 5, bursts of fresh connections overflowed
    it and the kernel reset some of them.
    """
    instance = make_server(model_dir, "127.0.0.1", 0)
    serve_in_thread(instance)
    server = ("127.0.0.1", instance.server_address[1])
    body = csv_rows(clean_frame, schema, 1)
    errors: list[str] = []
    start = time.monotonic()
    try:
        for clients, count, fresh in (
            (FRESH_CLIENTS, FRESH_PER_CLIENT, True),
            (KEEP_ALIVE_CLIENTS, KEEP_ALIVE_REQUESTS // KEEP_ALIVE_CLIENTS, False),
        ):
            threads = [
                threading.Thread(target=_client, args=(server, body, count, fresh, errors))
                for _ in range(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not any(thread.is_alive() for thread in threads), "a client hung"
    finally:
        instance.shutdown()
        instance.server_close()
    assert errors == [], f"{len(errors)} errors, first: {errors[:3]}"
    assert time.monotonic() - start < 240
