"""What the deploy tests set up: the deploy build's environment, the project's key, model packages
in the loopback registry (the ``registry`` fixture, moto) and the deploy artifact written from them.

One definition for every deploy test file, so that a change to how the pipeline registers a
package (its baseline files, its constraints) is made once.
"""

from __future__ import annotations

import importlib
import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import boto3

from pipelines import deploy_config, endpoint_requests
from pipelines.code_bundle import collect
from pipelines.settings import Settings, Standards, load_settings

# What the deploy CodeBuild project passes to the build (deploy-pipeline.yaml).
ENV = {
    "SAGEMAKER_PROJECT_NAME": "churn",
    "SAGEMAKER_PROJECT_ID": "p-1",
    "ARTIFACT_BUCKET": "artifacts",
    "AWS_REGION": "us-east-1",
    "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/pipeline",
}
KMS = "arn:aws:kms:us-east-1:123456789012:key/project"
# The stack parameters naming the uploaded pipeline definitions (deploy_config.upload_definitions).
DEFINITIONS = {
    "PipelineDefinitionBucket": "artifacts",
    "MonitorPipelineDefinitionKey": "churn/monitoring/definitions/0123abcd.json",
}
# What `train --bundle-inference-code` copies into the model's code/ folder.
RUNTIME_REQUIREMENTS = deploy_config.PROJECT / "src" / "requirements.txt"


def project_settings(standards: Standards | None = None) -> Settings:
    """The project's settings in the deploy build, under ``standards`` (default: none)."""
    return load_settings(ENV, standards=Standards() if standards is None else standards)


def constraints(**changes: Any) -> dict[str, Any]:
    """A Model Monitor constraints.json for the data contract's features."""
    document: dict[str, Any] = {
        "version": 0.0,
        "features": [
            {"name": name, "inferred_type": "Fractional", "completeness": 1.0}
            for name in deploy_config.features()
        ],
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
            },
        },
    }
    return document | changes


def baseline_of(version: int) -> dict[str, Any]:
    """Model Monitor baseline files as the pipeline registers them, one folder per execution."""
    prefix = f"s3://artifacts/churn/executions/run-{version}/baseline"
    return {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"{prefix}/statistics.json"},
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"{prefix}/constraints.json",
            },
        }
    }


def model_artifact(key: str, code: dict[str, bytes]) -> str:
    """A model.tar.gz in the loopback bucket holding ``code/<name>`` for each of ``code``."""
    buffer = io.BytesIO()
    files = {"model.joblib": b"model", **{f"code/{name}": data for name, data in code.items()}}
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket="artifacts", Key=key, Body=buffer.getvalue()
    )
    return f"s3://artifacts/{key}"


def _model_code(isolated: bool) -> dict[str, bytes]:
    """The model's code/ as `train --bundle-inference-code` writes it (model_code.py), from the
    job code the bundle ships with or without network isolation (wheels named, bytes empty)."""
    bundle = collect(isolated=isolated)
    with tempfile.TemporaryDirectory() as tmp:
        job_code = Path(tmp) / "job"
        job_code.mkdir()
        (job_code / "requirements.txt").write_bytes(RUNTIME_REQUIREMENTS.read_bytes())
        for relative in bundle.files:  # the platform library's wheel (platform-wheels/)
            if relative.endswith(".whl"):
                (job_code / relative).parent.mkdir(parents=True, exist_ok=True)
                (job_code / relative).write_bytes((bundle.root / relative).read_bytes())
        if bundle.wheels:
            (job_code / "wheels").mkdir()
            for wheel in bundle.wheels:
                (job_code / "wheels" / wheel.filename).touch()
        model_code = importlib.import_module(f"{project_settings().package}.model_code")
        model_code.write(Path(tmp) / "code", job_code)
        code = Path(tmp) / "code"
        return {
            path.relative_to(code).as_posix(): path.read_bytes()
            for path in sorted(code.rglob("*"))
            if path.is_file()
        }


def shipped_code() -> dict[str, bytes]:
    """The model's code/ trained without network isolation: it installs from the index."""
    return _model_code(isolated=False)


def vendored_code() -> dict[str, bytes]:
    """The model's code/ trained under network isolation: wheels/ and --no-index."""
    return _model_code(isolated=True)


def register(
    sagemaker: Any,
    status: str,
    baseline: bool = True,
    group: str = "churn",
    constraints_file: dict[str, Any] | None = None,
    model_data: str = "s3://artifacts/churn/m/model.tar.gz",
) -> str:
    """Register the group's next package version with ``status`` and ``model_data`` (the
    artifact's URI, an empty string for none); returns its ARN."""
    version = len(
        sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    )
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [
                {"Image": "img", **({"ModelDataUrl": model_data} if model_data else {})}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if baseline:
        request["DriftCheckBaselines"] = baseline_of(version + 1)
        uri = request["DriftCheckBaselines"]["ModelDataQuality"]["Constraints"]["S3Uri"]
        boto3.client("s3", region_name="us-east-1").put_object(
            Bucket="artifacts",
            Key=uri.removeprefix("s3://artifacts/"),
            Body=json.dumps(constraints_file or constraints()).encode(),
        )
    return str(sagemaker.create_model_package(**request)["ModelPackageArn"])


def package(version: int) -> deploy_config.Package:
    """An Approved package of the group with a baseline, as the registry would describe it."""
    return deploy_config.Package(
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/{version}",
        group="churn",
        version=version,
        status="Approved",
        baseline=deploy_config.Baseline("s3://b/statistics.json", "s3://b/constraints.json"),
        model_data=f"s3://artifacts/churn/run-{version}/model.tar.gz",
    )


def write(output: Path, sagemaker: Any, arn: str | None) -> tuple[deploy_config.Package, str]:
    """The deploy build's ``deploy_config`` run for ``arn``, writing the artifact to ``output``."""
    clients = (sagemaker, boto3.client("s3", region_name="us-east-1"))
    return deploy_config.write_configs(output, project_settings(), clients, KMS, arn)


def written_parameters(output: Path, stage: str) -> dict[str, str]:
    """The stage stack's parameters in the artifact (``<stage>-config.json``)."""
    return dict(json.loads((output / f"{stage}-config.json").read_text())["Parameters"])


def write_for_model(
    output: Path, sagemaker: Any, standards: Standards, code: dict[str, bytes]
) -> str:
    """Register an Approved package whose ``model.tar.gz`` holds ``code`` and run the deploy build
    for it under ``standards``; returns the package ARN (the build may refuse it: it raises)."""
    arn = register(sagemaker, "Approved", model_data=model_artifact("churn/m/model.tar.gz", code))
    clients = (sagemaker, boto3.client("s3", region_name="us-east-1"))
    deploy_config.write_configs(output, project_settings(standards), clients, KMS, arn)
    return arn


def stage_model(output: Path, stage: str) -> dict[str, Any]:
    """The one CreateModel request the stage stack makes, resolved with the stage's parameters
    and validated against SageMaker's service model (``endpoint_requests.model_requests``)."""
    template = deploy_config.load_template(output / "endpoint.yaml")
    (model,) = endpoint_requests.model_requests(
        template, written_parameters(output, stage)
    ).values()
    return model
