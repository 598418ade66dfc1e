"""Smoke-test a deployed endpoint: a valid payload answers, a malformed one is refused.

Rows are built from the data contract (the middle of each feature's range), so the test needs no
data checkout. Run by ``buildspec-test.yml`` against the staging endpoint; with staging in an
account of its own, as that account's test role (``ENDPOINT_TEST_ROLE_ARN``, set by the deploy
stack), which only the deploy build role may assume.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .deployed import session_as

PROJECT = Path(__file__).resolve().parent.parent


def contract_rows(count: int = 3) -> str:
    schema = json.loads(next((PROJECT / "src").glob("*/schema.json")).read_text())
    middle = [(spec["min"] + spec["max"]) / 2 for spec in schema["features"].values()]
    return "\n".join(",".join(f"{value:g}" for value in middle) for _ in range(count)) + "\n"


def check_endpoint(runtime: Any, endpoint: str, rows: int = 3) -> list[str]:
    """Return the failures found (empty when the endpoint behaves)."""
    failures: list[str] = []
    response = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="text/csv",
        Accept="application/json",
        Body=contract_rows(rows),
    )
    predictions = json.loads(response["Body"].read()).get("predictions", [])
    if len(predictions) != rows:
        failures.append(f"expected {rows} predictions, got {len(predictions)}")
    try:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="text/csv",
            Accept="application/json",
            Body="not,a,row\n",
        )
        failures.append("a malformed payload was accepted")
    except ClientError as error:
        code = error.response["Error"]["Code"]
        # A container error reaches the caller as ModelError (HTTP 424) carrying the container's
        # own status: a 4xx there means the handler refused the payload; a 5xx means it crashed.
        status = error.response.get("OriginalStatusCode")
        if code != "ModelError":
            failures.append(f"malformed payload gave {code}")
        elif not (isinstance(status, int) and 400 <= status < 500):
            failures.append(f"malformed payload: the container answered {status}, expected a 4xx")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", default=os.environ.get("ENDPOINT_NAME"))
    parser.add_argument(
        "--role-arn",
        default=os.environ.get("ENDPOINT_TEST_ROLE_ARN"),
        help="role to invoke the endpoint as (default: $ENDPOINT_TEST_ROLE_ARN; none: as yourself)",
    )
    args = parser.parse_args(argv)
    if not args.endpoint:
        parser.error("give --endpoint or set ENDPOINT_NAME")
    runtime = session_as(args.role_arn).client("sagemaker-runtime")
    failures = check_endpoint(runtime, args.endpoint)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print(f"{args.endpoint}: {'ok' if not failures else f'{len(failures)} failure(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
