"""Print, upsert or start the SageMaker pipeline.

python -m pipelines.run --definition-only        # JSON definition, offline
python -m pipelines.run --upsert --start --wait  # what the build runs

The pipeline trains on the data ``data/raw/dataset.csv.dvc`` names, read from the DVC remote
(``make push`` puts it there): its DVC MD5 is the one data version, locally and in SageMaker.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .settings import Settings, load_settings

PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
SCHEMA_GLOB = "src/*/schema.json"
PROJECT = PARAMS.parent
DATA_DVC_FILE = PROJECT / "data" / "raw" / "dataset.csv.dvc"
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


class DataError(RuntimeError):
    """The tracked data cannot be read from the DVC remote; the message says what to do."""


@dataclass(frozen=True)
class TrackedData:
    """The data a ``.dvc`` file names: its DVC MD5 (the data version) and its remote object."""

    version: str
    url: str


def tracked_data(dvc_file: Path = DATA_DVC_FILE) -> TrackedData:
    """Where the default DVC remote keeps the data ``dvc_file`` names, by DVC's own reading."""
    dvc_config = PROJECT / ".dvc"
    # Read once per content of the files DVC reads (building a definition asks again).
    contents = tuple(
        path.read_text() if path.exists() else ""
        for path in (dvc_file, dvc_config / "config", dvc_config / "config.local")
    )
    return _tracked_data(dvc_file, contents)


@functools.cache
def _tracked_data(dvc_file: Path, contents: tuple[str, ...]) -> TrackedData:
    """``tracked_data`` of ``dvc_file`` whose DVC files hold ``contents``.

    DVC reads the ``.dvc`` file and the remote configuration (``.dvc/config`` and its local
    overrides) and lays out the object path (DVC 3: ``<remote>/files/md5/<2 hex>/<30 hex>``).
    No SCM: the files are only read, and a copy of the project without git resolves the same.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(PROJECT), config={"core": {"no_scm": True}}) as repo:
            (out,) = repo.stage.load_one(str(dvc_file)).outs
            odb = repo.cloud.get_remote_odb(None, hash_name="md5")
    except (DvcException, ValueError) as error:
        raise DataError(f"{dvc_file}: {error}") from None
    version = out.hash_info.value
    if not version:
        raise DataError(f"{dvc_file} names no data version: run `dvc add` on its data first")
    if out.hash_info.isdir:
        # A directory is a manifest object listing the files' own objects, which a SageMaker
        # input cannot put back under their names: the pipeline reads one tracked file.
        raise DataError(f"{dvc_file} tracks a folder: the pipeline reads one tracked CSV file")
    url = str(odb.fs.unstrip_protocol(odb.oid_to_path(version)))
    return TrackedData(version=version, url=url)


def check_pushed(data: TrackedData, s3: Any) -> None:
    """Refuse, in one line, to start a run on data that was never pushed to the DVC remote."""
    from botocore.exceptions import ClientError

    bucket, _, key = data.url.removeprefix("s3://").partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            raise DataError(
                f"data version {data.version} is not in the DVC remote ({data.url}): "
                "run `make push`"
            ) from None
        raise DataError(f"cannot read {data.url} ({code}): check the AWS credentials") from None


def build(settings: Settings, cache_steps: bool = True, params_file: Path = PARAMS) -> Any:
    """The pipeline object; building it makes no AWS call and uploads nothing."""
    from .pipeline import get_pipeline  # the SDK is slow to import; only when needed

    inputs = pipeline_inputs(params_file)
    del inputs["problem_type"]
    # A run started without parameters (the retraining rule) trains on the data of the commit
    # the pipeline was last upserted from.
    data_url = tracked_data().url
    return get_pipeline(settings, cache_steps=cache_steps, data_url=data_url, **inputs)


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
    parser.add_argument("--wait", action="store_true", help="wait for the execution to finish")
    parser.add_argument("--no-cache", action="store_true", help="disable step caching")
    args = parser.parse_args(argv)
    if not (args.definition_only or args.upsert or args.start):
        parser.error("choose --definition-only, --upsert and/or --start")

    settings = load_settings()
    # The SDK creates AWS clients at import time and needs a region even to build a definition.
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.region)
    if args.definition_only:
        # Those import-time clients also resolve credentials, which without any configured means
        # asking the instance metadata service over the network. Printing a definition sends no
        # request, so this process gets throw-away credentials and the lookup is switched off.
        os.environ.update(OFFLINE_CREDENTIALS)
    try:
        data = tracked_data()
        if args.start:  # before anything is uploaded or changed: the run would have no data
            import boto3

            check_pushed(data, boto3.Session(region_name=settings.region).client("s3"))
        pipeline_definition = definition(settings, cache_steps=not args.no_cache)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
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
    if args.start:
        from .pipeline import DATA_PARAMETER

        parameters = {DATA_PARAMETER: data.url}
        print(f"data version {data.version}: {data.url}")
        arn = str(
            sagemaker.start_pipeline_execution(**start_request(settings, parameters))[
                "PipelineExecutionArn"
            ]
        )
        print(f"started {arn}")
        if args.wait:
            print(f"finished: {wait(sagemaker, arn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
