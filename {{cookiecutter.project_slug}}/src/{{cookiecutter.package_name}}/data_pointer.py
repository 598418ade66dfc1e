"""The "current data" pointer: which uploaded data version a pipeline run trains on.

``s3://<bucket>/<project>/data/current.json`` names the content-hash prefix of the data uploaded
last (``make data-upload`` and ``python -m pipelines.run --start`` upload and then rewrite it; an S3
PUT replaces the object atomically). The pipeline's first step (``ResolveData``, never cached)
runs this module to copy the pointer into its output, and the prepare step reads the prefix the
pointer names: a run started with no parameters, as the retraining rule starts it, trains on the
current data, and the prepare step's cache key (its input URI) changes whenever the data does.

    python -m <package>.data_pointer --pointer-dir /opt/ml/processing/input/pointer \
        --output-dir /opt/ml/processing/output
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

POINTER_FILE = "current.json"
VERSION = re.compile(r"^[0-9a-f]{64}$")


class PointerError(ValueError):
    """The pointer is missing or malformed; the message names the field."""


def make_pointer(uri: str, version: str, files: int) -> dict[str, Any]:
    """The pointer record for data uploaded under ``uri`` (a prefix ending in its version)."""
    record = {"uri": uri, "version": version, "files": files}
    check(record)
    return record


def check(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise PointerError("the pointer must be a JSON object")
    uri, version = record.get("uri"), record.get("version")
    if not isinstance(version, str) or not VERSION.match(version):
        raise PointerError("field 'version': must be a SHA-256 hex digest")
    if not isinstance(uri, str) or not uri.startswith("s3://") or version not in uri:
        raise PointerError("field 'uri': must be an s3:// prefix that names the version")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pointer-dir", type=Path, default=Path("/opt/ml/processing/input/pointer")
    )
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    args = parser.parse_args(argv)
    source = args.pointer_dir / POINTER_FILE
    try:
        if not source.exists():
            raise PointerError(f"no {POINTER_FILE} in {args.pointer_dir}: upload data first")
        record = check(json.loads(source.read_text()))
    except (PointerError, json.JSONDecodeError) as error:
        print(f"error: invalid data pointer: {error}", file=sys.stderr)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / POINTER_FILE).write_text(json.dumps(record, indent=2) + "\n")
    print(f"current data: {record['uri']} (version {record['version'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
