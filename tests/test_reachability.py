"""What each role of every distinct render can reach, not what each statement says.

parliament and the resource-schema checks (tests/test_permissions.py) judge statements one at a
time; these tests ask what a principal can do with all of its policies together:

* no principal can create or modify a role, a policy or any other IAM identity (the deploy
  pipeline's stack role once could, on roles its repository-written template named);

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
from .conftest import MATRIX, matrix_id
from .test_accounts import ACCOUNTS, build_stacks, mode_renders, renders, target_stacks
from .test_permissions import rendered_stacks

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


def identity_write_grants(roles: dict[str, list[dict[str, Any]]]) -> list[str]:
    arns = _identity_arns()
    return [
        f"{role} may {action} on {arn}"
        for role, documents in roles.items()
        for action in identity_writes()
        for arn in arns
        if iam.allows(documents, action, arn)
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
