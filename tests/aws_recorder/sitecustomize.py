"""Record every AWS API call a Python process makes, for tests/aws_recording.py.

A process started with this folder on ``PYTHONPATH`` and ``RECORD_AWS_CALLS`` naming a file
imports this module at start-up (Python's ``site`` imports ``sitecustomize``). Every botocore
session it then creates (boto3's, the SageMaker SDK's, aiobotocore's for DVC/s3fs) gets a
``before-parameter-build`` handler: the event botocore emits for each API call with the
operation's model and the caller's parameters, before they are serialized. One JSON line per
call: the process's command line, the thread, the service, the operation and the parameters (bodies
dropped). Without ``RECORD_AWS_CALLS`` nothing is imported or changed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

LOG = os.environ.get("RECORD_AWS_CALLS")


def _plain(value: Any) -> Any:
    """The parameters as JSON: bytes, streams and files become a marker (bodies are not needed)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<{type(value).__name__}>"


def _record(params: Any, model: Any, **_: Any) -> None:
    line = {
        "argv": sys.argv,
        # fsspec runs s3fs's (DVC's) requests on its own thread, "fsspecIO".
        "thread": threading.current_thread().name,
        "service": model.service_model.service_name,
        "signing_name": model.service_model.signing_name,
        "operation": model.name,
        "params": _plain(params),
    }
    with Path(str(LOG)).open("a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def _install() -> None:
    try:
        import botocore.session
    except ImportError:  # an interpreter without botocore makes no AWS call
        return
    original = botocore.session.Session.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.register("before-parameter-build", _record, unique_id="record-aws-calls")

    botocore.session.Session.__init__ = recording_init  # type: ignore[method-assign]


if LOG:
    _install()
