"""The monitoring job the stage stacks schedule: model quality from every answer type, and the
pipeline that runs the job, checked against SageMaker's and EventBridge Scheduler's models.
Realtime and batch projects only: a serverless endpoint captures nothing to monitor.

Model quality joins captured answers to their labels (ground-truth JSON lines) by inference id.
The captures here are what the local server (``make serve``, the endpoint's ``transform_fn``)
wrote for real requests: a JSON answer (no ``Accept``; ``application/json``), whose classifier
rows carry a probability, and a CSV answer (``text/csv``).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml
from botocore.validate import ParamValidator
from deploy_setup import project_settings, register, write, written_parameters
from mlops_platform.capture import write_ground_truth
from pipeline_definition import Execution, validate_request

# Straight imports: isort puts them before the package's from-imports whatever its name.
import pipelines.deploy_config as deploy_config
import pipelines.drift_alarms as drift_alarms
import pipelines.endpoint_requests as endpoint_requests
from {{ cookiecutter.package_name }} import evaluate, monitor
from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.inference import load_model
from {{ cookiecutter.package_name }}.serve import make_server, serve_in_thread
from {{ cookiecutter.package_name }}.variants import CHAMPION

REQUESTS = 80
SETTINGS = project_settings()
ROLE = "arn:aws:iam::123456789012:role/model"
# What SageMaker Model Monitor's CloudFormation resources are: closed to new customers.
MODEL_MONITOR_TYPES = {
    "AWS::SageMaker::MonitoringSchedule",
    "AWS::SageMaker::DataQualityJobDefinition",
    "AWS::SageMaker::ModelQualityJobDefinition",
    "AWS::SageMaker::ModelBiasJobDefinition",
    "AWS::SageMaker::ModelExplainabilityJobDefinition",
}


@pytest.fixture(scope="module")
def served(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[tuple[str, int], Path]]:
    captures = tmp_path_factory.mktemp("capture")
    instance = make_server(model_dir, "127.0.0.1", 0, capture_dir=captures)
    serve_in_thread(instance)
    yield ("127.0.0.1", instance.server_address[1]), captures
    instance.shutdown()
    instance.server_close()


def invoke(server: tuple[str, int], body: bytes, accept: str, inference_id: str) -> None:
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": inference_id}
    if accept:
        headers["Accept"] = accept
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        assert connection.getresponse().status == 200
    finally:
        connection.close()


@pytest.mark.parametrize("accept", ["", "application/json", "text/csv"])
def test_model_quality_is_read_from_every_answer_type(
    accept: str,
    served: tuple[tuple[str, int], Path],
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    tmp_path: Path,
) -> None:
    """One-row requests through the local server, their labels as ground truth: the monitor's
    live metric is the model's own metric on those rows, whichever answer type was captured."""
    server, captures = served
    rows = clean_frame.sample(REQUESTS, random_state=7)
    prefix = f"answer-{accept or 'default'}".replace("/", "-")
    labels = ["inference_id,label"]
    for index, (_, row) in enumerate(rows.iterrows()):
        body = row[schema.feature_names].to_frame().T.to_csv(index=False, header=False)
        invoke(server, body.encode(), accept, f"{prefix}-{index}")
        labels.append(f"{prefix}-{index},{row[schema.target]}")
    (tmp_path / "labels.csv").write_text("\n".join(labels) + "\n")
    truth = tmp_path / "ground-truth"
    write_ground_truth(tmp_path / "labels.csv", truth)
    gate = yaml.safe_load(deploy_config.PARAMS.read_text())["gate"]
    model, meta = load_model(model_dir)
    expected = evaluate.metric_value(evaluate.compute_metrics(model, meta, rows), gate["metric"])

    output = tmp_path / "report"
    code = monitor.main(
        [
            "--data",
            str(captures / CHAMPION),
            "--ground-truth",
            str(truth),
            "--model-dir",
            str(model_dir),
            "--params",
            str(deploy_config.PARAMS),
            "--output-dir",
            str(output),
        ]
    )
    quality = json.loads((output / "report.json").read_text())["model_quality"]
    # earlier parametrizations' captures share the folder; only this one's ids have labels here
    assert quality["rows"] == REQUESTS
    assert quality["metric"] == gate["metric"]
    assert quality["value"] == pytest.approx(expected)
    assert code == (0 if quality["passed"] else 1)


def test_answers_of_each_type_give_the_same_predictions() -> None:
    """The three answer bodies ``inference.render`` writes, read back row by row."""
    json_answer = {
        "observedContentType": "application/json",
        "encoding": "JSON",
        "data": json.dumps(
            {
                "predictions": [
                    {"prediction": 1, "probability": 0.8},
                    {"prediction": 0, "probability": 0.6},
                ]
            }
        ),
    }
    regression = {
        "observedContentType": "application/json",
        "encoding": "JSON",
        "data": json.dumps({"predictions": [{"prediction": 2.5}]}),
    }
    rows = '1,0.8,0.2,0.8\n0,0.6,0.6,0.4\n"late, paid",0.7,0.7,0.3\n'
    csv_answer = {"observedContentType": "text/csv", "encoding": "CSV", "data": rows}
    assert monitor.answered(json_answer) == [("1", 0.8), ("0", 0.6)]
    assert monitor.answered(csv_answer) == [("1", 0.8), ("0", 0.6), ("late, paid", 0.7)]
    assert monitor.answered(regression) == [("2.5", None)]
    refusal = {
        "observedContentType": "application/json",
        "encoding": "JSON",
        "data": json.dumps({"error": "bad row"}),
    }
    assert monitor.answered(refusal) == []


@pytest.mark.usefixtures("fake_aws")
def test_prod_schedules_the_project_monitor_as_a_pipeline_sagemaker_accepts(
    tmp_path: Path, registry: Any
) -> None:
    """The deploy build uploads the monitoring pipeline's definition and the job code; the prod
    stack's schedule, resolved with the written parameters, is what EventBridge Scheduler accepts
    and passes every parameter the definition declares; the registry creates and starts the
    pipeline; its one processing job, resolved for that execution, runs this project's monitor
    over the stage's data and publishes into the project's namespace."""
    model_data = "s3://artifacts/churn/run-1/model.tar.gz"
    write(tmp_path, registry, register(registry, "Approved", model_data=model_data))
    template = deploy_config.load_template(tmp_path / "endpoint.yaml")
    assert not {r["Type"] for r in template["Resources"].values()} & MODEL_MONITOR_TYPES
    parameters = {stage: written_parameters(tmp_path, stage) for stage in deploy_config.STAGES}
    (key,) = {p["MonitorPipelineDefinitionKey"] for p in parameters.values()}
    s3 = boto3.client("s3", region_name="us-east-1")
    body = s3.get_object(Bucket="artifacts", Key=key)["Body"].read()
    definition = json.loads(body)
    (step,) = definition["Steps"]
    declared = {parameter["Name"] for parameter in definition["Parameters"]}

    staging = endpoint_requests.Resolver(template, parameters["staging"])
    assert not staging.active("MonitorSchedule") and not staging.active("MonitorPipeline")
    prod = endpoint_requests.Resolver(template, parameters["prod"])
    assert prod.active("MonitorSchedule") and prod.active("MonitorPipeline")
    schedule = prod.properties("MonitorSchedule")
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    shape = scheduler.meta.service_model.operation_model("CreateSchedule").input_shape
    report = ParamValidator().validate(schedule, shape)
    assert not report.has_errors(), report.generate_report()
    passed = {
        p["Name"]: p["Value"]
        for p in schedule["Target"]["SageMakerPipelineParameters"]["PipelineParameterList"]
    }
    assert set(passed) == declared
    registry.create_pipeline(
        PipelineName="churn-prod-monitoring", PipelineDefinition=body.decode(), RoleArn=ROLE
    )
    registry.start_pipeline_execution(
        PipelineName="churn-prod-monitoring",
        PipelineParameters=[{"Name": name, "Value": value} for name, value in passed.items()],
    )

    # The job the execution starts, with the schedule's values, as SageMaker's model accepts it
    # (the pipeline names each job it starts: ProcessingJobName, as test_pipeline.py models it).
    job = Execution(definition, "exec-1", passed).resolve(step["Arguments"])
    validate_request("CreateProcessingJob", job | {"ProcessingJobName": "monitor"})
    arguments = job["AppSpecification"]["ContainerArguments"]

    def argument(flag: str) -> str:
        return str(arguments[arguments.index(flag) + 1])

    assert arguments[0] == f"{SETTINGS.package}.monitor"
    # the stage's model role (with accounts of their own, that account's), as the schedule says
    assert job["RoleArn"] == parameters["prod"]["ModelExecutionRoleArn"]
    assert argument("--publish-metrics") == drift_alarms.namespace("churn")
    assert argument("--stage") == "prod"
    prod_parameters = parameters["prod"]
    if SETTINGS.inference_mode == "realtime":
        # SageMaker captures under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/
        assert argument("--data") == (
            f"{prod_parameters['DataCaptureUri']}/churn-prod/{prod_parameters['ChampionVariant']}"
        )
        assert argument("--ground-truth") == prod_parameters["GroundTruthUri"]
        assert argument("--data-format") == "auto"
    else:
        assert argument("--data") == f"{prod_parameters['BatchDataUri']}/input/newest.json"
        assert argument("--data-format") == "batch-input"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in job["ProcessingInputs"]}
    assert inputs["model"] == model_data
    bucket, _, prefix = inputs["code"].removeprefix("s3://").partition("/")
    uploaded = {
        item["Key"].removeprefix(prefix)
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    }
    assert {"job_entry.py", f"{SETTINGS.package}/monitor.py"} <= uploaded
    # The monitor's thresholds and gate travel in the definition (the job code is src/ only).
    settings = json.loads(argument("--params-json"))
    assert settings == {
        name: yaml.safe_load(deploy_config.PARAMS.read_text())[name] for name in ("monitor", "gate")
    }


def test_the_report_is_logged_to_mlflow_when_tracking_is_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
) -> None:
    """With ``MLFLOW_TRACKING_URI`` set (the monitoring pipeline sets it when the project has a
    tracking server), a run holds the report's figures and files; without it nothing is logged."""
    import mlflow

    monkeypatch.chdir(tmp_path)  # the run's artifacts land beside a file store's database
    data = tmp_path / "batch.csv"
    clean_frame[schema.feature_names].sample(200, random_state=0).to_csv(data, index=False)
    arguments = ["--baseline", str(model_dir / "baseline.json"), "--data", str(data)]
    arguments += ["--output-dir", str(tmp_path / "report"), "--stage", "prod"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert monitor.main(arguments) == 0
    assert not (tmp_path / "mlflow.db").exists()

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "churn")
    assert monitor.main(arguments) == 0
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("churn")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["rows"] == 200
    assert run.data.params["stage"] == "prod"
    assert run.data.tags["monitor.result"] == "passed"
    logged = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"report.json", "report.html"} <= logged


@pytest.mark.usefixtures("fake_aws")
def test_in_accounts_of_their_own_the_job_runs_in_the_prod_accounts_network() -> None:
    """Subnets belong to one account: prod's job gets the prod account's (``stage_vpc``)."""
    from pipelines import monitoring
    from pipelines.settings import Network, Standards

    standards = Standards(
        subnets=("subnet-build",),
        security_groups=("sg-build",),
        accounts={"staging": "111111111111", "prod": "222222222222"},
        stage_networks={"prod": Network(("subnet-prod",), ("sg-prod",))},
    )
    (step,) = monitoring.definition(project_settings(standards))["Steps"]
    vpc = step["Arguments"]["NetworkConfig"]["VpcConfig"]
    assert (vpc["Subnets"], vpc["SecurityGroupIds"]) == (["subnet-prod"], ["sg-prod"])
    assert step["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is False
    assert "Environment" not in step["Arguments"]  # the build account's MLflow is out of reach
