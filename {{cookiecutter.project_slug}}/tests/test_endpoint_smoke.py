"""The staging smoke test (``pipelines/endpoint_test.py``) against stubbed endpoint answers."""

from __future__ import annotations

import io

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from pipelines import endpoint_test


def _body(payload: str) -> StreamingBody:
    return StreamingBody(io.BytesIO(payload.encode()), len(payload.encode()))


def test_endpoint_smoke_test_passes_on_a_well_behaved_endpoint() -> None:
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body('{"predictions": [{}, {}, {}]}')},
            {
                "EndpointName": "churn-staging",
                "ContentType": "text/csv",
                "Accept": "application/json",
                "Body": endpoint_test.contract_rows(3),
            },
        )
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": "wrong column count"},
        )
        assert endpoint_test.check_endpoint(runtime, "churn-staging") == []
        stub.assert_no_pending_responses()


def test_endpoint_smoke_test_catches_a_container_that_crashes_on_bad_input() -> None:
    """The container's own status travels in ModelError: a 500 there is a crash, not a refusal."""
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": [{}, {}, {}]}')})
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "Internal Server Error"},
        )
        failures = endpoint_test.check_endpoint(runtime, "churn-staging")
    assert failures == ["malformed payload: the container answered 500, expected a 4xx"]


def test_endpoint_smoke_test_catches_a_lenient_endpoint() -> None:
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": [{}]}')})
        stub.add_response("invoke_endpoint", {"Body": _body('{"predictions": []}')})
        failures = endpoint_test.check_endpoint(runtime, "churn-staging")
    assert failures == ["expected 3 predictions, got 1", "a malformed payload was accepted"]


STAGING_ACCOUNT = "111111111111"
BUILD_ACCOUNT = "123456789012"  # the account moto answers as


def test_the_staging_test_invokes_as_the_staging_accounts_role() -> None:
    role = f"arn:aws:iam::{STAGING_ACCOUNT}:role/churn-invoke-staging"
    with mock_aws():
        caller = endpoint_test.session_as(role).client("sts").get_caller_identity()
        assert caller["Account"] == STAGING_ACCOUNT
        assert caller["Arn"].endswith(":assumed-role/churn-invoke-staging/staging-endpoint-test")
        own = endpoint_test.session_as(None).client("sts").get_caller_identity()
        assert own["Account"] == BUILD_ACCOUNT
