"""What a stage's endpoint serves now: the model package behind each of its variants.

Read from the live endpoint (DescribeEndpoint, DescribeEndpointConfig, DescribeModel), not from a
record of what was last deployed: an update SageMaker rolled back leaves the endpoint on its
previous configuration, and that is what the next deploy starts from.

After each stage deploy the deploy pipeline runs ``python -m pipelines.deployed --verify STAGE``
(``make verify-stage``): the stage's endpoint must be InService on the configuration and models its
stack created. A blue/green update SageMaker rolled back on its alarms returns the endpoint to
InService on the previous configuration; this fails the stage with one line saying so. With the
stage in an account of its own, it reads there as that account's read-only verify role
(``VERIFY_ROLE_ARN``, set by the deploy pipeline; ``infrastructure/target-account.yaml``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

import boto3
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


# The stack states in which a deploy action has finished creating or updating the stack.
DEPLOYED_STACK_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE")


def stage_stack(project_name: str, stage: str) -> str:
    """The stage's stack, as the deploy pipeline's CloudFormation actions name it."""
    return f"{project_name}-endpoint-{stage}"


def _name(physical_id: str) -> str:
    """A SageMaker resource's name from its physical id (its ARN or its name)."""
    return physical_id.rsplit("/", 1)[-1] if physical_id.startswith("arn:") else physical_id


def verify_stage(cloudformation: Any, sagemaker: Any, stack: str) -> str | None:
    """None when the stack's endpoint serves what the stack created; else one line saying how
    the live endpoint differs (rolled back, not in service, models the stack did not make)."""
    try:
        status = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    except ClientError as error:
        return f"cannot read the stack {stack}: {error.response['Error']['Message']}"
    if status not in DEPLOYED_STACK_STATES:
        return f"stack {stack} is {status}, not {' or '.join(DEPLOYED_STACK_STATES)}"
    created: dict[str, set[str]] = {}
    for resource in resources:
        if resource.get("PhysicalResourceId"):
            created.setdefault(resource["ResourceType"], set()).add(
                _name(resource["PhysicalResourceId"])
            )
    endpoints = created.get("AWS::SageMaker::Endpoint", set())
    configs = created.get("AWS::SageMaker::EndpointConfig", set())
    if len(endpoints) != 1 or len(configs) != 1:
        return (
            f"stack {stack} has {len(endpoints)} endpoints and {len(configs)} endpoint "
            "configurations, not one each"
        )
    (endpoint,), (config,) = endpoints, configs
    try:
        live = sagemaker.describe_endpoint(EndpointName=endpoint)
        live_config = sagemaker.describe_endpoint_config(
            EndpointConfigName=live["EndpointConfigName"]
        )
    except ClientError as error:
        return f"cannot read the endpoint {endpoint}: {error.response['Error']['Message']}"
    if live["EndpointStatus"] != "InService":
        reason = live.get("FailureReason")
        return f"endpoint {endpoint} is {live['EndpointStatus']}, not InService" + (
            f": {reason}" if reason else ""
        )
    if live["EndpointConfigName"] != config:
        return (
            f"endpoint {endpoint} serves configuration {live['EndpointConfigName']}, not the "
            f"stack's {config}: the update was rolled back (its events say why)"
        )
    variants = live_config.get("ProductionVariants", []) + live_config.get(
        "ShadowProductionVariants", []
    )
    models = created.get("AWS::SageMaker::Model", set())
    foreign = sorted({v["ModelName"] for v in variants} - models)
    if foreign:
        return f"endpoint {endpoint} serves models {foreign} that the stack {stack} did not create"
    return None


def session_as(
    role_arn: str | None, session_name: str = "staging-endpoint-test", region: str | None = None
) -> boto3.Session:
    """A session with this process's credentials, or with ``role_arn``'s when one is given (the
    deploy builds' way into a stage's own account: the staging test, the verify step)."""
    if not role_arn:
        return boto3.Session(region_name=region)
    credentials = boto3.client("sts", region_name=region).assume_role(
        RoleArn=role_arn, RoleSessionName=session_name
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


def main(argv: list[str] | None = None) -> int:
    from .settings import load_settings

    parser = argparse.ArgumentParser(description="Check a stage's endpoint serves its stack.")
    parser.add_argument("--verify", required=True, metavar="STAGE", choices=("staging", "prod"))
    parser.add_argument(
        "--role-arn",
        default=os.environ.get("VERIFY_ROLE_ARN"),
        help="role to read the stage as (default: $VERIFY_ROLE_ARN; none: as yourself)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    stack = stage_stack(settings.project_name, args.verify)
    try:
        session = session_as(args.role_arn, "verify-stage", settings.region)
    except ClientError as error:
        print(
            f"error: cannot assume {args.role_arn} to read the {args.verify} stage: "
            f"{error.response['Error']['Message']}",
            file=sys.stderr,
        )
        return 1
    failure = verify_stage(session.client("cloudformation"), session.client("sagemaker"), stack)
    if failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(f"{stack}: the endpoint serves the stack's configuration")
    return 0


if __name__ == "__main__":
    sys.exit(main())
