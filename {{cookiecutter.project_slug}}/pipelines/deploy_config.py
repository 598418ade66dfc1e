"""Resolve the newest approved model package into per-stage CloudFormation configurations.

The deploy build (``buildspec-deploy.yml``) runs this: it writes ``endpoint.yaml`` and
``<stage>-config.json`` into the output folder, merging ``infrastructure/<stage>-config.json`` with
what only the account knows (model package, role, key, buckets, monitor image).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import boto3
import yaml

from .run import PARAMS, SCHEMA_GLOB, pipeline_inputs
from .settings import LOWER_IS_BETTER, Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent
INFRASTRUCTURE = PROJECT / "infrastructure"
STAGES = ("staging", "prod")


class DeployConfigError(RuntimeError):
    """Nothing to deploy or a configuration that does not fit the template."""


def latest_approved_package(sagemaker: Any, group: str) -> str:
    response = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    packages = response.get("ModelPackageSummaryList", [])
    if not packages:
        raise DeployConfigError(f"no approved model package in group '{group}'")
    return str(packages[0]["ModelPackageArn"])


def template_parameters(template: Path = INFRASTRUCTURE / "endpoint.yaml") -> set[str]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return set(yaml.load(template.read_text(), Loader=Loader)["Parameters"])  # noqa: S506


def _schema(project: Path = PROJECT) -> dict[str, Any]:
    return dict(json.loads(next(project.glob(SCHEMA_GLOB)).read_text()))


def first_feature() -> str:
    return str(next(iter(_schema()["features"])))


def model_quality_parameters(params_file: Path = PARAMS) -> dict[str, str]:
    """The training quality gate, restated for Model Monitor and the prod quality alarm."""
    schema = _schema(params_file.parent)  # the project the params belong to
    if schema["problem_type"] == "regression":
        problem_type = "Regression"
    elif len(schema["target"].get("allowed", ())) == 2:
        problem_type = "BinaryClassification"
    else:
        problem_type = "MulticlassClassification"
    gate = pipeline_inputs(params_file)
    metric = gate["gate_metric"]
    return {
        "ModelQualityProblemType": problem_type,
        "QualityMetric": metric,
        "QualityThreshold": str(gate["gate_threshold"]),
        "QualityAlarmComparison": (
            "GreaterThanThreshold" if metric in LOWER_IS_BETTER else "LessThanThreshold"
        ),
    }


def stage_config(
    stage: str, settings: Settings, package_arn: str, kms_key_arn: str, monitor_image: str
) -> dict[str, Any]:
    config = json.loads((INFRASTRUCTURE / f"{stage}-config.json").read_text())
    standards = settings.standards
    serving = config["Parameters"].get(
        "EndpointInstanceType", standards.default_instance("serving")
    )
    standards.check_instance("serving", serving)
    if standards.subnets:
        config["Parameters"] |= {
            "SubnetIds": ",".join(standards.subnets),
            "SecurityGroupIds": ",".join(standards.security_groups),
        }
    config["Parameters"] |= {
        "SageMakerProjectName": settings.project_name,
        "SageMakerProjectId": settings.project_id,
        "StageName": stage,
        "ModelPackageArn": package_arn,
        "ModelExecutionRoleArn": settings.role_arn,
        "KmsKeyArn": standards.kms_key_arn or kms_key_arn,
        "DataCaptureUri": f"{settings.prefix}/data-capture/{stage}",
        "MonitoringOutputUri": f"{settings.prefix}/monitoring/{stage}",
        "MonitorImageUri": monitor_image,
        "DriftAlarmFeature": first_feature(),
        "GroundTruthUri": f"{settings.prefix}/ground-truth/{stage}",
    } | model_quality_parameters()
    unknown = set(config["Parameters"]) - template_parameters()
    if unknown:
        raise DeployConfigError(f"{stage}-config.json sets unknown parameters: {sorted(unknown)}")
    config["Tags"] = settings.tags | config.get("Tags", {})
    return dict(config)


def monitor_image_uri(region: str) -> str:
    from sagemaker.core.image_uris import retrieve  # slow import, only when writing configs

    return str(retrieve(framework="model-monitor", region=region))


def write_configs(
    output: Path, settings: Settings, sagemaker: Any, kms_key_arn: str, monitor_image: str
) -> str:
    package_arn = latest_approved_package(sagemaker, settings.model_package_group)
    output.mkdir(parents=True, exist_ok=True)
    shutil.copy(INFRASTRUCTURE / "endpoint.yaml", output / "endpoint.yaml")
    for stage in STAGES:
        config = stage_config(stage, settings, package_arn, kms_key_arn, monitor_image)
        (output / f"{stage}-config.json").write_text(json.dumps(config, indent=2) + "\n")
    return package_arn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("build"))
    args = parser.parse_args(argv)
    settings = load_settings()
    kms_key_arn = os.environ.get("KMS_KEY_ARN", "") or (settings.standards.kms_key_arn or "")
    if not kms_key_arn:
        parser.error("KMS_KEY_ARN is not set (the deploy CodeBuild project sets it)")
    try:
        package = write_configs(
            args.output_dir,
            settings,
            boto3.client("sagemaker", region_name=settings.region),
            kms_key_arn,
            monitor_image_uri(settings.region),
        )
    except (DeployConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"deploying {package}; configurations in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
