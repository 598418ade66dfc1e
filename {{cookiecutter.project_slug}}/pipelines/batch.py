"""The batch-inference pipeline: one Transform step over the newest input prefix.

python -m pipelines.batch --definition-only          # JSON definition, offline
python -m pipelines.batch --upload-input data/batch  # new input prefix, then the pointer to it

Input objects are headerless CSV: the record's id in the first column, then the features in
``schema.json`` order. ``--upload-input`` puts a folder's CSV files under
``s3://<bucket>/<project>/batch/input/<UTC time>/`` and then rewrites the pointer
``s3://<bucket>/<project>/batch/input/newest.json`` (``{"uri": <that prefix>}``): data first,
pointer last, so an execution that reads the pointer meanwhile still finds complete input.

The step reads the pointer when it runs (``Std:JsonGet`` on S3), gives the model every record
without its id (``DataProcessing.InputFilter`` ``$[1:]``), joins each answer to its input record
(``JoinSource`` Input) and keeps the id and the answer (``OutputFilter``): each output line is
``id,prediction[,probability]``, under ``batch/predictions/<execution id>/``. The job's
``DataCaptureConfig`` keeps what went in and came out under ``batch/capture/``.
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
from sagemaker.core.workflow.parameters import ParameterString
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import StepTypeEnum

from .pipeline import RequestStep, _tags
from .sagemaker_session import offline_session
from .settings import Settings, load_settings

POINTER = "newest.json"
# Columns the handler answers with for text/csv (inference.render): label and probability for a
# classifier, the value for a regressor.
ANSWER_COLUMNS = {"classification": 2, "regression": 1}
MAX_PAYLOAD_MB = 6


def input_root(settings: Settings) -> str:
    return f"{settings.prefix}/batch/input"


def output_filter(problem_type: str) -> str:
    """The id (first input column) and the handler's answer (the last columns of the join)."""
    return f"$[0,-{ANSWER_COLUMNS[problem_type]}:]"


def transform_request(settings: Settings, problem_type: str, model_name: Any) -> dict[str, Any]:
    """The ``CreateTransformJob`` request of the batch step, as the SageMaker API defines it."""
    standards = settings.standards
    pointer = Join(on="/", values=[input_root(settings), POINTER])
    resources: dict[str, Any] = {
        "InstanceType": standards.default_instance("processing"),
        "InstanceCount": 1,
    }
    output: dict[str, Any] = {
        "S3OutputPath": Join(
            on="/",
            values=[
                f"{settings.prefix}/batch/predictions",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
            ],
        ),
        "Accept": "text/csv",
        "AssembleWith": "Line",
    }
    capture: dict[str, Any] = {
        "DestinationS3Uri": f"{settings.prefix}/batch/capture",
        "GenerateInferenceId": True,
    }
    if standards.kms_key_arn:
        resources["VolumeKmsKeyId"] = standards.kms_key_arn
        output["KmsKeyId"] = standards.kms_key_arn
        capture["KmsKeyId"] = standards.kms_key_arn
    return {
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": JsonGet(s3_uri=pointer, json_path="uri"),
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "DataProcessing": {
            "InputFilter": "$[1:]",
            "JoinSource": "Input",
            "OutputFilter": output_filter(problem_type),
        },
        "DataCaptureConfig": capture,
        "Tags": _tags(settings),
    }


def get_batch_pipeline(settings: Settings, problem_type: str) -> Pipeline:
    """The batch pipeline; ``ModelName`` names the SageMaker model of the approved package."""
    model_name = ParameterString("ModelName", default_value=f"{settings.project_name}-batch")
    transform = RequestStep(
        "BatchTransform",
        StepTypeEnum.TRANSFORM,
        "DescribeTransformJobResponse",
        transform_request(settings, problem_type, model_name),
    )
    return Pipeline(
        name=f"{settings.project_name}-batch-inference",
        parameters=[model_name],
        steps=[transform],
        sagemaker_session=offline_session(settings.region),
    )


def definition(settings: Settings, problem_type: str) -> dict[str, Any]:
    return dict(json.loads(get_batch_pipeline(settings, problem_type).definition()))


def upload_input(settings: Settings, s3: Any, folder: Path, now: datetime | None = None) -> str:
    """Upload a folder's CSV files as a new input prefix, then point ``newest.json`` at it."""
    files = sorted(folder.rglob("*.csv")) if folder.is_dir() else [folder]
    if not files or not all(file.is_file() for file in files):
        raise FileNotFoundError(f"{folder}: no CSV file to upload")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H-%M-%SZ")
    prefix = f"{settings.project_name}/batch/input/{stamp}"
    for file in files:
        relative = file.relative_to(folder).as_posix() if folder.is_dir() else file.name
        s3.upload_file(str(file), settings.bucket, f"{prefix}/{relative}")
    uri = f"s3://{settings.bucket}/{prefix}/"
    pointer = f"{settings.project_name}/batch/input/{POINTER}"
    s3.put_object(Bucket=settings.bucket, Key=pointer, Body=json.dumps({"uri": uri}).encode())
    return uri


def main(argv: list[str] | None = None) -> int:
    import boto3

    from .run import pipeline_inputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--definition-only", action="store_true")
    group.add_argument("--upload-input", type=Path, metavar="CSV_FILE_OR_FOLDER")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.definition_only:
        problem_type = pipeline_inputs()["problem_type"]
        print(json.dumps(definition(settings, problem_type), indent=2))
        return 0
    s3 = boto3.client("s3", region_name=settings.region)
    try:
        uri = upload_input(settings, s3, args.upload_input)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"newest batch input: {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
