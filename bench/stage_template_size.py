"""The stage template the deploy build writes, for data contracts of several widths.

    uv run --locked python bench/stage_template_size.py [TEMPLATE_DIR]

Renders the realtime, batch and serverless modes of ``TEMPLATE_DIR`` (default: this repository)
with the longest project name, gives each render a schema of N float features, and prints, per
mode and N, the size in bytes of ``endpoint.yaml`` as ``pipelines/deploy_config.py`` writes it
(``endpoint_template`` and ``template_text``), its resources and parameters: what CloudFormation's
quotas limit (51,200 bytes for a template body passed inline, 500 resources, 200 parameters).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

MODES = ("realtime", "batch", "serverless")
WIDTHS = (10, 30, 100, 500)
PROJECT_NAME = "Quarterly Demand Forecast For Retail Stores"  # the longest slug
STACK_PROJECT_NAME = "quarterly-demand-forecast-for-re"  # its SageMakerProjectName (32)


def widen(project: Path, width: int) -> None:
    (schema_file,) = (project / "src").glob("*/schema.json")
    schema = json.loads(schema_file.read_text())
    example = next(iter(schema["features"].values()))
    schema["features"] = {f"measurement_number_{i:03d}": dict(example) for i in range(width)}
    schema_file.write_text(json.dumps(schema))


def measure(project: Path, mode: str) -> str:
    """One line: the template's bytes, resources and parameters, or why the build refuses."""
    sys.path.insert(0, str(project))
    try:
        for name in [m for m in sys.modules if m == "pipelines" or m.startswith("pipelines.")]:
            del sys.modules[name]
        deploy_config = importlib.import_module("pipelines.deploy_config")
        features = deploy_config.features()
        try:
            if mode == "serverless":
                template = deploy_config.load_template()
            elif len(inspect.signature(deploy_config.endpoint_template).parameters) == 2:
                # the template before one alarm covered every feature
                template = deploy_config.endpoint_template(STACK_PROJECT_NAME, features)
            else:
                template = deploy_config.endpoint_template(features)
        except ValueError as error:
            return f"refused: {error}"
        size = len(deploy_config.template_text(template).encode())
        return (
            f"{size:,} bytes, {len(template['Resources'])} resources, "
            f"{len(template['Parameters'])} parameters"
        )
    finally:
        sys.path.remove(str(project))


def main(argv: list[str]) -> int:
    template_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as output:
        for mode in MODES:
            project = Path(
                cookiecutter(
                    str(template_dir),
                    no_input=True,
                    output_dir=str(Path(output) / mode),
                    extra_context={"inference_mode": mode, "project_name": PROJECT_NAME},
                )
            )
            for width in WIDTHS:
                widen(project, width)
                print(f"{mode:10} {width:4} features: {measure(project, mode)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
