"""Staging and prod in accounts of their own: the organisation standard ``accounts``.

Every check resolves the rendered templates as the accounts deploy them (the build account's
foundation and deploy stacks, each target account's ``target-account.yaml`` stack and endpoint
stack) and asks what the policies admit, with the IAM model of tests/iam_model.py, the
CloudFormation resource schemas, parliament and an EventBridge pattern matcher (moto's; its
TestEventPattern API is not implemented).
"""

from __future__ import annotations

import contextlib
import filecmp
import functools
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter
from moto.events.models import EventPattern

from . import aws_calls
from . import iam_model as iam
from .conftest import TEMPLATE, load_yaml, stage_template
from .iam_policy import Decision, Request, decide
from .test_permissions import (
    DEPLOY_MODES,
    STACK_CALLS,
    TO_CLOUDFORMATION,
    excess_grants,
    missing_permissions,
    parliament_findings,
)

BUILD = iam.ACCOUNT
ACCOUNTS = {"staging": "111111111111", "prod": "222222222222"}
# The vpc standard: the build account's network, and each target account's own (stage_vpc).
BUILD_NETWORK = {"subnets": ["subnet-0a1b", "subnet-0c1d"], "security_groups": ["sg-0e1f"]}
STAGE_VPC = {
    "staging": {"subnets": ["subnet-1a1b", "subnet-1c1d"], "security_groups": ["sg-1e1f"]},
    "prod": {"subnets": ["subnet-2a2b", "subnet-2c2d"], "security_groups": ["sg-2e2f", "sg-2a2b"]},
}
STANDARDS = {"accounts": ACCOUNTS, "vpc": BUILD_NETWORK, "stage_vpc": STAGE_VPC}
PROJECT = "tumour"  # the SageMakerProjectName the stacks are resolved with


def _render(output: Path, standards: dict[str, Any] | None, home: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))  # cookiecutter's replay files stay out of ~
        if standards is None:
            patch.delenv("MLOPS_ORG_STANDARDS", raising=False)
        else:
            path = output.parent / f"{output.name}-standards.yaml"
            path.write_text(yaml.safe_dump(standards))
            patch.setenv("MLOPS_ORG_STANDARDS", str(path))
        return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output)))


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default answers rendered without standards and with separate accounts."""
    root = tmp_path_factory.mktemp("accounts")
    home = tmp_path_factory.mktemp("home")
    return {
        "single": _render(root / "single", None, home),
        "separate": _render(root / "separate", STANDARDS, home),
    }


def _files(project: Path) -> set[str]:
    return {
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts
    }


def test_without_the_standard_the_render_is_byte_identical(renders: dict[str, Path]) -> None:
    """Separate accounts change only the project's copy of the standards.

    The account ids reach the stacks as parameters (StagingAccountId, ProdAccountId, from
    org-standards.json), so a single-account project carries the same templates, in which they
    default to empty and nothing crosses an account (the tests below), and can move to separate
    accounts later without a re-render.
    """
    single, separate = renders["single"], renders["separate"]
    assert _files(single) == _files(separate)
    _, different, errors = filecmp.cmpfiles(single, separate, sorted(_files(single)), shallow=False)
    assert (different, errors) == (["org-standards.json"], [])
    assert json.loads((single / "org-standards.json").read_text()) == {}
    assert json.loads((separate / "org-standards.json").read_text()) == STANDARDS


# --- the stacks as each account deploys them ----------------------------------------------------


def _infrastructure(project: Path, name: str) -> dict[str, Any]:
    return dict(_parsed(project / "infrastructure" / f"{name}.yaml"))


@functools.cache
def _parsed(path: Path) -> dict[str, Any]:
    """Each rendered template parsed once (the stacks only read it; parsing is the slow part)."""
    return dict(load_yaml(path))


def build_stacks(
    project: Path, separate: bool, network: bool = True, standards: dict[str, str] | None = None
) -> dict[str, iam.Stack]:
    """The build account's stacks (with ``network``: in the standards' vpc, which the
    foundation's execution role may use and, in one account, the deploy stack's role creates the
    stage models in; ``standards``: further parameters the standards set,
    e.g. NetworkIsolation)."""
    accounts = (
        {"StagingAccountId": ACCOUNTS["staging"], "ProdAccountId": ACCOUNTS["prod"]}
        if separate
        else {}
    )
    subnets = (
        {
            "SubnetIds": BUILD_NETWORK["subnets"],
            "SecurityGroupIds": BUILD_NETWORK["security_groups"],
        }
        if network
        else {}
    )
    given = standards or {}
    foundation = iam.Stack(
        _infrastructure(project, "foundation"),
        f"{PROJECT}-foundation",
        accounts | subnets | given,
    )
    exports = foundation.outputs()
    # In one account the deploy stack's role creates the stage models, in the standards' vpc
    # (pipelines/stacks.py standards_parameters).
    deploy = iam.Stack(
        _infrastructure(project, "deploy-pipeline"),
        f"{PROJECT}-deploy",
        accounts
        | ({} if separate else subnets)
        | {k: v for k, v in given.items() if k == "NetworkIsolation"},
        exports,
    )
    return {"foundation": foundation, "deploy": deploy}


def target_stacks(
    project: Path,
    stage: str,
    deploy_mode: str = "replace",
    endpoint_stage: str | None = None,
    network: bool = True,
    standards: dict[str, str] | None = None,
) -> dict[str, iam.Stack]:
    """``target-account.yaml`` and the stage's endpoint stack, in the stage's account (with
    ``endpoint_stage``: the endpoint stack of that stage, resolved in this stage's account), in
    the account's own network (``stage_vpc``; ``network=False``: the standards name no vpc),
    with ``standards``' further parameters on the target stack."""
    account = ACCOUNTS[stage]
    subnets = (
        {
            "SubnetIds": STAGE_VPC[stage]["subnets"],
            "SecurityGroupIds": STAGE_VPC[stage]["security_groups"],
        }
        if network
        else {}
    )
    foundation = build_stacks(project, separate=True)["foundation"]
    exports = foundation.outputs()
    target = iam.Stack(
        _infrastructure(project, "target-account"),
        f"{PROJECT}-target",
        {
            "StageName": stage,
            "BuildAccountId": BUILD,
            "ArtifactBucketName": exports[f"{PROJECT}-artifact-bucket"],
            "BuildKmsKeyArn": exports[f"{PROJECT}-kms-key-arn"],
        }
        | subnets
        | (standards or {}),
        account=account,
    )
    outputs = {key: target.resolve(o["Value"]) for key, o in target.template["Outputs"].items()}
    endpoint = iam.Stack(
        stage_template(project),  # as the deploy build writes it
        f"{PROJECT}-endpoint-{endpoint_stage or stage}",
        {
            "StageName": endpoint_stage or stage,
            "BuildAccountId": BUILD,
            "ModelPackageArn": f"arn:aws:sagemaker:{iam.REGION}:{BUILD}:model-package/{PROJECT}/1",
            "ModelExecutionRoleArn": outputs["ModelExecutionRoleArn"],
            "KmsKeyArn": outputs["KmsKeyAliasArn"],
            "DeployMode": deploy_mode,
            # batch: the definition the deploy build uploaded to the build account's bucket
            "PipelineDefinitionBucket": exports[f"{PROJECT}-artifact-bucket"],
        }
        | subnets,
        account=account,
        bucket_keys=iam.encrypted_buckets(foundation),
    )
    return {"target": target, "endpoint": endpoint}


def _documents(stacks: dict[str, iam.Stack]) -> Iterator[iam.PolicyDocument]:
    for label, stack in stacks.items():
        yield from iam.policy_documents(stack, label)


def _principal_accounts(document: dict[str, Any]) -> set[str]:
    """Accounts the AWS principals of a policy name (a root, a role, or a bare id)."""
    found: set[str] = set()
    for statement in iam.statements(document):
        principal = statement.get("Principal", {})
        if not isinstance(principal, dict):
            continue
        for value in iam._as_list(principal.get("AWS", [])):
            match = re.fullmatch(r"(?:arn:aws:iam::)?(\d{12})(?::.*)?", str(value))
            assert match, f"unrecognised principal {value}"
            found.add(match.group(1))
    return found


def _accounts_named(document: dict[str, Any]) -> set[str]:
    return set(re.findall(r"(?<![0-9])\d{12}(?![0-9])", json.dumps(document)))


def test_a_single_account_project_grants_nothing_to_another_account(
    renders: dict[str, Path],
) -> None:
    for project in renders.values():  # the same templates, with the accounts left empty
        stacks = build_stacks(project, separate=False)
        endpoint = _infrastructure(project, "endpoint")
        for stage in ACCOUNTS:
            stacks[stage] = iam.Stack(endpoint, f"{PROJECT}-endpoint-{stage}", {"StageName": stage})
        for document in _documents(stacks):
            assert _accounts_named(document.document) <= {BUILD}, document.where
        active = {kind["Type"] for stack in stacks.values() for _, kind in stack.active()}
        assert "AWS::Events::EventBusPolicy" not in active


def test_every_cross_account_grant_names_only_the_configured_accounts(
    renders: dict[str, Path],
) -> None:
    project = renders["separate"]
    build = build_stacks(project, separate=True)
    granted: dict[str, set[str]] = {}
    for document in _documents(build):
        accounts = _principal_accounts(document.document)
        assert accounts <= {BUILD, *ACCOUNTS.values()}, document.where
        if accounts - {BUILD}:
            granted[document.where] = accounts - {BUILD}
    # key, bucket and package group: both stages; the event bus: prod only, whose alarms retrain
    assert granted == {
        "foundation:ProjectKey": set(ACCOUNTS.values()),
        "foundation:ArtifactBucketPolicy": set(ACCOUNTS.values()),
        "foundation:ModelPackageGroup": set(ACCOUNTS.values()),
        "deploy:ProdAlarmsReachThisAccount": {ACCOUNTS["prod"]},
    }
    for stage, account in ACCOUNTS.items():
        for document in _documents(target_stacks(project, stage)):
            # a target account trusts the build account, and names no other target account
            assert _principal_accounts(document.document) <= {BUILD, account}, document.where
            assert _accounts_named(document.document) <= {BUILD, account}, document.where


@pytest.fixture()
def rendered_deploy_config(renders: dict[str, Path]) -> Iterator[Any]:
    """The separate-accounts project's ``pipelines.deploy_config``, imported from the render."""
    sys.path.insert(0, str(renders["separate"]))
    try:
        yield importlib.import_module("pipelines.deploy_config")
    finally:
        sys.path.remove(str(renders["separate"]))
        for name in [m for m in sys.modules if m == "pipelines" or m.startswith("pipelines.")]:
            del sys.modules[name]


@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_the_deploy_build_names_what_the_target_account_stack_creates(
    renders: dict[str, Path], rendered_deploy_config: Any, stage: str
) -> None:
    """The stage configuration's role, key and bucket are the target stack's, in that account.

    The deploy build cannot read the target account's stack outputs, so it derives the names
    from target-account.yaml; here they are compared with the stack as CloudFormation resolves it.
    """
    settings = importlib.import_module("pipelines.settings").load_settings(
        {"SAGEMAKER_PROJECT_NAME": PROJECT, "AWS_REGION": iam.REGION}
    )
    named = rendered_deploy_config.target_account(stage, ACCOUNTS[stage], settings)
    target = target_stacks(renders["separate"], stage)["target"]
    outputs = {key: target.resolve(o["Value"]) for key, o in target.template["Outputs"].items()}
    assert named.model_role_arn == outputs["ModelExecutionRoleArn"]
    assert named.key_alias_arn == outputs["KmsKeyAliasArn"]
    assert named.data_bucket == outputs["DataBucket"]


# --- each account can do what the flow needs, and no more is granted across accounts ----------


def _resource_policy_allows(
    documents: list[dict[str, Any]],
    account: str,
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
    caller: str | None = None,
) -> bool:
    """Whether a build-account resource's policies let a principal of ``account`` (the role
    ``caller``, when the policy names roles) perform ``action``: decided by tests/iam_policy.py
    for a role of that account whose own policies allow it, so that the resource policy's side
    alone decides (S3 and KMS calls as S3 makes them: over TLS, a key used through S3)."""
    caller = caller or f"arn:aws:iam::{account}:role/caller"
    anything = {"Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
    merged = {"Statement": [s for document in documents for s in iam.statements(document)]}
    keys = {"aws:ResourceAccount": BUILD, "aws:SecureTransport": "true"}
    if action.startswith("kms:"):
        keys["kms:ViaService"] = f"s3.{iam.REGION}.amazonaws.com"
    request = Request(caller, action, resource, keys | (context or {}))
    return decide(request, [anything], merged) is Decision.ALLOW


def _build_resources(build: dict[str, iam.Stack]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Build-account resources a target account reaches: ARN pattern -> (label, policies)."""
    foundation = build["foundation"]
    policies = {d.where: d.document for d in iam.policy_documents(foundation, "foundation")}
    bucket = foundation.resolve({"Fn::GetAtt": ["ArtifactBucket", "Arn"]})
    return {
        foundation.arn("ProjectKey"): ("key", [policies["foundation:ProjectKey"]]),
        f"{bucket}/*": ("bucket", [policies["foundation:ArtifactBucketPolicy"]]),
        # The bucket itself: the monitoring job lists its code prefix (a processing input).
        str(bucket): ("bucket", [policies["foundation:ArtifactBucketPolicy"]]),
        f"arn:aws:sagemaker:{iam.REGION}:{BUILD}:model-package/{PROJECT}/*": (
            "package group",
            [policies["foundation:ModelPackageGroup"]],
        ),
    }


def _uses_of_build_resources(
    target: iam.Stack, resources: dict[str, Any]
) -> set[tuple[str, str, str, str]]:
    """(action, build resource pattern, role, the role's own resource ARN) the target account's
    roles are allowed."""
    uses = set()
    for logical, resource in target.active():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for document in iam.role_documents(target, logical):
            for statement in iam.statements(document):
                for arn in map(str, iam._as_list(statement["Resource"])):
                    for pattern in resources:
                        if iam._glob(arn, pattern, case=True) or iam._glob(pattern, arn, case=True):
                            uses |= {
                                (action, pattern, logical, arn)
                                for action in iam._as_list(statement["Action"])
                                if iam.action_can_target(action, pattern.replace("*", "x"))
                            }
    return uses


@pytest.mark.parametrize("mode", ["realtime", "serverless", "batch"])
@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_target_accounts_are_granted_exactly_what_their_roles_use(
    mode_renders: dict[str, Path], stage: str, mode: str
) -> None:
    """Both sides of each cross-account grant agree: the build account's resource policies allow
    every build-account action a target role is given, and grant the account nothing else (in
    every inference mode: batch's stack role reads its pipeline definition from the bucket)."""
    project = mode_renders[mode]
    build = build_stacks(project, separate=True)
    resources = _build_resources(build)
    target = target_stacks(project, stage)["target"]
    uses = _uses_of_build_resources(target, resources)
    assert {label for _, pattern, _, _ in uses for label in [resources[pattern][0]]} == {
        "key",
        "bucket",
        "package group",
    }
    for action, pattern, role, granted in sorted(uses):
        label, policies = resources[pattern]
        # What the role touches: the narrower of its own grant and the build resource's pattern.
        narrower = granted if iam._glob(pattern, granted, case=True) else pattern
        concrete = narrower.replace("*", "model.tar.gz" if label == "bucket" else "1")
        caller = str(target.resolve({"Fn::GetAtt": [role, "Arn"]}))
        # The one listing a target role makes: the monitoring job's code prefix.
        listing = {"s3:prefix": f"{PROJECT}/code/1"} if action == "s3:ListBucket" else None
        assert _resource_policy_allows(
            policies, ACCOUNTS[stage], action, concrete, listing, caller=caller
        ), f"{role} may {action} on the {label}, whose policy does not grant it to {stage}"
    # One resource policy covers the bucket and its objects: an action is used if any role uses
    # it on either.
    used_actions = {(action.lower(), resources[pattern][0]) for action, pattern, _, _ in uses}
    for label, policies in resources.values():
        for document in policies:
            for statement in iam.statements(document):
                principal = statement.get("Principal", {})
                if not isinstance(principal, dict):
                    continue  # "*": the TLS-only Deny
                principals = iam._as_list(principal.get("AWS", []))
                if f"arn:aws:iam::{ACCOUNTS[stage]}:root" not in principals:
                    continue
                for action in iam._as_list(statement["Action"]):
                    assert (action.lower(), label) in used_actions, (
                        f"the {label} grants {action} to {stage}; no role there uses it"
                    )


@pytest.fixture(scope="module")
def mode_renders(
    renders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each inference mode rendered with separate accounts (their stack roles differ); serverless
    without the vpc standard, which it cannot meet (the generator refuses it)."""
    root = tmp_path_factory.mktemp("modes")
    home = tmp_path_factory.mktemp("home")
    rendered = {"realtime": renders["separate"]}
    for mode in ("serverless", "batch"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(home))
            path = root / f"{mode}-standards.yaml"
            standards = {"accounts": ACCOUNTS} if mode == "serverless" else STANDARDS
            path.write_text(yaml.safe_dump(standards))
            patch.setenv("MLOPS_ORG_STANDARDS", str(path))
            rendered[mode] = Path(
                cookiecutter(
                    str(TEMPLATE),
                    no_input=True,
                    extra_context={"inference_mode": mode},
                    output_dir=str(root / mode),
                )
            )
    return rendered


@pytest.mark.parametrize("mode", ["realtime", "serverless", "batch"])
@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_target_stack_role_grants_exactly_what_the_resource_schemas_require(
    mode_renders: dict[str, Path], stage: str, mode: str
) -> None:
    """tests/test_permissions.py's schema checks, both directions, for the stage stack in its own
    account, in each inference mode (and each deploy mode of realtime).

    The stack names the stage key by its alias (the build account cannot read the target's
    outputs); KMS authorizes a request that names an alias against the key it points to.
    """
    # serverless: the standards name no stage_vpc (serverless endpoints cannot meet one)
    network = mode != "serverless"
    target = target_stacks(mode_renders[mode], stage, network=network)["target"]
    alias = target.resolve(target.template["Outputs"]["KmsKeyAliasArn"]["Value"])
    key = target.arn("StageKey")
    role = iam.role_documents(target, "StackRole")
    by_key = [
        json.loads(json.dumps(document).replace(key, alias)) for document in role
    ]  # the role's key statements, read as KMS reads them for a request naming the alias
    own = [
        target_stacks(mode_renders[mode], stage, deploy, network=network)["endpoint"]
        for deploy in DEPLOY_MODES
    ]
    for stack in own:
        assert missing_permissions(stack, by_key) == []
    # target-account.yaml is one template for both accounts: its stack role is checked against
    # what the stage stacks of both stages need, resolved in this account (so staging's role
    # carries prod's monitoring grants: see docs/guide/inference-modes.md).
    other = next(name for name in ACCOUNTS if name != stage)
    both_stages = own + [
        target_stacks(mode_renders[mode], stage, deploy, endpoint_stage=other, network=network)[
            "endpoint"
        ]
        for deploy in DEPLOY_MODES
    ]
    assert excess_grants(both_stages, by_key) == []


def test_the_deploy_pipeline_deploys_each_stage_as_its_accounts_roles(
    renders: dict[str, Path],
) -> None:
    project = renders["separate"]
    deploy = build_stacks(project, separate=True)["deploy"]
    pipeline = deploy.resolve(deploy.resources["Pipeline"]["Properties"])
    pipeline_role = iam.role_documents(deploy, "PipelineRole")
    pipeline_role_arn = deploy.arn("PipelineRole")
    actions = {
        action["Configuration"]["StackName"]: action
        for stage in pipeline["Stages"]
        for action in stage["Actions"]
        if action["ActionTypeId"]["Provider"] == "CloudFormation"
    }
    assert set(actions) == {f"{PROJECT}-endpoint-{stage}" for stage in ACCOUNTS}
    for stage, account in ACCOUNTS.items():
        action = actions[f"{PROJECT}-endpoint-{stage}"]
        target = target_stacks(project, stage)["target"]
        assert action["RoleArn"] == target.arn("DeployActionRole")
        assert iam.allows(pipeline_role, "sts:AssumeRole", action["RoleArn"])
        trust = target.resolve(target.resources["DeployActionRole"]["Properties"])[
            "AssumeRolePolicyDocument"
        ]
        assert iam.trust_admits(trust, "sts:AssumeRole", {"aws:PrincipalArn": pipeline_role_arn})
        other = f"arn:aws:iam::{BUILD}:role/{PROJECT}-deploy-build"
        assert not iam.trust_admits(trust, "sts:AssumeRole", {"aws:PrincipalArn": other})
        action_role = iam.role_documents(target, "DeployActionRole")
        configuration = action["Configuration"]
        stack_arn = (
            f"arn:aws:cloudformation:{iam.REGION}:{account}:stack/"
            f"{configuration['StackName']}/0a1b2c3d"
        )
        for call in STACK_CALLS[configuration["ActionMode"]]:
            assert iam.allows(action_role, f"cloudformation:{call}", stack_arn), (stage, call)
        assert configuration["RoleArn"] == target.arn("StackRole")
        assert iam.allows(action_role, "iam:PassRole", configuration["RoleArn"], TO_CLOUDFORMATION)
        # the build account's own stack role is not created, nor passed
        assert "CloudFormationRole" not in dict(deploy.active())
        assert not iam.allows(
            pipeline_role, "cloudformation:CreateStack", stack_arn.replace(account, BUILD)
        )


def test_the_staging_test_runs_as_the_staging_accounts_test_role(renders: dict[str, Path]) -> None:
    project = renders["separate"]
    deploy = build_stacks(project, separate=True)["deploy"]
    environment = {
        variable["Name"]: variable["Value"]
        for variable in deploy.resolve(deploy.resources["StagingTestProject"]["Properties"])[
            "Environment"
        ]["EnvironmentVariables"]
    }
    target = target_stacks(project, "staging")["target"]
    assert environment["ENDPOINT_TEST_ROLE_ARN"] == target.arn("EndpointTestRole")
    assert (environment["STAGING_ACCOUNT_ID"], environment["PROD_ACCOUNT_ID"]) == (
        ACCOUNTS["staging"],
        ACCOUNTS["prod"],
    )
    assert_deploy_build_assumes(deploy, target, "EndpointTestRole")
    endpoint = (
        f"arn:aws:sagemaker:{iam.REGION}:{ACCOUNTS['staging']}:endpoint/"
        f"{environment['ENDPOINT_NAME'].replace('${SageMakerProjectName}', PROJECT)}"
    )
    test_role = iam.role_documents(target, "EndpointTestRole")
    assert iam.allows(test_role, "sagemaker:InvokeEndpoint", endpoint)
    # only staging has a test role; prod's endpoint is not invoked by the pipeline
    assert "EndpointTestRole" not in dict(target_stacks(project, "prod")["target"].active())


def _alarm_event(account: str, alarm_arn: str) -> dict[str, Any]:
    """A CloudWatch alarm state change as EventBridge delivers it (CloudWatch user guide)."""
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": "2026-11-24T01:00:00Z",
        "region": iam.REGION,
        "resources": [alarm_arn],
        "detail": {
            "alarmName": alarm_arn.rsplit(":", 1)[1],
            "state": {"value": "ALARM", "reason": "drift", "timestamp": "2026-11-24T01:00:00Z"},
            "previousState": {"value": "OK"},
        },
    }


@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_each_stage_is_verified_in_its_account_as_its_read_only_verify_role(
    renders: dict[str, Path], stage: str
) -> None:
    """After each stage deploy the verify build (the build account's deploy build role) reads the
    stage stack and endpoint in the stage's account as the role target-account.yaml creates
    there: the calls it makes are allowed there, on its own stage only, and nothing else."""
    project = renders["separate"]
    deploy = build_stacks(project, separate=True)["deploy"]
    pipeline = deploy.resolve(deploy.resources["Pipeline"]["Properties"])
    (verify,) = [
        action
        for pipeline_stage in pipeline["Stages"]
        for action in pipeline_stage["Actions"]
        if action["Name"] == f"Verify{stage.capitalize()}"
    ]
    environment = {
        variable["name"]: variable["value"]
        for variable in json.loads(verify["Configuration"]["EnvironmentVariables"])
    }
    target = target_stacks(project, stage)["target"]
    assert environment == {"STAGE": stage, "VERIFY_ROLE_ARN": target.arn("StageVerifyRole")}
    project_role = deploy.resolve(deploy.resources["VerifyStageProject"]["Properties"])
    assert project_role["ServiceRole"] == deploy.arn("DeployBuildRole")
    trust = assert_deploy_build_assumes(deploy, target, "StageVerifyRole")
    assert not iam.trust_admits(
        trust, "sts:AssumeRole", {"aws:PrincipalArn": deploy.arn("PipelineRole")}
    )
    verify_role = iam.role_documents(target, "StageVerifyRole")
    other = next(name for name in ACCOUNTS if name != stage)
    values = {"partition": "aws", "region": iam.REGION, "account": ACCOUNTS[stage]}
    values |= {"project": PROJECT}
    for call in aws_calls.VERIFY_STAGE_CALLS:
        action, arn, context = call.concrete(values | {"stage": stage})
        assert iam.allows(verify_role, action, arn, context), (action, arn)
        if "{stage}" in call.resource:  # the other stage's stack and endpoint: not this role's
            action, arn, context = call.concrete(values | {"stage": other})
            assert not iam.allows(verify_role, action, arn, context), (action, arn)
    endpoint = f"arn:aws:sagemaker:{iam.REGION}:{ACCOUNTS[stage]}:endpoint/{PROJECT}-{stage}"
    for write in (
        "sagemaker:InvokeEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DeleteEndpoint",
    ):
        assert not iam.allows(verify_role, write, endpoint)


# The prod alarms that start retraining, per inference mode (serverless: no monitoring, none).
RETRAINING_ALARMS = {
    "realtime": ("DriftedFeaturesAlarm", "QualityAlarm"),
    "batch": ("DriftedFeaturesAlarm",),
}


@pytest.mark.parametrize("mode", list(RETRAINING_ALARMS))
def test_a_prod_alarm_starts_the_build_accounts_pipeline(
    mode_renders: dict[str, Path], mode: str
) -> None:
    """Prod alarm -> prod rule -> build account default bus (policy) -> build rule -> pipeline."""
    project = mode_renders[mode]
    deploy = build_stacks(project, separate=True)["deploy"]
    prod_stacks = target_stacks(project, "prod")
    prod, prod_account = prod_stacks["endpoint"], prod_stacks["target"]

    def matches(rule: dict[str, Any], event: dict[str, Any]) -> bool:
        return bool(EventPattern.load(json.dumps(rule["EventPattern"])).matches_event(event))

    prod_rule = prod.resolve(prod.resources["RetrainOnAlarmRule"]["Properties"])
    build_rule = deploy.resolve(deploy.resources["RetrainOnProdAlarmRule"]["Properties"])
    bus = f"arn:aws:events:{iam.REGION}:{BUILD}:event-bus/default"
    bus_policy = next(
        d.document
        for d in iam.policy_documents(deploy, "deploy")
        if d.where == "deploy:ProdAlarmsReachThisAccount"
    )
    for alarm in RETRAINING_ALARMS[mode]:
        event = _alarm_event(ACCOUNTS["prod"], prod.arn(alarm))
        assert matches(prod_rule, event), alarm
        (forward,) = prod_rule["Targets"]
        assert forward["Arn"] == bus and "SageMakerPipelineParameters" not in forward
        # the rule runs as the role the target-account stack created (the stage stack creates none)
        assert forward["RoleArn"] == prod_account.arn("RetrainRole")
        retrain_role = iam.role_documents(prod_account, "RetrainRole")
        assert iam.allows(retrain_role, "events:PutEvents", bus)
        alarm_keys = {"events:source": event["source"], "events:detail-type": event["detail-type"]}
        assert _resource_policy_allows(
            [bus_policy], ACCOUNTS["prod"], "events:PutEvents", bus, alarm_keys
        )
        assert not _resource_policy_allows(
            [bus_policy], ACCOUNTS["prod"], "events:PutEvents", bus, {"events:source": "other"}
        )
        assert matches(build_rule, event), alarm
        # the same alarm name in the staging account (or anywhere else) starts nothing
        elsewhere = _alarm_event(
            ACCOUNTS["staging"], prod.arn(alarm).replace(ACCOUNTS["prod"], ACCOUNTS["staging"])
        )
        assert not matches(build_rule, elsewhere), alarm
    (start,) = build_rule["Targets"]
    pipeline = f"arn:aws:sagemaker:{iam.REGION}:{BUILD}:pipeline/{PROJECT}-pipeline"
    assert start["Arn"] == pipeline
    assert iam.allows(
        iam.role_documents(deploy, "RetrainOnProdAlarmRole"),
        "sagemaker:StartPipelineExecution",
        pipeline,
    )


def test_every_policy_of_both_layouts_passes_parliament(renders: dict[str, Path]) -> None:
    project = renders["separate"]
    stacks = [(f"{label}.yaml", stack) for label, stack in build_stacks(project, True).items()]
    for stage in ACCOUNTS:
        stacks += [
            (f"{label}.yaml[{stage}]", stack)
            for label, stack in target_stacks(project, stage).items()
        ]
    assert parliament_findings(stacks) == []


# --- the vpc standard in accounts of their own (stage_vpc) ---------------------------------------


@contextlib.contextmanager
def _rendered_pipelines(project: Path) -> Iterator[Any]:
    """A render's ``pipelines`` package (and its own package, from src/), imported from the
    render and forgotten afterwards."""
    folders = [str(project), str(project / "src")]
    packages = ("pipelines", project.name.replace("-", "_"))
    sys.path[:0] = folders
    try:
        yield importlib.import_module("pipelines")
    finally:
        for folder in folders:
            sys.path.remove(folder)
        for name in [m for m in sys.modules if m.split(".")[0] in packages]:
            del sys.modules[name]


@pytest.mark.parametrize("mode", ["realtime", "batch"])
@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_each_stage_runs_in_its_own_accounts_network(
    mode_renders: dict[str, Path], stage: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deploy build's parameters for the stage, on the stage stack resolved in its account:
    the CreateModel request CloudFormation makes (what the endpoint, or the batch transform,
    runs) passes botocore's ParamValidator with exactly that account's subnets and security
    groups; prod alone has the monitoring pipeline."""
    project = mode_renders[mode]
    with _rendered_pipelines(project):
        deploy_config = importlib.import_module("pipelines.deploy_config")
        settings_module = importlib.import_module("pipelines.settings")
        requests = importlib.import_module("pipelines.endpoint_requests")
        standards = settings_module.load_standards(project / "org-standards.json")
        settings = settings_module.load_settings(
            {"SAGEMAKER_PROJECT_NAME": PROJECT, "AWS_REGION": iam.REGION}, standards=standards
        )
        package = deploy_config.Package(
            arn=f"arn:aws:sagemaker:{iam.REGION}:{BUILD}:model-package/{PROJECT}/1",
            group=PROJECT,
            version=1,
            status="Approved",
            baseline=deploy_config.Baseline("s3://b/statistics.json", "s3://b/constraints.json"),
            model_data="s3://b/model.tar.gz",
        )
        # What upload_definitions returns once the definitions are uploaded.
        definitions = {"PipelineDefinitionBucket": "b", "MonitorPipelineDefinitionKey": "m.json"}
        if mode == "batch":
            definitions["PipelineDefinitionKey"] = "d.json"
        deployment = deploy_config.stage_deployment(stage) if mode == "realtime" else None
        config = deploy_config.stage_config(
            stage,
            settings,
            deploy_config.StagePlan(package, None, deployment),
            f"arn:aws:kms:{iam.REGION}:{BUILD}:key/{iam.KEY_ID}",
            definitions,
            deploy_config.target_account(stage, ACCOUNTS[stage], settings),
            BUILD,
        )
        parameters = config["Parameters"]
        monkeypatch.setitem(requests.PSEUDO, "AWS::AccountId", ACCOUNTS[stage])
        template = deploy_config.load_template()
        stack = requests.Resolver(template, parameters)
        expected = {
            "Subnets": STAGE_VPC[stage]["subnets"],
            "SecurityGroupIds": STAGE_VPC[stage]["security_groups"],
        }
        model = requests.validate("CreateModel", stack.properties("Model") | {"ModelName": "m"})
        assert model["VpcConfig"] == expected
        assert model["ExecutionRoleArn"].split(":")[4] == ACCOUNTS[stage]
        if mode == "realtime":  # the endpoint configuration serving that model
            requests.endpoint_requests(template, parameters)
        # The monitoring job's network is in its pipeline definition (pipelines/monitoring.py,
        # which needs the SageMaker SDK: the render's tests/test_deploy_realtime.py checks it).
        assert stack.active("MonitorPipeline") == (stage == "prod")


# The EC2 calls SageMaker makes as a model's (or transform or monitoring job's) execution role in
# a VPC: the SageMaker developer guide, "CreateModel API: execution role permissions" and "Give
# SageMaker AI hosted endpoints access to resources in your Amazon VPC".
SAGEMAKER_VPC_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
}


def _ec2_actions(documents: list[dict[str, Any]]) -> set[str]:
    return {
        action
        for document in documents
        for statement in iam.statements(document)
        for pattern in iam._as_list(statement["Action"])
        for action in iam.expand(pattern) or [pattern]
        if action.startswith("ec2:")
    }


def assert_uses_exactly_its_network(
    role: list[dict[str, Any]], account: str, own: dict[str, list[str]], others: list[Any]
) -> None:
    """The role (conditions evaluated) may make the calls SageMaker makes in ``own``, the
    network of ``account``, and in no other network (``others``, nor ``own``'s ids named in
    another account)."""
    assert _ec2_actions(role) == SAGEMAKER_VPC_ACTIONS

    def arn(kind: str, name: str, in_account: str = account) -> str:
        return f"arn:aws:ec2:{iam.REGION}:{in_account}:{kind}/{name}"

    def may(action: str, resource: str, **context: str) -> bool:
        keys = {key.replace("_", ":", 1): value for key, value in context.items()}
        return iam.allows_in_context(role, action, resource, keys)

    interface = arn("network-interface", "eni-0123456789abcdef0")
    elsewhere = "999999999999"
    for subnet in own["subnets"]:
        assert may("ec2:CreateNetworkInterface", arn("subnet", subnet), ec2_SubnetID=subnet)
        for action in SAGEMAKER_VPC_ACTIONS - {"ec2:CreateNetworkInterface"}:
            if not action.startswith("ec2:Describe"):
                assert may(action, interface, ec2_Subnet=arn("subnet", subnet)), action
        assert not may(
            "ec2:CreateNetworkInterface", arn("subnet", subnet, elsewhere), ec2_SubnetID=subnet
        )
    for group in own["security_groups"]:
        assert may(
            "ec2:CreateNetworkInterface", arn("security-group", group), ec2_SecurityGroupID=group
        )
    assert may("ec2:CreateNetworkInterface", interface)
    assert not may("ec2:CreateNetworkInterface", interface.replace(account, elsewhere))
    for network in others:
        for subnet in network["subnets"]:
            assert not may("ec2:CreateNetworkInterface", arn("subnet", subnet), ec2_SubnetID=subnet)
            for action in ("ec2:DeleteNetworkInterface", "ec2:CreateNetworkInterfacePermission"):
                assert not may(action, interface, ec2_Subnet=arn("subnet", subnet)), action
        for group in network["security_groups"]:
            assert not may(
                "ec2:CreateNetworkInterface",
                arn("security-group", group),
                ec2_SecurityGroupID=group,
            )
    for action in SAGEMAKER_VPC_ACTIONS:
        if action.startswith("ec2:Describe"):
            assert may(action, "*", ec2_Region=iam.REGION), action
            assert not may(action, "*", ec2_Region="eu-west-1"), action


@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_the_model_role_may_use_exactly_its_accounts_network(
    renders: dict[str, Path], stage: str
) -> None:
    """The target account's model role, resolved with its stage's network (what the model, the
    batch transform and the monitoring jobs run as there); none without a vpc standard."""
    project = renders["separate"]
    target = target_stacks(project, stage)["target"]
    others = [BUILD_NETWORK] + [network for name, network in STAGE_VPC.items() if name != stage]
    role = iam.role_documents(target, "ModelExecutionRole")
    assert_uses_exactly_its_network(role, ACCOUNTS[stage], STAGE_VPC[stage], others)
    unnamed = target_stacks(project, stage, network=False)["target"]
    assert _ec2_actions(iam.role_documents(unnamed, "ModelExecutionRole")) == set()


@pytest.mark.parametrize("layout", ["single", "separate"])
def test_the_build_execution_role_may_use_exactly_the_build_network(
    renders: dict[str, Path], layout: str
) -> None:
    """The foundation's execution role (the pipeline's jobs; in one account also the models and
    monitoring), resolved with the standards' vpc; none without it. One definition with the
    target accounts' model role: templates/vpc_access.j2."""
    foundation = build_stacks(renders[layout], layout == "separate")["foundation"]
    role = iam.role_documents(foundation, "SageMakerExecutionRole")
    assert_uses_exactly_its_network(role, BUILD, BUILD_NETWORK, list(STAGE_VPC.values()))
    unnamed = build_stacks(renders[layout], layout == "separate", network=False)["foundation"]
    assert _ec2_actions(iam.role_documents(unnamed, "SageMakerExecutionRole")) == set()


def assert_deploy_build_assumes(deploy: iam.Stack, target: iam.Stack, role: str) -> Any:
    """The deploy build role may assume ``role`` of the target account, whose trust admits it;
    return that trust policy."""
    build_role = iam.role_documents(deploy, "DeployBuildRole")
    assert iam.allows(build_role, "sts:AssumeRole", target.arn(role))
    trust = target.resolve(target.resources[role]["Properties"])["AssumeRolePolicyDocument"]
    assert iam.trust_admits(
        trust, "sts:AssumeRole", {"aws:PrincipalArn": deploy.arn("DeployBuildRole")}
    )
    return trust
