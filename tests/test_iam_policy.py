"""tests/iam_policy.py against the examples of AWS's IAM User Guide.

Pages: "Policy evaluation logic", "Cross-account policy evaluation logic", "IAM JSON policy
elements: Condition operators", "Conditions with multiple context keys or values", "Single-valued
vs. multivalued context keys", "IAM policy elements: Variables and tags"; AWS KMS Developer Guide,
"Default key policy" (the statement enabling IAM policies).
"""

from __future__ import annotations

from typing import Any

import pytest

from .iam_policy import Decision, Request, condition_holds, context_keys, decide, explain

ACCT = "111122223333"
OTHER = "444455556666"
ROLE = f"arn:aws:iam::{ACCT}:role/worker"
OTHER_ROLE = f"arn:aws:iam::{OTHER}:role/visitor"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"
KEY = f"arn:aws:kms:us-east-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def request(action: str, resource: str, principal: str = ROLE, **context: Any) -> Request:
    keys = {key.replace("__", ":").replace("_", "/"): value for key, value in context.items()}
    return Request(principal, action, resource, keys)


# --- evaluation logic ----------------------------------------------------------------------


def test_nothing_allows_means_implicit_deny() -> None:
    assert decide(request("s3:GetObject", f"{BUCKET}/a")) is Decision.IMPLICIT_DENY


def test_explicit_deny_wins_over_any_allow() -> None:
    identity = policy(allow("s3:*", f"{BUCKET}/*"))
    denying = policy(deny("s3:DeleteObject", f"{BUCKET}/*", Sid="NoDelete"))
    assert decide(request("s3:GetObject", f"{BUCKET}/a"), [identity, denying]) is Decision.ALLOW
    got = request("s3:DeleteObject", f"{BUCKET}/a")
    assert decide(got, [identity, denying]) is Decision.EXPLICIT_DENY
    assert "NoDelete" in explain(got, [identity, denying])
    # a Deny in the resource policy beats the identity policy's Allow too
    resource = policy({**deny("s3:*", f"{BUCKET}/*"), "Principal": "*"})
    assert decide(got, [identity], resource) is Decision.EXPLICIT_DENY


def test_actions_are_case_insensitive_and_resources_case_sensitive() -> None:
    identity = [policy(allow("S3:get*", f"{BUCKET}/Reports/*"))]
    assert decide(request("s3:GetObject", f"{BUCKET}/Reports/x"), identity) is Decision.ALLOW
    assert decide(request("s3:GetObject", f"{BUCKET}/reports/x"), identity) is not Decision.ALLOW


def test_wildcards_star_and_question_mark() -> None:
    identity = [policy(allow("iam:Get?ole", f"arn:aws:iam::{ACCT}:role/app-?"))]
    assert decide(request("iam:GetRole", f"arn:aws:iam::{ACCT}:role/app-1"), identity).value == (
        "allow"
    )
    assert decide(request("iam:GetRole", f"arn:aws:iam::{ACCT}:role/app-12"), identity) is (
        Decision.IMPLICIT_DENY
    )


def test_not_action_allows_everything_else() -> None:
    """The guide's example: allow everything except IAM."""
    identity = [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})]
    assert decide(request("s3:ListBucket", BUCKET), identity) is Decision.ALLOW
    assert decide(request("iam:CreateUser", "*"), identity) is Decision.IMPLICIT_DENY


def test_not_action_in_a_deny_denies_everything_else() -> None:
    identity = [policy(allow(), {"Effect": "Deny", "NotAction": ["s3:GetObject"], "Resource": "*"})]
    assert decide(request("s3:GetObject", f"{BUCKET}/a"), identity) is Decision.ALLOW
    assert decide(request("s3:PutObject", f"{BUCKET}/a"), identity) is Decision.EXPLICIT_DENY


def test_not_resource() -> None:
    identity = [policy({"Effect": "Allow", "Action": "s3:*", "NotResource": f"{BUCKET}/secret/*"})]
    assert decide(request("s3:GetObject", f"{BUCKET}/open/a"), identity) is Decision.ALLOW
    assert decide(request("s3:GetObject", f"{BUCKET}/secret/a"), identity) is (
        Decision.IMPLICIT_DENY
    )


def test_a_boundary_must_also_allow() -> None:
    identity = [policy(allow("s3:*", "*"))]
    boundary = policy(allow("s3:GetObject", "*"))
    assert decide(request("s3:GetObject", BUCKET), identity, boundary=boundary) is Decision.ALLOW
    assert decide(request("s3:PutObject", BUCKET), identity, boundary=boundary) is (
        Decision.IMPLICIT_DENY
    )
    # the boundary grants nothing by itself
    assert decide(request("s3:GetObject", BUCKET), [], boundary=boundary) is Decision.IMPLICIT_DENY


# --- resource policies and accounts -------------------------------------------------------


def test_same_account_resource_policy_naming_the_role_suffices() -> None:
    resource = policy({**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": ROLE}})
    assert decide(request("s3:GetObject", f"{BUCKET}/a"), [], resource) is Decision.ALLOW
    other_role = f"arn:aws:iam::{ACCT}:role/someone"
    assert decide(request("s3:GetObject", f"{BUCKET}/a", other_role), [], resource) is (
        Decision.IMPLICIT_DENY
    )


def test_a_resource_policy_naming_the_account_only_delegates_to_identity_policies() -> None:
    resource = policy(
        {**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"}}
    )
    assert decide(request("s3:GetObject", f"{BUCKET}/a"), [], resource) is Decision.IMPLICIT_DENY


def test_cross_account_needs_both_sides() -> None:
    """A role of another account: its identity policy AND the resource policy must allow."""
    key_owned = {"aws:ResourceAccount": ACCT}  # S3 ARNs carry no account
    identity = [policy(allow("s3:GetObject", f"{BUCKET}/*"))]
    resource = policy(
        {**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}}
    )
    visit = Request(OTHER_ROLE, "s3:GetObject", f"{BUCKET}/a", key_owned)
    assert decide(visit, identity, resource) is Decision.ALLOW
    assert decide(visit, identity, None) is Decision.IMPLICIT_DENY
    assert decide(visit, [], resource) is Decision.IMPLICIT_DENY
    assert "cross-account" in explain(visit, identity, None)


def test_principal_star_and_not_principal() -> None:
    everyone = policy({**allow("sns:Publish", "*"), "Principal": "*"})
    topic = f"arn:aws:sns:us-east-1:{ACCT}:alerts"
    assert decide(request("sns:Publish", topic), [], everyone) is Decision.ALLOW
    # Deny everyone but the role (NotPrincipal with Deny)
    only_role = policy(
        {**deny("sns:Publish", "*"), "NotPrincipal": {"AWS": ROLE}},
        {**allow("sns:Publish", "*"), "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"}},
    )
    identity = [policy(allow("sns:Publish", "*"))]
    someone = f"arn:aws:iam::{ACCT}:role/someone"
    assert decide(request("sns:Publish", topic), identity, only_role) is Decision.ALLOW
    assert decide(request("sns:Publish", topic, someone), identity, only_role) is (
        Decision.EXPLICIT_DENY
    )


def test_a_service_principal_is_allowed_by_the_resource_policy_only() -> None:
    service = "logs.us-east-1.amazonaws.com"
    resource = policy({**allow("kms:Encrypt*", "*"), "Principal": {"Service": service}})
    assert decide(Request(service, "kms:Encrypt", KEY), [], resource) is Decision.ALLOW
    assert decide(Request("sns.amazonaws.com", "kms:Encrypt", KEY), [], resource) is (
        Decision.IMPLICIT_DENY
    )
    # identity policies do not apply to a service principal
    assert decide(Request(service, "kms:Encrypt", KEY), [policy(allow())]) is (
        Decision.IMPLICIT_DENY
    )


def test_a_role_session_is_its_role() -> None:
    session = f"arn:aws:sts::{ACCT}:assumed-role/worker/job-1"
    resource = policy({**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": ROLE}})
    assert decide(Request(session, "s3:GetObject", f"{BUCKET}/a"), [], resource) is Decision.ALLOW
    arn_condition = policy(
        allow("s3:GetObject", "*", Condition={"ArnEquals": {"aws:PrincipalArn": ROLE}})
    )
    assert decide(Request(session, "s3:GetObject", BUCKET), [arn_condition]) is Decision.ALLOW


# --- KMS key policies ---------------------------------------------------------------------

ENABLE_IAM = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def test_kms_root_delegation_enables_identity_policies() -> None:
    identity = [policy(allow("kms:Decrypt", KEY))]
    decrypt = request("kms:Decrypt", KEY)
    assert decide(decrypt, identity, policy(ENABLE_IAM)) is Decision.ALLOW
    assert "Enable IAM User Permissions" in explain(decrypt, identity, policy(ENABLE_IAM))
    # the delegation grants nothing without an identity policy
    assert decide(decrypt, [], policy(ENABLE_IAM)) is Decision.IMPLICIT_DENY


def test_kms_without_delegation_ignores_identity_policies() -> None:
    """Unless the key policy allows it, IAM policies cannot allow access to a KMS key."""
    admins = {**allow("kms:*", "*"), "Principal": {"AWS": f"arn:aws:iam::{ACCT}:role/admin"}}
    identity = [policy(allow("kms:*", "*"))]
    assert decide(request("kms:Decrypt", KEY), identity, policy(admins)) is Decision.IMPLICIT_DENY
    direct = {**allow("kms:Decrypt", "*"), "Principal": {"AWS": ROLE}}
    assert decide(request("kms:Decrypt", KEY), [], policy(direct)) is Decision.ALLOW


def test_kms_cross_account_needs_the_key_policy_and_the_external_identity_policy() -> None:
    external = {**allow("kms:Decrypt", "*"), "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}}
    identity = [policy(allow("kms:Decrypt", KEY))]
    visit = Request(OTHER_ROLE, "kms:Decrypt", KEY)
    assert decide(visit, identity, policy(ENABLE_IAM, external)) is Decision.ALLOW
    assert decide(visit, identity, policy(ENABLE_IAM)) is Decision.IMPLICIT_DENY
    assert decide(visit, [], policy(ENABLE_IAM, external)) is Decision.IMPLICIT_DENY


def test_kms_key_policy_naming_another_accounts_role_still_needs_its_identity_policy() -> None:
    named = {**allow("kms:Decrypt", "*"), "Principal": {"AWS": OTHER_ROLE}}
    visit = Request(OTHER_ROLE, "kms:Decrypt", KEY)
    assert decide(visit, [], policy(ENABLE_IAM, named)) is Decision.IMPLICIT_DENY
    assert decide(visit, [policy(allow("kms:Decrypt", KEY))], policy(named)) is Decision.ALLOW


def test_kms_via_service_condition() -> None:
    identity = [
        policy(
            allow(
                "kms:Decrypt",
                KEY,
                Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            )
        )
    ]
    via_s3 = Request(ROLE, "kms:Decrypt", KEY, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
    assert decide(via_s3, identity, policy(ENABLE_IAM)) is Decision.ALLOW
    assert decide(request("kms:Decrypt", KEY), identity, policy(ENABLE_IAM)) is (
        Decision.IMPLICIT_DENY
    )


# --- condition operators ------------------------------------------------------------------


def holds(operator: str, wanted: Any, value: Any = None, key: str = "k:key") -> bool:
    keys = context_keys({} if value is None else {key: value})
    return condition_holds(operator, key, wanted, keys)


@pytest.mark.parametrize(
    ("operator", "wanted", "value", "expected"),
    [
        ("StringEquals", "Prod", "Prod", True),
        ("StringEquals", "Prod", "prod", False),
        ("StringEquals", ["a", "b"], "b", True),  # values OR-ed
        ("StringNotEquals", ["a", "b"], "b", False),  # negated: NOR
        ("StringNotEquals", ["a", "b"], "c", True),
        ("StringEqualsIgnoreCase", "Prod", "pROD", True),
        ("StringNotEqualsIgnoreCase", "Prod", "pROD", False),
        ("StringLike", "home/*/re?ort", "home/me/report", True),
        ("StringLike", "home/*", "Home/me", False),
        ("StringNotLike", "home/*", "other/x", True),
        ("NumericEquals", "10", "10.0", True),
        ("NumericNotEquals", "10", "11", True),
        ("NumericLessThan", "10", "9", True),
        ("NumericLessThanEquals", "10", "10", True),
        ("NumericGreaterThan", "10", "10", False),
        ("NumericGreaterThanEquals", "10", "10", True),
        ("DateGreaterThan", "2020-01-01T00:00:00Z", "2021-06-01T12:00:00Z", True),
        ("DateLessThan", "2020-01-01T00:00:00Z", "1577836800", False),  # epoch == the date
        ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),
        ("Bool", "true", "true", True),
        ("Bool", True, "true", True),  # YAML's true
        ("Bool", "false", "true", False),
        ("BinaryEquals", "QmluYXJ5VmFsdWU=", "QmluYXJ5VmFsdWU=", True),
        ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.7", False),
        (
            "ArnEquals",
            "arn:aws:sns:*:123456789012:topic",
            "arn:aws:sns:eu-west-1:123456789012:topic",
            True,
        ),
        ("ArnLike", "arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b", True),
        (
            "ArnLike",
            "arn:aws:logs:*:1:log-group:/x/*",
            "arn:aws:logs:us-east-1:1:log-group:/x/y",
            True,
        ),
        (
            "ArnLike",
            "arn:aws:logs:*:1:log-group:/x/*",
            "arn:aws:logs:us-east-1:2:log-group:/x/y",
            False,
        ),
        ("ArnNotLike", "arn:aws:s3:::bucket/*", "arn:aws:s3:::other/a", True),
        ("ArnNotEquals", "arn:aws:s3:::bucket/a", "arn:aws:s3:::bucket/a", False),
    ],
)
def test_condition_operators(operator: str, wanted: Any, value: str, expected: bool) -> None:
    assert holds(operator, wanted, value) is expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),  # a key the request lacks: the values do not match
        ("StringLike", False),
        ("ArnLike", False),
        ("NumericLessThan", False),
        ("Bool", False),
        ("StringNotEquals", True),  # ...unless the condition requires the key not to match
        ("StringNotLike", True),
        ("ArnNotLike", True),
        ("StringEqualsIfExists", True),  # IfExists: absent passes
        ("ArnLikeIfExists", True),
        ("ForAllValues:StringEquals", True),  # every one of no values matches
        ("ForAnyValue:StringEquals", False),  # no value matches
    ],
)
def test_a_missing_key(operator: str, expected: bool) -> None:
    assert holds(operator, "x") is expected


def test_if_exists_still_checks_a_present_key() -> None:
    assert holds("StringEqualsIfExists", "a", "a") is True
    assert holds("StringEqualsIfExists", "a", "b") is False


def test_null_tests_presence() -> None:
    assert holds("Null", "true") is True
    assert holds("Null", "true", "v") is False
    assert holds("Null", "false", "v") is True
    assert holds("Null", "false") is False


def test_set_operators_on_multivalued_keys() -> None:
    """The guide's aws:TagKeys examples."""
    allowed = ["environment", "cost-center"]
    assert holds("ForAllValues:StringEquals", allowed, ["environment"]) is True
    assert holds("ForAllValues:StringEquals", allowed, ["environment", "owner"]) is False
    assert holds("ForAllValues:StringEquals", allowed, []) is True  # an empty set: true
    assert holds("ForAnyValue:StringEquals", allowed, ["owner", "cost-center"]) is True
    assert holds("ForAnyValue:StringEquals", allowed, ["owner"]) is False
    assert holds("ForAnyValue:StringEquals", allowed, []) is False
    assert holds("ForAnyValue:StringNotEquals", allowed, ["owner", "environment"]) is True
    assert holds("ForAllValues:StringNotEquals", allowed, ["owner", "environment"]) is False
    assert holds("ForAllValues:StringLike", ["env*"], ["environment", "envoy"]) is True


def test_multiple_keys_and_operators_are_and_ed() -> None:
    statement = allow(
        "s3:GetObject",
        "*",
        Condition={
            "StringEquals": {"aws:PrincipalTag/team": "ml", "aws:RequestedRegion": "us-east-1"},
            "Bool": {"aws:SecureTransport": "true"},
        },
    )
    ok = {"aws:PrincipalTag/team": "ml", "aws:RequestedRegion": "us-east-1"}
    tls = {"aws:SecureTransport": "true"}
    assert decide(Request(ROLE, "s3:GetObject", BUCKET, ok | tls), [policy(statement)]).value == (
        "allow"
    )
    for dropped in [*ok, *tls]:
        partial = {k: v for k, v in (ok | tls).items() if k != dropped}
        assert decide(Request(ROLE, "s3:GetObject", BUCKET, partial), [policy(statement)]) is (
            Decision.IMPLICIT_DENY
        ), dropped


def test_condition_key_names_are_case_insensitive() -> None:
    statement = allow("s3:*", "*", Condition={"StringEquals": {"AWS:PrincipalAccount": ACCT}})
    assert decide(request("s3:GetObject", BUCKET), [policy(statement)]) is Decision.ALLOW


# --- policy variables ---------------------------------------------------------------------


def test_policy_variables_in_resource_and_condition() -> None:
    statement = allow(
        "s3:GetObject",
        f"{BUCKET}/${{aws:PrincipalTag/team}}/*",
        Condition={"StringEquals": {"s3:prefix": "${aws:PrincipalTag/team}"}},
    )
    context = {"aws:PrincipalTag/team": "ml", "s3:prefix": "ml"}
    assert decide(
        Request(ROLE, "s3:GetObject", f"{BUCKET}/ml/a", context), [policy(statement)]
    ) is (Decision.ALLOW)
    assert (
        decide(Request(ROLE, "s3:GetObject", f"{BUCKET}/ops/a", context), [policy(statement)])
        is Decision.IMPLICIT_DENY
    )
    # a variable without a value matches nothing
    assert (
        decide(
            Request(ROLE, "s3:GetObject", f"{BUCKET}/ml/a", {"s3:prefix": "ml"}),
            [policy(statement)],
        )
        is Decision.IMPLICIT_DENY
    )


def test_policy_variable_default_and_escapes() -> None:
    statement = allow("s3:GetObject", f"{BUCKET}/${{aws:PrincipalTag/team, 'shared'}}/${{*}}")
    assert decide(request("s3:GetObject", f"{BUCKET}/shared/*"), [policy(statement)]) is (
        Decision.ALLOW
    )
    # ${*} is a literal asterisk, not a wildcard
    assert decide(request("s3:GetObject", f"{BUCKET}/shared/x"), [policy(statement)]) is (
        Decision.IMPLICIT_DENY
    )


def test_principal_account_variable_is_set_from_the_caller() -> None:
    statement = allow("s3:*", f"{BUCKET}/${{aws:PrincipalAccount}}/*")
    assert decide(request("s3:GetObject", f"{BUCKET}/{ACCT}/a"), [policy(statement)]) is (
        Decision.ALLOW
    )
    assert decide(request("s3:GetObject", f"{BUCKET}/{OTHER}/a"), [policy(statement)]) is (
        Decision.IMPLICIT_DENY
    )
