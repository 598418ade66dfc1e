"""Write requests and responses in the JSON-lines format of SageMaker endpoint data capture.

The local server uses it so that the monitor reads what the server actually saw, in the same
format as the files an endpoint writes to ``s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TEXT_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}


def _payload(data: bytes | str, content_type: str, mode: str) -> dict[str, Any]:
    kind = content_type.split(";")[0].strip().lower()
    raw = data.encode("utf-8") if isinstance(data, str) else data
    encoding = TEXT_ENCODINGS.get(kind)
    if encoding:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = None
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": text if encoding else base64.b64encode(raw).decode("ascii"),
        "encoding": encoding or "BASE64",
    }


def capture_record(
    request: bytes | str,
    request_type: str,
    response: bytes | str,
    response_type: str,
    when: datetime | None = None,
) -> dict[str, Any]:
    when = when or datetime.now(UTC)
    return {
        "captureData": {
            "endpointInput": _payload(request, request_type, "INPUT"),
            "endpointOutput": _payload(response, response_type, "OUTPUT"),
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        },
        "eventVersion": "0",
    }


class CaptureWriter:
    """Appends one JSON line per request, in hourly folders like SageMaker's."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def write(
        self, request: bytes | str, request_type: str, response: bytes | str, response_type: str
    ) -> None:
        record = capture_record(request, request_type, response, response_type)
        now = datetime.now(UTC)
        folder = self.root / now.strftime("%Y/%m/%d/%H")
        line = json.dumps(record) + "\n"
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"capture-{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
                out.write(line)
