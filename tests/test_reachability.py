"""What each role of every distinct render can reach, not what each statement says.

parliament and the resource-schema checks (tests/test_permissions.py) judge statements one at a
time; these tests ask what a principal can do with all of its policies together:

* no principal can create or modify a role, a policy or any other IAM identity (the deploy
  pipeline's stack role once could, on roles its repository-written template named);
* no role the pipelines or builds run as can register or set a model package as Approved: only
  the foundation's ModelApproverRole, which people assume, approves;
* project A's roles are denied on project B's resources when B's name starts with A's
  (``churn`` and ``churn-v2``).

The roles are those of every matrix row (one account) and of each inference mode with staging
and prod in accounts of their own, resolved with sample parameters (tests/iam_model.py).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import iam_model as iam
from . import iam_policy as policy
from .conftest import MATRIX, matrix_id, stage_template
from .test_accounts import ACCOUNTS, build_stacks, mode_renders, renders, target_stacks
from .test_permissions import _stack_arns, rendered_stacks, request_context

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import parliament

__all__ = ["mode_renders", "renders"]  # the fixtures of tests/test_accounts.py, used here

# The IAM actions that create or change an identity, its policies or its trust (the IAM
# Service Authorization Reference's Write, Permissions management and Tagging levels), but for
# the two a role needs to use what exists:
ALLOWED_IAM_WRITES = {
    # handing an existing role to a service, each grant conditioned on iam:PassedToService
    "iam:PassRole",
    # SageMaker endpoint autoscaling's service-linked role: its trust and policy are AWS's own,
    # and the grant is conditioned on iam:AWSServiceName
    "iam:CreateServiceLinkedRole",
}


@functools.cache
def identity_writes() -> tuple[str, ...]:
    # parliament's data lists the iam prefix twice (IAM and IAM Access Analyzer's older page)
    return tuple(
        sorted(
            {
                f"iam:{p['privilege']}"
                for service in parliament.iam_definition
                if service["prefix"] == "iam"
                for p in service["privileges"]
                if p["access_level"] in ("Write", "Permissions management", "Tagging")
            }
            - ALLOWED_IAM_WRITES
        )
    )


def roles_of(stacks: list[tuple[str, iam.Stack]]) -> dict[str, list[dict[str, Any]]]:
    """Each role's identity policies, by "<stack>:<LogicalId>"."""
    roles: dict[str, list[dict[str, Any]]] = {}
    for label, stack in stacks:
        for logical, resource in stack.active():
            if resource["Type"] == "AWS::IAM::Role":
                roles[f"{label}:{logical}"] = iam.role_documents(stack, logical)
    return roles


def separate_account_stacks(project: Path) -> Iterator[tuple[str, iam.Stack]]:
    for name, stack in build_stacks(project, separate=True).items():
        yield f"{name}[separate]", stack
    for stage in ACCOUNTS:
        for name, stack in target_stacks(project, stage).items():
            yield f"{name}[{stage} account]", stack


# Sample ARNs of every IAM resource type a write could target, in every account involved.
def _identity_arns() -> list[str]:
    accounts = [iam.ACCOUNT, *ACCOUNTS.values()]
    names = [
        "role/tumour-endpoint-prod-RetrainRole-ABC",
        "role/tumour-sagemaker-execution",
        "role/tumour-retrain-on-alarm",
        "role/Admin",
        "policy/tumour-anything",
        "user/someone",
        "group/admins",
        "instance-profile/tumour",
        "oidc-provider/token.actions.githubusercontent.com",
    ]
    return ["*", *(f"arn:aws:iam::{a}:{n}" for a in accounts for n in names)]


def unconditional(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Allow statements with their conditions dropped: what a role could do whatever the
    request's condition keys (the question here is whether any request could)."""
    return [
        {
            "Version": "2012-10-17",
            "Statement": [
                {k: v for k, v in statement.items() if k != "Condition"}
                for statement in iam.statements(document)
                if statement.get("Effect") == "Allow"
            ],
        }
        for document in documents
    ]


def identity_write_grants(roles: dict[str, list[dict[str, Any]]]) -> list[str]:
    arns = _identity_arns()
    return [
        f"{role} may {action} on {arn}"
        for role, documents in roles.items()
        for action in identity_writes()
        for arn in arns
        if iam.allows(unconditional(documents), action, arn)
    ]


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_no_role_can_create_or_change_an_identity(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """No role of a one-account project, the stage stacks' deploying role included, can create,
    rewrite, re-trust or un-bound a role, or create or change a policy, user or group."""
    roles = roles_of(rendered_stacks(baked_matrix[matrix_id(extra)]))
    assert roles, "no roles found"
    assert identity_write_grants(roles) == []


@pytest.mark.parametrize("mode", ["realtime", "serverless", "batch"])
def test_no_role_of_separate_accounts_can_create_or_change_an_identity(
    mode_renders: dict[str, Path], mode: str
) -> None:
    roles = roles_of(list(separate_account_stacks(mode_renders[mode])))
    assert any("StackRole" in role for role in roles)
    assert identity_write_grants(roles) == []


# --- separation of duties: approval is a person's -----------------------------------------------

PACKAGES = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:model-package"
APPROVER = "foundation.yaml:ModelApproverRole"


def approval_grants(roles: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """Which roles may register a package as Approved, or set one to Approved."""
    approved = {"sagemaker:ModelApprovalStatus": "Approved"}
    calls = {
        "register Approved": [
            ("sagemaker:CreateModelPackage", f"{PACKAGES}/tumour/1"),
            ("sagemaker:CreateModelPackage", f"{PACKAGES}-group/tumour"),
        ],
        "approve": [("sagemaker:UpdateModelPackage", f"{PACKAGES}/tumour/1")],
    }
    return {
        what: {
            role
            for role, documents in roles.items()
            for action, arn in requests
            if iam.allows(documents, action, arn, approved)
        }
        for what, requests in calls.items()
    }


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_only_the_approver_role_approves_a_model(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """No role the pipelines, builds or stacks run as can register an Approved package or set a
    package to Approved (which starts the deploy); the execution role registers candidates."""
    roles = roles_of(rendered_stacks(baked_matrix[matrix_id(extra)]))
    assert approval_grants(roles) == {"register Approved": set(), "approve": {APPROVER}}
    execution = roles["foundation.yaml:SageMakerExecutionRole"]
    pending = {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    assert iam.allows(execution, "sagemaker:CreateModelPackage", f"{PACKAGES}/tumour/1", pending)
    # no status at all is no candidate either: the condition needs the key
    assert not iam.allows(execution, "sagemaker:CreateModelPackage", f"{PACKAGES}/tumour/1")
    # the approver cannot reset an approval to pending (only Approved or Rejected)
    assert not iam.allows(
        roles[APPROVER], "sagemaker:UpdateModelPackage", f"{PACKAGES}/tumour/1", pending
    )


# --- projects whose names share a prefix ----------------------------------------------------------

PROJECT_A = (
    "churn",
    {"SageMakerProjectId": "p-churnaaaaaaa", "ArtifactBucketName": "org-churn-ml"},
)
PROJECT_B = (
    "churn-v2",
    {"SageMakerProjectId": "p-churnbbbbbbb", "ArtifactBucketName": "org-churn-v2-ml"},
)
# The services a role could be passed to by the roles here.
PASSED_TO = (
    "sagemaker.amazonaws.com",
    "events.amazonaws.com",
    "scheduler.amazonaws.com",
    "cloudformation.amazonaws.com",
)


def _arns_of(stacks: list[tuple[str, iam.Stack]]) -> set[str]:
    return {arn for _, stack in stacks for arn in _stack_arns(stack)}


def _acting_actions(documents: list[dict[str, Any]]) -> set[str]:
    """The actions of a role's Allow statements that change something: not List/Read, and not
    Create* (creating a resource under a name that exists fails at the service)."""
    actions = set()
    for document in documents:
        for statement in iam.statements(document):
            if statement.get("Effect") != "Allow":
                continue
            for pattern in iam._as_list(statement.get("Action", [])):
                for action in iam.expand(pattern) or [pattern]:
                    privilege = iam._privilege(action)
                    level = privilege["access_level"] if privilege else "Write"
                    if level in ("List", "Read") or action.split(":")[1].startswith("Create"):
                        continue
                    actions.add(action)
    return actions


def cross_project_grants(project: Path) -> list[str]:
    name_a, parameters_a = PROJECT_A
    name_b, parameters_b = PROJECT_B
    stacks_a = rendered_stacks(project, name_a, parameters_a)
    stacks_b = rendered_stacks(project, name_b, parameters_b)
    # B's resources named by the project (buckets and keys are the project's own by identity,
    # not by name, and the samples give both projects the same key id: left out)
    theirs = {
        arn
        for arn in _arns_of(stacks_b) - _arns_of(stacks_a)
        if arn.split(":")[2] not in ("s3", "kms", "logs")
    }
    tagged_b = {"aws:ResourceTag/sagemaker:project-id": parameters_b["SageMakerProjectId"]}
    found = []
    for role, documents in roles_of(stacks_a).items():
        for action in sorted(_acting_actions(documents)):
            for arn in sorted(theirs):
                if not iam.action_can_target(action, arn):
                    continue
                contexts = (
                    [tagged_b | {"iam:PassedToService": s} for s in PASSED_TO]
                    if action == "iam:PassRole"
                    else [tagged_b]
                )
                caller = f"arn:aws:iam::{iam.ACCOUNT}:role/{role.split(':')[-1]}"
                for context in contexts:
                    request = policy.Request(caller, action, arn, context)
                    if policy.decide(request, documents) is policy.Decision.ALLOW:
                        found.append(f"{role} may {action} on {arn}")
                        break
    return found


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_a_project_cannot_act_on_a_project_whose_name_extends_its_own(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """Every role of project ``churn`` is denied every changing call on every resource of
    project ``churn-v2`` (its roles, stacks, endpoints, alarms, rules, schedules, pipelines,
    models, monitoring) in the same account."""
    assert cross_project_grants(baked_matrix[matrix_id(extra)]) == []


# --- what the target accounts read in the build account's bucket -------------------------------

ADMIN_OF_TARGET = [
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
]


def test_target_accounts_read_models_and_code_not_data(renders: dict[str, Path]) -> None:
    """With separate accounts the build account's artifact bucket lets the stages' model roles
    read the approved model, its baseline and the code bundles, and nothing else there: not
    the training data, the prepared splits, the DVC store or the MLflow store, whatever the
    target account's own policies say. Only the deploy-action roles read the pipeline's
    artifacts (whose prefix is the pipeline name cut to 20 characters)."""
    project = renders["separate"]
    build = build_stacks(project, separate=True)
    foundation = build["foundation"]
    bucket_policy = next(
        d.document
        for d in iam.policy_documents(foundation, "foundation")
        if d.where == "foundation:ArtifactBucketPolicy"
    )
    bucket = foundation.physical_name("ArtifactBucket")
    run = "tumour/pipeline/exec-0123"
    readable = [
        f"{run}/model/pipelines-abc-train/output/model.tar.gz",
        f"{run}/baseline/statistics.json",
        "tumour/code/0f1e2d/pipelines/run.py",
    ]
    private = [
        "tumour/dvc/files/md5/ab/cdef",
        f"{run}/prepare/train/train.csv",
        f"{run}/evaluation/metrics.json",
        "tumour/mlflow/1/run/artifacts/model.pkl",
        "tumour-deploy/DeployConf/AbCd123",  # the deploy pipeline's artifacts
    ]

    def decision(stage: str, role: str, documents: list[dict[str, Any]], key: str) -> str:
        request = policy.Request(
            f"arn:aws:iam::{ACCOUNTS[stage]}:role/{role}",
            "s3:GetObject",
            f"arn:aws:s3:::{bucket}/{key}",
            {"aws:ResourceAccount": iam.ACCOUNT},
        )
        return policy.decide(request, documents, bucket_policy).name

    for stage in ACCOUNTS:
        target = target_stacks(project, stage)["target"]
        model_role = iam.role_documents(target, "ModelExecutionRole")
        name = target.physical_name("ModelExecutionRole")
        assert {key: decision(stage, name, model_role, key) for key in readable} == dict.fromkeys(
            readable, "ALLOW"
        )
        for key in private:
            # not the model role, nor any role of the target account with s3:* on everything
            assert decision(stage, name, model_role, key) != "ALLOW", key
            assert decision(stage, "admin", ADMIN_OF_TARGET, key) != "ALLOW", key
        action_role = target.physical_name("DeployActionRole")
        assert (
            decision(
                stage, action_role, iam.role_documents(target, "DeployActionRole"), private[-1]
            )
            == "ALLOW"
        )


# --- organisation standards enforced by AWS -----------------------------------------------------


def test_a_job_outside_the_standards_network_is_denied_by_aws(renders: dict[str, Path]) -> None:
    """With the vpc standard, the execution role's request to create a training or processing
    job is denied by IAM unless it names subnets and security groups, all of them the
    standard's: deleting org-standards.json from the repository does not relax it."""
    from .test_accounts import BUILD_NETWORK, STAGE_VPC

    subnets, groups = BUILD_NETWORK["subnets"], BUILD_NETWORK["security_groups"]
    other = STAGE_VPC["prod"]
    cases = {
        "in the network": (
            {"sagemaker:VpcSubnets": subnets, "sagemaker:VpcSecurityGroupIds": groups},
            "ALLOW",
        ),
        "no VPC": ({}, "EXPLICIT_DENY"),
        "subnets only": ({"sagemaker:VpcSubnets": subnets}, "EXPLICIT_DENY"),
        "another subnet too": (
            {
                "sagemaker:VpcSubnets": [*subnets, other["subnets"][0]],
                "sagemaker:VpcSecurityGroupIds": groups,
            },
            "EXPLICIT_DENY",
        ),
        "another security group": (
            {
                "sagemaker:VpcSubnets": subnets[:1],
                "sagemaker:VpcSecurityGroupIds": other["security_groups"],
            },
            "EXPLICIT_DENY",
        ),
    }
    for network in (True, False):
        foundation = build_stacks(renders["single"], separate=False, network=network)["foundation"]
        role = iam.role_documents(foundation, "SageMakerExecutionRole")
        caller = foundation.arn("SageMakerExecutionRole")
        for action, job in (
            ("sagemaker:CreateTrainingJob", "training-job/pipelines-abc-train"),
            ("sagemaker:CreateProcessingJob", "processing-job/pipelines-abc-prepare"),
        ):
            arn = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:{job}"
            decided = {
                case: policy.decide(policy.Request(caller, action, arn, context), role).name
                for case, (context, _) in cases.items()
            }
            # without the standard the stacks enforce no network
            expected = {case: want if network else "ALLOW" for case, (_, want) in cases.items()}
            assert decided == expected, (network, action)


# The organisation key of the standards and another one; a sample of the requests each role
# creating jobs or models makes, as the Service Authorization Reference keys them.
ORG_KEY = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/0rg-standard"
OTHER_KEY = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/another"
ISOLATION_AND_KEY = {"NetworkIsolation": "true", "OrganisationKmsKeyArn": ORG_KEY}
COMPLIANT = {
    "sagemaker:NetworkIsolation": "true",
    "sagemaker:VolumeKmsKey": ORG_KEY,
    "sagemaker:OutputKmsKey": ORG_KEY,
}
# What each standard's key means for a request (absent: the request leaves the field out).
VIOLATIONS = {
    "not isolated": ("sagemaker:NetworkIsolation", "false"),
    "isolation left out": ("sagemaker:NetworkIsolation", None),
    "another volume key": ("sagemaker:VolumeKmsKey", OTHER_KEY),
    "no volume key": ("sagemaker:VolumeKmsKey", None),
    "another output key": ("sagemaker:OutputKmsKey", OTHER_KEY),
    "no output key": ("sagemaker:OutputKmsKey", None),
}
# The Create calls that carry each key (the Service Authorization Reference; the standard's
# isolation is not enforced on processing jobs: the monitoring job needs the network).
ISOLATED_CALLS = {"sagemaker:CreateTrainingJob", "sagemaker:CreateModel"}
KEYED_CALLS = {
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTransformJob",
}


def supported_keys(action: str) -> set[str]:
    """The condition keys AWS's IAM data lists for an action (on any of its resource types)."""
    privilege = iam._privilege(action)
    assert privilege, action
    return {k for r in privilege["resource_types"] for k in r.get("condition_keys", [])}


def creators(project: Path, standards: dict[str, str]) -> list[tuple[str, iam.Stack, str, str]]:
    """(label, stack, role, Create action) for every role that creates jobs or models, in one
    account and with staging and prod in accounts of their own, without networks."""
    build = build_stacks(project, separate=False, network=False, standards=standards)
    batch = "BatchPipeline" in stage_template(project)["Resources"]
    jobs = ["sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"]
    transform = ["sagemaker:CreateTransformJob"] if batch else []
    found = [
        ("foundation", build["foundation"], "SageMakerExecutionRole", action)
        for action in jobs + transform
    ]
    found.append(("deploy", build["deploy"], "CloudFormationRole", "sagemaker:CreateModel"))
    target = target_stacks(project, "prod", network=False, standards=standards)["target"]
    found += [
        ("prod account", target, "ModelExecutionRole", action)
        for action in ["sagemaker:CreateProcessingJob", *transform]
    ]
    found.append(("prod account", target, "StackRole", "sagemaker:CreateModel"))
    return found


def standards_decisions(
    project: Path, standards: dict[str, str]
) -> dict[tuple[str, str, str], str]:
    """Each creating role's decision on a compliant request and on each violation of it."""
    decided = {}
    for label, stack, role, action in creators(project, standards):
        kind = {
            "sagemaker:CreateTrainingJob": "training-job",
            "sagemaker:CreateProcessingJob": "processing-job",
            "sagemaker:CreateTransformJob": "transform-job",
            "sagemaker:CreateModel": "model",
        }[action]
        arn = f"arn:aws:sagemaker:{iam.REGION}:{stack.account}:{kind}/pipelines-abc-x"
        keys = supported_keys(action)
        compliant = {k: v for k, v in COMPLIANT.items() if k in keys} | {
            "aws:RequestTag/sagemaker:project-name": PROJECT_NAME
        }
        documents = iam.role_documents(stack, role)
        caller = stack.arn(role)
        for case, (key, value) in {"compliant": ("", ""), **VIOLATIONS}.items():
            if key and key not in keys:
                continue
            context = dict(compliant)
            if key:
                context.pop(key)
                if value is not None:
                    context[key] = value
            request = policy.Request(caller, action, arn, context)
            decided[(f"{label}:{role}", action, case)] = policy.decide(request, documents).name
    return decided


PROJECT_NAME = "tumour"


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_jobs_and_models_outside_the_isolation_and_key_standards_are_denied_by_aws(
    mode_renders: dict[str, Path], mode: str
) -> None:
    """With the network_isolation and kms_key_arn standards, every role that creates jobs or
    models (the execution role, the stack roles, a target account's model role) is denied a
    training job or a model that is not network-isolated, and a training, processing or
    transform job whose volume or output key is not the organisation's (or is left out), by
    IAM: deleting org-standards.json from the repository does not relax them. A compliant
    request is allowed; without the standards, each of those requests is allowed."""
    project = mode_renders[mode]
    with_standards = standards_decisions(project, ISOLATION_AND_KEY)
    expected = {}
    for case in with_standards:
        _, action, violation = case
        enforced = ("isolat" in violation and action in ISOLATED_CALLS) or (
            "key" in violation and action in KEYED_CALLS
        )
        expected[case] = "EXPLICIT_DENY" if enforced else "ALLOW"
    assert with_standards == expected
    assert ("prod account:StackRole", "sagemaker:CreateModel", "not isolated") in expected
    assert set(standards_decisions(project, {}).values()) == {"ALLOW"}


def test_the_enforced_condition_keys_are_those_aws_sets_on_each_call(
    mode_renders: dict[str, Path],
) -> None:
    """Every Deny that enforces a standard names, for each of its actions, a condition key AWS's
    IAM data lists for that action (a key the call never carries would deny every request, or,
    under IfExists, none)."""
    misplaced = []
    for label, stack, role, _ in creators(mode_renders["batch"], ISOLATION_AND_KEY):
        for document in iam.role_documents(stack, role):
            for statement in iam.statements(document):
                # (an unconditional Deny, e.g. the DVC remote's, enforces no standard)
                if statement.get("Effect") != "Deny" or "Condition" not in statement:
                    continue
                keys = {k for block in statement["Condition"].values() for k in block}
                for action in iam._as_list(statement["Action"]):
                    misplaced += [
                        f"{label}:{role} {action} {k}" for k in keys - supported_keys(action)
                    ]
    assert misplaced == []


def test_a_target_accounts_model_and_monitoring_job_outside_its_network_are_denied(
    renders: dict[str, Path],
) -> None:
    """With stage_vpc, a target account's stack role may create the stage's model, and its model
    role the monitoring job, only in that account's subnets and security groups."""
    from .test_accounts import STAGE_VPC

    network = STAGE_VPC["prod"]
    inside = {
        "sagemaker:VpcSubnets": network["subnets"],
        "sagemaker:VpcSecurityGroupIds": network["security_groups"],
    }
    outside = {
        "sagemaker:VpcSubnets": STAGE_VPC["staging"]["subnets"],
        "sagemaker:VpcSecurityGroupIds": network["security_groups"],
    }
    for has_network in (True, False):
        target = target_stacks(renders["separate"], "prod", network=has_network)["target"]
        for role, action, kind in (
            ("StackRole", "sagemaker:CreateModel", "model"),
            ("ModelExecutionRole", "sagemaker:CreateProcessingJob", "processing-job"),
        ):
            arn = f"arn:aws:sagemaker:{iam.REGION}:{target.account}:{kind}/x"
            documents = iam.role_documents(target, role)
            decided = {
                case: policy.decide(
                    policy.Request(target.arn(role), action, arn, context), documents
                ).name
                for case, context in (("inside", inside), ("outside", outside), ("none", {}))
            }
            denied = "EXPLICIT_DENY" if has_network else "ALLOW"
            assert decided == {"inside": "ALLOW", "outside": denied, "none": denied}, role


def test_a_one_account_stage_model_outside_the_standards_network_is_denied(
    renders: dict[str, Path],
) -> None:
    """With the vpc standard and staging and prod in the build account, the deploy pipeline's
    stack role may create a stage's model only in the standards' subnets and security groups:
    the request endpoint.yaml's Model makes in that network is allowed, one naming another
    subnet or security group, or none, is denied (and all are allowed without the standard)."""
    from .test_accounts import BUILD_NETWORK, STAGE_VPC

    project = renders["single"]
    network = {
        "SubnetIds": BUILD_NETWORK["subnets"],
        "SecurityGroupIds": BUILD_NETWORK["security_groups"],
    }
    foundation = build_stacks(project, separate=False)["foundation"]
    exports = foundation.outputs()
    endpoint = iam.Stack(
        stage_template(project),
        "tumour-endpoint-prod",
        {"StageName": "prod", "PipelineDefinitionBucket": exports["tumour-artifact-bucket"]}
        | network,
        exports,
    )
    model = endpoint.arn("Model")
    inside = request_context(endpoint, "Model", "sagemaker:CreateModel", model)
    assert inside["sagemaker:VpcSubnets"] == BUILD_NETWORK["subnets"]  # what the Model sends
    other = STAGE_VPC["prod"]
    cases = {
        "inside": inside,
        "another subnet": inside | {"sagemaker:VpcSubnets": other["subnets"]},
        "another security group": inside
        | {"sagemaker:VpcSecurityGroupIds": other["security_groups"]},
        "none": {k: v for k, v in inside.items() if not k.startswith("sagemaker:Vpc")},
    }
    for has_network in (True, False):
        deploy = build_stacks(project, separate=False, network=has_network)["deploy"]
        documents = iam.role_documents(deploy, "CloudFormationRole")
        caller = deploy.arn("CloudFormationRole")
        decided = {
            case: policy.decide(
                policy.Request(caller, "sagemaker:CreateModel", model, context), documents
            ).name
            for case, context in cases.items()
        }
        denied = "EXPLICIT_DENY" if has_network else "ALLOW"
        expected = {case: "ALLOW" if case == "inside" else denied for case in cases}
        assert decided == expected, has_network


# --- cloudsplaining: privilege escalation, from AWS's IAM data ----------------------------------

# cloudsplaining (Salesforce; AWS's IAM data through policy_sentry, offline) reports the action
# combinations that escalate privilege when granted on every resource. It judges each policy
# alone and does not see escalation through the roles a CloudFormation stack creates, nor through
# a resource-scoped grant: the tests above cover those. Every role here scopes its grants, so it
# finds none; the one path inherent to CodePipeline deploying CloudFormation (iam:PassRole and
# cloudformation:CreateStack) is scoped to exactly the stack role and the stage stacks.


def escalations(stacks: list[tuple[str, iam.Stack]]) -> dict[str, set[str]]:
    from cloudsplaining.scan.policy_document import PolicyDocument as Scanned

    found: dict[str, set[str]] = {}
    for role, documents in roles_of(stacks).items():
        for document in documents:
            for method in Scanned(document).allows_privilege_escalation:
                found.setdefault(str(method["type"]), set()).add(role)
    return found


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_cloudsplaining_finds_no_privilege_escalation(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    assert escalations(rendered_stacks(baked_matrix[matrix_id(extra)])) == {}


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_cloudsplaining_finds_no_escalation_with_separate_accounts(
    mode_renders: dict[str, Path], mode: str
) -> None:
    assert escalations(list(separate_account_stacks(mode_renders[mode]))) == {}


def test_cloudsplaining_reports_the_cloudformation_path_when_unscoped() -> None:
    """The scanner works offline and flags what these roles would be without their scoping."""
    from cloudsplaining.scan.policy_document import PolicyDocument as Scanned

    unscoped = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:PassRole", "cloudformation:CreateStack"],
                "Resource": "*",
            }
        ],
    }
    methods = [m["type"] for m in Scanned(unscoped).allows_privilege_escalation]
    assert methods == ["PassExistingRoleToCloudFormation"]
