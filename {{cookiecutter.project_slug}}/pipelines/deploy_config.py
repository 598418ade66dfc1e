"""Resolve the model package to deploy into per-stage CloudFormation configurations.

The deploy build (``buildspec-deploy.yml``) runs this with ``MODEL_PACKAGE_ARN`` set to the package
whose approval started the deploy (the approval event carries it; see
``infrastructure/deploy-pipeline.yaml``). That package is deployed, whatever else is approved: a
re-approved older version is a rollback. A package that is not Approved, belongs to another group
or has no data-quality baseline whose ``constraints.json`` lets Model Monitor publish a drift
metric for every feature is refused. Without ``MODEL_PACKAGE_ARN`` (a manual run) the
newest Approved package is deployed, and the build says so.

It writes ``endpoint.yaml`` (the stage template, the same for every data contract:
``pipelines/drift_alarms.py`` says why) and ``<stage>-config.json`` into the output folder,
merging ``infrastructure/<stage>-config.json`` with what only the account knows (package, model
artifact, role, key, buckets), and uploads the definitions of the pipelines the stage stacks
create (monitoring; batch: batch inference too) with the job code they run.

A real-time stage's ``Deployment`` settings (``pipelines/rollout.py``) say how its endpoint is
updated (blue/green, rolled back on its alarms) and what the package does there: ``replace`` the
champion, or join it as a ``shadow`` or ``ab`` challenger; the champion is read from the live
endpoint (``pipelines/deployed.py``). ``MODEL_PACKAGE_ARN=promote`` or ``discard`` makes each
stage's challenger its champion, or removes it. Before writing, the stack's SageMaker requests
are validated against botocore's service model (``pipelines/endpoint_requests.py``).

With staging and prod in accounts of their own (``accounts`` in ``org-standards.json``), each
stage's configuration names what ``infrastructure/target-account.yaml`` creates in that account
(model role, stage key by its alias, data bucket) and this, the build account, as the one whose
registry holds the package and whose event bus receives the prod alarms. It refuses accounts that
differ from the deploy stack's ``StagingAccountId``/``ProdAccountId`` or that are the account it
runs in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

from . import deployed, drift_alarms, endpoint_requests, offline_install, rollout
from .run import PARAMS, SCHEMA_GLOB, pipeline_inputs
from .settings import (
    LOWER_IS_BETTER,
    Network,
    Settings,
    Standards,
    load_settings,
    stack_tags,
)

PROJECT = Path(__file__).resolve().parent.parent
INFRASTRUCTURE = PROJECT / "infrastructure"
STAGES = ("staging", "prod")
# Set by the deploy stack (deploy-pipeline.yaml) from its StagingAccountId / ProdAccountId.
ACCOUNT_VARIABLES = {"staging": "STAGING_ACCOUNT_ID", "prod": "PROD_ACCOUNT_ID"}
PACKAGE_ARN_VARIABLE = "MODEL_PACKAGE_ARN"
# The deploy pipeline's ModelPackageArn default: a manual start that names no package.
MANUAL_RUN = "newest-approved"
# The other values the deploy pipeline's ModelPackageArn takes (make promote / make discard).
DEPLOY, PROMOTE, DISCARD = "deploy", "promote", "discard"
APPROVED = "Approved"


class DeployConfigError(RuntimeError):
    """Nothing to deploy or a configuration that does not fit the template."""


@dataclass(frozen=True)
class Baseline:
    """Model Monitor's data-quality baseline files registered with the package."""

    statistics_uri: str
    constraints_uri: str


@dataclass(frozen=True)
class TargetAccount:
    """What infrastructure/target-account.yaml creates in a stage's own account, by name."""

    account: str
    model_role_arn: str
    key_alias_arn: str
    data_bucket: str


def _partition(region: str) -> str:
    return str(boto3.session.Session().get_partition_for_region(region))


def target_account(stage: str, account: str, settings: Settings) -> TargetAccount:
    """The names target-account.yaml gives its resources, read from the template itself."""
    resources = load_template(INFRASTRUCTURE / "target-account.yaml")["Resources"]
    partition = _partition(settings.region)
    values = {
        "SageMakerProjectName": settings.project_name,
        "StageName": stage,
        "AWS::AccountId": account,
        "AWS::Region": settings.region,
        "AWS::Partition": partition,
    }

    def named(logical: str, name_property: str) -> str:
        text = str(resources[logical]["Properties"][name_property]["Fn::Sub"])
        return re.sub(r"\$\{([^}]+)\}", lambda match: values[match.group(1)], text)

    return TargetAccount(
        account=account,
        model_role_arn=(
            f"arn:{partition}:iam::{account}:role/{named('ModelExecutionRole', 'RoleName')}"
        ),
        key_alias_arn=(
            f"arn:{partition}:kms:{settings.region}:{account}:{named('StageKeyAlias', 'AliasName')}"
        ),
        data_bucket=named("DataBucket", "BucketName"),
    )


def target_accounts(
    accounts: Mapping[str, str], build_account: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """The stages' accounts of org-standards.json, once the deploy stack and STS agree.

    The deploy stack's action roles were made for its StagingAccountId / ProdAccountId; stage
    configurations for other accounts would name roles that pipeline cannot use. An account that
    is the build account (where this runs) is no separate account.
    """
    configured = {stage: accounts.get(stage, "") for stage in STAGES}
    deployed = {stage: environ.get(variable, "") for stage, variable in ACCOUNT_VARIABLES.items()}
    if configured != deployed:

        def shown(accounts: Mapping[str, str]) -> str:
            return ", ".join(f"{stage} {account}" for stage, account in accounts.items() if account)

        raise DeployConfigError(
            f"org-standards.json names the accounts {shown(configured) or 'none'} but the deploy "
            f"stack was deployed for {shown(deployed) or 'none'} (StagingAccountId, "
            "ProdAccountId): deploy it with the accounts of org-standards.json"
        )
    for stage, account in configured.items():
        if account and account == build_account:
            raise DeployConfigError(
                f"accounts.{stage} in org-standards.json is {account}, the account this deploy "
                "runs in (the build account, with the pipeline and the registry): a separate "
                "account must be another one"
            )
    return {stage: account for stage, account in configured.items() if account}


@dataclass(frozen=True)
class Package:
    arn: str
    group: str
    version: int
    status: str
    baseline: Baseline | None
    # The model artifact (model.tar.gz with code/), as the package's container names it.
    model_data: str = ""


def describe_package(sagemaker: Any, arn: str) -> Package:
    try:
        response = sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        raise DeployConfigError(
            f"model package {arn} cannot be read: {error.response['Error']['Message']}"
        ) from error
    quality = response.get("DriftCheckBaselines", {}).get("ModelDataQuality", {})
    statistics = quality.get("Statistics", {}).get("S3Uri")
    constraints = quality.get("Constraints", {}).get("S3Uri")
    containers = response.get("InferenceSpecification", {}).get("Containers") or [{}]
    return Package(
        arn=str(response["ModelPackageArn"]),
        group=str(response.get("ModelPackageGroupName", "")),
        version=int(response.get("ModelPackageVersion", 0)),
        status=str(response.get("ModelApprovalStatus", "")),
        baseline=(
            Baseline(statistics_uri=statistics, constraints_uri=constraints)
            if statistics and constraints
            else None
        ),
        model_data=str(containers[0].get("ModelDataUrl", "")),
    )


def latest_approved_package(sagemaker: Any, group: str) -> str:
    response = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus=APPROVED,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    packages = response.get("ModelPackageSummaryList", [])
    if not packages:
        raise DeployConfigError(f"no approved model package in group '{group}'")
    return str(packages[0]["ModelPackageArn"])


def resolve_package(sagemaker: Any, group: str, requested_arn: str | None) -> tuple[Package, str]:
    """The package to deploy and one line saying why it is that one; refuses what must not ship."""
    if requested_arn and requested_arn != MANUAL_RUN:
        package = describe_package(sagemaker, requested_arn)
        reason = "the package whose approval started this deploy"
    else:
        package = describe_package(sagemaker, latest_approved_package(sagemaker, group))
        reason = (
            f"no {PACKAGE_ARN_VARIABLE} given (manual run), so the newest Approved package; "
            "start the deploy pipeline with ModelPackageArn=<arn> to choose another"
        )
    if package.group != group:
        raise DeployConfigError(
            f"model package {package.arn} belongs to group '{package.group}', "
            f"not to this project's group '{group}'"
        )
    if package.status != APPROVED:
        raise DeployConfigError(
            f"model package {package.arn} is {package.status or 'without a status'}, "
            f"not {APPROVED}: refusing to deploy it"
        )
    if package.baseline is None:
        raise DeployConfigError(
            f"model package {package.arn} has no data-quality baseline "
            "(DriftCheckBaselines.ModelDataQuality Statistics and Constraints): its drift alarms "
            "could never fire; register it with one (the project's pipeline does)"
        )
    return package, f"deploying {group} version {package.version} ({package.arn}): {reason}"


def check_baseline(s3: Any, baseline: Baseline, feature_names: list[str]) -> None:
    """Refuse a baseline whose constraints.json would leave the drift alarms without data.

    Model Monitor publishes ``feature_baseline_drift_<feature>`` only for the features the
    baseline names, and only when the constraints file enables metrics and distribution
    comparison; anything else would deploy alarms that can never fire.
    """
    uri = baseline.constraints_uri
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        constraints = json.loads(body)
    except ClientError as error:
        raise DeployConfigError(
            f"cannot read the baseline constraints {uri}: {error.response['Error']['Message']}"
        ) from error
    except ValueError as error:
        raise DeployConfigError(f"the baseline constraints {uri} are not JSON: {error}") from error
    config = constraints.get("monitoring_config", {})
    distribution = config.get("distribution_constraints", {})
    for setting, value in (
        ("emit_metrics", config.get("emit_metrics")),
        ("distribution_constraints.perform_comparison", distribution.get("perform_comparison")),
    ):
        if value != "Enabled":
            raise DeployConfigError(
                f"{uri}: monitoring_config.{setting} is {value!r}, not 'Enabled': Model Monitor "
                "would publish no drift metrics"
            )
    named = {feature.get("name") for feature in constraints.get("features", [])}
    unnamed = [name for name in feature_names if name not in named]
    if unnamed:
        raise DeployConfigError(
            f"{uri} has no constraints for {len(unnamed)} feature(s) of schema.json "
            f"({', '.join(unnamed[:5])}): their drift would never be measured"
        )


def model_code(s3: Any, package: Package) -> tuple[str, list[str]]:
    """The package's ``code/requirements.txt`` ("" when absent) and the paths under ``code/``,
    read from its model artifact as the serving container unpacks it."""
    if not package.model_data:
        raise DeployConfigError(
            f"model package {package.arn} names no ModelDataUrl: its code/ cannot be checked"
        )
    bucket, _, key = package.model_data.removeprefix("s3://").partition("/")
    requirements, files = "", []
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        with tarfile.open(fileobj=body, mode="r|*") as archive:  # streamed, never all in memory
            for member in archive:
                path = member.name.removeprefix("./")
                if not path.startswith("code/") or not member.isfile():
                    continue
                files.append(path.removeprefix("code/"))
                if path == "code/requirements.txt":
                    extracted = archive.extractfile(member)
                    requirements = extracted.read().decode() if extracted else ""
    except ClientError as error:
        raise DeployConfigError(
            f"cannot read the model artifact {package.model_data}: "
            f"{error.response['Error']['Message']}"
        ) from error
    except tarfile.TarError as error:
        raise DeployConfigError(
            f"the model artifact {package.model_data} is not a tar archive: {error}"
        ) from error
    return requirements, files


def check_offline_start(s3: Any, package: Package) -> None:
    """Under network isolation, refuse a model the serving image could not install offline.

    The SageMaker scikit-learn image pip-installs the model's code/ before it serves; with no
    network that fails unless code/ carries every wheel it needs, and the container never starts
    (``pipelines/offline_install.py`` says what it needs and why).
    """
    requirements, files = model_code(s3, package)
    problems = offline_install.blockers(requirements, files, offline_install.load_image())
    if problems:
        raise DeployConfigError(offline_install.refusal(f"model package {package.arn}", problems))


# libyaml's parser where PyYAML has it: the pure-Python one takes half a second per read of
# endpoint.yaml, and a deploy build reads it several times.
_SafeLoader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _CloudFormationLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """YAML with CloudFormation's short-form tags, read as their long (JSON) form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(template: Path = INFRASTRUCTURE / "endpoint.yaml") -> dict[str, Any]:
    return dict(yaml.load(template.read_text(), Loader=_CloudFormationLoader))  # noqa: S506


def endpoint_template(features: list[str]) -> dict[str, Any]:
    """``endpoint.yaml`` for a data contract whose drift the monitoring job can publish (its
    alarms watch the job's per-run count of drifted features, whatever the features)."""
    drift_alarms.check_features(features)
    return load_template()


def template_text(template: dict[str, Any]) -> str:
    """The stage template as the deploy artifact carries it (the CloudFormation action's
    TemplatePath)."""
    return yaml.safe_dump(template, sort_keys=False, width=1000)


def template_parameters(template: Path = INFRASTRUCTURE / "endpoint.yaml") -> dict[str, Any]:
    return dict(load_template(template)["Parameters"])


def _schema(project: Path = PROJECT) -> dict[str, Any]:
    return dict(json.loads(next(project.glob(SCHEMA_GLOB)).read_text()))


def features() -> list[str]:
    """The model's input columns, in order: the data contract the drift alarms cover."""
    return [str(name) for name in _schema()["features"]]


def model_quality_parameters(params_file: Path = PARAMS) -> dict[str, str]:
    """The training quality gate, restated for the prod quality alarm on the metric the
    monitoring job publishes."""
    gate = pipeline_inputs(params_file)
    metric = gate["gate_metric"]
    return {
        "QualityMetric": metric,
        "QualityThreshold": str(gate["gate_threshold"]),
        "QualityAlarmComparison": (
            "GreaterThanThreshold" if metric in LOWER_IS_BETTER else "LessThanThreshold"
        ),
    }


@dataclass(frozen=True)
class StagePlan:
    """What one stage's endpoint serves after this deploy, and how the update is made."""

    champion: Package
    challenger: Package | None
    deployment: rollout.Deployment | None  # None for a serverless endpoint (one variant)
    # False when the update adds or removes a variant: SageMaker's blue/green guardrails need
    # the variant names unchanged (deployment guardrails, "Exclusions").
    guarded: bool = True


def read_stage_settings(stage: str) -> dict[str, Any]:
    return dict(json.loads((INFRASTRUCTURE / f"{stage}-config.json").read_text()))


def stage_deployment(stage: str, config: dict[str, Any] | None = None) -> rollout.Deployment:
    """The stage's ``Deployment`` settings, checked against SageMaker's rules."""
    config = config if config is not None else read_stage_settings(stage)
    instances = int(config["Parameters"].get("EndpointInstanceCount", 1))
    return rollout.read_deployment(
        f"{stage}-config.json Deployment", config.get("Deployment", {}), instances
    )


def stage_config(
    stage: str,
    settings: Settings,
    plan: StagePlan,
    kms_key_arn: str,
    definitions: Mapping[str, str],
    target: TargetAccount | None = None,
    build_account: str = "",
) -> dict[str, Any]:
    """``infrastructure/<stage>-config.json`` completed with what only the account knows.

    ``target``: the stage's own account (with ``build_account``); ``definitions``: the uploaded
    pipeline definitions' parameters (:func:`upload_definitions`). A realtime endpoint also gets
    its network, data capture, monitoring and alarm parameters; a serverless one has none of
    those (SageMaker supports neither VPC nor data capture for it), so the template asks for
    none.
    """
    config = read_stage_settings(stage)
    config.pop("Deployment", None)  # the deploy settings become template parameters below
    standards = settings.standards
    package = plan.champion
    config["Parameters"] |= {
        "SageMakerProjectName": settings.project_name,
        "SageMakerProjectId": settings.project_id,
        "StageName": stage,
        "ModelPackageArn": package.arn,
        "ModelExecutionRoleArn": settings.role_arn,
        "KmsKeyArn": standards.kms_key_arn or kms_key_arn,
    }
    if target is not None:
        config["Parameters"] |= {
            "ModelExecutionRoleArn": target.model_role_arn,
            "KmsKeyArn": target.key_alias_arn,
        }
    if settings.inference_mode == "realtime":
        serving = config["Parameters"].get(
            "EndpointInstanceType", standards.default_instance("serving")
        )
        standards.check_instance("serving", serving)
        config["Parameters"] |= realtime_parameters(
            stage, settings, package, target, build_account
        ) | dict(definitions)
        if plan.deployment is not None:
            config["Parameters"] |= {
                "ChallengerPackageArn": (plan.challenger or package).arn
            } | rollout.template_parameters(plan.deployment, plan.guarded)
    elif settings.inference_mode == "batch":
        config["Parameters"] |= batch_parameters(
            stage, settings, package, target, build_account
        ) | dict(definitions)
    else:
        check_serverless(stage, config["Parameters"], standards)
    check_parameters(stage, config["Parameters"])
    config["Tags"] = stack_tags(settings, stage) | config.get("Tags", {})
    return dict(config)


def check_parameters(stage: str, given: dict[str, Any], complete: bool = True) -> None:
    """Refuse a parameter the stage stack does not declare, and (``complete``) a missing one."""
    parameters = template_parameters()
    unknown = set(given) - set(parameters)
    if unknown:
        raise DeployConfigError(f"{stage}-config.json sets unknown parameters: {sorted(unknown)}")
    missing = sorted(
        name
        for name, declared in parameters.items()
        if "Default" not in declared and name not in given
    )
    if complete and missing:
        raise DeployConfigError(f"{stage}: no value for the template parameters {missing}")


def check_serverless(stage: str, parameters: dict[str, Any], standards: Standards) -> None:
    """Refuse what SageMaker would refuse only once the stack is half deployed."""
    if standards.subnets or standards.network_isolation:
        raise DeployConfigError(
            "the organisation standards require a VPC or network isolation, which serverless "
            "endpoints do not support"
        )
    provisioned = int(parameters.get("ProvisionedConcurrency", 0))
    maximum = int(parameters.get("MaxConcurrency", 1))
    if provisioned > maximum:
        raise DeployConfigError(
            f"{stage}-config.json: ProvisionedConcurrency {provisioned} is more than "
            f"MaxConcurrency {maximum} (SageMaker requires at most MaxConcurrency)"
        )


def isolation_parameters(standards: Standards) -> dict[str, str]:
    """The model's network isolation: the organisation standards' (write_configs refuses it for a
    model that could not start without network)."""
    return {"NetworkIsolation": "true" if standards.network_isolation else "false"}


def realtime_parameters(
    stage: str,
    settings: Settings,
    package: Package,
    target: TargetAccount | None = None,
    build_account: str = "",
) -> dict[str, str]:
    """Network, data capture and monitoring parameters of an instance-based endpoint."""
    data = stage_data_prefix(settings, target)
    return (
        isolation_parameters(settings.standards)
        | network_parameters(stage, settings, target)
        | monitoring_parameters(stage, data, package)
        | build_account_parameters(target, build_account)
        | {
            "DataCaptureUri": f"{data}/data-capture/{stage}",
            "GroundTruthUri": f"{data}/ground-truth/{stage}",
        }
        | model_quality_parameters()
    )


def build_account_parameters(target: TargetAccount | None, build_account: str) -> dict[str, str]:
    """With ``target`` (the stage in an account of its own), the build account, whose event bus
    gets prod's alarms."""
    return {"BuildAccountId": build_account} if target is not None else {}


def stage_data_prefix(settings: Settings, target: TargetAccount | None) -> str:
    """Where the stage's data lives: the project's prefix, or its own account's data bucket."""
    if target is None:
        return settings.prefix
    return f"s3://{target.data_bucket}/{settings.project_name}"


def network_parameters(
    stage: str, settings: Settings, target: TargetAccount | None
) -> dict[str, str]:
    """The subnets and security groups of the stage's model and monitoring jobs: the standards'
    ``vpc`` in this account; in an account of its own, that account's network (``stage_vpc``),
    since subnets belong to one account. A stage the vpc standard leaves without a network is
    refused, never deployed outside any VPC."""
    standards = settings.standards
    if standards.stage_networks and not (standards.subnets and standards.accounts):
        raise DeployConfigError(
            "org-standards.json: stage_vpc is given without both vpc and accounts, so it would "
            "apply to nothing; it names the networks of the accounts of their own"
        )
    if not standards.subnets:
        return {}
    network = Network(standards.subnets, standards.security_groups)
    if target is not None:
        network = standards.stage_networks.get(stage, Network())
        if not (network.subnets and network.security_groups):
            raise DeployConfigError(
                f"org-standards.json: stage_vpc.{stage}: the vpc standard applies to the {stage} "
                f"account {target.account} too, whose network is not named: give its subnets and "
                "security_groups (subnets belong to one account)"
            )
    return {
        "SubnetIds": ",".join(network.subnets),
        "SecurityGroupIds": ",".join(network.security_groups),
    }


def monitoring_parameters(stage: str, data: str, package: Package) -> dict[str, str]:
    """What the stage's monitoring job needs: the model artifact whose ``baseline.json`` live (or
    batch) inputs are compared with, and where its reports land (under ``data``)."""
    if not package.model_data.startswith("s3://"):
        raise DeployConfigError(
            f"model package {package.arn} names no ModelDataUrl: its monitoring job would have "
            "no training baseline"
        )
    return {"MonitoringOutputUri": f"{data}/monitoring/{stage}", "ModelDataUri": package.model_data}


def required_baseline(package: Package) -> Baseline:
    """The package's data-quality baseline (resolve_package and _serving_package refuse a
    package without one, so this only fails when a caller skipped them)."""
    if package.baseline is None:
        raise DeployConfigError(f"model package {package.arn} has no data-quality baseline")
    return package.baseline


def upload_definition(settings: Settings, s3: Any, kind: str, definition: dict[str, Any]) -> str:
    """Upload a pipeline definition under ``<project>/<kind>/definitions/<SHA-256>.json``; return
    the key. Both stages' stacks create their pipeline from it (AWS::SageMaker::Pipeline reads it
    from S3); their schedules pass each stage's values as pipeline parameters."""
    import hashlib

    body = json.dumps(definition, sort_keys=True).encode()
    key = f"{settings.project_name}/{kind}/definitions/{hashlib.sha256(body).hexdigest()}.json"
    try:
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
    except ClientError as error:
        raise DeployConfigError(
            f"cannot upload the {kind} pipeline definition to s3://{settings.bucket}/{key}: "
            f"{error.response['Error']['Message']}"
        ) from error
    return key


def upload_definitions(settings: Settings, s3: Any, monitor_role: str) -> dict[str, str]:
    """Upload the definitions of the pipelines the stage stacks create, and the job code the
    monitoring pipeline runs; return the stack parameters naming them.

    Every stage stack of a realtime or batch project monitors its prod
    (``pipelines/monitoring.py``); a batch stack also runs batch inference (``pipelines/batch.py``).
    The monitoring job runs as ``monitor_role``, prod's model role.
    """
    # The SageMaker SDK: imported only when a deploy needs a definition.
    from . import batch, monitoring
    from .code_bundle import collect

    code = collect()
    try:
        code.upload(s3, settings.bucket, settings.project_name)
    except ClientError as error:
        raise DeployConfigError(
            f"cannot upload the job code to {code.uri(settings.prefix)}: "
            f"{error.response['Error']['Message']}"
        ) from error
    parameters = {
        "PipelineDefinitionBucket": settings.bucket,
        "MonitorPipelineDefinitionKey": upload_definition(
            settings,
            s3,
            "monitoring",
            monitoring.definition(dataclasses.replace(settings, role_arn=monitor_role), code),
        ),
    }
    if settings.inference_mode == "batch":
        parameters["PipelineDefinitionKey"] = upload_definition(
            settings, s3, "batch", batch.definition(settings, _schema())
        )
    return parameters


def batch_parameters(
    stage: str,
    settings: Settings,
    package: Package,
    target: TargetAccount | None = None,
    build_account: str = "",
) -> dict[str, str]:
    """Where the stage's batch pipeline reads and writes, its monitoring job and the drift
    alarms on it."""
    data = stage_data_prefix(settings, target)
    return (
        isolation_parameters(settings.standards)
        | network_parameters(stage, settings, target)
        | {"BatchDataUri": f"{data}/batch/{stage}"}
        | monitoring_parameters(stage, data, package)
        | build_account_parameters(target, build_account)
    )


def endpoint_name(settings: Settings, stage: str) -> str:
    """The stage's endpoint, as endpoint.yaml names it (${SageMakerProjectName}-${StageName})."""
    return f"{settings.project_name}-{stage}"


def _live(sagemaker: Any, settings: Settings, stage: str, needed: bool) -> deployed.Serving | None:
    """What the stage serves now. A replace deploy only uses it to know whether the variants
    change; when the endpoint cannot be read (in another account), it is taken to keep them."""
    try:
        return deployed.serving(sagemaker, endpoint_name(settings, stage))
    except deployed.EndpointReadError as error:
        if needed:
            raise DeployConfigError(str(error)) from error
        return None


def _serving_package(sagemaker: Any, arn: str, role: str) -> Package:
    package = describe_package(sagemaker, arn)
    if package.baseline is None:
        raise DeployConfigError(f"the {role} {arn} has no data-quality baseline")
    return package


def plan_stage(
    sagemaker: Any,
    stage: str,
    live: deployed.Serving | None,
    action: str,
    new: Package | None,
) -> tuple[StagePlan, str]:
    """What the stage serves after this deploy, and one phrase saying so.

    ``live`` is what the stage's endpoint serves now (None: no endpoint yet). ``action`` is
    ``deploy`` (``new`` is the approved package), ``promote`` (the challenger becomes the
    champion) or ``discard`` (the challenger is removed). In shadow and ab mode a deployed
    package becomes the challenger beside the endpoint's current champion; on an endpoint that
    does not exist yet, or already serves it, it becomes the champion.
    """
    deployment = stage_deployment(stage)
    challenger: Package | None = None
    if action == DEPLOY and new is not None:
        if deployment.mode == "replace" or live is None or live.champion == new.arn:
            champion, note = new, f"version {new.version} serves alone"
            if deployment.mode != "replace":
                note += " (nothing else serves yet to be its champion)" if live is None else ""
        else:
            champion = _serving_package(sagemaker, live.champion, "champion")
            challenger = new
            note = (
                f"version {new.version} as the {deployment.mode} challenger of "
                f"version {champion.version}"
            )
    elif live is None:
        raise DeployConfigError(f"nothing to {action}: the {stage} endpoint does not exist")
    elif live.challenger is None:
        champion = _serving_package(sagemaker, live.champion, "champion")
        note = f"no challenger, version {champion.version} unchanged"
    elif action == PROMOTE:
        champion = _serving_package(sagemaker, live.challenger, "challenger")
        if champion.status != APPROVED:
            raise DeployConfigError(
                f"the {stage} challenger {champion.arn} is {champion.status}, not {APPROVED}: "
                "refusing to promote it"
            )
        note = f"version {champion.version} promoted to champion"
    else:
        champion = _serving_package(sagemaker, live.champion, "champion")
        note = f"challenger discarded, version {champion.version} serves alone"
    mode = deployment.mode if challenger is not None else "replace"
    guarded = live is None or live.variants == frozenset(rollout.variants(mode))
    if not guarded:
        note += " (variants change: one step, without traffic shifting or rollback alarms)"
    plan = StagePlan(champion, challenger, dataclasses.replace(deployment, mode=mode), guarded)
    return plan, f"{stage}: {note}"


def write_configs(
    output: Path,
    settings: Settings,
    clients: tuple[Any, Any],
    kms_key_arn: str,
    requested_arn: str | None = None,
    accounts: Mapping[str, str] | None = None,
    build_account: str = "",
) -> tuple[Package, str]:
    """Write the deploy artifact; returns the package this deploy is about (the approved one,
    the promoted challenger, or the champion a discard keeps) and one line saying what each
    stage will serve and why.

    ``requested_arn`` is a package ARN, None or ``newest-approved`` (the newest Approved
    package), ``promote`` or ``discard``. ``clients`` are the SageMaker (registry, live
    endpoints) and S3 (baseline files) clients; ``accounts`` the stages' own accounts
    (:func:`target_accounts`; none: this account), ``build_account`` this one.
    """
    sagemaker, s3 = clients
    definitions: dict[str, str] = {}
    # The monitoring job runs in prod, as the role prod's model runs as (stage_config).
    prod_account = (accounts or {}).get("prod")
    prod_role = (
        target_account("prod", prod_account, settings).model_role_arn
        if prod_account
        else settings.role_arn
    )
    action = requested_arn if requested_arn in (PROMOTE, DISCARD) else DEPLOY
    realtime = settings.inference_mode == "realtime"
    new: Package | None = None
    if action == DEPLOY:
        new, line = resolve_package(sagemaker, settings.model_package_group, requested_arn)
    else:
        line = f"{action} in {settings.model_package_group}"
    if realtime:
        plans = realtime_plans(sagemaker, settings, action, new, bool(accounts))
        for plan, _ in plans.values():
            for package in (plan.champion, plan.challenger):
                if package is not None and package.baseline is not None:
                    check_baseline(s3, package.baseline, features())
        template = endpoint_template(features())
        definitions = upload_definitions(settings, s3, prod_role)
    elif new is None:
        raise DeployConfigError(
            f"nothing to {action}: {settings.inference_mode} inference has no challenger"
        )
    else:  # serverless: nothing captured, hence no drift alarms; batch: monitors its input
        plans = {
            stage: (StagePlan(new, None, None), f"{stage}: version {new.version}")
            for stage in STAGES
        }
        if settings.inference_mode == "batch":
            for stage in STAGES:  # before anything is uploaded
                endpoint_requests.check_transform_scale(
                    f"{stage}-config.json",
                    read_stage_settings(stage)["Parameters"],
                    settings.standards.default_instance("processing"),
                )
            check_baseline(s3, required_baseline(new), features())
            definitions = upload_definitions(settings, s3, prod_role)
            template = endpoint_template(features())
        else:
            template = load_template()
    if settings.standards.network_isolation and settings.inference_mode != "serverless":
        # Serverless is refused under isolation by stage_config, whatever the model.
        served = {
            package.arn: package
            for plan, _ in plans.values()
            for package in (plan.champion, plan.challenger)
            if package is not None
        }
        for package in served.values():
            check_offline_start(s3, package)
    configs = {}
    for stage, (plan, _) in plans.items():
        stage_account = (accounts or {}).get(stage)
        target = target_account(stage, stage_account, settings) if stage_account else None
        configs[stage] = stage_config(
            stage, settings, plan, kms_key_arn, definitions, target, build_account
        )
        if settings.inference_mode != "batch":  # refuse what SageMaker would reject first
            endpoint_requests.endpoint_requests(template, configs[stage]["Parameters"])
        endpoint_requests.model_requests(template, configs[stage]["Parameters"])
    output.mkdir(parents=True, exist_ok=True)
    (output / "endpoint.yaml").write_text(template_text(template))
    for stage, config in configs.items():
        (output / f"{stage}-config.json").write_text(json.dumps(config, indent=2) + "\n")
    subject = new or plans["prod"][0].champion
    return subject, "; ".join([line, *(note for _, note in plans.values())])


def realtime_plans(
    sagemaker: Any, settings: Settings, action: str, new: Package | None, separate: bool
) -> dict[str, tuple[StagePlan, str]]:
    """Each stage's plan, from its Deployment settings and what its endpoint serves now."""
    challenger_modes = action != DEPLOY or any(
        stage_deployment(stage).mode != "replace" for stage in STAGES
    )
    if separate and challenger_modes:
        raise DeployConfigError(
            "shadow, ab, promote and discard read the live endpoints from this account: with "
            "stages in accounts of their own, deploy in Mode replace"
        )
    lives = {
        stage: _live(
            sagemaker,
            settings,
            stage,
            needed=action != DEPLOY or stage_deployment(stage).mode != "replace",
        )
        for stage in STAGES
    }
    if action != DEPLOY and not any(live and live.challenger for live in lives.values()):
        raise DeployConfigError(f"nothing to {action}: no stage serves a challenger")
    return {stage: plan_stage(sagemaker, stage, lives[stage], action, new) for stage in STAGES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("build"))
    parser.add_argument(
        "--model-package-arn",
        default=os.environ.get(PACKAGE_ARN_VARIABLE, ""),
        help=(
            f"package to deploy (default: ${PACKAGE_ARN_VARIABLE}); "
            f"empty or {MANUAL_RUN}: the newest Approved package; {PROMOTE}: each stage's "
            f"challenger becomes its champion; {DISCARD}: each stage's challenger is removed"
        ),
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    kms_key_arn = os.environ.get("KMS_KEY_ARN", "") or (settings.standards.kms_key_arn or "")
    if not kms_key_arn:
        parser.error("KMS_KEY_ARN is not set (the deploy CodeBuild project sets it)")
    try:
        build_account, accounts = "", {}
        if settings.standards.accounts or any(map(os.environ.get, ACCOUNT_VARIABLES.values())):
            sts = boto3.client("sts", region_name=settings.region)
            build_account = str(sts.get_caller_identity()["Account"])
            accounts = target_accounts(settings.standards.accounts, build_account, os.environ)
        _, account = write_configs(
            args.output_dir,
            settings,
            (
                boto3.client("sagemaker", region_name=settings.region),
                boto3.client("s3", region_name=settings.region),
            ),
            kms_key_arn,
            args.model_package_arn.strip() or None,
            accounts,
            build_account,
        )
    except (DeployConfigError, drift_alarms.DriftAlarmError, ValueError) as error:
        # RolloutError and RequestError are ValueErrors: one line naming the setting or rule.
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{account}; configurations in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
