"""Print, upsert or start the SageMaker pipeline.

python -m pipelines.run --definition-only        # JSON definition, offline
python -m pipelines.run --upsert --start --wait  # what the build runs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .settings import Settings, load_settings

PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
SCHEMA_GLOB = "src/*/schema.json"
DATA_DIR = PARAMS.parent / "data" / "raw"


def pipeline_inputs(params_file: Path = PARAMS) -> dict[str, Any]:
    params = yaml.safe_load(params_file.read_text())
    schema_file = next(params_file.parent.glob(SCHEMA_GLOB))
    return {
        "problem_type": json.loads(schema_file.read_text())["problem_type"],
        "gate_metric": params["gate"]["metric"],
        "gate_threshold": float(params["gate"]["threshold"]),
        "hyperparameters": params["train"],
    }


def upload_data(settings: Settings, data_dir: Path | None = None) -> str:
    """Upload the raw CSVs under a prefix named by their content hash; return that prefix.

    The same data gives the same prefix, so an execution records which data version it trained on
    and step caching can tell an unchanged input.
    """
    import boto3

    files = sorted((data_dir or DATA_DIR).glob("*.csv"))
    digest = hashlib.md5(usedforsecurity=False)
    for file in files:
        digest.update(file.read_bytes())
    prefix = f"{settings.project_name}/data/raw/{digest.hexdigest()}"
    s3 = boto3.client("s3", region_name=settings.region)
    for file in files:
        s3.upload_file(str(file), settings.bucket, f"{prefix}/{file.name}")
    return f"s3://{settings.bucket}/{prefix}"


def build(settings: Settings, cache_steps: bool = True, session: Any = None) -> Any:
    # SDK v3's ModelTrainer asks IAM to simulate the execution role's policies when it is built;
    # building a definition needs no IAM call (the service checks the role when a step runs),
    # and the build role should not need iam:SimulatePrincipalPolicy.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    from .pipeline import get_pipeline  # the SDK is slow to import; only when needed

    return get_pipeline(settings, session=session, cache_steps=cache_steps, **pipeline_inputs())


def offline_definition(settings: Settings, cache_steps: bool = True) -> str:
    """The definition without an AWS account: the SDK's code uploads go to an in-memory S3.

    Building a definition uploads the job code; printing one needs no AWS, so it runs against
    moto with throw-away credentials (the S3 URIs in it name the real bucket all the same).
    """
    from moto import mock_aws

    fake = {
        "AWS_ACCESS_KEY_ID": "offline",
        "AWS_SECRET_ACCESS_KEY": "offline",  # pragma: allowlist secret - never sent anywhere
        "AWS_SESSION_TOKEN": "offline",
    }
    saved = {name: os.environ.get(name) for name in fake}
    os.environ.update(fake)
    try:
        with mock_aws():
            import boto3

            s3 = boto3.client("s3", region_name=settings.region)
            location = (
                {}
                if settings.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": settings.region}}
            )
            s3.create_bucket(Bucket=settings.bucket, **location)
            return str(build(settings, cache_steps=cache_steps).definition())
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
        definition = offline_definition(settings, cache_steps=not args.no_cache)
        if args.output:
            args.output.write_text(definition)
        print(json.dumps(json.loads(definition), indent=2))
        return 0
    pipeline = build(settings, cache_steps=not args.no_cache)
    definition = pipeline.definition()
    if args.output:
        args.output.write_text(definition)
    if args.upsert:
        pipeline.upsert(
            role_arn=settings.role_arn,
            tags=[{"Key": k, "Value": v} for k, v in sorted(settings.tags.items())],
        )
        print(f"upserted pipeline {settings.pipeline_name}")
    if args.start:
        parameters = {}
        if any(DATA_DIR.glob("*.csv")):
            parameters["InputDataUrl"] = upload_data(settings)
            print(f"input data: {parameters['InputDataUrl']}")
        execution = pipeline.start(parameters=parameters)
        print(f"started {execution.arn}")
        if args.wait:
            execution.wait(delay=30, max_attempts=240)
            print(f"finished: {execution.describe()['PipelineExecutionStatus']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
