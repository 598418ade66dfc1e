"""Which tags each resource of a stack ends up with: stack-level tags where CloudFormation
propagates them, plus the resource's own ``Tags``.

Where stack tags reach comes from AWS's data, not from the templates under test: CloudFormation
hands a stack's tags to the handler of every resource type whose registry schema (bundled in
cfn-lint) declares ``tagging.taggable``. Types without a ``tagging`` section, and the types with a
public report that stack tags do not reach them, get none (``NOT_PROPAGATED``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cfnlint

SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
REPORTS = "https://github.com/aws-cloudformation/cloudformation-coverage-roadmap/issues"
NOT_PROPAGATED = {
    "AWS::SageMaker::ModelPackageGroup": f"{REPORTS}/1523",
    "AWS::SageMaker::MonitoringSchedule": f"{REPORTS}/2338",
    "AWS::SageMaker::DataQualityJobDefinition": f"{REPORTS}/2338",
    # Not reported, but the same monitoring job-definition family as the data-quality one.
    "AWS::SageMaker::ModelQualityJobDefinition": f"{REPORTS}/2338",
}


@functools.cache
def schema(resource_type: str) -> dict[str, Any]:
    index = json.loads((SCHEMAS / "providers" / "us-east-1.json").read_text())
    return dict(json.loads((SCHEMAS / "resources" / f"{index[resource_type]}.json").read_text()))


def taggable(resource_type: str) -> bool:
    """The type can carry tags: its schema says so, or (no tagging section) has a Tags property."""
    document = schema(resource_type)
    tagging = document.get("tagging")
    if tagging is None:
        return "Tags" in document.get("properties", {})
    return bool(tagging.get("taggable", True))


def stack_tags_reach(resource_type: str) -> bool:
    tagging = schema(resource_type).get("tagging")
    return bool(tagging and tagging.get("taggable", True)) and resource_type not in NOT_PROPAGATED


def tagging_permissions(resource_type: str) -> tuple[str, ...]:
    """The calls CloudFormation makes to put stack tags on a resource of this type (none when
    they do not reach it)."""
    if not stack_tags_reach(resource_type):
        return ()
    return tuple(schema(resource_type)["tagging"].get("permissions", ()))


def _resolve(value: Any, parameters: Mapping[str, Any]) -> str:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(parameters[value["Ref"]])
    if not isinstance(value, str):
        raise AssertionError(f"a tag value the model does not resolve: {value!r}")
    return value


def effective_tags(
    template: Mapping[str, Any], stack_tags: Mapping[str, str], parameters: Mapping[str, Any]
) -> dict[str, dict[str, str]]:
    """Logical id -> the tags of each taggable resource once the stack is deployed."""
    result: dict[str, dict[str, str]] = {}
    for logical, resource in template["Resources"].items():
        resource_type = resource["Type"]
        if not taggable(resource_type):
            continue
        tags = dict(stack_tags) if stack_tags_reach(resource_type) else {}
        for tag in resource.get("Properties", {}).get("Tags", []):
            tags[tag["Key"]] = _resolve(tag["Value"], parameters)
        result[logical] = tags
    return result


def missing(
    effective: Mapping[str, Mapping[str, str]], expected: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Per resource, the expected tags it lacks or has with another value (empty when none)."""
    gaps = {
        logical: {k: v for k, v in expected.items() if tags.get(k) != v}
        for logical, tags in effective.items()
    }
    return {logical: gap for logical, gap in gaps.items() if gap}
