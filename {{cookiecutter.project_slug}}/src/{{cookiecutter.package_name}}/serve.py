"""Local model server with the SageMaker container contract: ``GET /ping``, ``POST /invocations``.

    python -m <package>.serve --model-dir models --port 8080

Every invocation goes through ``inference.transform_fn``, the function the SageMaker scikit-learn
container calls, with the arguments that container's worker passes (``container_arguments``), so
a payload gets the same status and message here and on an endpoint: 400 for unparsable or
mis-shaped payloads, 406 for an unsupported Accept, 413 over 10,000 rows, 415 for other content
types. The HTTP layer adds what the endpoint's front end does before a request reaches the
container: 411 without Content-Length, 413 for bodies over ``--max-body-bytes`` (6 MB, the
endpoint's limit), 400 for a body shorter than its Content-Length or for conflicting Content-Length
values (RFC 9112 section 6.3: the body's end would be ambiguous), 408 (then closed) for a
request that has not fully arrived within ``--request-timeout`` seconds, 404 for other paths and
405 with an ``Allow`` header for another method on a known path. Standard library only, so it
starts in well under a second and adds nothing to the dependency tree.

With ``--challenger-dir`` a second model serves beside the champion, in shadow or A/B mode, as
an endpoint's variants do (``variants``): every answer names its variant in
``x-Amzn-Invoked-Production-Variant``, ``X-Amzn-SageMaker-Target-Variant`` picks one (400 for a
name that is not a production variant), and captures go to ``<capture dir>/<variant>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlops_platform.capture import INFERENCE_ID_HEADER
from threadpoolctl import ThreadpoolController

from .inference import JSON, Answer, error_answer
from .variants import (
    CHAMPION,
    INVOKED_VARIANT_HEADER,
    MODES,
    TARGET_VARIANT_HEADER,
    Rollout,
    RoutingError,
    load_challenger,
    load_variant,
    parse_weights,
)

# SageMaker real-time endpoints accept at most 6 MB per request.
DEFAULT_MAX_BODY = 6 * 1024 * 1024
# nginx in front of the container waits 60 s for a client's headers or body (its defaults).
DEFAULT_REQUEST_TIMEOUT = 60.0
ROUTES = {"/ping": ("GET", "HEAD"), "/invocations": ("POST",)}
# sagemaker-containers' worker passes the body as text for exactly these content types.
TEXT_CONTENT_TYPES = ("application/json", "text/csv")


def container_arguments(headers: Message, body: bytes) -> tuple[bytes | str, str, str]:
    """``(content, content_type, accept)`` as the container's worker passes them to transform_fn.

    As sagemaker-containers 2.8.6.post2 ``_worker.Request`` (the version the image pins): the
    content type is the ``ContentType`` header, else ``Content-Type``, else JSON; the body is text,
    undecodable bytes replaced, when the content type is exactly JSON or CSV, bytes otherwise; the
    accept type is ``Accept`` unless it is missing or ``*/*``, then
    ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or JSON.
    """
    content_type = headers.get("ContentType") or headers.get("Content-Type") or JSON
    content: bytes | str = (
        body.decode("utf-8", errors="replace") if content_type in TEXT_CONTENT_TYPES else body
    )
    accept = headers.get("Accept")
    if not accept or accept == "*/*":
        accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)
    return content, content_type, accept


class Deadlines:
    """Stops reading requests that have not fully arrived in time: stalled or trickling clients.

    A connection is armed while the server waits for a request's line, headers and body; when its
    time is up, the watcher shuts the socket's reading side, which ends the blocked read at once.
    Each connection has its own thread, so other clients are served meanwhile.
    """

    TICK = 0.05

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._due: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def arm(self, connection: socket.socket) -> None:
        with self._lock:
            self._due[connection] = time.monotonic() + self.seconds

    def disarm(self, connection: socket.socket) -> None:
        with self._lock:
            self._due.pop(connection, None)

    def expired(self, connection: socket.socket) -> bool:
        with self._lock:
            return connection in self._expired

    def forget(self, connection: socket.socket) -> None:
        with self._lock:
            self._due.pop(connection, None)
            self._expired.discard(connection)

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(min(self.TICK, self.seconds / 4)):
            now = time.monotonic()
            with self._lock:
                late = [connection for connection, due in self._due.items() if due <= now]
                for connection in late:
                    del self._due[connection]
                    self._expired.add(connection)
            for connection in late:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RD)


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: connections the kernel completes while the accept loop is busy (it
    # starts a thread per connection and competes for the GIL with the requests in flight). The
    # socketserver default of 5 overflows when a few dozen clients open connections at once, and
    # the kernel then resets some of them (the template's bench/RESULTS.md: 27-47 of 1,920 fresh
    # connections from 32 clients). 1,024 covers the clients a laptop server meets many times
    # over; Linux caps it at net.core.somaxconn (4,096 by default); an unused queue costs nothing.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        rollout: Rollout,
        max_body: int,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        super().__init__(address, InferenceHandler)
        self.rollout = rollout
        self.max_body = max_body
        self.deadlines = Deadlines(request_timeout)
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

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-answer is not a server error worth a traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def server_close(self) -> None:
        self.deadlines.stop()
        super().server_close()


class InferenceHandler(BaseHTTPRequestHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write, and without Nagle's delay: otherwise the body waits for
    # the client's delayed ACK of the headers (about 40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    wbufsize = -1

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs off: they cost more than a prediction; errors still answer the client."""

    def handle_one_request(self) -> None:
        self.server.deadlines.arm(self.connection)
        super().handle_one_request()

    def finish(self) -> None:
        self.server.deadlines.forget(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.server.deadlines.expired(self.connection):
            self._timed_out()
            return False
        return True

    def _answer(self, answer: Answer, headers: dict[str, str] | None = None) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        with contextlib.suppress(OSError):  # the client may be gone; nothing left to tell it
            self._answer(error_answer(status, message), headers)

    def _timed_out(self) -> None:
        self.close_connection = True
        seconds = self.server.deadlines.seconds
        self._error(HTTPStatus.REQUEST_TIMEOUT, f"the request did not arrive within {seconds:g} s")

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        methods = ROUTES.get(path)
        if methods is None or self.command not in methods:
            self.server.deadlines.disarm(self.connection)
            self._drain()
            if methods is None:
                self._error(
                    HTTPStatus.NOT_FOUND,
                    f"no route {path[:80]!r}; use GET /ping or POST /invocations",
                )
            else:
                self._error(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{self.command} is not allowed on {path}; use {' or '.join(methods)}",
                    {"Allow": ", ".join(methods)},
                )
        elif path == "/ping":
            self.server.deadlines.disarm(self.connection)
            self._answer(Answer(HTTPStatus.OK, json.dumps({"status": "healthy"}), JSON))
        else:
            self._invoke()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route  # noqa: N815

    def _invoke(self) -> None:
        body = self._read_body()
        if body is None:
            return
        content, content_type, accept = container_arguments(self.headers, body)
        try:
            answer, variant = self.server.rollout.invoke(
                body,
                content,
                content_type,
                accept,
                target=self.headers.get(TARGET_VARIANT_HEADER),
                inference_id=self.headers.get(INFERENCE_ID_HEADER),
            )
        except RoutingError as error:
            self._error(error.status, str(error))
            return
        self._answer(answer, {INVOKED_VARIANT_HEADER: variant})

    def _read_body(self) -> bytes | None:
        lengths = {
            value.strip()
            for header in self.headers.get_all("Content-Length") or ()
            for value in header.split(",")
        }
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or not lengths:
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length header")
            return None
        if len(lengths) > 1:
            # Where the body ends is ambiguous: answer and close, never guess (RFC 9112 sec. 6.3).
            self.close_connection = True
            shown = ", ".join(sorted(lengths))[:80]
            self._error(
                HTTPStatus.BAD_REQUEST,
                f"conflicting Content-Length values ({shown}); send one Content-Length header",
            )
            return None
        (length_header,) = lengths
        if not length_header.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "Content-Length is not a whole number")
            return None
        length = int(length_header)
        if length > self.server.max_body:
            self.close_connection = True  # the unread body must not be parsed as a next request
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds the limit of {self.server.max_body}",
            )
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            # The client stopped sending (half-closed) or ran out of time: never score a fragment.
            self.close_connection = True
            if self.server.deadlines.expired(self.connection):
                self._timed_out()
            else:
                self._error(
                    HTTPStatus.BAD_REQUEST,
                    f"the body ended after {len(body)} of the {length} bytes of its Content-Length",
                )
            return None
        self.server.deadlines.disarm(self.connection)
        return body

    def _drain(self) -> None:
        length = self.headers.get("Content-Length", "0").strip()
        if length.isdigit() and int(length) <= self.server.max_body:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


def make_server(
    model_dir: Path,
    host: str,
    port: int,
    max_body: int = DEFAULT_MAX_BODY,
    capture_dir: Path | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    challenger_dir: Path | None = None,
    mode: str | None = None,
    weights: tuple[float, float] = (90.0, 10.0),
    seed: int | None = None,
) -> InferenceServer:
    """A server for ``model_dir`` (the champion) and, with ``challenger_dir``, a challenger.

    A challenger directory that cannot be loaded is reported and left out: the champion serves.
    """
    champion = load_variant(CHAMPION, model_dir, capture_dir)
    challenger = load_challenger(challenger_dir, capture_dir) if challenger_dir else None
    rollout = Rollout(champion, challenger, mode if challenger_dir else None, weights, seed)
    return InferenceServer((host, port), rollout, max_body, request_timeout)


def serve_in_thread(server: InferenceServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def argument_parser() -> argparse.ArgumentParser:
    """The command line (``make serve`` passes its variables through it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    # Loopback by default: a laptop server should not be reachable from the network unasked.
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        help="seconds a request's line, headers and body may take to arrive",
    )
    parser.add_argument(
        "--capture-dir",
        type=Path,
        help="log requests and responses as SageMaker data-capture JSON lines, per variant",
    )
    parser.add_argument(
        "--challenger-dir",
        type=Path,
        help="a second model directory, served beside --model-dir (the champion)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="shadow",
        help="with --challenger-dir: shadow (only the champion answers) or ab (weighted routing)",
    )
    parser.add_argument(
        "--weights",
        default="90,10",
        help="A/B traffic weights, champion,challenger (default 90,10)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser()
    args = parser.parse_args(argv)
    try:
        weights = parse_weights(args.weights)
    except ValueError as error:
        parser.error(str(error))
    server = make_server(
        args.model_dir,
        args.host,
        args.port,
        args.max_body_bytes,
        args.capture_dir,
        args.request_timeout,
        args.challenger_dir,
        args.mode,
        weights,
    )
    url = f"http://{args.host}:{server.server_address[1]}"
    print(f"serving {args.model_dir} as '{CHAMPION}' on {url}", flush=True)
    challenger = server.rollout.challenger
    if challenger is not None and challenger.model is not None:
        split = f", weights {args.weights}" if args.mode == "ab" else ""
        print(f"  challenger '{challenger.name}': {args.challenger_dir} ({args.mode}{split})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
