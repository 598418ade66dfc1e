"""CloudFormation's Ref, Fn::If, Fn::GetAtt and conditions, resolved with a stage's parameters:
what the deploy tests need to build the requests a stack would send."""

from __future__ import annotations

import re
from typing import Any

NO_VALUE = object()
# The account and region the loopback registry answers as.
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def resolve(value: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """Ref, Fn::If, Fn::Sub (parameters, pseudo parameters, and resources ``parameters`` names),
    Fn::GetAtt (``<resource>-name``) and the template's conditions."""
    if isinstance(value, list):
        items = [resolve(item, template, parameters) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        if name == "AWS::NoValue":
            return NO_VALUE
        declared = template["Parameters"][name]
        given = parameters.get(name, declared.get("Default"))
        return int(given) if declared["Type"] == "Number" else given
    if set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if condition_holds(condition, template, parameters) else when_false
        return resolve(chosen, template, parameters)
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(
            r"\$\{([^}]+)\}",
            lambda match: str(PSEUDO.get(match.group(1)) or parameters[match.group(1)]),
            value["Fn::Sub"],
        )
    if set(value) == {"Fn::GetAtt"}:
        return f"{value['Fn::GetAtt'][0].lower()}-name"
    resolved = {key: resolve(item, template, parameters) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def condition_holds(name: str, template: dict[str, Any], parameters: dict[str, str]) -> bool:
    def evaluate(expression: Any) -> Any:
        if isinstance(expression, dict) and set(expression) == {"Fn::Not"}:
            return not evaluate(expression["Fn::Not"][0])
        if isinstance(expression, dict) and set(expression) == {"Fn::Equals"}:
            left, right = (evaluate(side) for side in expression["Fn::Equals"])
            return str(left) == str(right)
        return resolve(expression, template, parameters)

    return bool(evaluate(template["Conditions"][name]))
