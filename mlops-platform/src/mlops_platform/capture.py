"""Write requests and responses in the JSON-lines format of SageMaker endpoint data capture.

The local server uses it so that the monitor reads what the server actually saw, in the same
format as the files an endpoint writes to ``s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``.
It also writes the ground-truth records model-quality monitoring joins to those events: a client
names each request with an inference id (the header ``invoke_endpoint(InferenceId=...)`` sends),
and once the label is known, ``mlops-platform ground-truth --labels labels.csv`` turns
``inference_id,label`` rows into the JSON lines to upload under the endpoint's ground-truth prefix.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GROUND_TRUTH_HELP = "Write ground-truth JSON lines for model-quality monitoring."

TEXT_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
# InvokeEndpoint's InferenceId: 1 to 64 printable characters, the first not a space
# (botocore's sagemaker-runtime service model, pattern \A\S[\p{Print}]*\z).
MAX_INFERENCE_ID = 64
# Microseconds, the unit of an endpoint's ModelLatency metric.
MODEL_LATENCY_FIELD = "modelLatencyMicroseconds"


def clean_inference_id(value: str | None) -> str | None:
    """A client's inference id as InvokeEndpoint would accept it, or None when nothing is left.

    Characters that are not printable (control characters, line breaks, escape sequences) are
    dropped, leading spaces too, and the rest is cut to 64 characters, so a header cannot forge
    lines or terminal output in the capture files and the monitoring jobs that read them.
    """
    if not value:
        return None
    printable = "".join(character for character in value if character.isprintable()).lstrip()
    return printable[:MAX_INFERENCE_ID] or None


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
    inference_id: str | None = None,
    event_id: str | None = None,
    model_latency_us: int | None = None,
) -> dict[str, Any]:
    """One captured event. ``event_id`` is shared by the champion's and the shadow's records of
    one request; ``model_latency_us`` (the local server's time in ``transform_fn``) is this
    project's addition under ``eventMetadata``: an endpoint reports it in CloudWatch instead."""
    when = when or datetime.now(UTC)
    metadata: dict[str, Any] = {
        "eventId": event_id or str(uuid.uuid4()),
        "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }
    inference_id = clean_inference_id(inference_id)
    if inference_id:
        metadata["inferenceId"] = inference_id
    if model_latency_us is not None:
        metadata[MODEL_LATENCY_FIELD] = model_latency_us
    return {
        "captureData": {
            "endpointInput": _payload(request, request_type, "INPUT"),
            "endpointOutput": _payload(response, response_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


def ground_truth_record(inference_id: str, label: object) -> dict[str, Any]:
    """One label, in the format SageMaker model-quality monitoring merges with captured events."""
    return {
        "groundTruthData": {"data": str(label), "encoding": "CSV"},
        "eventMetadata": {"eventId": inference_id},
        "eventVersion": "0",
    }


def write_ground_truth(labels: Path, output: Path, when: datetime | None = None) -> Path:
    """Turn ``inference_id,label`` rows into ground-truth JSON lines in an hourly folder."""
    with labels.open(newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    if not rows or [cell.strip().lower() for cell in rows[0]] != ["inference_id", "label"]:
        raise ValueError(f"{labels}: the header must be exactly 'inference_id,label'")
    records = []
    for number, row in enumerate(rows[1:], start=2):
        inference_id = clean_inference_id(row[0].strip()) if len(row) == 2 else None
        if inference_id is None or not row[1].strip():
            raise ValueError(f"{labels}, line {number}: expected an inference id and a label")
        records.append(json.dumps(ground_truth_record(inference_id, row[1].strip())))
    folder = output / (when or datetime.now(UTC)).strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{labels.stem}.jsonl"
    target.write_text("".join(f"{record}\n" for record in records), encoding="utf-8")
    return target


def read_records(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every captured event below ``folder`` with the file it came from, in file order.

    Endpoints write ``.jsonl`` files; blank lines are skipped. The monitor and ``compare`` both
    read captures through this function.
    """
    for file in sorted(Path(folder).rglob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield file, json.loads(line)


def payload_text(payload: dict[str, Any]) -> str:
    """A captured ``endpointInput``/``endpointOutput`` payload's data as text."""
    data = str(payload["data"])
    if payload.get("encoding") == "BASE64":
        return base64.b64decode(data).decode("utf-8", errors="replace")
    return data


def download_prefix(uri: str, target: Path, suffixes: tuple[str, ...] = (".jsonl",)) -> Path:
    """Copy every object below an ``s3://bucket/prefix`` whose key ends with one of ``suffixes``
    (captures: ``.jsonl``) into ``target``, keys kept.

    boto3 resolves credentials, region and ``AWS_ENDPOINT_URL`` as usual (tests use a loopback
    moto server). Raises ValueError for a URI that is not ``s3://bucket/...``.
    """
    import boto3  # the cloud dependency group: only when reading from S3
    from botocore.exceptions import BotoCoreError, ClientError

    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ValueError(f"{uri}: expected s3://bucket/prefix")
    bucket, _, prefix = uri[5:].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    try:
        client = boto3.client("s3")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith(suffixes):
                    continue
                destination = target / key[len(prefix) :]
                destination.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(destination))
    except (BotoCoreError, ClientError) as error:  # credentials, permissions, a missing bucket
        raise OSError(f"cannot read {uri}: {error}") from None
    return target


class CaptureWriter:
    """Appends one JSON line per request, in hourly folders like SageMaker's."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def write(
        self,
        request: bytes | str,
        request_type: str,
        response: bytes | str,
        response_type: str,
        inference_id: str | None = None,
        event_id: str | None = None,
        model_latency_us: int | None = None,
    ) -> None:
        record = capture_record(
            request,
            request_type,
            response,
            response_type,
            inference_id=inference_id,
            event_id=event_id,
            model_latency_us=model_latency_us,
        )
        now = datetime.now(UTC)
        folder = self.root / now.strftime("%Y/%m/%d/%H")
        line = json.dumps(record) + "\n"
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"capture-{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
                out.write(line)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mlops-platform ground-truth`` (and ``python -m mlops_platform.capture``)."""
    parser.add_argument("--labels", type=Path, required=True, help="CSV: inference_id,label")
    parser.add_argument("--output-dir", type=Path, default=Path("data/ground-truth"))


def run(args: argparse.Namespace) -> int:
    """Write the ground-truth lines of ``args.labels``: 0, or 2 with one line on a bad file."""
    try:
        target = write_ground_truth(args.labels, args.output_dir)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {target}; upload it under the endpoint's GroundTruthUri keeping yyyy/mm/dd/hh")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=GROUND_TRUTH_HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
