"""The template tests' one IAM policy evaluator, after AWS's documented evaluation logic.

Sources (IAM User Guide): "Policy evaluation logic" (reference_policies_evaluation-logic.html)
and its "Cross-account policy evaluation logic"; "IAM JSON policy elements: Condition operators"
(reference_policies_elements_condition_operators.html); "Conditions with multiple context keys or
values" (reference_policies_condition-logic-multiple-context-keys-or-values.html); "IAM policy
elements: Variables and tags" (reference_policies_variables.html). KMS: AWS KMS Developer Guide,
"Key policies in AWS KMS" ("Allows access to the AWS account and enables IAM policies").

What a :class:`Request` is decided against:

1. An explicit ``Deny`` in any given policy (identity, resource, boundary) whose Action,
   Resource, Principal and Condition match ends the evaluation: ``EXPLICIT_DENY``.
2. Otherwise the request is allowed when
   * the caller's account owns the resource (the resource ARN's account, or the context key
     ``aws:ResourceAccount`` for ARNs without one such as S3's): an identity policy OR the
     resource policy allows it; a resource-policy statement naming the caller's *account*
     (``arn:aws:iam::<acct>:root`` or the bare id) only delegates to the identity policies;
   * the caller is in another account: an identity policy AND the resource policy (naming the
     caller or its account) allow it;
   * the resource is a KMS key and its key policy is given: the key policy allows the caller
     directly, or allows the caller's account (delegation: then an identity policy must allow
     too); a caller of another account always needs its identity policy as well. Without the
     key policy a KMS request is decided on the other policies alone: the caller then models
     one side only (e.g. a role's grant on a key of another stack).
   * a permissions boundary, when given, also allows it (for a role, AWS applies the boundary
     to resource-policy grants to the role's ARN as well).
   A service principal (``logs.us-east-1.amazonaws.com``) has no identity policy: only a
   resource policy naming it (or ``*``) can allow it.
3. Otherwise ``IMPLICIT_DENY``.

Not modelled, since no policy of the templates uses them: SCPs/RCPs, session policies, role
session ARNs granted directly in resource policies (treated like the role ARN).
"""

from __future__ import annotations

import base64
import datetime
import enum
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


@dataclass(frozen=True)
class Request:
    # the caller: a role ARN, or a service principal such as "logs.us-east-1.amazonaws.com"
    principal: str
    action: str  # "sagemaker:CreateTransformJob"
    resource: str  # the ARN touched
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)  # condition keys


# --- matching -----------------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def glob(pattern: str, value: str, *, case: bool = True) -> bool:
    """``*`` any run of characters (``/`` and ``:`` included), ``?`` one character."""
    translated = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(translated, value, 0 if case else re.IGNORECASE) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Action names are case-insensitive (IAM JSON policy elements: Action)."""
    return glob(pattern, action, case=False)


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-delimited components compared on its own,
    case-sensitively, with ``*`` and ``?`` wildcards (condition operators, ARN)."""
    parts, wanted = value.split(":", 5), pattern.split(":", 5)
    if len(parts) != 6 or len(wanted) != 6:
        return False
    return all(glob(w, p) for w, p in zip(wanted, parts, strict=True))


def is_service_principal(principal: str) -> bool:
    return not principal.startswith("arn:") and principal.endswith(".amazonaws.com")


def account_of(arn: str) -> str | None:
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and re.fullmatch(r"\d{12}", parts[4]):
        return parts[4]
    return None


def _role_of_session(principal: str) -> str:
    """arn:aws:sts::<acct>:assumed-role/<name>/<session> -> arn:aws:iam::<acct>:role/<name>."""
    match = re.fullmatch(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/.+", principal)
    return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else principal


# --- the request context ------------------------------------------------------------------------


def _context(request: Request) -> dict[str, list[str]]:
    """The request's condition keys, lower-cased (key names are case-insensitive), each a list,
    with the global keys AWS sets from the caller when the request does not give them."""
    keys: dict[str, list[str]] = {}
    principal = request.principal
    if is_service_principal(principal):
        keys["aws:principalservicename"] = [principal]
    else:
        keys["aws:principalarn"] = [_role_of_session(principal)]
        if account := account_of(principal):
            keys["aws:principalaccount"] = [account]
    for key, value in request.context.items():
        keys[key.lower()] = [value] if isinstance(value, str) else [str(v) for v in value]
    return keys


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _substitute(text: str, keys: Mapping[str, list[str]]) -> str | None:
    """Policy variables (``${aws:PrincipalTag/team}``, ``${aws:username, 'default'}``, and the
    escapes ``${*}``, ``${?}``, ``${$}``); None when a variable has no value: the element then
    matches nothing (IAM policy elements: Variables and tags)."""
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        body = match.group(1)
        if body in ("*", "?", "$"):
            return "\\" + body  # literal, kept out of the glob by the escape below
        name, _, default = body.partition(",")
        values = keys.get(name.strip().lower())
        if values and len(values) == 1:
            return values[0]
        default = default.strip()
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return default[1:-1]
        missing = True
        return ""

    if "${" not in text:
        return text
    result = _VARIABLE.sub(replace, text)
    return None if missing else result


def _pattern_matches(pattern: str, value: str, keys: Mapping[str, list[str]]) -> bool:
    """A Resource/ARN pattern that may hold policy variables; ``${*}`` etc. match literally."""
    substituted = _substitute(pattern, keys)
    if substituted is None:
        return False
    pieces = re.split(r"(\\[*?$])", substituted)
    regex = "".join(
        re.escape(piece[1])
        if piece.startswith("\\") and len(piece) == 2 and piece[1] in "*?$"
        else re.escape(piece).replace(r"\*", ".*").replace(r"\?", ".")
        for piece in pieces
    )
    return re.fullmatch(regex, value) is not None


# --- conditions ---------------------------------------------------------------------------------


def _date(text: str) -> datetime.datetime:
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return datetime.datetime.fromtimestamp(float(text), datetime.UTC)
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _compare(family: str, comparison: str, wanted: str, value: str) -> bool:
    if family == "String":
        if comparison == "Like":
            return glob(wanted, value)
        if comparison == "EqualsIgnoreCase":
            return wanted.lower() == value.lower()
        return wanted == value
    if family == "Arn":
        return _arn_like(wanted, value)
    if family == "Bool":
        return wanted.lower() == value.lower()
    if family == "Binary":
        return base64.b64decode(wanted) == base64.b64decode(value)
    if family == "IpAddress":
        return ipaddress.ip_address(value) in ipaddress.ip_network(wanted, strict=False)
    if family in ("Numeric", "Date"):
        convert = float if family == "Numeric" else _date
        left, right = convert(value), convert(wanted)  # type: ignore[operator]
        return {
            "Equals": left == right,
            "LessThan": left < right,
            "LessThanEquals": left <= right,
            "GreaterThan": left > right,
            "GreaterThanEquals": left >= right,
        }[comparison]
    raise NotImplementedError(family)


_OPERATOR = re.compile(
    r"(?:(?P<set>ForAnyValue|ForAllValues):)?"
    r"(?P<family>String|Numeric|Date|Bool|Binary|Arn|IpAddress|NotIpAddress|Null)"
    r"(?P<not>Not)?"
    r"(?P<comparison>EqualsIgnoreCase|Equals|Like|LessThanEquals|LessThan|GreaterThanEquals"
    r"|GreaterThan)?"
    r"(?P<ifexists>IfExists)?"
)


def condition_holds(operator: str, key: str, wanted: Any, keys: Mapping[str, list[str]]) -> bool:
    """One operator applied to one key (its policy values OR-ed; NOR-ed for a negated operator).

    A key the request lacks: false, except for a negated operator (true), ``...IfExists``
    (true), ``Null`` (tests exactly that) and ``ForAllValues:`` (true: every one of no values
    matches) (condition operators, "Important"; multi-valued context keys).
    """
    parsed = _OPERATOR.fullmatch(operator)
    if parsed is None:
        raise NotImplementedError(f"condition operator {operator}")
    family, negated = parsed["family"], bool(parsed["not"])
    if family == "NotIpAddress":
        family, negated = "IpAddress", True
    if family == "Arn" and parsed["comparison"] not in ("Equals", "Like"):
        raise NotImplementedError(f"condition operator {operator}")
    comparison = parsed["comparison"] or ""
    values = keys.get(key.lower())
    policy_values = [str(w).lower() if isinstance(w, bool) else str(w) for w in as_list(wanted)]
    if family == "Null":
        absent = not values
        return any((w.lower() == "true") == absent for w in policy_values)
    if not values:
        if parsed["set"] == "ForAllValues":
            return True
        if parsed["set"] == "ForAnyValue":
            return False
        return bool(parsed["ifexists"]) or negated
    substituted = [
        s
        for w in policy_values
        if (s := (_substitute(w, keys) if family != "Binary" else w)) is not None
    ]

    def matches(value: str) -> bool:
        positive = any(_compare(family, comparison, w, value) for w in substituted)
        return not positive if negated else positive

    if parsed["set"] == "ForAllValues":
        return all(matches(v) for v in values)
    if parsed["set"] == "ForAnyValue":
        return any(matches(v) for v in values)
    if negated:  # a single-valued negation: no request value matches any policy value
        return all(matches(v) for v in values)
    return any(matches(v) for v in values)


def conditions_hold(condition: Mapping[str, Any], keys: Mapping[str, list[str]]) -> bool:
    """Every operator and every key of a Condition block (AND); values of one key OR-ed."""
    return all(
        condition_holds(operator, key, wanted, keys)
        for operator, tests in condition.items()
        for key, wanted in tests.items()
    )


def context_keys(context: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """A plain condition context in the evaluator's form (for checking a Condition alone)."""
    return {
        k.lower(): [v] if isinstance(v, str) else [str(x) for x in v] for k, v in context.items()
    }


# --- statements ---------------------------------------------------------------------------------


class _Via(enum.Enum):
    """How a resource-policy statement names the caller."""

    DIRECT = "direct"  # the caller itself, or everyone
    ACCOUNT = "account"  # the caller's account: delegation to its identity policies


@dataclass(frozen=True)
class _Match:
    where: str
    index: int
    statement: Mapping[str, Any]
    via: _Via = _Via.DIRECT

    def describe(self) -> str:
        sid = self.statement.get("Sid")
        name = f"Sid {sid!r}" if sid else f"statement {self.index}"
        return f"{self.where} {name} ({self.statement.get('Effect')})"


def _principal_entries(principal: Any) -> list[tuple[str, str]]:
    if principal == "*":
        return [("*", "*")]
    return [(kind, str(v)) for kind, values in principal.items() for v in as_list(values)]


def _names_caller(principal: Any, caller: str) -> _Via | None:
    """Whether a Principal element names the caller (directly or through its account)."""
    role = _role_of_session(caller)
    account = account_of(caller)
    via: _Via | None = None
    for kind, value in _principal_entries(principal):
        if value == "*":
            return _Via.DIRECT
        if kind == "Service" and value == caller:
            return _Via.DIRECT
        if kind in ("AWS", "Federated", "CanonicalUser") and value in (caller, role):
            return _Via.DIRECT
        if kind == "AWS" and account and value in (account, f"arn:aws:iam::{account}:root"):
            via = _Via.ACCOUNT
    return via


def _statement_matches(
    statement: Mapping[str, Any],
    request: Request,
    keys: Mapping[str, list[str]],
    *,
    resource_policy: bool,
) -> _Via | None:
    """Whether a statement applies to the request; for a resource policy, how it names the
    caller. A resource-policy statement without Resource (a role's trust policy) applies to the
    resource it is attached to."""
    if "Action" in statement:
        if not any(action_matches(a, request.action) for a in as_list(statement["Action"])):
            return None
    elif "NotAction" in statement:
        if any(action_matches(a, request.action) for a in as_list(statement["NotAction"])):
            return None
    else:
        return None
    if "Resource" in statement:
        patterns = [str(r) for r in as_list(statement["Resource"])]
        if not any(_pattern_matches(p, request.resource, keys) for p in patterns):
            return None
    elif "NotResource" in statement:
        patterns = [str(r) for r in as_list(statement["NotResource"])]
        if any(_pattern_matches(p, request.resource, keys) for p in patterns):
            return None
    elif not resource_policy:
        return None
    via = _Via.DIRECT
    if resource_policy:
        if "Principal" in statement:
            named = _names_caller(statement["Principal"], request.principal)
            if named is None:
                return None
            via = named
        elif "NotPrincipal" in statement:
            if _names_caller(statement["NotPrincipal"], request.principal) is not None:
                return None
        else:
            return None
    if not conditions_hold(statement.get("Condition", {}), keys):
        return None
    return via


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(s) for s in as_list(document.get("Statement", []))]


def _matches(
    documents: Sequence[tuple[str, Mapping[str, Any]]],
    request: Request,
    keys: Mapping[str, list[str]],
    *,
    resource_policy: bool = False,
) -> Iterator[_Match]:
    for where, document in documents:
        for index, statement in enumerate(statements(document)):
            via = _statement_matches(statement, request, keys, resource_policy=resource_policy)
            if via is not None:
                yield _Match(where, index, statement, via)


# --- decision -----------------------------------------------------------------------------------


def _evaluate(
    request: Request,
    identity_policies: Sequence[Mapping[str, Any]],
    resource_policy: Mapping[str, Any] | None,
    boundary: Mapping[str, Any] | None,
) -> tuple[Decision, str]:
    keys = _context(request)
    service = is_service_principal(request.principal)
    identity = [] if service else [(f"identity[{i}]", p) for i, p in enumerate(identity_policies)]
    resource = [("resource policy", resource_policy)] if resource_policy is not None else []
    bounds = [("boundary", boundary)] if boundary is not None and not service else []
    found = (
        list(_matches(identity, request, keys))
        + list(_matches(resource, request, keys, resource_policy=True))
        + list(_matches(bounds, request, keys))
    )
    denies = [m for m in found if m.statement.get("Effect") == "Deny"]
    if denies:
        return Decision.EXPLICIT_DENY, f"denied by {denies[0].describe()}"
    allows = [m for m in found if m.statement.get("Effect") == "Allow"]
    by_identity = [m for m in allows if m.where.startswith("identity")]
    by_resource = [m for m in allows if m.where == "resource policy"]
    direct = [m for m in by_resource if m.via is _Via.DIRECT]
    delegated = [m for m in by_resource if m.via is _Via.ACCOUNT]
    by_boundary = [m for m in allows if m.where == "boundary"]
    request_line = f"{request.principal} {request.action} on {request.resource}"
    if bounds and not by_boundary:
        return Decision.IMPLICIT_DENY, f"{request_line}: the permissions boundary allows nothing"

    caller_account = account_of(request.principal)
    owner = keys.get("aws:resourceaccount", [account_of(request.resource) or caller_account])[0]
    is_key = request.resource.startswith("arn:") and request.resource.split(":")[2] == "kms"
    if is_key and resource_policy is not None:
        if direct and not service and caller_account not in (None, owner) and not by_identity:
            # another account's principal also needs its own IAM policy (AWS KMS Developer
            # Guide, "Allowing users in other accounts to use a KMS key")
            return Decision.IMPLICIT_DENY, (
                f"{request_line}: cross-account, the key policy allows it, no identity policy does"
            )
        if direct:
            return Decision.ALLOW, f"allowed by the key policy's {direct[0].describe()}"
        if delegated and by_identity:
            return Decision.ALLOW, (
                f"allowed by {by_identity[0].describe()}, which the key policy's "
                f"{delegated[0].describe()} enables"
            )
        why = (
            "the key policy delegates to the account but no identity policy allows it"
            if delegated
            else "the key policy neither allows the caller nor delegates to its account"
        )
        return Decision.IMPLICIT_DENY, f"{request_line}: {why}"
    if service or caller_account is None or owner == caller_account:
        if by_identity:
            return Decision.ALLOW, f"allowed by {by_identity[0].describe()}"
        if direct:
            return Decision.ALLOW, f"allowed by the {direct[0].describe()}"
        return Decision.IMPLICIT_DENY, f"{request_line}: no statement allows it"
    if not by_identity:
        return (
            Decision.IMPLICIT_DENY,
            f"{request_line}: cross-account, no identity policy allows it",
        )
    if not by_resource:
        return Decision.IMPLICIT_DENY, (
            f"{request_line}: cross-account (resource in {owner}), the resource policy does not "
            "allow it"
        )
    return Decision.ALLOW, (
        f"allowed across accounts by {by_identity[0].describe()} "
        f"and the {by_resource[0].describe()}"
    )


def decide(
    request: Request,
    identity_policies: Sequence[Mapping[str, Any]] = (),
    resource_policy: Mapping[str, Any] | None = None,
    *,
    boundary: Mapping[str, Any] | None = None,
) -> Decision:
    return _evaluate(request, identity_policies, resource_policy, boundary)[0]


def explain(
    request: Request,
    identity_policies: Sequence[Mapping[str, Any]] = (),
    resource_policy: Mapping[str, Any] | None = None,
    *,
    boundary: Mapping[str, Any] | None = None,
) -> str:
    """One line: the decision and the statement that made it (for assertion messages)."""
    decision, why = _evaluate(request, identity_policies, resource_policy, boundary)
    return f"{decision.value}: {why}"
