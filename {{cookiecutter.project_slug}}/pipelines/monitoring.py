"""The monitoring pipeline: one processing step running the project's own monitor.

python -m pipelines.monitoring --definition-only     # JSON definition, offline

SageMaker Model Monitor is closed to new customers (the SageMaker Developer Guide says so on each
of its pages), so the stage stacks run ``<package>/monitor.py`` instead - the code ``make monitor``
runs on a laptop - as a processing job on the SageMaker scikit-learn image, from the job code
uploaded under its content hash (``pipelines/code_bundle.py``), like every pipeline job. The
stage stack creates this pipeline from the definition the deploy build uploads and starts it
hourly with an EventBridge Scheduler schedule, passing:

- ``DataUri``: what to watch. A realtime stage passes its serving variant's capture prefix
  (``<DataCaptureUri>/<endpoint>/<variant>``; the job reads the last ``Hours`` hourly folders);
  a batch stage passes its input pointer (``.../input/newest.json``) with ``DataFormat``
  ``batch-input``, so the job watches what the newest batch run scored;
- ``GroundTruthUri``: labels for captured requests (``mlops-platform ground-truth --labels``);
  the job scores the captured answers whose label has arrived against the quality gate;
- ``ModelDataUri``: the deployed package's ``model.tar.gz``, whose ``baseline.json`` is the
  training baseline drift is measured against and whose ``model_meta.json`` names its classes;
- ``Stage``: the ``Stage`` dimension of the CloudWatch metrics; ``ReportUri``: where the HTML and
  JSON report land.

The job runs as prod's model role: the deploy build builds the definition with it (with stages in
accounts of their own, the prod account's role, not the build account's).

The job publishes its findings to the project's CloudWatch namespace (``drift_alarms.namespace``),
which the stage stack's drift, quality and silence alarms watch, and logs its report to the
project's MLflow server when the project has one (in the build account: not with stages in
accounts of their own). It needs the network for both (CloudWatch, and
S3 for its inputs: it reads a time window, which a processing input cannot name), so it runs
without network isolation, inside the standards' VPC when there is one (that VPC then needs
endpoints or a route to S3, CloudWatch monitoring and, with tracking, SageMaker MLflow).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from sagemaker.core.image_uris import retrieve
from sagemaker.core.workflow.parameters import ParameterString
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import CacheConfig, StepTypeEnum

from . import drift_alarms
from .code_bundle import CodeBundle, collect
from .pipeline import JobRequests, RequestStep, _s3_input, _s3_output, tracking_environment
from .run import PARAMS
from .sagemaker_session import offline_session
from .settings import Settings, load_settings

MODEL_INPUT = "/opt/ml/processing/input/model"
REPORT_OUTPUT = "/opt/ml/processing/output/report"
# A day of traffic per run: enough rows to judge drift at modest traffic, and the day a label
# has to arrive for its request to be scored.
WINDOW_HOURS = "24"
PARAMETERS = (
    "DataUri",
    "DataFormat",
    "GroundTruthUri",
    "ModelDataUri",
    "Stage",
    "ReportUri",
)


def parameters(settings: Settings) -> dict[str, ParameterString]:
    """The pipeline's parameters; a stage's schedule passes its own values."""
    defaults = {
        "DataUri": f"{settings.prefix}/data-capture/prod",
        "DataFormat": "auto",
        "GroundTruthUri": f"{settings.prefix}/ground-truth/prod",
        "ModelDataUri": f"{settings.prefix}/model.tar.gz",
        "Stage": "prod",
        "ReportUri": f"{settings.prefix}/monitoring/prod",
    }
    return {name: ParameterString(name, default_value=defaults[name]) for name in PARAMETERS}


def monitor_settings(params_file: Any = PARAMS) -> str:
    """The ``monitor`` and ``gate`` sections of ``params.yaml``: the thresholds the job applies
    (the job code carries ``src/`` only)."""
    import yaml

    params = yaml.safe_load(params_file.read_text()) or {}
    return json.dumps({name: params.get(name, {}) for name in ("monitor", "gate")}, sort_keys=True)


def monitoring_request(
    settings: Settings, code: CodeBundle, image: str, given: dict[str, ParameterString]
) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request of the monitoring step."""
    jobs = JobRequests(settings, code, image)
    request = jobs.processing(
        "monitor",
        [
            "--data",
            given["DataUri"],
            "--data-format",
            given["DataFormat"],
            "--hours",
            WINDOW_HOURS,
            "--ground-truth",
            given["GroundTruthUri"],
            "--model-dir",
            MODEL_INPUT,
            "--params-json",
            monitor_settings(),
            "--output-dir",
            REPORT_OUTPUT,
            "--stage",
            given["Stage"],
            "--publish-metrics",
            drift_alarms.namespace(settings.project_name),
        ],
        [_s3_input("model", given["ModelDataUri"], MODEL_INPUT)],
        [_s3_output("report", REPORT_OUTPUT, given["ReportUri"])],
        instance_type=settings.standards.default_instance("processing"),
        instance_count=1,
        # The project's MLflow server is in this account: with stages in accounts of their own,
        # prod's job cannot reach it, and its report stays in S3 and CloudWatch.
        environment=None if settings.standards.accounts else tracking_environment(settings),
    )
    # It calls S3, CloudWatch and MLflow itself (module docstring): never network-isolated.
    network = request.get("NetworkConfig")
    if network is not None:
        network["EnableNetworkIsolation"] = False
    return request


def prod_settings(settings: Settings) -> Settings:
    """The settings prod's job runs under: with stages in accounts of their own, the network of
    the prod account (``stage_vpc``; subnets belong to one account) instead of this one's."""
    standards = settings.standards
    network = standards.stage_networks.get("prod")
    if not (standards.accounts and standards.subnets and network):
        return settings
    return dataclasses.replace(
        settings,
        standards=dataclasses.replace(
            standards, subnets=network.subnets, security_groups=network.security_groups
        ),
    )


def get_monitoring_pipeline(settings: Settings, code: CodeBundle | None = None) -> Pipeline:
    settings = prod_settings(settings)
    given = parameters(settings)
    image = retrieve(
        framework="sklearn",
        region=settings.region,
        version=settings.sklearn_version,
        instance_type="ml.m5.large",
    )
    step = RequestStep(
        "Monitor",
        StepTypeEnum.PROCESSING,
        "DescribeProcessingJobResponse",
        monitoring_request(settings, code or collect(), image, given),
        # Never cached: the same parameters read new captures every hour.
        cache_config=CacheConfig(enable_caching=False),
    )
    return Pipeline(
        name=f"{settings.project_name}-monitoring",
        parameters=list(given.values()),
        steps=[step],
        sagemaker_session=offline_session(settings.region),
    )


def definition(settings: Settings, code: CodeBundle | None = None) -> dict[str, Any]:
    return dict(json.loads(get_monitoring_pipeline(settings, code).definition()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--definition-only", action="store_true", required=True)
    parser.parse_args(argv)
    print(json.dumps(definition(load_settings()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
