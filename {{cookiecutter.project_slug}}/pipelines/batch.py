"""The batch-inference pipeline: one Transform step over the newest input prefix.

python -m pipelines.batch --definition-only          # JSON definition, offline
python -m pipelines.batch --upload-input data/batch --stage prod  # new input, then the pointer

Input objects are headerless CSV: the record's id in the first column, then the features in
``schema.json`` order. ``--upload-input`` puts a folder's CSV files under
``s3://<bucket>/<project>/batch[/<stage>]/input/<UTC time>/`` and then rewrites the pointer
``.../input/newest.json`` (``{"uri": <that prefix>}``): data first, pointer last, so an
execution that reads the pointer meanwhile still finds complete input.

The step reads the pointer when it runs (``Std:JsonGet`` on S3), gives the model every record
without its id (``DataProcessing.InputFilter`` ``$[1:]``), joins each answer to its input record
(``JoinSource`` Input) and keeps the id and the answer (``OutputFilter``): each output line is
``id,prediction`` for a regressor, ``id,prediction,probability,probability_<label>...`` (one per
label of ``schema.json``) for a classifier, under ``batch/predictions/<execution id>/``. The job's
``DataCaptureConfig`` keeps what went in and came out under ``batch/capture/``.

Where it reads and writes are pipeline parameters (``InputRoot``, ``PredictionsRoot``,
``CaptureUri``; defaults: this project's bucket), so that one definition serves the staging and
prod stacks, whose schedules start it with their own values and model (``ModelName``).

How far it scales is each stage's too (``infrastructure/<stage>-config.json``, checked by the deploy
build against CreateTransformJob's service model): ``TransformInstanceCount`` instances share the
input prefix's objects (each object goes to one instance, so an input of many objects spreads;
one object does not), and each sends its objects' lines ``MaxPayloadInMB`` at a time
(``BatchStrategy`` MultiRecord, ``SplitType`` Line) in up to ``MaxConcurrentTransforms`` parallel
requests to the handler.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import StepTypeEnum

from .endpoint_requests import TRANSFORM_SCALE, transform_scale
from .pipeline import RequestStep, _tags
from .sagemaker_session import offline_session
from .settings import Settings, load_settings

POINTER = "newest.json"


def input_root(settings: Settings) -> str:
    return f"{settings.prefix}/batch/input"


def answer_columns(schema: dict[str, Any]) -> int:
    """Columns the handler answers with for text/csv (inference.render): the value for a
    regressor; the label, its probability and one probability per label for a classifier."""
    if schema["problem_type"] == "regression":
        return 1
    return 2 + len(schema["target"]["allowed"])


def output_filter(schema: dict[str, Any]) -> str:
    """The id (first input column) and the handler's answer (the last columns of the join)."""
    return f"$[0,-{answer_columns(schema)}:]"


PARAMETERS = ("ModelName", "InputRoot", "PredictionsRoot", "CaptureUri")


def parameters(settings: Settings) -> dict[str, ParameterString | ParameterInteger]:
    """The pipeline's parameters with this project's defaults (what a schedule passes instead):
    where it reads and writes, and how far it scales (``TRANSFORM_SCALE``: one instance, the API's
    defaults otherwise)."""
    defaults = {
        "ModelName": f"{settings.project_name}-batch",
        "InputRoot": input_root(settings),
        "PredictionsRoot": f"{settings.prefix}/batch/predictions",
        "CaptureUri": f"{settings.prefix}/batch/capture",
    }
    given: dict[str, ParameterString | ParameterInteger] = {
        name: ParameterString(name, default_value=defaults[name]) for name in PARAMETERS
    }
    for name, default in TRANSFORM_SCALE.items():
        given[name] = ParameterInteger(name, default_value=default)
    return given


def transform_request(
    settings: Settings,
    schema: dict[str, Any],
    given: dict[str, ParameterString | ParameterInteger],
) -> dict[str, Any]:
    """The ``CreateTransformJob`` request of the batch step, as the SageMaker API defines it;
    ``schema`` is the ``schema.json`` document (what the model answers with)."""
    standards = settings.standards
    pointer = Join(on="/", values=[given["InputRoot"], POINTER])
    scale = transform_scale(given)
    resources: dict[str, Any] = {
        "InstanceType": standards.default_instance("processing"),
        **scale.pop("TransformResources"),
    }
    output: dict[str, Any] = {
        "S3OutputPath": Join(
            on="/", values=[given["PredictionsRoot"], ExecutionVariables.PIPELINE_EXECUTION_ID]
        ),
        "Accept": "text/csv",
        "AssembleWith": "Line",
    }
    capture: dict[str, Any] = {
        "DestinationS3Uri": given["CaptureUri"],
        "GenerateInferenceId": True,
    }
    if standards.kms_key_arn:
        resources["VolumeKmsKeyId"] = standards.kms_key_arn
        output["KmsKeyId"] = standards.kms_key_arn
        capture["KmsKeyId"] = standards.kms_key_arn
    return {
        "ModelName": given["ModelName"],
        **scale,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": JsonGet(s3_uri=pointer, json_path="uri"),
                }
            },
            "ContentType": "text/csv",
            # Records are lines: many of them per request (BatchStrategy MultiRecord).
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "DataProcessing": {
            "InputFilter": "$[1:]",
            "JoinSource": "Input",
            "OutputFilter": output_filter(schema),
        },
        "DataCaptureConfig": capture,
        "Tags": _tags(settings),
    }


def get_batch_pipeline(settings: Settings, schema: dict[str, Any]) -> Pipeline:
    """The batch pipeline; ``ModelName`` names the SageMaker model of the approved package."""
    given = parameters(settings)
    transform = RequestStep(
        "BatchTransform",
        StepTypeEnum.TRANSFORM,
        "DescribeTransformJobResponse",
        transform_request(settings, schema, given),
    )
    return Pipeline(
        name=f"{settings.project_name}-batch-inference",
        parameters=list(given.values()),
        steps=[transform],
        sagemaker_session=offline_session(settings.region),
    )


def definition(settings: Settings, schema: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(get_batch_pipeline(settings, schema).definition()))


def upload_input(
    settings: Settings,
    s3: Any,
    folder: Path,
    now: datetime | None = None,
    root: str | None = None,
) -> str:
    """Upload a folder's CSV files as a new input prefix under ``root`` (default: the project's
    ``batch/input``), then point ``<root>/newest.json`` at it; return the new prefix."""
    files = sorted(folder.rglob("*.csv")) if folder.is_dir() else [folder]
    if not files or not all(file.is_file() for file in files):
        raise FileNotFoundError(f"{folder}: no CSV file to upload")
    bucket, _, base = (root or input_root(settings)).removeprefix("s3://").partition("/")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H-%M-%SZ")
    prefix = f"{base.rstrip('/')}/{stamp}"
    for file in files:
        relative = file.relative_to(folder).as_posix() if folder.is_dir() else file.name
        s3.upload_file(str(file), bucket, f"{prefix}/{relative}")
    uri = f"s3://{bucket}/{prefix}/"
    pointer = f"{base.rstrip('/')}/{POINTER}"
    s3.put_object(Bucket=bucket, Key=pointer, Body=json.dumps({"uri": uri}).encode())
    return uri


def main(argv: list[str] | None = None) -> int:
    import boto3

    from .run import PARAMS, SCHEMA_GLOB

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--definition-only", action="store_true")
    group.add_argument("--upload-input", type=Path, metavar="CSV_FILE_OR_FOLDER")
    parser.add_argument(
        "--stage",
        choices=("staging", "prod"),
        help="upload for a stage's schedule (batch/<stage>/input, as the stage stack passes it)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.definition_only:
        schema = json.loads(next(PARAMS.parent.glob(SCHEMA_GLOB)).read_text())
        print(json.dumps(definition(settings, schema), indent=2))
        return 0
    s3 = boto3.client("s3", region_name=settings.region)
    try:
        root = f"{settings.prefix}/batch/{args.stage}/input" if args.stage else None
        uri = upload_input(settings, s3, args.upload_input, root=root)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"newest batch input: {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
