"""Build the SageMaker pipeline: prepare -> train -> evaluate -> quality gate -> register | fail.

Each job runs a module of the project's own package (the same ones ``dvc repro`` runs) through
``job_entry.py``, from the job code uploaded under its content hash (``pipelines/code_bundle.py``),
on the SageMaker scikit-learn image. The job requests are written out here, field by field, as the
SageMaker API defines them (``CreateProcessingJob``, ``CreateTrainingJob``,
``CreateModelPackage``): nothing is uploaded and no AWS call is made to build the definition, and
the same code always gives the same definition.

The input is the project's DVC-tracked data, read from the DVC remote by its DVC MD5 (the
``InputDataUrl`` parameter: ``<remote>/files/md5/<2 hex>/<30 hex>``, see ``pipelines/run.py``);
the evaluation reads the data version back from that name, so the MLflow run, the lineage record
and the model package carry the same version ``dvc repro`` records.

Every output lands under ``<prefix>/pipeline/<execution id>/``, so an execution never overwrites
another's splits, model or metrics, and a registered package keeps pointing at its own numbers.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sagemaker.core.image_uris import retrieve
from sagemaker.core.shapes import MlflowConfig
from sagemaker.core.workflow.conditions import (
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.core.workflow.properties import Properties, PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import CacheConfig, ConfigurableRetryStep, StepTypeEnum

from .code_bundle import CodeBundle, collect
from .sagemaker_session import offline_session
from .settings import LOWER_IS_BETTER, Settings, Standards

PROCESSING_CODE = "/opt/ml/processing/input/code"
TRAINING_CODE = "/opt/ml/input/data/code"
JOB_ENTRY = "job_entry.py"
VOLUME_GB = 30
MAX_RUNTIME_SECONDS = 4 * 3600
CACHE_EXPIRY = "P30D"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_PARAMETER = "InputDataUrl"


class RequestStep(ConfigurableRetryStep):  # type: ignore[misc]  # the SDK is untyped
    """A job step whose arguments are the API request itself.

    The SDK's own step classes only accept arguments captured from its job classes, which upload
    the code under time-stamped names while the definition is built; this step carries a request
    written here instead. ``shape`` names the Describe response its properties follow, so
    references such as ``properties.ModelArtifacts.S3ModelArtifacts`` resolve as usual.
    """

    def __init__(
        self,
        name: str,
        step_type: StepTypeEnum,
        shape: str,
        request: dict[str, Any],
        *,
        cache_config: CacheConfig | None = None,
        property_files: list[PropertyFile] | None = None,
    ) -> None:
        super().__init__(name, step_type)
        self.request = request
        self.cache_config = cache_config
        self.property_files = property_files or []
        self._properties = Properties(step_name=name, step=self, shape_name=shape)

    @property
    def arguments(self) -> dict[str, Any]:
        return self.request

    @property
    def properties(self) -> Properties:
        return self._properties

    def to_request(self) -> dict[str, Any]:
        request: dict[str, Any] = super().to_request()
        if self.cache_config:
            request.update(self.cache_config.config)
        if self.property_files:
            request["PropertyFiles"] = [file.expr for file in self.property_files]
        return request


def _s3_input(name: str, uri: Any, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def _s3_output(name: str, local_path: str, uri: Any) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def _tags(settings: Settings) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(settings.tags.items())]


def _vpc(standards: Standards) -> dict[str, Any] | None:
    if not standards.subnets:
        return None
    return {
        "Subnets": list(standards.subnets),
        "SecurityGroupIds": list(standards.security_groups),
    }


class JobRequests:
    """Writes the job requests of one pipeline: image, role, code, tags, standards in one place."""

    def __init__(self, settings: Settings, code: CodeBundle, image: str) -> None:
        self.settings = settings
        self.standards = settings.standards
        self.code_uri = code.uri(settings.prefix)
        self.image = image

    def processing(
        self,
        module: str,
        arguments: list[str],
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        *,
        instance_type: Any,
        instance_count: Any,
        environment: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A ``CreateProcessingJob`` request that runs ``python3 job_entry.py <module> ...``."""
        cluster: dict[str, Any] = {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": VOLUME_GB,
        }
        output_config: dict[str, Any] = {"Outputs": outputs}
        if self.standards.kms_key_arn:
            cluster["VolumeKmsKeyId"] = self.standards.kms_key_arn
            output_config["KmsKeyId"] = self.standards.kms_key_arn
        request: dict[str, Any] = {
            "ProcessingResources": {"ClusterConfig": cluster},
            "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
            "AppSpecification": {
                "ImageUri": self.image,
                "ContainerEntrypoint": ["python3", f"{PROCESSING_CODE}/{JOB_ENTRY}"],
                "ContainerArguments": [f"{self.settings.package}.{module}", *arguments],
            },
            "RoleArn": self.settings.role_arn,
            "ProcessingInputs": [_s3_input("code", self.code_uri, PROCESSING_CODE), *inputs],
            "ProcessingOutputConfig": output_config,
            "Tags": _tags(self.settings),
        }
        if environment:
            request["Environment"] = environment
        network = self._processing_network()
        if network:
            request["NetworkConfig"] = network
        return request

    def _processing_network(self) -> dict[str, Any] | None:
        if not (self.standards.subnets or self.standards.network_isolation):
            return None
        network: dict[str, Any] = {
            "EnableNetworkIsolation": self.standards.network_isolation,
            "EnableInterContainerTrafficEncryption": True,
        }
        vpc = _vpc(self.standards)
        if vpc:
            network["VpcConfig"] = vpc
        return network

    def training(
        self,
        module: str,
        arguments: list[str],
        channels: dict[str, Any],
        *,
        output_path: Any,
        instance_type: Any,
    ) -> dict[str, Any]:
        """A ``CreateTrainingJob`` request that runs ``python3 job_entry.py <module> ...``.

        The code arrives as the ``code`` channel; every other channel is an S3 prefix.
        """
        resources: dict[str, Any] = {
            "InstanceType": instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": VOLUME_GB,
        }
        output: dict[str, Any] = {"S3OutputPath": output_path}
        if self.standards.kms_key_arn:
            resources["VolumeKmsKeyId"] = self.standards.kms_key_arn
            output["KmsKeyId"] = self.standards.kms_key_arn
        request: dict[str, Any] = {
            "AlgorithmSpecification": {
                "TrainingImage": self.image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": ["python3", f"{TRAINING_CODE}/{JOB_ENTRY}"],
                "ContainerArguments": [f"{self.settings.package}.{module}", *arguments],
            },
            "RoleArn": self.settings.role_arn,
            "InputDataConfig": [
                {
                    "ChannelName": name,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
                for name, uri in {"code": self.code_uri, **channels}.items()
            ],
            "OutputDataConfig": output,
            "ResourceConfig": resources,
            "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
            "Tags": _tags(self.settings),
        }
        vpc = _vpc(self.standards)
        if vpc:
            request["VpcConfig"] = vpc
        if self.standards.subnets or self.standards.network_isolation:
            request["EnableNetworkIsolation"] = self.standards.network_isolation
            request["EnableInterContainerTrafficEncryption"] = True
        return request


def hyperparameter_arguments(hyperparameters: dict[str, Any]) -> list[str]:
    """``--name value`` pairs in a fixed order, as the training module's command line takes them."""
    arguments: list[str] = []
    for name, value in sorted(hyperparameters.items()):
        arguments += [f"--{name.replace('_', '-')}", str(value)]
    return arguments


def tracking_environment(settings: Settings) -> dict[str, str]:
    """What makes the evaluation job log its run to the tracking server (none: no tracking).

    ``<package>/tracking.py`` reads these; the ``sagemaker-mlflow`` plugin resolves the ARN to the
    server and signs each request with the job's role.
    """
    if not settings.mlflow_tracking_arn:
        return {}
    return {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_arn,
        "MLFLOW_EXPERIMENT_NAME": settings.project_name,
    }


def mlflow_config(settings: Settings) -> MlflowConfig | None:
    """The pipeline's own MLflow configuration: the same server and experiment as the jobs."""
    if not settings.mlflow_tracking_arn:
        return None
    return MlflowConfig(
        mlflow_resource_arn=settings.mlflow_tracking_arn,
        mlflow_experiment_name=settings.project_name,
    )


def template_version(settings: Settings) -> str:
    """The template commit of this project (its package's ``tracking.template_version``)."""
    tracking = importlib.import_module(f"{settings.package}.tracking")
    return str(tracking.template_version(PROJECT_ROOT))


def get_pipeline(
    settings: Settings,
    *,
    gate_metric: str,
    gate_threshold: float,
    hyperparameters: dict[str, Any],
    report_section: str,
    model_framework: str,
    missing_shift: float,
    data_url: str,
    code: CodeBundle | None = None,
    cache_steps: bool = True,
) -> Pipeline:
    """Return the pipeline; nothing is created or uploaded in AWS until it is upserted.

    ``report_section`` is the section of ``metrics.json`` the gate reads (from the schema:
    binary, multiclass or regression metrics). ``model_framework`` (``<library> <version>``) is
    recorded on the model package: every framework runs on the scikit-learn image, its library
    installed from the job code's ``requirements.txt``. ``missing_shift`` (``params.yaml``
    ``monitor``) sets the data-quality baseline's completeness constraints. ``data_url`` (the
    DVC remote's object of the tracked data) is the data a run started without parameters reads.
    """
    code = code or collect()
    image = retrieve(
        framework="sklearn",
        region=settings.region,
        version=settings.sklearn_version,
        instance_type="ml.m5.large",
    )
    jobs = JobRequests(settings, code, image)
    cache = CacheConfig(enable_caching=cache_steps, expire_after=CACHE_EXPIRY)

    def run_output(*parts: str) -> Join:
        """``<prefix>/pipeline/<execution id>/<parts>``: see the module docstring."""
        return Join(
            on="/",
            values=[
                f"{settings.prefix}/pipeline",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                *parts,
            ],
        )

    # Content-addressed: a new data version is a new URL, so the cached steps rerun on it.
    data_uri = ParameterString(DATA_PARAMETER, default_value=data_url)
    standards = settings.standards
    processing_instance = ParameterString(
        "ProcessingInstanceType", default_value=standards.default_instance("processing")
    )
    processing_count = ParameterInteger("ProcessingInstanceCount", default_value=1)
    training_instance = ParameterString(
        "TrainingInstanceType", default_value=standards.default_instance("training")
    )
    threshold = ParameterFloat("QualityThreshold", default_value=gate_threshold)
    approval = ParameterString("ModelApprovalStatus", default_value="PendingManualApproval")
    processing = {"instance_type": processing_instance, "instance_count": processing_count}

    prepare = RequestStep(
        "PrepareData",
        StepTypeEnum.PROCESSING,
        "DescribeProcessingJobResponse",
        jobs.processing(
            "data",
            [
                "--input-dir",
                "/opt/ml/processing/input/data",
                "--output-dir",
                "/opt/ml/processing/output",
            ],
            [_s3_input("raw", data_uri, "/opt/ml/processing/input/data")],
            [
                _s3_output(
                    split, f"/opt/ml/processing/output/{split}", run_output("prepare", split)
                )
                for split in ("train", "test")
            ],
            **processing,
        ),
        cache_config=cache,
    )
    prepared = prepare.properties.ProcessingOutputConfig.Outputs

    baseline = RequestStep(
        "BaselineData",
        StepTypeEnum.PROCESSING,
        "DescribeProcessingJobResponse",
        jobs.processing(
            "quality_baseline",
            [
                "--data-dir",
                "/opt/ml/processing/input/train",
                "--output-dir",
                "/opt/ml/processing/baseline",
                "--missing-shift",
                str(missing_shift),
            ],
            [
                _s3_input(
                    "train", prepared["train"].S3Output.S3Uri, "/opt/ml/processing/input/train"
                )
            ],
            [_s3_output("baseline", "/opt/ml/processing/baseline", run_output("baseline"))],
            **processing,
        ),
        cache_config=cache,
    )
    baseline_uri = baseline.properties.ProcessingOutputConfig.Outputs["baseline"].S3Output.S3Uri
    data_quality = {
        name: {
            "ContentType": "application/json",
            "S3Uri": Join(on="/", values=[baseline_uri, f"{name.lower()}.json"]),
        }
        for name in ("Statistics", "Constraints")
    }

    train = RequestStep(
        "TrainModel",
        StepTypeEnum.TRAINING,
        "DescribeTrainingJobResponse",
        jobs.training(
            "train",
            [
                "--train-dir",
                "/opt/ml/input/data/train",
                "--model-dir",
                "/opt/ml/model",
                "--bundle-inference-code",
                *hyperparameter_arguments(hyperparameters),
            ],
            {"train": prepared["train"].S3Output.S3Uri},
            output_path=run_output("model"),
            instance_type=training_instance,
        ),
        cache_config=cache,
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="metrics.json")
    lineage = PropertyFile(name="EvaluationLineage", output_name="evaluation", path="lineage.json")
    card = PropertyFile(name="ModelCard", output_name="evaluation", path="model_card.json")
    evaluate = RequestStep(
        "EvaluateModel",
        StepTypeEnum.PROCESSING,
        "DescribeProcessingJobResponse",
        jobs.processing(
            "evaluate",
            [
                "--model-dir",
                "/opt/ml/processing/model",
                "--test-dir",
                "/opt/ml/processing/test",
                "--output-dir",
                "/opt/ml/processing/evaluation",
                "--execution-id",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                "--data-uri",
                data_uri,
                "--gate-metric",
                gate_metric,
                "--gate-threshold",
                # A container argument is a string: Join turns the float parameter into one.
                Join(on="", values=[threshold]),
                "--code-digest",
                code.digest,
                "--template-version",
                template_version(settings),
                "--intended-use",
                settings.intended_use,
                "--image",
                image,
            ],
            [
                _s3_input("model", model_data, "/opt/ml/processing/model"),
                _s3_input("test", prepared["test"].S3Output.S3Uri, "/opt/ml/processing/test"),
            ],
            [_s3_output("evaluation", "/opt/ml/processing/evaluation", run_output("evaluation"))],
            **processing,
            environment=tracking_environment(settings),
        ),
        cache_config=cache,
        property_files=[report, lineage, card],
    )
    evaluation = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri

    register = RequestStep(
        "RegisterModel",
        StepTypeEnum.REGISTER_MODEL,
        "DescribeModelPackageOutput",
        {
            "ModelPackageGroupName": settings.model_package_group,
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": image,
                        "ModelDataUrl": model_data,
                        "Environment": {
                            "SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                            "SAGEMAKER_REGION": settings.region,
                        },
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
                "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large", "ml.m5.xlarge"],
                "SupportedTransformInstanceTypes": ["ml.m5.large"],
            },
            "ModelApprovalStatus": approval,
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": Join(on="/", values=[evaluation, "metrics.json"]),
                    }
                },
                "ModelDataQuality": data_quality,
            },
            # The model card the evaluation wrote (src/<package>/model_card.py), for review.
            "ModelCard": {
                "ModelCardContent": JsonGet(
                    step_name=evaluate.name, property_file=card, json_path="content"
                ),
                "ModelCardStatus": "PendingReview",
            },
            # What deployment reads to monitor data quality against the training data.
            "DriftCheckBaselines": {"ModelDataQuality": data_quality},
            "CustomerMetadataProperties": {
                "PipelineExecutionId": ExecutionVariables.PIPELINE_EXECUTION_ID,
                "DataUri": data_uri,
                # What the evaluation read from the data's name: the DVC MD5.
                "DataVersion": JsonGet(
                    step_name=evaluate.name, property_file=lineage, json_path="data.version"
                ),
                "CodeSha256": code.digest,
                "ModelFramework": model_framework,
                "LineageUri": Join(on="/", values=[evaluation, "lineage.json"]),
                # The MLflow run of this evaluation, when the jobs log to a tracking server.
                **(
                    {
                        "MlflowRunId": JsonGet(
                            step_name=evaluate.name,
                            property_file=lineage,
                            json_path="mlflow_run_id",
                        )
                    }
                    if settings.mlflow_tracking_arn
                    else {}
                ),
            },
        },
    )

    metric = JsonGet(
        step_name=evaluate.name,
        property_file=report,
        json_path=f"{report_section}.{gate_metric}.value",
    )
    lower_is_better = gate_metric in LOWER_IS_BETTER
    condition_type = (
        ConditionLessThanOrEqualTo if lower_is_better else ConditionGreaterThanOrEqualTo
    )
    fail = FailStep(
        name="QualityGateFailed",
        error_message=Join(
            on=" ",
            values=[
                f"Model below the quality gate: {gate_metric} must be",
                "<=" if lower_is_better else ">=",
                threshold,
            ],
        ),
    )
    gate = ConditionStep(
        name="QualityGate",
        conditions=[condition_type(left=metric, right=threshold)],
        if_steps=[register],
        else_steps=[fail],
    )
    return Pipeline(
        name=settings.pipeline_name,
        parameters=[
            data_uri,
            processing_instance,
            processing_count,
            training_instance,
            threshold,
            approval,
        ],
        steps=[prepare, baseline, train, evaluate, gate],
        mlflow_config=mlflow_config(settings),
        sagemaker_session=offline_session(settings.region),
    )
