"""Every template the project deploys stays within CloudFormation's quotas, for a 100-feature data
contract, on each distinct render.

The quotas (AWS CloudFormation User Guide, "Understand CloudFormation quotas",
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html):
template body in a request 51,200 bytes (1 MB from S3), 500 resources, 200 parameters,
200 outputs. ``make stack`` sends the stack templates as ``TemplateBody``
(``pipelines/stacks.py``). The deploy pipeline's CloudFormation actions read the stage template
from the deploy artifact (``TemplatePath: DeployConfig::endpoint.yaml``) and CodePipeline passes
its content to CreateStack/UpdateStack as the template body, so the 51,200-byte limit applies to
it too (the CodePipeline User Guide's quota table, corrected to 51,200 bytes in
awsdocs/aws-codepipeline-user-guide pull request #40; the same error,
"'templateBody' ... less than or equal to 51200", reported in aws/copilot-cli issue #2068).

The stage template must not grow with the data contract (it did, by one drift alarm per feature:
122 KB at 100 features). It is generated here by the deploy build's own code
(``deploy_config.endpoint_template`` and ``template_text``) for schemas of 100 and 500 features
written into a copy of the render.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import MATRIX, load_yaml, matrix_id, rendered_pipelines

TEMPLATE_BODY_BYTES = 51_200
RESOURCES, PARAMETERS, OUTPUTS = 500, 200, 200
# A wide data contract, and one five times wider.
FEATURE_COUNTS = (100, 500)


def quota_excesses(name: str, text: str, template: dict[str, Any]) -> list[str]:
    excesses = []
    size = len(text.encode())
    if size > TEMPLATE_BODY_BYTES:
        excesses.append(f"{name}: {size} bytes > {TEMPLATE_BODY_BYTES} (TemplateBody)")
    for section, limit in (
        ("Resources", RESOURCES),
        ("Parameters", PARAMETERS),
        ("Outputs", OUTPUTS),
    ):
        count = len(template.get(section) or {})
        if count > limit:
            excesses.append(f"{name}: {count} {section.lower()} > {limit}")
    return excesses


def widen_schema(project: Path, count: int) -> None:
    """Give the project a data contract of ``count`` features (float, as the sample's)."""
    (schema_file,) = (project / "src").glob("*/schema.json")
    schema = json.loads(schema_file.read_text())
    example = next(iter(schema["features"].values()))
    schema["features"] = {f"measurement_number_{i:03d}": dict(example) for i in range(count)}
    schema_file.write_text(json.dumps(schema, indent=2))


def stage_template_text(project: Path, count: int) -> tuple[str, dict[str, Any]]:
    """endpoint.yaml as the deploy build writes it for this project's data contract."""
    with rendered_pipelines(project):
        deploy_config = importlib.import_module("pipelines.deploy_config")
        assert len(deploy_config.features()) == count
        template = deploy_config.endpoint_template(deploy_config.features())
        return str(deploy_config.template_text(template)), template


def test_stack_templates_fit_the_template_body_quota(baked_matrix: dict[str, Path]) -> None:
    """Each stack ``make stack`` deploys fits, as the body it sends (pipelines/stacks.py)."""
    excesses = []
    for row, project in baked_matrix.items():
        with rendered_pipelines(project):
            stacks = importlib.import_module("pipelines.stacks")
            for path in sorted((project / "infrastructure").glob("*.yaml")):
                if path.name == "endpoint.yaml":
                    continue
                try:  # make stack refuses an oversized body itself, in one line
                    body = stacks.template_body(path)
                except stacks.StackError as error:
                    excesses.append(f"{row} {path.name}: {error}")
                    continue
                excesses += quota_excesses(f"{row} {path.name}", body, load_yaml(path))
    assert not excesses, excesses


@pytest.mark.parametrize("row", [pytest.param(row, id=matrix_id(row)) for row in MATRIX])
def test_stage_template_of_a_wide_contract_fits_the_quotas(
    baked_matrix: dict[str, Path], row: dict[str, str], tmp_path: Path
) -> None:
    project = baked_matrix[matrix_id(row)]
    copy = tmp_path / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".git", ".venv"))
    for count in FEATURE_COUNTS:
        widen_schema(copy, count)
        text, template = stage_template_text(copy, count)
        assert not quota_excesses(f"endpoint.yaml, {count} features", text, template)


def test_the_quota_check_catches_an_oversized_template() -> None:
    """The check itself: a body one byte over, and one resource over, are both caught."""
    resources = {f"R{i}": {"Type": "AWS::SNS::Topic"} for i in range(RESOURCES + 1)}
    text = "x" * (TEMPLATE_BODY_BYTES + 1)
    assert quota_excesses("t", text, {"Resources": resources}) == [
        f"t: {TEMPLATE_BODY_BYTES + 1} bytes > {TEMPLATE_BODY_BYTES} (TemplateBody)",
        f"t: {RESOURCES + 1} resources > {RESOURCES}",
    ]
