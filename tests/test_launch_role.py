"""Which role Service Catalog may launch the product with.

A SageMaker project's stacks are created with the product's launch role. AWS's own,
``AmazonSageMakerServiceCatalogProductsLaunchRole``, carries one managed policy (vendored in
tests/aws_policies, SOURCES.md names it). Every resource the product and its nested stacks
(foundation, build, deploy) create needs its CloudFormation handlers' permissions (AWS's resource
schemas, as tests/test_permissions.py reads them); tests/iam_policy.py decides each against the
managed policy, and against the launch role ``service_catalog/launch-role.yaml`` creates, which
the publisher names by default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.data import AdditionalSpecs
from cfnlint.helpers import load_resource
from cookiecutter.main import cookiecutter

from service_catalog.publish import Options

from . import iam_model as iam
from .conftest import MATRIX, TEMPLATE, load_yaml, matrix_id
from .test_notifications import STANDARDS
from .test_permissions import rendered_stacks

MANAGED = json.loads(
    (
        Path(__file__).parent
        / "aws_policies"
        / "AmazonSageMakerAdmin-ServiceCatalogProductsServiceRolePolicy.json"
    ).read_text()
)["PolicyVersion"]["Document"]
LAUNCH_ROLE_TEMPLATE = TEMPLATE / "service_catalog" / "launch-role.yaml"
PRODUCT = TEMPLATE / "service_catalog" / "product.yaml"
# The stacks Service Catalog creates with the launch role (the endpoint stacks are the deploy
# pipeline's CloudFormation role's; target-account.yaml is an administrator's).
LAUNCHED = ("foundation.yaml", "build-pipeline.yaml", "deploy-pipeline.yaml")
# The whole option matrix renders (TEMPLATE_MATRIX_ROWS may shorten it).
WHOLE_MATRIX = not os.environ.get("TEMPLATE_MATRIX_ROWS")
# An IAM role's inline policies together (IAM quotas, "Role policy size").
ROLE_POLICY_CHARACTERS = 10_240


def iam_actions() -> dict[str, set[str]]:
    """Every IAM action by service, lower case (cfn-lint's copy of the Service Authorization
    Reference; some schema handler lists name operations that are no IAM action, such as
    ``s3:DeleteBucketCors``, authorized by ``s3:PutBucketCORS``)."""
    services: dict[str, Any] = load_resource(AdditionalSpecs, "Policies.json")
    return {name: {a.lower() for a in data.get("Actions", {})} for name, data in services.items()}


def handler_actions(
    kind: str, handlers: tuple[str, ...] = ("create", "update", "delete")
) -> set[str]:
    """The IAM actions of a resource type's CloudFormation handlers."""
    known = iam_actions()
    return {
        action
        for name, actions in iam.handler_permissions(kind).items()
        if name in handlers
        for action in actions
        if action.split(":", 1)[1].lower() in known.get(action.split(":", 1)[0].lower(), set())
    }


def launched_resources(project: Path) -> list[tuple[iam.Stack, str, str]]:
    """(stack, logical id, type) of every resource of the launched stacks, whatever its
    condition: a launch parameter (CreateMlflowTrackingServer, SageMakerJobLogGroups) may turn
    it on."""
    stacks = dict(rendered_stacks(project))
    return [
        (stacks[name], logical, resource["Type"])
        for name in LAUNCHED
        if name in stacks
        for logical, resource in stacks[name].resources.items()
    ]


def product_types() -> set[str]:
    """The types product.yaml creates itself (the repository, the nested stacks)."""
    return {resource["Type"] for resource in load_yaml(PRODUCT)["Resources"].values()}


def _name(stack: iam.Stack, logical: str, key: str) -> str | None:
    name = stack.resolve(stack.resources[logical].get("Properties", {})).get(key)
    return name if isinstance(name, str) else None


def resource_arn(stack: iam.Stack, logical: str, kind: str) -> str | None:
    """The resource's ARN where its name is known, else None."""
    try:
        return stack.arn(logical)
    except KeyError:
        pass
    where = f"{iam.REGION}:{stack.account}"
    named = {
        "AWS::Events::Rule": ("Name", f"arn:aws:events:{where}:rule/{{}}"),
        "AWS::CodeBuild::Project": ("Name", f"arn:aws:codebuild:{where}:project/{{}}"),
        "AWS::S3::Bucket": ("BucketName", "arn:aws:s3:::{}"),
        "AWS::SNS::Topic": ("TopicName", f"arn:aws:sns:{where}:{{}}"),
        "AWS::IAM::Role": ("RoleName", f"arn:aws:iam::{stack.account}:role/{{}}"),
        "AWS::Logs::LogGroup": ("LogGroupName", f"arn:aws:logs:{where}:log-group:{{}}"),
    }
    if kind in named:
        key, pattern = named[kind]
        name = _name(stack, logical, key)
        return pattern.format(name) if name else None
    return None


def refused(documents: list[dict[str, Any]], stack: iam.Stack, logical: str, kind: str) -> set[str]:
    """The create-handler actions of the resource the policies do not allow: on no resource at
    all, or (an action of the resource's own service, its ARN known) not on the resource."""
    arn = resource_arn(stack, logical, kind)
    service = arn.split(":")[2] if arn else None
    denied = set()
    for action in handler_actions(kind, ("create",)):
        if not iam.allows_on_some_resource(documents, action) or (
            arn
            and action.split(":")[0] == service
            and iam.action_can_target(action, arn)
            and not iam.allows(documents, action, arn)
        ):
            denied.add(action)
    return denied


@pytest.fixture(scope="module")
def with_notifications(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default answers under a notifications and budget standard (the Slack channel too)."""
    root = tmp_path_factory.mktemp("launch")
    path = root / "org-standards.yaml"
    path.write_text(yaml.safe_dump(STANDARDS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("MLOPS_ORG_STANDARDS", str(path))
        return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(root / "r")))


# What the brief of this check named, each by a type the product creates: the managed role must
# be shown unable to create each (or the role the publisher names would not be needed).
NAMED = (
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::Budgets::Budget",
    "AWS::Chatbot::SlackChannelConfiguration",
    "AWS::KMS::Key",
    "AWS::Events::Rule",
    "AWS::IAM::Role",
)


def test_the_managed_sagemaker_launch_role_cannot_launch_the_product(
    with_notifications: Path,
) -> None:
    """AmazonSageMakerAdmin-ServiceCatalogProductsServiceRolePolicy creates no topic, budget,
    Chatbot configuration, key or role, and only `sagemaker-*` rules, pipelines and buckets:
    the product's resources (named after the project) are refused."""
    refusals: dict[str, set[str]] = {}
    for stack, logical, kind in launched_resources(with_notifications):
        denied = refused([MANAGED], stack, logical, kind)
        if denied:
            refusals.setdefault(kind, set()).update(denied)
    assert set(NAMED) <= set(refusals), sorted(set(NAMED) - set(refusals))
    # Each refusal named: a topic needs sns:CreateTopic, a budget budgets:ModifyBudget, ...
    for kind, action in (
        ("AWS::SNS::Topic", "sns:CreateTopic"),
        ("AWS::Budgets::Budget", "budgets:ModifyBudget"),
        ("AWS::Chatbot::SlackChannelConfiguration", "chatbot:CreateSlackChannelConfiguration"),
        ("AWS::KMS::Key", "kms:CreateKey"),
        ("AWS::IAM::Role", "iam:CreateRole"),
        ("AWS::Events::Rule", "events:PutRule"),  # allowed on rule/sagemaker-* only
        ("AWS::CodePipeline::Pipeline", "codepipeline:CreatePipeline"),  # sagemaker-* only
    ):
        assert action in refusals.get(kind, set()), (kind, sorted(refusals.get(kind, set())))


def test_the_check_admits_a_sagemaker_named_rule() -> None:
    """The evaluation is not a blanket refusal: the managed policy does allow a rule named
    sagemaker-*, as AWS's own project templates name theirs."""
    arn = f"arn:aws:events:{iam.REGION}:{iam.ACCOUNT}:rule/sagemaker-tumour-model-approved"
    assert iam.allows([MANAGED], "events:PutRule", arn)
    assert not iam.allows([MANAGED], "events:PutRule", arn.replace("sagemaker-", ""))


def launch_role() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """launch-role.yaml's trust policy and its inline policy documents."""
    role = load_yaml(LAUNCH_ROLE_TEMPLATE)["Resources"]["LaunchRole"]["Properties"]
    return role["AssumeRolePolicyDocument"], [p["PolicyDocument"] for p in role["Policies"]]


def granted_actions(documents: list[dict[str, Any]]) -> set[str]:
    return {
        action.lower()
        for document in documents
        for statement in iam.statements(document)
        for action in iam._as_list(statement["Action"])
    }


def test_the_publishers_launch_role_grants_exactly_what_the_product_creates(
    baked_matrix: dict[str, Path], with_notifications: Path
) -> None:
    """Every handler permission of every resource the product and its nested stacks create, in
    every rendered option (a launch parameter's conditional resources included), is allowed by
    the launch role launch-role.yaml creates, and it allows no other action."""
    _, documents = launch_role()
    projects = [baked_matrix[matrix_id(row)] for row in MATRIX] + [with_notifications]
    kinds = product_types() | {
        kind for project in projects for _, _, kind in launched_resources(project)
    }
    required = {action for kind in kinds for action in handler_actions(kind)}
    missing = sorted(a for a in required if not iam.allows_on_some_resource(documents, a))
    assert missing == [], missing
    if WHOLE_MATRIX:
        extra = granted_actions(documents) - {a.lower() for a in required}
        assert extra == set(), sorted(extra)
    size = len(json.dumps(documents, separators=(",", ":")))
    assert size <= ROLE_POLICY_CHARACTERS, size


def test_only_service_catalog_of_this_account_assumes_the_launch_role() -> None:
    trust, _ = launch_role()
    trust = iam.Stack({"Resources": {}}, "launch-role", {}).resolve(trust)
    service = {"aws:PrincipalArn": "servicecatalog.amazonaws.com"}
    here = service | {"aws:SourceAccount": iam.ACCOUNT}
    assert iam.trust_admits(trust, "sts:AssumeRole", here)
    assert not iam.trust_admits(
        trust, "sts:AssumeRole", service | {"aws:SourceAccount": "999999999999"}
    )
    for caller in (
        f"arn:aws:iam::{iam.ACCOUNT}:role/StudioExecutionRole",
        "cloudformation.amazonaws.com",
    ):
        assert not iam.trust_admits(trust, "sts:AssumeRole", here | {"aws:PrincipalArn": caller})


def test_the_publisher_and_the_portfolio_name_that_launch_role() -> None:
    parameters = load_yaml(LAUNCH_ROLE_TEMPLATE)["Parameters"]
    portfolio = load_yaml(TEMPLATE / "service_catalog" / "portfolio.yaml")["Parameters"]
    assert Options.launch_role == parameters["LaunchRoleName"]["Default"]
    assert portfolio["LaunchRoleName"]["Default"] == Options.launch_role
