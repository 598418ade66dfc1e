"""Local model server with the SageMaker container contract: ``GET /ping``, ``POST /invocations``.

    python -m <package>.serve --model-dir models --port 8080

Bad requests get a 4xx and a JSON ``{"error": "..."}`` naming the problem: 400 for unparsable or
mis-shaped payloads, 411 without Content-Length, 413 for bodies over ``--max-body-bytes``, 415 for
other content types, 404/405 for other routes. Standard library only, so it starts in well under a
second and adds nothing to the dependency tree.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from threadpoolctl import ThreadpoolController

from .capture import INFERENCE_ID_HEADER, CaptureWriter
from .inference import InvalidInputError, Model, input_fn, model_fn, output_fn, predict_fn

# SageMaker real-time endpoints accept at most 6 MB per request.
DEFAULT_MAX_BODY = 6 * 1024 * 1024


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        model: Model,
        max_body: int,
        capture: CaptureWriter | None = None,
    ) -> None:
        super().__init__(address, InferenceHandler)
        self.model = model
        self.max_body = max_body
        self.capture = capture
        # Tree ensembles predict tree by tree, dropping and retaking the GIL each time; concurrent
        # predictions then convoy on the GIL. One at a time serves more, sooner (bench/, 8 clients
        # on 2 cores: 59 -> ~90 requests/s, p50 136 -> 85 ms); parsing and I/O stay concurrent.
        self.predict_lock = threading.Lock()
        # Created after the model is loaded, so it sees the OpenMP runtime scikit-learn loaded.
        self._native_threads = ThreadpoolController()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection with one OpenMP/BLAS thread.

        scikit-learn's predictors parallelise over rows with OpenMP; for the few rows of an online
        request that costs more than it saves, and concurrent requests oversubscribe the cores.
        OpenMP's thread count belongs to the calling thread, so each request thread sets its own.
        """
        with self._native_threads.limit(limits=1):
            super().process_request_thread(request, client_address)


class InferenceHandler(BaseHTTPRequestHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write, and without Nagle's delay: otherwise the body waits for
    # the client's delayed ACK of the headers (about 40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    wbufsize = -1

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs off: they cost more than a prediction; errors still answer the client."""

    def _send(self, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": message}))

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(HTTPStatus.OK, json.dumps({"status": "healthy"}))
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no route {self.path[:80]!r}; use GET /ping")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._drain()
            self._error(HTTPStatus.NOT_FOUND, f"no route {self.path[:80]!r}; use POST /invocations")
            return
        body = self._read_body()
        if body is None:
            return
        content_type = self.headers.get("Content-Type", "")
        accept = self.headers.get("Accept", "application/json")
        try:
            rows = input_fn(body, content_type)
            with self.server.predict_lock:
                prediction = predict_fn(rows, self.server.model)
            result, result_type = output_fn(prediction, accept)
        except InvalidInputError as error:
            self._error(error.status, str(error))
            return
        if self.server.capture is not None:
            self.server.capture.write(
                body,
                content_type,
                result,
                result_type,
                inference_id=self.headers.get(INFERENCE_ID_HEADER),
            )
        self._send(HTTPStatus.OK, result, result_type)

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_header is None:
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length header")
            return None
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
            return None
        if length < 0:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "Content-Length is negative")
            return None
        if length > self.server.max_body:
            self.close_connection = True  # the unread body must not be parsed as a next request
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds the limit of {self.server.max_body}",
            )
            return None
        if length == 0:
            self._error(HTTPStatus.BAD_REQUEST, "the body is empty; send CSV or JSON rows")
            return None
        return self.rfile.read(length)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= self.server.max_body:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET /ping or POST /invocations")

    do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815 - stdlib handler names


def make_server(
    model_dir: Path,
    host: str,
    port: int,
    max_body: int = DEFAULT_MAX_BODY,
    capture_dir: Path | None = None,
) -> InferenceServer:
    capture = CaptureWriter(capture_dir) if capture_dir else None
    return InferenceServer((host, port), model_fn(str(model_dir)), max_body, capture)


def serve_in_thread(server: InferenceServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    # Loopback by default: a laptop server should not be reachable from the network unasked.
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument(
        "--capture-dir",
        type=Path,
        help="log requests and responses as SageMaker data-capture JSON lines",
    )
    args = parser.parse_args(argv)
    server = make_server(
        args.model_dir, args.host, args.port, args.max_body_bytes, args.capture_dir
    )
    print(f"serving {args.model_dir} on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
