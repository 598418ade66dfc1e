"""The one SageMaker SDK session the project builds and starts pipelines with: telemetry off.

The SDK sends usage telemetry (and looks up the account through STS to do so) from its decorated
calls unless ``SageMaker.PythonSDK.Modules.TelemetryOptOut`` is set in its configuration. The
project passes that configuration to every session it creates, so neither building a definition
nor upserting or starting a pipeline sends anything beyond the API call itself.
"""

from __future__ import annotations

from typing import Any

TELEMETRY_OPT_OUT: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def offline_session(region: str, boto_session: Any = None) -> Any:
    """A session for ``region`` that needs no credentials until a request is actually sent."""
    import boto3
    from sagemaker.core.helper.session_helper import Session

    return Session(
        boto_session=boto_session or boto3.Session(region_name=region),
        sagemaker_config=TELEMETRY_OPT_OUT,
    )
