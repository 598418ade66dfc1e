"""Reading an exported pipeline definition the way the service does, for tests.

``resolve`` evaluates the definition's expressions (``Get`` of parameters, execution variables and
earlier steps' request fields, ``Std:Join``) for one execution, so tests check where an execution
actually writes and reads, not how the JSON happens to be spelled. ``placeholders`` turns a step's
arguments into a concrete request botocore's parameter validation can check.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.session import get_session
from botocore.validate import ParamValidator

STEP_REFERENCE = re.compile(r"Steps\.(\w+)\.(.+)")
OUTPUT_REFERENCE = re.compile(r"ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri")


def walk_steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step by name, including those nested in condition branches."""
    found: dict[str, dict[str, Any]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        found[step["Name"]] = step
        pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return found


class Execution:
    """One execution's view of a definition: parameter values and an execution id."""

    def __init__(
        self,
        definition: dict[str, Any],
        execution_id: str,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.steps = walk_steps(definition)
        self.values = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
        self.values |= parameters or {}
        self.execution_id = execution_id
        # Property-file contents by reference, e.g. {"Steps.X.PropertyFiles.Y": {"uri": ...}}.
        self.json_files: dict[str, dict[str, Any]] = {}

    def get(self, reference: str) -> Any:
        if reference.startswith("Parameters."):
            return self.values[reference.split(".", 1)[1]]
        if reference == "Execution.PipelineExecutionId":
            return self.execution_id
        match = STEP_REFERENCE.fullmatch(reference)
        if not match:
            raise KeyError(reference)
        name, path = match.groups()
        arguments = self.steps[name]["Arguments"]
        output = OUTPUT_REFERENCE.fullmatch(path)
        if output:
            (entry,) = [
                o
                for o in arguments["ProcessingOutputConfig"]["Outputs"]
                if o["OutputName"] == output.group(1)
            ]
            return self.resolve(entry["S3Output"]["S3Uri"])
        if path == "ModelArtifacts.S3ModelArtifacts":
            # SageMaker writes <S3OutputPath>/<job name>/output/model.tar.gz.
            base = self.resolve(arguments["OutputDataConfig"]["S3OutputPath"])
            return f"{base}/{name.lower()}-job/output/model.tar.gz"
        raise KeyError(reference)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Get"}:
                return self.get(value["Get"])
            if set(value) == {"Std:JsonGet"}:
                json_get = value["Std:JsonGet"]
                return self.json_files[json_get["PropertyFile"]["Get"]][json_get["Path"]]
            if set(value) == {"Std:Join"}:
                join = value["Std:Join"]
                return join["On"].join(str(self.resolve(v)) for v in join["Values"])
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value


def output_uris(execution: Execution) -> set[str]:
    """Every S3 location an execution's jobs write to."""
    uris = set()
    for step in execution.steps.values():
        arguments = step["Arguments"]
        for output in arguments.get("ProcessingOutputConfig", {}).get("Outputs", []):
            uris.add(execution.resolve(output["S3Output"]["S3Uri"]))
        if "OutputDataConfig" in arguments:
            uris.add(execution.resolve(arguments["OutputDataConfig"]["S3OutputPath"]))
    return uris


def placeholders(value: Any) -> Any:
    """The arguments with every expression replaced by a value of a plausible type."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            reference = value["Get"]
            if reference.endswith("InstanceCount"):
                return 1
            if reference.endswith("S3Uri") or reference.endswith("S3ModelArtifacts"):
                return "s3://bucket/key"
            if reference.endswith("ModelApprovalStatus"):
                return "PendingManualApproval"
            return "ml.m5.large" if "InstanceType" in reference else "value"
        if "Std:Join" in value or "Std:JsonGet" in value:
            return "s3://bucket/joined"
        return {key: placeholders(item) for key, item in value.items()}
    if isinstance(value, list):
        return [placeholders(item) for item in value]
    return value


def validate_request(operation: str, request: dict[str, Any]) -> None:
    """Raise if botocore's own service model rejects ``request`` for ``operation``."""
    model = get_session().get_service_model("sagemaker")
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    if report.has_errors():
        raise AssertionError(
            f"{operation}: {report.generate_report()}\n{json.dumps(request)[:500]}"
        )
