"""Organisation standards: one YAML file admins keep, checked at render time, applied by the output.

Where the file comes from, first match wins: the ``MLOPS_ORG_STANDARDS`` environment variable (a
path), ``org-standards.yaml`` beside the template. Without one, nothing beyond the built-in rules is
enforced. The file is validated with jsonschema (``SCHEMA``); the pre-generation hook checks the
answers against it, and the post-generation hook writes it into the project as
``org-standards.json``, which the pipeline and the deploy configuration apply (KMS, VPC, network
isolation, instance types, tags).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from template_rules import AnswerError

ENVIRONMENT_VARIABLE = "MLOPS_ORG_STANDARDS"
FILE_NAME = "org-standards.yaml"
INSTANCE_TYPE = {"type": "string", "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$"}
ACCOUNT_ID = {"type": "string", "pattern": r"^[0-9]{12}$"}
# The stages that may live in an account of their own, in deploy order.
TARGET_STAGES = ("staging", "prod")
# Where SageMaker attaches its network interfaces: the build account's (vpc), or a target
# account's (stage_vpc.<stage>). Subnets and security groups belong to one account.
NETWORK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subnets", "security_groups"],
    "properties": {
        "subnets": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": r"^subnet-[0-9a-f]+$"},
        },
        "security_groups": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": r"^sg-[0-9a-f]+$"},
        },
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "allowed_regions": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "allowed_licenses": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "instance_types": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                role: {"type": "array", "items": INSTANCE_TYPE, "minItems": 1}
                for role in ("processing", "training", "serving")
            },
        },
        "required_tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "kms_key_arn": {
            "type": "string",
            "pattern": r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$",
        },
        "vpc": NETWORK,
        "network_isolation": {"type": "boolean"},
        # The SageMaker managed MLflow tracking server the organisation's projects log runs to.
        "mlflow_tracking_server_arn": {
            "type": "string",
            "pattern": (
                r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:"
                r"mlflow-tracking-server/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$"
            ),
        },
        # Staging and prod endpoints in accounts of their own; the build account (where the
        # project is provisioned) keeps the pipeline and the registry. Both or neither.
        "accounts": {
            "type": "object",
            "additionalProperties": False,
            "required": list(TARGET_STAGES),
            "properties": {stage: ACCOUNT_ID for stage in TARGET_STAGES},
        },
        # The vpc standard in the staging and prod accounts: each one's own network. Required
        # (both stages) when vpc and accounts are both set; without them it has nothing to apply.
        "stage_vpc": {
            "type": "object",
            "additionalProperties": False,
            "required": list(TARGET_STAGES),
            "properties": {stage: NETWORK for stage in TARGET_STAGES},
        },
        "minimum_quality_gate": {"type": "object", "additionalProperties": {"type": "number"}},
        # Who is told when a pipeline, a deploy or a batch transform fails, an endpoint update
        # rolls back, a model waits for approval, an alarm fires or the budget is crossed
        # (templates/notifications.j2 subscribes them to each project's topic).
        "notifications": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "emails": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "string", "pattern": r"^[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+$"},
                },
                # AWS Chatbot: the Slack workspace (team) id and channel id, as the console of
                # AWS Chatbot shows them once the workspace is authorised
                # (AWS::Chatbot::SlackChannelConfiguration's patterns).
                "chatbot_slack": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["workspace_id", "channel_id"],
                    "properties": {
                        "workspace_id": {"type": "string", "pattern": r"^[0-9A-Z]{1,255}$"},
                        "channel_id": {"type": "string", "pattern": r"^[A-Za-z0-9]+$"},
                    },
                },
            },
        },
        # Each project's monthly cost budget (AWS Budgets, on its sagemaker:project-name tag).
        "budget": {
            "type": "object",
            "additionalProperties": False,
            "required": ["monthly_usd"],
            "properties": {"monthly_usd": {"type": "number", "exclusiveMinimum": 0}},
        },
    },
}
# The template's own gate defaults (params.yaml) per problem type.
DEFAULT_GATES = {"classification": ("accuracy", 0.90), "regression": ("rmse", 70.0)}
# Defined once, in the rendered package (its evaluate.py and pipelines read the same file).
GATE_METRICS_FILE = (
    Path(__file__).resolve().parent.parent
    / "{{cookiecutter.project_slug}}"
    / "src"
    / "{{cookiecutter.package_name}}"
    / "gate_metrics.json"
)
LOWER_IS_BETTER = frozenset(json.loads(GATE_METRICS_FILE.read_text())["lower_is_better"])


class StandardsError(ValueError):
    """The standards file itself is unreadable or breaks the schema."""


def locate(template_dir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    if env.get(ENVIRONMENT_VARIABLE):
        path = Path(env[ENVIRONMENT_VARIABLE]).expanduser()
        if not path.is_file():
            raise StandardsError(f"{ENVIRONMENT_VARIABLE} points to {path}, which does not exist")
        return path
    beside = template_dir / FILE_NAME
    return beside if beside.is_file() else None


def load(path: Path | None) -> dict[str, Any]:
    """Read and schema-check the standards; an absent file means no extra standards."""
    if path is None:
        return {}
    import yaml  # cookiecutter depends on PyYAML

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StandardsError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    try:
        import jsonschema
    except ImportError:
        raise StandardsError(f"checking {path} needs jsonschema (pip install jsonschema)") from None
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=str)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise StandardsError(f"{path}: {where}: {_explain(errors[0])}")
    accounts = data.get("accounts")
    if accounts and accounts["staging"] == accounts["prod"]:
        raise StandardsError(
            f"{path}: accounts: staging and prod are both {accounts['prod']}; separate "
            "accounts must be distinct (leave 'accounts' out to deploy both in the build account)"
        )
    _check_stage_networks(path, data)
    return dict(data)


# The rule stage_vpc keeps, said once for both of its refusals.
STAGE_VPC_RULE = (
    "with both 'vpc' and 'accounts' set, the staging and prod accounts run in networks of "
    "their own (subnets belong to one account): name each one's subnets and security_groups "
    "under stage_vpc.staging and stage_vpc.prod"
)


def _check_stage_networks(path: Path, data: Mapping[str, Any]) -> None:
    """The vpc standard reaches the target accounts only through stage_vpc."""
    separate_vpc = bool(data.get("vpc")) and bool(data.get("accounts"))
    if separate_vpc and "stage_vpc" not in data:
        raise StandardsError(f"{path}: stage_vpc: missing; {STAGE_VPC_RULE}")
    if "stage_vpc" in data and not separate_vpc:
        raise StandardsError(
            f"{path}: stage_vpc: given without both 'vpc' and 'accounts', so it would apply to "
            "nothing; it names the networks of the accounts of their own for the vpc standard"
        )
    # Subnet and security group ids are unique across accounts: one named for two accounts is
    # in the wrong place.
    stage_vpc = data.get("stage_vpc") or {}
    owners = {"vpc": data.get("vpc") or {}} | {
        f"stage_vpc.{stage}": stage_vpc[stage] for stage in TARGET_STAGES if stage in stage_vpc
    }
    seen: dict[str, str] = {}
    for owner, network in owners.items():
        for field in ("subnets", "security_groups"):
            for identifier in network.get(field, []):
                if seen.setdefault(identifier, owner) != owner:
                    raise StandardsError(
                        f"{path}: {owner}.{field}: {identifier} is also in {seen[identifier]}; "
                        "each account has subnets and security groups of its own"
                    )


def _explain(error: Any) -> str:
    """jsonschema's message, with the rule spelled out where the bare message would puzzle."""
    where = list(error.absolute_path)
    if where[:1] == ["accounts"] and len(where) == 2:
        return (
            f"{error.instance!r} is not an AWS account id: write it as a quoted string of 12 "
            "digits (YAML reads an unquoted one as a number, and one with a leading 0 as octal)"
        )
    if where == ["stage_vpc"] and error.validator == "required":
        return f"{error.message}: {STAGE_VPC_RULE}"
    return str(error.message)


def project_tags(answers: Mapping[str, Any]) -> dict[str, str]:
    """The tag set templates/cloudformation.j2 gives every stack (a Jinja set the hook cannot
    import; tests/test_org_standards.py checks the two agree on a render)."""
    tags = {
        "organisation": answers["organisation"],
        "cost-centre": answers["cost_centre"],
        "project": answers["project_slug"],
    }
    extra = answers.get("extra_tags") or {}
    return tags | (dict(extra) if isinstance(extra, Mapping) else {})


def check(standards: Mapping[str, Any], answers: Mapping[str, Any]) -> None:
    """Raise AnswerError for the first answer the organisation's standards forbid."""
    for field, rule in (("aws_region", "allowed_regions"), ("license", "allowed_licenses")):
        allowed = standards.get(rule)
        if allowed and answers[field] not in allowed:
            raise AnswerError(
                field, answers[field], f"organisation standards allow only {', '.join(allowed)}"
            )
    tags = project_tags(answers)
    for key, pattern in standards.get("required_tags", {}).items():
        if key not in tags:
            raise AnswerError(
                "extra_tags",
                dict(answers.get("extra_tags") or {}),
                f"organisation standards require the tag '{key}'",
            )
        if not re.fullmatch(pattern, str(tags[key])):
            raise AnswerError(
                f"tag '{key}'", tags[key], f"organisation standards require it to match {pattern}"
            )
    if answers.get("inference_mode") == "serverless":
        required = [name for name in ("vpc", "network_isolation") if standards.get(name)]
        if required:
            raise AnswerError(
                "inference_mode",
                "serverless",
                f"the organisation standards require {' and '.join(required)}, which SageMaker "
                "serverless endpoints do not support; choose realtime or batch",
            )
    metric, threshold = DEFAULT_GATES[answers["problem_type"]]
    minimum = standards.get("minimum_quality_gate", {}).get(metric)
    if minimum is not None:
        weaker = threshold > minimum if metric in LOWER_IS_BETTER else threshold < minimum
        if weaker:
            raise AnswerError(
                "problem_type",
                answers["problem_type"],
                f"the template's {metric} gate {threshold} is weaker than the "
                f"organisation minimum {minimum}",
            )


def write_into(project: Path, standards: Mapping[str, Any]) -> None:
    """The rendered project applies what it finds in org-standards.json (empty: nothing extra)."""
    (project / "org-standards.json").write_text(
        json.dumps(dict(standards), indent=2, sort_keys=True) + "\n"
    )
