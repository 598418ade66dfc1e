"""The SageMaker requests a stage's endpoint stack makes, checked against SageMaker's service model.

CloudFormation turns the endpoint template and a stage's parameters into CreateModel,
CreateEndpointConfig and CreateEndpoint/UpdateEndpoint calls. This module resolves the template the
same way (parameters, conditions, ``Ref``/``Fn::GetAtt``/``Fn::Sub``/``Fn::If``/``Fn::Join``;
generated names stand in for what CloudFormation names) and validates the requests with
botocore's ``ParamValidator``, plus the bounds botocore leaves to the service (maximums, enums,
patterns), so that the deploy build refuses what SageMaker would reject before any stack is
touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "endpoint-stack",
}
_NO_VALUE = object()


@cache
def service_model() -> ServiceModel:
    """SageMaker's service model as the installed botocore carries it (loaded once: it is large)."""
    return botocore.session.get_session().get_service_model("sagemaker")


class RequestError(ValueError):
    """A request SageMaker's service model rejects."""


class Resolver:
    """A template with its parameters: conditions and intrinsic functions evaluated."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.parameters = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        } | parameters
        missing = sorted(set(template.get("Parameters", {})) - set(self.parameters))
        if missing:
            raise RequestError(f"parameters without a value: {', '.join(missing)}")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def active(self, logical: str) -> bool:
        condition = self.template["Resources"][logical].get("Condition")
        return condition is None or self.condition(condition)

    def properties(self, logical: str) -> dict[str, Any]:
        return dict(self.resolve(self.template["Resources"][logical].get("Properties", {})))

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            kind = self.template["Parameters"][name]["Type"]
            value = self.parameters[name]
            return value.split(",") if kind == "CommaDelimitedList" and value else value
        resource = self.template["Resources"][name]
        if resource["Type"] == "AWS::CloudWatch::Alarm":  # Ref is the alarm's name
            return self.resolve(resource["Properties"]["AlarmName"])
        return f"{name}-generated"

    def _getatt(self, logical: str, attribute: str) -> Any:
        properties = self.template["Resources"][logical].get("Properties", {})
        if attribute in properties:  # e.g. EndpointName, MonitoringScheduleName
            return self.resolve(properties[attribute])
        return f"{logical}-{attribute}-generated".replace(".", "-")

    def _sub(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if "." in name:
                return str(self._getatt(*name.split(".", 1)))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self._ref(value)
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::GetAtt":
                logical, attribute = value if isinstance(value, list) else value.split(".", 1)
                return self._getatt(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(value)
            if key == "Fn::If":
                name, then, otherwise = value
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in value)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in value)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in value)
            if key == "Fn::Join":
                separator, items = value
                return separator.join(str(item) for item in self.resolve(items))
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}


def _coerce(value: Any, shape: Shape) -> Any:
    """CloudFormation's strings as the types the API shape declares (as CloudFormation does)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {
            key: _coerce(item, members[key]) if key in members else item
            for key, item in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_coerce(item, shape.member) for item in value]
    if kind in ("integer", "long") and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind in ("float", "double") and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


@cache
def _python_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """The model's pattern, or None for the few in Java-only syntax (\\p{...} classes, on tag
    values): those are not checked here."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _service_bounds(value: Any, shape: Shape, path: str) -> list[str]:
    """What ParamValidator leaves to the service: maximums, enums and patterns."""
    errors: list[str] = []
    metadata = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for key, item in value.items():
            member = shape.members.get(key)
            if member is not None:
                errors += _service_bounds(item, member, f"{path}.{key}")
    elif kind == "list" and isinstance(value, list):
        if "max" in metadata and len(value) > metadata["max"]:
            errors.append(f"{path} has {len(value)} items, at most {metadata['max']}")
        for index, item in enumerate(value):
            errors += _service_bounds(item, shape.member, f"{path}[{index}]")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "max" in metadata and value > metadata["max"]:
            errors.append(f"{path} is {value}, at most {metadata['max']}")
    elif kind == "string" and isinstance(value, str):
        if "enum" in metadata and value not in metadata["enum"]:
            errors.append(f"{path} is {value!r}, not one of {', '.join(metadata['enum'])}")
        if "max" in metadata and len(value) > metadata["max"]:
            errors.append(f"{path} is {len(value)} characters long, at most {metadata['max']}")
        pattern = _python_pattern(metadata.get("pattern"))
        if pattern and not pattern.search(value):
            errors.append(f"{path} {value!r} does not match {pattern.pattern}")
    return errors


def validate(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """The request typed as the API takes it; RequestError with every problem on one line."""
    shape = service_model().operation_model(operation).input_shape
    typed = _coerce(request, shape)
    report = ParamValidator().validate(typed, shape)
    problems = [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    problems += _service_bounds(typed, shape, operation)
    if problems:
        raise RequestError(f"{operation} would be rejected: {'; '.join(problems)}")
    return dict(typed)


# How far a stage's batch transform scales: its configuration's parameters (the stage stack's and
# the batch pipeline's, by the same names) with the values CreateTransformJob takes when a request
# leaves them out (one instance, 6 MB payloads, one request at a time per instance).
TRANSFORM_SCALE = {"TransformInstanceCount": 1, "MaxPayloadInMB": 6, "MaxConcurrentTransforms": 1}
# The bound the API reference states beside the model's minimum (CreateTransformJob's
# MaxPayloadInMB): a payload, and MaxConcurrentTransforms times it, are at most 100 MB.
MAX_TRANSFORM_PAYLOAD_MB = 100


def transform_scale(values: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateTransformJob fields ``TRANSFORM_SCALE`` sets, from ``values`` by those names:
    records are lines sent many at a time (``BatchStrategy`` MultiRecord)."""
    return {
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": values["MaxPayloadInMB"],
        "MaxConcurrentTransforms": values["MaxConcurrentTransforms"],
        "TransformResources": {"InstanceCount": values["TransformInstanceCount"]},
    }


def check_transform_scale(where: str, parameters: Mapping[str, Any], instance_type: str) -> None:
    """Refuse, in one line naming ``where``, scale settings CreateTransformJob would reject: the
    request's fields are validated against SageMaker's service model (types and minimums), then
    the payload bound the API reference adds."""
    values = {name: parameters.get(name, default) for name, default in TRANSFORM_SCALE.items()}
    request = transform_scale(values)
    request["TransformResources"]["InstanceType"] = instance_type
    request |= {
        "TransformJobName": "scale-check",
        "ModelName": "scale-check",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://b/out"},
    }
    try:
        typed = validate("CreateTransformJob", request)
    except RequestError as error:
        raise RequestError(f"{where}: {error}") from None
    payload, concurrent = typed["MaxPayloadInMB"], typed["MaxConcurrentTransforms"]
    # 0 concurrent transforms: the container's default, one.
    if payload * max(concurrent, 1) > MAX_TRANSFORM_PAYLOAD_MB:
        raise RequestError(
            f"{where}: MaxPayloadInMB {payload} times MaxConcurrentTransforms {concurrent} is "
            f"more than {MAX_TRANSFORM_PAYLOAD_MB} MB, CreateTransformJob's limit: lower either"
        )


def model_requests(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """CreateModel for each of the stack's active ``AWS::SageMaker::Model`` resources, by logical
    id, as the stack would call it (CloudFormation names the model), each validated."""
    stack = Resolver(template, parameters)
    return {
        logical: validate(
            "CreateModel", {"ModelName": f"{logical}-generated"} | stack.properties(logical)
        )
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SageMaker::Model" and stack.active(logical)
    }


def endpoint_requests(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """CreateEndpointConfig, CreateEndpoint and UpdateEndpoint as the stack would call them,
    each validated against SageMaker's service model."""
    stack = Resolver(template, parameters)
    config = stack.properties("EndpointConfig")
    endpoint = stack.properties("Endpoint")
    config["EndpointConfigName"] = "EndpointConfig-generated"
    endpoint["EndpointConfigName"] = config["EndpointConfigName"]
    update = {key: value for key, value in endpoint.items() if key != "Tags"}
    return {
        "CreateEndpointConfig": validate("CreateEndpointConfig", config),
        "CreateEndpoint": validate("CreateEndpoint", endpoint),
        "UpdateEndpoint": validate("UpdateEndpoint", update),
    }


def rollback_alarms(template: dict[str, Any], parameters: dict[str, str]) -> list[dict[str, Any]]:
    """The alarms the endpoint's DeploymentConfig rolls back on, resolved (for the checks and
    the tests): their metric, statistic, threshold and dimensions."""
    stack = Resolver(template, parameters)
    named = {
        stack.resolve(resource["Properties"]["AlarmName"]): logical
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and stack.active(logical)
    }
    config = stack.properties("Endpoint").get("DeploymentConfig", {})
    alarms = config.get("AutoRollbackConfiguration", {}).get("Alarms", [])
    return [stack.properties(named[alarm["AlarmName"]]) for alarm in alarms]
