"""What a stage's endpoint serves now: the model package behind each of its variants.

Read from the live endpoint (DescribeEndpoint, DescribeEndpointConfig, DescribeModel), not from a
record of what was last deployed: an update SageMaker rolled back leaves the endpoint on its
previous configuration, and that is what the next deploy starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from . import rollout


class EndpointReadError(RuntimeError):
    """The live endpoint exists but cannot be read (permissions, another account)."""


@dataclass(frozen=True)
class Serving:
    """The packages behind a live endpoint's variants."""

    endpoint: str
    production: dict[str, str]  # variant name -> model package ARN
    shadow: dict[str, str]

    @property
    def variants(self) -> frozenset[str]:
        return frozenset(self.production) | frozenset(self.shadow)

    @property
    def champion(self) -> str:
        """The champion's package; an endpoint with one production variant under another name
        (deployed before the variant names were settled) serves that one."""
        if rollout.CHAMPION in self.production:
            return self.production[rollout.CHAMPION]
        if len(self.production) == 1:
            return next(iter(self.production.values()))
        raise EndpointReadError(
            f"endpoint {self.endpoint} has variants {sorted(self.production)} and none is "
            f"the champion '{rollout.CHAMPION}' (src/<package>/variants.json)"
        )

    @property
    def challenger(self) -> str | None:
        return self.shadow.get(rollout.CHALLENGER) or self.production.get(rollout.CHALLENGER)

    @property
    def mode(self) -> str:
        if rollout.CHALLENGER in self.shadow:
            return "shadow"
        return "ab" if rollout.CHALLENGER in self.production else "replace"


def _package_of(sagemaker: Any, model_name: str) -> str:
    model = sagemaker.describe_model(ModelName=model_name)
    containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
    package = containers[0].get("ModelPackageName")
    if not package:
        raise EndpointReadError(f"model {model_name} was not made from a model package")
    return str(package)


def serving(sagemaker: Any, endpoint: str) -> Serving | None:
    """The live endpoint's variants and packages; None when there is no such endpoint yet."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        config = sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
        production = {
            v["VariantName"]: _package_of(sagemaker, v["ModelName"])
            for v in config.get("ProductionVariants", [])
        }
        shadow = {
            v["VariantName"]: _package_of(sagemaker, v["ModelName"])
            for v in config.get("ShadowProductionVariants", [])
        }
    except ClientError as error:
        message = error.response["Error"]["Message"]
        if "Could not find endpoint" in message and endpoint in message:
            return None
        raise EndpointReadError(f"cannot read the live endpoint {endpoint}: {message}") from error
    return Serving(endpoint, production, shadow)
