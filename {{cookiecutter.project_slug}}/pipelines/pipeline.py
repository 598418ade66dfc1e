"""Build the SageMaker pipeline: prepare -> train -> evaluate -> quality gate -> register | fail.

Each job runs a module of the project's own package (the same ones ``dvc repro`` runs), from the
``src/`` folder uploaded as the job's code, on the SageMaker scikit-learn image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagemaker.core.helper.session_helper import Session
from sagemaker.core.image_uris import retrieve
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.network import NetworkConfig
from sagemaker.core.processing import FrameworkProcessor
from sagemaker.core.shapes import (
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
    Tag,
)
from sagemaker.core.workflow.conditions import (
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, Networking, OutputDataConfig, SourceCode

from .settings import LOWER_IS_BETTER, Settings, Standards

PROJECT = Path(__file__).resolve().parent.parent
SOURCE_DIR = PROJECT / "src"
METRIC_SECTIONS = {
    "classification": "binary_classification_metrics",
    "regression": "regression_metrics",
}


def _processing_input(name: str, source: Any, destination: str) -> ProcessingInput:
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=source, local_path=destination, s3_data_type="S3Prefix", s3_input_mode="File"
        ),
    )


def _processing_output(name: str, source: str, destination: Any) -> ProcessingOutput:
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(
            s3_uri=destination, local_path=source, s3_upload_mode="EndOfJob"
        ),
    )


def _network_config(standards: Standards) -> NetworkConfig | None:
    if not (standards.subnets or standards.network_isolation):
        return None
    return NetworkConfig(
        enable_network_isolation=standards.network_isolation,
        subnets=list(standards.subnets) or None,
        security_group_ids=list(standards.security_groups) or None,
        encrypt_inter_container_traffic=True,
    )


def _networking(standards: Standards) -> Networking | None:
    if not (standards.subnets or standards.network_isolation):
        return None
    return Networking(
        subnets=list(standards.subnets) or None,
        security_group_ids=list(standards.security_groups) or None,
        enable_network_isolation=standards.network_isolation,
        enable_inter_container_traffic_encryption=True,
    )


def get_pipeline(
    settings: Settings,
    *,
    problem_type: str,
    gate_metric: str,
    gate_threshold: float,
    hyperparameters: dict[str, Any],
    session: Session | None = None,
    cache_steps: bool = True,
) -> Pipeline:
    """Return the pipeline; nothing is created in AWS until it is upserted."""
    session = session or PipelineSession(default_bucket=settings.bucket)
    image = retrieve(
        framework="sklearn",
        region=settings.region,
        version=settings.sklearn_version,
        instance_type="ml.m5.large",
    )
    tags = [{"Key": key, "Value": value} for key, value in sorted(settings.tags.items())]
    cache = CacheConfig(enable_caching=cache_steps, expire_after="P30D")
    base = f"{settings.prefix}/pipeline"

    input_data = ParameterString("InputDataUrl", default_value=f"{settings.prefix}/data/raw")
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

    processor = FrameworkProcessor(
        image_uri=image,
        role=settings.role_arn,
        instance_type=processing_instance,
        instance_count=processing_count,
        base_job_name=f"{settings.project_name}-process",
        sagemaker_session=session,
        tags=tags,
        command=["python3"],
        volume_kms_key=standards.kms_key_arn,
        output_kms_key=standards.kms_key_arn,
        network_config=_network_config(standards),
    )
    prepare_args = processor.run(
        code="job_entry.py",
        source_dir=str(SOURCE_DIR),
        arguments=[
            f"{settings.package}.data",
            "--input-dir",
            "/opt/ml/processing/input",
            "--output-dir",
            "/opt/ml/processing/output",
        ],
        inputs=[_processing_input("raw", input_data, "/opt/ml/processing/input")],
        outputs=[
            _processing_output(
                split,
                f"/opt/ml/processing/output/{split}",
                Join(on="/", values=[base, "prepare", split]),
            )
            for split in ("train", "test")
        ],
    )
    prepare = ProcessingStep(name="PrepareData", step_args=prepare_args, cache_config=cache)

    trainer = ModelTrainer(
        training_image=image,
        role=settings.role_arn,
        sagemaker_session=session,
        base_job_name=f"{settings.project_name}-train",
        source_code=SourceCode(
            source_dir=str(SOURCE_DIR),
            command=f"python3 -m {settings.package}.train --bundle-inference-code",
        ),
        compute=Compute(
            instance_type=training_instance,
            instance_count=1,
            volume_kms_key_id=standards.kms_key_arn,
        ),
        networking=_networking(standards),
        output_data_config=OutputDataConfig(
            s3_output_path=f"{settings.prefix}/models", kms_key_id=standards.kms_key_arn
        ),
        hyperparameters={key: str(value) for key, value in hyperparameters.items()},
        tags=[Tag(key=key, value=value) for key, value in sorted(settings.tags.items())],
    )
    train_args = trainer.train(
        input_data_config=[
            InputData(
                channel_name="train",
                data_source=prepare.properties.ProcessingOutputConfig.Outputs[
                    "train"
                ].S3Output.S3Uri,
            )
        ]
    )
    train = TrainingStep(name="TrainModel", step_args=train_args, cache_config=cache)
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="metrics.json")
    evaluate_args = processor.run(
        code="job_entry.py",
        source_dir=str(SOURCE_DIR),
        arguments=[
            f"{settings.package}.evaluate",
            "--model-dir",
            "/opt/ml/processing/model",
            "--test-dir",
            "/opt/ml/processing/test",
            "--output-dir",
            "/opt/ml/processing/evaluation",
        ],
        inputs=[
            _processing_input("model", model_data, "/opt/ml/processing/model"),
            _processing_input(
                "test",
                prepare.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                "/opt/ml/processing/test",
            ),
        ],
        outputs=[
            _processing_output(
                "evaluation",
                "/opt/ml/processing/evaluation",
                Join(on="/", values=[base, "evaluation"]),
            )
        ],
    )
    evaluate = ProcessingStep(
        name="EvaluateModel", step_args=evaluate_args, property_files=[report], cache_config=cache
    )

    metrics_uri = Join(
        on="/",
        values=[
            evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
            "metrics.json",
        ],
    )
    model = ModelBuilder(
        s3_model_data_url=model_data,
        image_uri=image,
        role_arn=settings.role_arn,
        sagemaker_session=session,
        env_vars={
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        },
    )
    register_args = model.register(
        model_package_group_name=settings.model_package_group,
        content_types=["text/csv", "application/json"],
        response_types=["application/json", "text/csv"],
        inference_instances=["ml.m5.large", "ml.m5.xlarge"],
        transform_instances=["ml.m5.large"],
        approval_status=approval,
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(content_type="application/json", s3_uri=metrics_uri)
        ),
    )
    register = ModelStep(name="RegisterModel", step_args=register_args)

    metric = JsonGet(
        step_name=evaluate.name,
        property_file=report,
        json_path=f"{METRIC_SECTIONS[problem_type]}.{gate_metric}.value",
    )
    condition_type = (
        ConditionLessThanOrEqualTo
        if gate_metric in LOWER_IS_BETTER
        else ConditionGreaterThanOrEqualTo
    )
    fail = FailStep(
        name="QualityGateFailed",
        error_message=Join(
            on=" ",
            values=[
                f"Model below the quality gate: {gate_metric} must be",
                "<=" if gate_metric in LOWER_IS_BETTER else ">=",
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
            input_data,
            processing_instance,
            processing_count,
            training_instance,
            threshold,
            approval,
        ],
        steps=[prepare, train, evaluate, gate],
        sagemaker_session=session,
    )
