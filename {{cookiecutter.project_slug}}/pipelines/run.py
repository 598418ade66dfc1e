"""Print, upsert or start the SageMaker pipeline.

python -m pipelines.run --definition-only        # JSON definition, offline
python -m pipelines.run --upsert --start --wait  # what the build runs
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from .settings import Settings, load_settings

PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
SCHEMA_GLOB = "src/*/schema.json"
DATA_DIR = PARAMS.parent / "data" / "raw"
OFFLINE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "offline",
    "AWS_SECRET_ACCESS_KEY": "offline",  # pragma: allowlist secret - never sent anywhere
    "AWS_SESSION_TOKEN": "offline",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def pipeline_inputs(params_file: Path = PARAMS) -> dict[str, Any]:
    """What the pipeline takes from the project: gate, hyperparameters and the report section.

    The schema beside ``params_file`` (``src/<package>/schema.json``) decides the section of the
    evaluation report the gate reads, through the evaluate module's own rule.
    """
    params = yaml.safe_load(params_file.read_text())
    schema_file = next(params_file.parent.glob(SCHEMA_GLOB))
    package = load_settings().package  # this project's code reads the schema it is given
    data = importlib.import_module(f"{package}.data")
    evaluate = importlib.import_module(f"{package}.evaluate")
    estimator = importlib.import_module(f"{package}.estimator")
    schema = data.load_schema(schema_file)
    return {
        "problem_type": schema.problem_type,
        "gate_metric": params["gate"]["metric"],
        "gate_threshold": float(params["gate"]["threshold"]),
        "hyperparameters": params["train"],
        "report_section": evaluate.schema_section(schema),
        # The data-quality baseline's completeness constraints allow what the local monitor does.
        "missing_shift": float(params["monitor"]["missing_shift"]),
        # The library the model is trained with, as the lock installs it everywhere.
        "model_framework": " ".join(
            f"{name} {version}" for name, version in estimator.framework_versions().items()
        ),
    }


def data_files(data_dir: Path = DATA_DIR) -> tuple[list[Path], str]:
    """Every CSV under ``data_dir`` (nested too), sorted, and the SHA-256 over names and bytes."""
    files = sorted(data_dir.rglob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV file under {data_dir}")
    digest = hashlib.sha256()
    for file in files:
        content = file.read_bytes()
        digest.update(f"{file.relative_to(data_dir).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return files, digest.hexdigest()


def upload_data(settings: Settings, s3: Any, data_dir: Path = DATA_DIR) -> dict[str, Any]:
    """Upload the raw CSVs under their content hash, then point the current data at them.

    Returns the pointer record. The data goes first and the pointer last, so a run that reads
    the pointer meanwhile still finds complete data (the old version).
    """
    files, version = data_files(data_dir)
    prefix = f"{settings.project_name}/data/raw/{version}"
    for file in files:
        s3.upload_file(
            str(file), settings.bucket, f"{prefix}/{file.relative_to(data_dir).as_posix()}"
        )
    pointer = importlib.import_module(f"{settings.package}.data_pointer")
    record: dict[str, Any] = pointer.make_pointer(
        f"s3://{settings.bucket}/{prefix}/", version, len(files)
    )
    s3.put_object(
        Bucket=settings.bucket,
        Key=settings.data_pointer_key,
        Body=json.dumps(record).encode(),
        ContentType="application/json",
    )
    return record


def build(settings: Settings, cache_steps: bool = True, params_file: Path = PARAMS) -> Any:
    """The pipeline object; building it makes no AWS call and uploads nothing."""
    from .pipeline import get_pipeline  # the SDK is slow to import; only when needed

    inputs = pipeline_inputs(params_file)
    del inputs["problem_type"]
    return get_pipeline(settings, cache_steps=cache_steps, **inputs)


def definition(settings: Settings, cache_steps: bool = True) -> str:
    """The pipeline definition JSON, offline: no credentials, no upload, no network."""
    return str(build(settings, cache_steps=cache_steps).definition())


def create_pipeline_request(settings: Settings, pipeline_definition: str) -> dict[str, Any]:
    """The ``CreatePipeline`` request for this project's pipeline."""
    return {
        "PipelineName": settings.pipeline_name,
        "ClientRequestToken": str(uuid.uuid4()),
        "PipelineDefinition": pipeline_definition,
        "RoleArn": settings.role_arn,
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(settings.tags.items())],
    }


def update_pipeline_request(settings: Settings, pipeline_definition: str) -> dict[str, Any]:
    """The ``UpdatePipeline`` request (tags stay as created)."""
    request = create_pipeline_request(settings, pipeline_definition)
    del request["Tags"], request["ClientRequestToken"]
    return request


def start_request(settings: Settings, parameters: dict[str, str]) -> dict[str, Any]:
    """The ``StartPipelineExecution`` request; unnamed parameters keep their defaults."""
    request: dict[str, Any] = {
        "PipelineName": settings.pipeline_name,
        "ClientRequestToken": str(uuid.uuid4()),
    }
    if parameters:
        request["PipelineParameters"] = [
            {"Name": name, "Value": value} for name, value in sorted(parameters.items())
        ]
    return request


def upload_code(settings: Settings, s3: Any) -> str:
    """Upload the job code to the content-hash location the definition names; return it."""
    from .code_bundle import collect

    bundle = collect()
    bundle.upload(s3, settings.bucket, settings.project_name)
    return bundle.uri(settings.prefix)


def upsert(settings: Settings, sagemaker: Any, pipeline_definition: str) -> str:
    """Create the pipeline, or update it when it exists; return which."""
    from botocore.exceptions import ClientError

    try:
        sagemaker.describe_pipeline(PipelineName=settings.pipeline_name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "ResourceNotFound",
            "ValidationException",
        ):
            raise
        sagemaker.create_pipeline(**create_pipeline_request(settings, pipeline_definition))
        return "created"
    sagemaker.update_pipeline(**update_pipeline_request(settings, pipeline_definition))
    return "updated"


def wait(sagemaker: Any, execution_arn: str, delay: int = 30, attempts: int = 240) -> str:
    """Poll the execution until it ends; return its final status."""
    for _ in range(attempts):
        status = str(
            sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)[
                "PipelineExecutionStatus"
            ]
        )
        if status not in ("Executing", "Stopping"):
            return status
        time.sleep(delay)
    return "Executing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--definition-only", action="store_true", help="print the pipeline definition JSON and exit"
    )
    parser.add_argument("--output", type=Path, help="also write the definition to this file")
    parser.add_argument("--upsert", action="store_true", help="create or update the pipeline")
    parser.add_argument("--start", action="store_true", help="start an execution")
    parser.add_argument(
        "--upload-data",
        action="store_true",
        help="upload data/raw under its content hash and make it the current data",
    )
    parser.add_argument("--wait", action="store_true", help="wait for the execution to finish")
    parser.add_argument("--no-cache", action="store_true", help="disable step caching")
    args = parser.parse_args(argv)
    if not (args.definition_only or args.upsert or args.start or args.upload_data):
        parser.error("choose --definition-only, --upsert, --start and/or --upload-data")

    settings = load_settings()
    # The SDK creates AWS clients at import time and needs a region even to build a definition.
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.region)
    if args.definition_only:
        # Those import-time clients also resolve credentials, which without any configured means
        # asking the instance metadata service over the network. Printing a definition sends no
        # request, so this process gets throw-away credentials and the lookup is switched off.
        os.environ.update(OFFLINE_CREDENTIALS)
    pipeline_definition = definition(settings, cache_steps=not args.no_cache)
    if args.output:
        args.output.write_text(pipeline_definition)
    if args.definition_only:
        print(json.dumps(json.loads(pipeline_definition), indent=2))
        return 0
    import boto3

    session = boto3.Session(region_name=settings.region)
    sagemaker = session.client("sagemaker")
    if args.upsert or args.start:
        print(f"job code: {upload_code(settings, session.client('s3'))}")
    if args.upsert:
        action = upsert(settings, sagemaker, pipeline_definition)
        print(f"{action} pipeline {settings.pipeline_name}")
    if args.upload_data or (args.start and any(DATA_DIR.rglob("*.csv"))):
        record = upload_data(settings, session.client("s3"))
        print(f"current data: {record['uri']}")
    if args.start:
        # No parameters: the run reads the current data, as a retraining rule's run does.
        arn = str(
            sagemaker.start_pipeline_execution(**start_request(settings, {}))[
                "PipelineExecutionArn"
            ]
        )
        print(f"started {arn}")
        if args.wait:
            print(f"finished: {wait(sagemaker, arn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
