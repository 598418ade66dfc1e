"""Where the pipeline's settings come from: the provisioned project's environment, then defaults.

SageMaker Projects pass ``SAGEMAKER_PROJECT_NAME``, ``SAGEMAKER_PROJECT_ID``, ``ARTIFACT_BUCKET``
and ``SAGEMAKER_PIPELINE_ROLE_ARN`` to the build, so one rendered seed serves every provisioned
project; the rendered defaults (``pipelines/defaults.json``) apply on a laptop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULTS_FILE = Path(__file__).with_name("defaults.json")
# The organisation's tag set (rendered from the template's one definition); every stack gets it as
# stack-level tags and every SageMaker job and pipeline as tags of its own.
TAGS_FILE = Path(__file__).resolve().parent.parent / "infrastructure" / "tags.json"
# Written by the template from the organisation's standards file; {} when there is none.
STANDARDS_FILE = Path(__file__).resolve().parent.parent / "org-standards.json"
DEFAULT_INSTANCE = "ml.m5.large"
# Where the approved model runs (the template's inference_mode question, in defaults.json).
INFERENCE_MODES = ("realtime", "serverless", "batch")
# Gate metrics where smaller is better; the pipeline's condition and the prod quality alarm both
# turn on it. Defined once, in src/<package>/gate_metrics.json (the local gate reads it too).
GATE_METRICS_FILE = next(
    (Path(__file__).resolve().parent.parent / "src").glob("*/gate_metrics.json")
)
LOWER_IS_BETTER = frozenset(json.loads(GATE_METRICS_FILE.read_text())["lower_is_better"])


@dataclass(frozen=True)
class Network:
    """Subnets and security groups SageMaker attaches a job's or a model's network interfaces
    to; they belong to one account."""

    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Standards:
    """What the organisation enforces on every job and endpoint of this project."""

    kms_key_arn: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    network_isolation: bool = False
    instance_types: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # stage -> the account its endpoint runs in (both or none); empty: this account
    accounts: dict[str, str] = field(default_factory=dict)
    # stage -> the network of its own account (stage_vpc): the vpc standard where accounts are set
    stage_networks: dict[str, Network] = field(default_factory=dict)
    # The organisation's SageMaker managed MLflow tracking server, when it names one.
    mlflow_tracking_server_arn: str | None = None

    def default_instance(self, role: str) -> str:
        allowed = self.instance_types.get(role)
        return allowed[0] if allowed else DEFAULT_INSTANCE

    def check_instance(self, role: str, instance_type: str) -> None:
        allowed = self.instance_types.get(role)
        if allowed and instance_type not in allowed:
            raise ValueError(
                f"{role} instance type {instance_type} is not allowed by the "
                f"organisation standards ({', '.join(allowed)})"
            )


def load_standards(path: Path = STANDARDS_FILE) -> Standards:
    raw = json.loads(path.read_text()) if path.exists() else {}
    vpc = raw.get("vpc", {})
    return Standards(
        kms_key_arn=raw.get("kms_key_arn"),
        subnets=tuple(vpc.get("subnets", ())),
        security_groups=tuple(vpc.get("security_groups", ())),
        network_isolation=bool(raw.get("network_isolation", False)),
        instance_types={
            role: tuple(types) for role, types in raw.get("instance_types", {}).items()
        },
        accounts={stage: str(account) for stage, account in raw.get("accounts", {}).items()},
        stage_networks={
            stage: Network(
                subnets=tuple(network.get("subnets", ())),
                security_groups=tuple(network.get("security_groups", ())),
            )
            for stage, network in raw.get("stage_vpc", {}).items()
        },
        mlflow_tracking_server_arn=raw.get("mlflow_tracking_server_arn"),
    )


@dataclass(frozen=True)
class Settings:
    project_name: str
    project_id: str
    package: str
    region: str
    bucket: str
    role_arn: str
    tags: dict[str, str]
    sklearn_version: str
    standards: Standards = field(default_factory=Standards)
    inference_mode: str = "realtime"
    # The MLflow tracking server the pipeline's jobs log to; None: the pipeline tracks nothing.
    mlflow_tracking_arn: str | None = None
    # What the model is for, in its model card (pipelines/defaults.json "intended_use").
    intended_use: str = ""

    @property
    def pipeline_name(self) -> str:
        return f"{self.project_name}-pipeline"

    @property
    def model_package_group(self) -> str:
        return self.project_name

    @property
    def prefix(self) -> str:
        return f"s3://{self.bucket}/{self.project_name}"


def load_settings(
    environ: Mapping[str, str] | None = None, standards: Standards | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    defaults = json.loads(DEFAULTS_FILE.read_text())
    project_name = env.get("SAGEMAKER_PROJECT_NAME") or defaults["project_name"]
    project_id = env.get("SAGEMAKER_PROJECT_ID") or defaults["project_id"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or defaults["region"]
    tags = dict(json.loads(TAGS_FILE.read_text()))
    standards = standards if standards is not None else load_standards()
    if env.get("SAGEMAKER_PROJECT_NAME"):
        tags |= {"sagemaker:project-name": project_name, "sagemaker:project-id": project_id}
    return Settings(
        project_name=project_name,
        project_id=project_id,
        package=defaults["package"],
        region=region,
        bucket=env.get("ARTIFACT_BUCKET") or defaults["bucket"],
        role_arn=env.get("SAGEMAKER_PIPELINE_ROLE_ARN") or defaults["role_arn"],
        tags=tags,
        sklearn_version=defaults["sklearn_version"],
        standards=standards,
        inference_mode=inference_mode(defaults),
        mlflow_tracking_arn=tracking_arn(env, standards),
        intended_use=str(defaults.get("intended_use", "")),
    )


# What the foundation stack exports when it neither creates a tracking server nor is given one
# (an export cannot be empty); the build passes it on as MLFLOW_TRACKING_ARN.
NO_TRACKING_SERVER = "none"


def tracking_arn(environ: Mapping[str, str], standards: Standards) -> str | None:
    """The build's ``MLFLOW_TRACKING_ARN`` (foundation stack output), else the organisation's.

    The stack's "none" is final: its execution role then has no MLflow grant to use a server with.
    """
    given = environ.get("MLFLOW_TRACKING_ARN", "").strip()
    if given:
        return None if given == NO_TRACKING_SERVER else given
    return standards.mlflow_tracking_server_arn


def inference_mode(defaults: Mapping[str, str]) -> str:
    mode = defaults.get("inference_mode", "realtime")
    if mode not in INFERENCE_MODES:
        allowed = ", ".join(INFERENCE_MODES)
        raise ValueError(f"{DEFAULTS_FILE.name}: inference_mode {mode!r} is not one of {allowed}")
    return mode


def stack_tags(settings: Settings, stage: str | None = None) -> dict[str, str]:
    """The stack-level tags of every stack of the project, whichever way it is deployed.

    CloudFormation propagates them to the stack's resources; the SageMaker Projects contract
    wants ``sagemaker:project-name`` and ``sagemaker:project-id`` on each of them.
    """
    tags = settings.tags | {
        "sagemaker:project-name": settings.project_name,
        "sagemaker:project-id": settings.project_id,
    }
    return tags | ({"stage": stage} if stage else {})
