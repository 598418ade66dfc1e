"""Create or update one of the project's own stacks (foundation, build, deploy, and with separate
staging and prod accounts target-account in each of them) by hand.

``make stack STACK=foundation`` (extra parameters as ``PARAMS="Name=value ..."``). The stack gets
the project's stack-level tags (``settings.stack_tags``), which CloudFormation propagates to its
resources; the endpoint stacks get the same tags from the deploy pipeline's stage configurations,
and a SageMaker project's nested stacks from the Service Catalog product.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, WaiterError

from . import subscribers
from .deploy_config import load_template
from .settings import Network, Settings, load_settings, stack_tags

INFRASTRUCTURE = Path(__file__).resolve().parent.parent / "infrastructure"
TEMPLATES = {
    "foundation": "foundation.yaml",
    "build": "build-pipeline.yaml",
    "deploy": "deploy-pipeline.yaml",
    # Deployed in the staging and prod accounts when the organisation standards name them.
    "target-account": "target-account.yaml",
}
# Not a file: the project's own notification subscribers (pipelines/subscribers.py), written from
# the deploy settings when the stack is deployed, in any account the project has a topic in.
SUBSCRIBERS = "subscribers"
# The build account's stacks that take org-standards.json's accounts as parameters.
ACCOUNT_PARAMETERS = {"staging": "StagingAccountId", "prod": "ProdAccountId"}
ACCOUNT_STACKS = ("foundation", "deploy")
NO_CHANGE = "No updates are to be performed."
# CloudFormation's quota for a template sent in the request (TemplateBody), in bytes.
TEMPLATE_BODY_BYTES = 51_200


class StackError(Exception):
    """A stack that could not be deployed; the message is one line."""


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise StackError(f"parameter {pair!r} is not Name=value")
        parameters[name] = value
    return parameters


def standards_parameters(
    settings: Settings, stack: str, stage: str | None = None
) -> dict[str, str]:
    """What org-standards.json decides for a stack: the stage accounts of the foundation and
    deploy stacks, the organisation's MLflow tracking server the foundation hands the build
    (its export is final: without the parameter the pipeline would track nothing), and the
    network the account's SageMaker role may use: the build account's (``vpc``) for the
    foundation's execution role and, in one account, the deploy stack's role creating the stage
    models; a target account's own (``stage_vpc`` of its ``StageName``) for its model role; and
    the isolation and KMS standards the roles creating jobs and models enforce."""
    standards = settings.standards
    values = {
        ACCOUNT_PARAMETERS[name]: account
        for name, account in standards.accounts.items()
        if stack in ACCOUNT_STACKS
    }
    if stack == "foundation" and standards.mlflow_tracking_server_arn:
        values["MlflowTrackingServerArn"] = standards.mlflow_tracking_server_arn
    build_network = Network(standards.subnets, standards.security_groups)
    network = {
        "foundation": build_network,
        # in one account the deploy stack's role creates the stage models, in the same network
        "deploy": Network() if standards.accounts else build_network,
        "target-account": standards.stage_networks.get(stage or "", Network()),
    }.get(stack, Network())
    if network.subnets:
        values["SubnetIds"] = ",".join(network.subnets)
        values["SecurityGroupIds"] = ",".join(network.security_groups)
    # The isolation and KMS standards the stacks' roles enforce (infrastructure: the
    # standards_iam statements): the roles creating jobs and models deny requests that break them.
    if standards.network_isolation and stack in ("foundation", "deploy", "target-account"):
        values["NetworkIsolation"] = "true"
    if standards.kms_key_arn and stack in ("foundation", "target-account"):
        values["OrganisationKmsKeyArn"] = standards.kms_key_arn
    return values


def template_body(template: Path) -> str:
    """``template`` as CreateStack's TemplateBody: compact JSON, which CloudFormation accepts as it
    does YAML. The YAML file keeps its comments for the reviewer; sent as written, comments and
    indentation would count against the body quota (the target-account stack would not fit)."""
    body = json.dumps(load_template(template), separators=(",", ":"))
    if len(body.encode()) > TEMPLATE_BODY_BYTES:
        raise StackError(
            f"{template.name} is {len(body.encode())} bytes as compact JSON, over CloudFormation's "
            f"{TEMPLATE_BODY_BYTES}-byte TemplateBody quota: split the stack or deploy it from S3"
        )
    return body


def stack_request(settings: Settings, stack: str, parameters: dict[str, str]) -> dict[str, Any]:
    """The CreateStack/UpdateStack request: template, parameters, capabilities, stack tags."""
    if stack == SUBSCRIBERS:
        return subscribers_request(settings)
    if stack not in TEMPLATES or not (INFRASTRUCTURE / TEMPLATES[stack]).exists():
        known = [name for name, file in TEMPLATES.items() if (INFRASTRUCTURE / file).exists()]
        raise StackError(f"unknown stack {stack!r}; one of {', '.join([*known, SUBSCRIBERS])}")
    values = (
        {
            "SageMakerProjectName": settings.project_name,
            "SageMakerProjectId": settings.project_id,
        }
        | standards_parameters(settings, stack, parameters.get("StageName"))
        | parameters
    )
    return {
        "StackName": f"{settings.project_name}-{stack}",
        "TemplateBody": template_body(INFRASTRUCTURE / TEMPLATES[stack]),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "Tags": [
            {"Key": k, "Value": v}
            for k, v in sorted(stack_tags(settings, values.get("StageName")).items())
        ],
    }


def subscribers_request(settings: Settings) -> dict[str, Any]:
    """The subscribers stack's request; a bad subscriber setting is a one-line StackError."""
    try:
        body = subscribers.template(
            subscribers.project_subscribers(), subscribers.organisation_subscribers()
        )
    except subscribers.SubscriberError as error:
        raise StackError(str(error)) from None
    return {
        "StackName": f"{settings.project_name}-{SUBSCRIBERS}",
        "TemplateBody": json.dumps(body, indent=1),
        "Parameters": [
            {"ParameterKey": "SageMakerProjectName", "ParameterValue": settings.project_name}
        ],
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(stack_tags(settings).items())],
    }


def _exists(cloudformation: Any, name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return False
        raise
    return any(stack["StackStatus"] != "REVIEW_IN_PROGRESS" for stack in stacks)


def deploy(cloudformation: Any, request: dict[str, Any]) -> str:
    """Create the stack, or update it when it exists; wait; return a one-line outcome."""
    name = request["StackName"]
    try:
        if not _exists(cloudformation, name):
            cloudformation.create_stack(**request)
            cloudformation.get_waiter("stack_create_complete").wait(StackName=name)
            return f"created {name}"
        try:
            cloudformation.update_stack(**request)
        except ClientError as error:
            if NO_CHANGE in str(error):
                return f"{name} is up to date"
            raise
        cloudformation.get_waiter("stack_update_complete").wait(StackName=name)
        return f"updated {name}"
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Error")
        message = error.response.get("Error", {}).get("Message", "")
        operation = error.operation_name
        raise StackError(f"cloudformation {operation} {name}: {code}: {message}") from None
    except WaiterError as error:
        status = error.last_response.get("Stacks", [{}])[0].get("StackStatus", "unknown")
        raise StackError(f"{name} did not complete: {status}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help=", ".join(TEMPLATES))
    parser.add_argument("parameters", nargs="*", help="Name=value template parameters")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        request = stack_request(settings, args.stack, parse_parameters(args.parameters))
        print(deploy(boto3.client("cloudformation", region_name=settings.region), request))
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
