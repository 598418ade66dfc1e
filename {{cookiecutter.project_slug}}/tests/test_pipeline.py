"""The SageMaker pipeline definition, built offline, and its upsert/start against moto."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml
from moto import mock_aws
from pipeline_definition import (
    Execution,
    output_uris,
    placeholders,
    validate_request,
    walk_steps,
)

from pipelines import run
from pipelines.code_bundle import collect
from pipelines.local import Aws, loopback_environment
from pipelines.offline_install import parse_requirements
from pipelines.settings import LOWER_IS_BETTER, Standards, load_settings, load_standards

PROJECT = Path(__file__).resolve().parent.parent
DVC_FILE = "data/raw/dataset.csv.dvc"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_aws")]
SETTINGS_ENV = {
    "SAGEMAKER_PROJECT_NAME": "churn-prod",
    "SAGEMAKER_PROJECT_ID": "p-abc123",
    "ARTIFACT_BUCKET": "provisioned-artifacts",
    "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/pipeline-role",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture()
def aws(fake_aws: None) -> Iterator[None]:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=SETTINGS_ENV["ARTIFACT_BUCKET"])
        yield


@pytest.fixture()
def definition() -> dict[str, Any]:
    return dict(json.loads(run.definition(load_settings(SETTINGS_ENV))))


steps_by_name = walk_steps


def references(value: Any) -> set[str]:
    """Step names a step's arguments point at (its data dependencies)."""
    text = json.dumps(value)
    return {part.split(".")[1] for part in text.split('"Get": "')[1:] if part.startswith("Steps.")}


def test_settings_come_from_the_provisioned_project() -> None:
    settings = load_settings(SETTINGS_ENV)
    assert settings.pipeline_name == "churn-prod-pipeline"
    assert settings.model_package_group == "churn-prod"
    assert settings.bucket == "provisioned-artifacts"
    assert settings.tags["sagemaker:project-id"] == "p-abc123"
    local = load_settings({})
    assert local.project_id == "local" and "sagemaker:project-id" not in local.tags


def test_steps_and_types(definition: dict[str, Any]) -> None:
    types = {name: step["Type"] for name, step in steps_by_name(definition).items()}
    assert types == {
        "PrepareData": "Processing",
        "BaselineData": "Processing",
        "TrainModel": "Training",
        "EvaluateModel": "Processing",
        "QualityGate": "Condition",
        "RegisterModel": "RegisterModel",
        "QualityGateFailed": "Fail",
    }


def test_dependency_graph(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    assert references(steps["PrepareData"]["Arguments"]) == set()
    assert references(steps["BaselineData"]["Arguments"]) == {"PrepareData"}
    assert references(steps["TrainModel"]["Arguments"]) == {"PrepareData"}
    assert references(steps["EvaluateModel"]["Arguments"]) == {
        "PrepareData",
        "TrainModel",
    }
    gate = steps["QualityGate"]["Arguments"]
    assert references(gate["Conditions"]) == {"EvaluateModel"}
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["QualityGateFailed"]


def test_parameters(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert set(parameters) == {
        "InputDataUrl",
        "ProcessingInstanceType",
        "ProcessingInstanceCount",
        "TrainingInstanceType",
        "QualityThreshold",
        "ModelApprovalStatus",
    }
    inputs = run.pipeline_inputs()
    assert parameters["QualityThreshold"]["DefaultValue"] == inputs["gate_threshold"]
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    # A run started without parameters reads the data of the commit last upserted, from the DVC
    # remote (.dvc/config): where `dvc push` put it, test_a_run_reads_the_data_dvc_pushed shows.
    assert parameters["InputDataUrl"]["DefaultValue"] == run.tracked_data().url


def test_quality_gate_reads_the_evaluation_report(definition: dict[str, Any]) -> None:
    steps = steps_by_name(definition)
    (condition,) = steps["QualityGate"]["Arguments"]["Conditions"]
    inputs = run.pipeline_inputs()
    lower_is_better = inputs["gate_metric"] in LOWER_IS_BETTER
    assert condition["Type"] == ("LessThanOrEqualTo" if lower_is_better else "GreaterThanOrEqualTo")
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["Path"].endswith(f".{inputs['gate_metric']}.value")
    assert json_get["PropertyFile"] == {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"}
    assert condition["RightValue"] == {"Get": "Parameters.QualityThreshold"}
    evaluation = steps["EvaluateModel"]
    property_files = {file["PropertyFileName"]: file for file in evaluation["PropertyFiles"]}
    assert property_files["EvaluationReport"]["FilePath"] == "metrics.json"
    assert "Model below the quality gate" in json.dumps(steps["QualityGateFailed"]["Arguments"])


def test_registration(definition: dict[str, Any]) -> None:
    register = steps_by_name(definition)["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == "churn-prod"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "EvaluateModel" in json.dumps(statistics["S3Uri"])
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_jobs_run_the_projects_own_modules(definition: dict[str, Any]) -> None:
    """Each job runs job_entry.py with a module of the package, from the content-hashed code."""
    steps = steps_by_name(definition)
    package = load_settings(SETTINGS_ENV).package
    code = collect().uri(load_settings(SETTINGS_ENV).prefix)
    for name, module in (
        ("PrepareData", "data"),
        ("BaselineData", "quality_baseline"),
        ("EvaluateModel", "evaluate"),
    ):
        app = steps[name]["Arguments"]["AppSpecification"]
        assert app["ContainerEntrypoint"] == [
            "python3",
            "/opt/ml/processing/input/code/job_entry.py",
        ]
        assert app["ContainerArguments"][0] == f"{package}.{module}", name
        inputs = {
            i["InputName"]: i["S3Input"] for i in steps[name]["Arguments"]["ProcessingInputs"]
        }
        assert inputs["code"]["S3Uri"] == code
        assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
    train = steps["TrainModel"]["Arguments"]
    algorithm = train["AlgorithmSpecification"]
    assert "sagemaker-scikit-learn" in algorithm["TrainingImage"]
    assert algorithm["ContainerEntrypoint"] == ["python3", "/opt/ml/input/data/code/job_entry.py"]
    assert algorithm["ContainerArguments"][0] == f"{package}.train"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in train["InputDataConfig"]}
    assert channels["code"]["S3Uri"] == code
    shipped = set(collect().files)
    assert {"job_entry.py", f"{package}/train.py", f"{package}/schema.json"} <= shipped


def test_the_chosen_framework_trains_on_the_scikit_learn_image(definition: dict[str, Any]) -> None:
    """The estimator chosen at generation (``src/<package>/estimator.py``) runs on the SageMaker
    scikit-learn image: its hyperparameters reach the training job in its own names, its library
    reaches every job in the shipped requirements.txt at the version trained with here, and the
    model package records which it is."""

    package = load_settings(SETTINGS_ENV).package
    estimator = importlib.import_module(f"{package}.estimator")
    steps = steps_by_name(definition)
    algorithm = steps["TrainModel"]["Arguments"]["AlgorithmSpecification"]
    arguments = algorithm["ContainerArguments"]
    hyperparameters = yaml.safe_load((PROJECT / "params.yaml").read_text())["train"]
    assert hyperparameters and set(hyperparameters) <= set(estimator.HYPERPARAMETERS)
    for name, value in hyperparameters.items():
        flag = arguments.index(f"--{name.replace('_', '-')}")
        assert arguments[flag + 1] == str(value), name
    register = steps["RegisterModel"]["Arguments"]
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["Image"] == algorithm["TrainingImage"]
    assert "sagemaker-scikit-learn" in container["Image"]
    versions = estimator.framework_versions()
    recorded = register["CustomerMetadataProperties"]["ModelFramework"]
    assert recorded == " ".join(f"{name} {version}" for name, version in versions.items())
    # What job_entry.py installs on the image (its Python, Linux): the same version.
    image = json.loads((PROJECT / "pipelines" / "image_versions.json").read_text())
    on_image = {"python_version": image["python"], "python_full_version": f"{image['python']}.0"}
    on_image |= {"sys_platform": "linux", "platform_system": "Linux"}
    shipped = parse_requirements((PROJECT / "src" / "requirements.txt").read_text())
    pins = {
        requirement.name: {spec.version for spec in requirement.specifier}
        for requirement in shipped.pins
        if requirement.marker is None or requirement.marker.evaluate(on_image)
    }
    assert "requirements.txt" in collect().files
    for name, version in versions.items():
        # A library may ship its Linux build as <name>-cpu: the same package, without CUDA.
        assert {version} in (pins.get(name), pins.get(f"{name}-cpu")), (name, pins)


def test_every_job_is_tagged(definition: dict[str, Any]) -> None:
    for name, step in steps_by_name(definition).items():
        if step["Type"] in ("Processing", "Training"):
            tags = {t["Key"]: t["Value"] for t in step["Arguments"]["Tags"]}
            assert tags["sagemaker:project-name"] == "churn-prod", name
            assert "cost-centre" in tags, name


def test_cli_prints_the_definition(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in SETTINGS_ENV.items():
        monkeypatch.setenv(key, value)
    assert run.main(["--definition-only"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["Version"] and len(printed["Steps"]) == 5


def test_upsert_and_start(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SETTINGS_ENV.items():
        monkeypatch.setenv(key, value)
    # What `make push` leaves in the DVC remote (test_a_run_reads_the_data_dvc_pushed pushes).
    data = run.tracked_data()
    bucket, key = data.url.removeprefix("s3://").split("/", 1)
    boto3.client("s3").create_bucket(Bucket=bucket)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
    assert run.main(["--upsert", "--start"]) == 0
    assert run.main(["--upsert"]) == 0  # a second upsert updates, it does not duplicate
    sagemaker = boto3.client("sagemaker")
    (summary,) = sagemaker.list_pipelines()["PipelineSummaries"]
    assert summary["PipelineName"] == "churn-prod-pipeline"
    described = sagemaker.describe_pipeline(PipelineName="churn-prod-pipeline")
    assert described["RoleArn"] == SETTINGS_ENV["SAGEMAKER_PIPELINE_ROLE_ARN"]
    settings = load_settings(SETTINGS_ENV)
    assert described["PipelineDefinition"] == run.definition(settings)
    executions = sagemaker.list_pipeline_executions(PipelineName="churn-prod-pipeline")
    assert len(executions["PipelineExecutionSummaries"]) == 1
    (execution,) = executions["PipelineExecutionSummaries"]
    started = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert started == [{"Name": "InputDataUrl", "Value": data.url}]
    # The code the definition points at is there, file for file (and under network isolation
    # wheel for wheel), under its content hash.
    bundle = collect()
    listed = boto3.client("s3").list_objects_v2(
        Bucket=settings.bucket, Prefix=f"{settings.project_name}/code/"
    )
    keys = {o["Key"] for o in listed["Contents"]}
    assert keys == {f"{settings.project_name}/code/{bundle.digest}/{f}" for f in bundle.contents()}
    assert bundle.uri(settings.prefix) in described["PipelineDefinition"]


def test_cli_needs_an_action() -> None:
    with pytest.raises(SystemExit):
        run.main([])


STRICT = Standards(
    kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/org-key",
    subnets=("subnet-0a1b2c", "subnet-0d4e5f"),
    security_groups=("sg-0123abcd",),
    network_isolation=True,
    instance_types={"processing": ("ml.m5.xlarge",), "training": ("ml.c5.2xlarge",)},
)


def test_organisation_standards_reach_every_job() -> None:
    definition = json.loads(run.definition(load_settings(SETTINGS_ENV, standards=STRICT)))
    steps = steps_by_name(definition)
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert parameters["ProcessingInstanceType"] == "ml.m5.xlarge"
    assert parameters["TrainingInstanceType"] == "ml.c5.2xlarge"
    for name in ("PrepareData", "EvaluateModel"):
        arguments = steps[name]["Arguments"]
        assert (
            arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
            == STRICT.kms_key_arn
        )
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == STRICT.kms_key_arn
        network = arguments["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True
        assert network["VpcConfig"]["Subnets"] == list(STRICT.subnets)
        assert network["VpcConfig"]["SecurityGroupIds"] == list(STRICT.security_groups)
    training = steps["TrainModel"]["Arguments"]
    assert training["OutputDataConfig"]["KmsKeyId"] == STRICT.kms_key_arn
    assert training["ResourceConfig"]["VolumeKmsKeyId"] == STRICT.kms_key_arn
    assert training["VpcConfig"]["Subnets"] == list(STRICT.subnets)
    assert training["EnableNetworkIsolation"] is True


def test_instance_types_outside_the_standards_are_refused() -> None:
    with pytest.raises(ValueError, match="not allowed by the organisation standards"):
        STRICT.check_instance("training", "ml.p4d.24xlarge")
    STRICT.check_instance("training", "ml.c5.2xlarge")
    Standards().check_instance("training", "ml.p4d.24xlarge")  # no standards: no limit


def test_the_projects_own_standards_file_is_applied() -> None:
    """org-standards.json (written by the template) reaches the definition as it says."""
    standards = load_standards()
    definition = json.loads(run.definition(load_settings(SETTINGS_ENV)))
    prepare = steps_by_name(definition)["PrepareData"]["Arguments"]
    if standards.kms_key_arn:
        assert prepare["ProcessingOutputConfig"]["KmsKeyId"] == standards.kms_key_arn
    else:
        assert "KmsKeyId" not in prepare["ProcessingOutputConfig"]
    if standards.subnets:
        assert prepare["NetworkConfig"]["VpcConfig"]["Subnets"] == list(standards.subnets)
    else:
        assert "NetworkConfig" not in prepare


OFFLINE_GUARD = """
import runpy, sys
sys.path.insert(0, ".")
sys.modules["moto"] = None  # a production module importing a test library fails here
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

def guard(event, args):
    if event == "socket.getaddrinfo" and args[0] not in LOOPBACK:
        raise SystemExit(f"DNS lookup of {args[0]} while building the definition")
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in LOOPBACK:
        raise SystemExit(f"connection to {args[1]} while building the definition")

sys.addaudithook(guard)
sys.argv = ["pipelines.run", "--definition-only"]
runpy.run_module("pipelines.run", run_name="__main__")
"""


def test_definition_only_is_offline_deterministic_and_free_of_test_libraries(
    tmp_path: Path,
) -> None:
    """`make pipeline-definition` on a laptop: no credentials, no network, same bytes every time.

    Any DNS lookup or non-loopback connection fails the run (audit hook), moto cannot be imported,
    and two runs must print byte-identical definitions (no time-stamped code locations).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", OFFLINE_GUARD],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    definition = json.loads(outputs[0])
    assert [step["Name"] for step in definition["Steps"]] == [
        "PrepareData",
        "BaselineData",
        "TrainModel",
        "EvaluateModel",
        "QualityGate",
    ]


@pytest.mark.parametrize("opt_out", [True, False], ids=["project-session", "sdk-default"])
def test_the_projects_session_sends_no_sdk_telemetry(
    monkeypatch: pytest.MonkeyPatch, opt_out: bool
) -> None:
    """The SDK's own telemetry decorator, given the project's session, sends nothing.

    The `sdk-default` case (the same session without the opt-out configuration) shows that the
    decorator would send, so the first case passes because of the configuration, not by accident.
    """
    from sagemaker.core.telemetry import telemetry_logging

    from pipelines.sagemaker_session import offline_session

    sent: list[Any] = []
    monkeypatch.setattr(
        telemetry_logging, "_send_telemetry_request", lambda *args, **_: sent.append(args)
    )

    class Job:
        def __init__(self, session: Any) -> None:
            self.sagemaker_session = session

        @telemetry_logging._telemetry_emitter(telemetry_logging.Feature.SDK_DEFAULTS, "Job.run")
        def run(self) -> str:
            return "ran"

    session = offline_session("us-east-1")
    if not opt_out:
        session.sagemaker_config = {}
    assert Job(session).run() == "ran"
    assert (sent == []) if opt_out else sent


def test_code_location_follows_the_code(tmp_path: Path) -> None:
    """Changing one byte of the job code moves it to a new location; the same code keeps it."""
    source = PROJECT / "src"
    copy = tmp_path / "src"
    for relative in collect(source).files:
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_bytes((source / relative).read_bytes())
    assert collect(copy).digest == collect(source).digest
    (copy / "job_entry.py").write_text((copy / "job_entry.py").read_text() + "\n")
    assert collect(copy).digest != collect(source).digest


def test_every_execution_writes_under_its_own_prefix(definition: dict[str, Any]) -> None:
    """Two executions never share an output, and each package's metrics stay its own."""
    first, second = Execution(definition, "exec-1"), Execution(definition, "exec-2")
    first_outputs, second_outputs = output_uris(first), output_uris(second)
    # train split, test split, baseline, model, evaluation
    assert len(first_outputs) == 5
    assert not first_outputs & second_outputs
    for uri in first_outputs:
        assert "/exec-1/" in uri + "/", uri
    register = walk_steps(definition)["RegisterModel"]["Arguments"]
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    first_metrics, second_metrics = first.resolve(statistics), second.resolve(statistics)
    assert first_metrics != second_metrics
    assert first_metrics.startswith(
        first.resolve(
            walk_steps(definition)["EvaluateModel"]["Arguments"]["ProcessingOutputConfig"][
                "Outputs"
            ][0]["S3Output"]["S3Uri"]
        )
    )
    # The training job reads the split its own execution prepared.
    train = first.resolve(walk_steps(definition)["TrainModel"]["Arguments"])
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]
    }
    assert channels["train"] in first_outputs


def test_every_request_passes_the_service_model(definition: dict[str, Any]) -> None:
    """Each step's arguments, the pipeline requests, as botocore's own validation sees them."""
    settings = load_settings(SETTINGS_ENV)
    operations = {
        "Processing": ("CreateProcessingJob", "ProcessingJobName"),
        "Training": ("CreateTrainingJob", "TrainingJobName"),
        "RegisterModel": ("CreateModelPackage", None),
    }
    checked = set()
    for name, step in walk_steps(definition).items():
        if step["Type"] not in operations:
            continue
        operation, job_name = operations[step["Type"]]
        request = placeholders(step["Arguments"])
        if job_name:
            request[job_name] = f"{name.lower()}-job"
        validate_request(operation, request)
        checked.add(step["Type"])
    assert checked == set(operations)
    text = json.dumps(definition)
    validate_request("CreatePipeline", run.create_pipeline_request(settings, text))
    validate_request("UpdatePipeline", run.update_pipeline_request(settings, text))
    validate_request("StartPipelineExecution", run.start_request(settings, {}))
    validate_request(
        "StartPipelineExecution", run.start_request(settings, {"ModelApprovalStatus": "Approved"})
    )


def test_strict_standards_requests_pass_the_service_model() -> None:
    definition = json.loads(run.definition(load_settings(SETTINGS_ENV, standards=STRICT)))
    for name, step in walk_steps(definition).items():
        if step["Type"] == "Processing":
            validate_request(
                "CreateProcessingJob", placeholders(step["Arguments"]) | {"ProcessingJobName": name}
            )
        if step["Type"] == "Training":
            validate_request(
                "CreateTrainingJob", placeholders(step["Arguments"]) | {"TrainingJobName": name}
            )


def three_class_project(root: Path, package: str) -> Path:
    """A team's own three-class data (scikit-learn's iris) with its schema; returns params.yaml."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame
    iris.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    features = {
        name: {"dtype": "float", "min": 0.0, "max": 20.0, "nullable": False}
        for name in iris.columns[:-1]
    }
    schema = {
        "problem_type": "classification",
        "target": {"name": "species", "dtype": "int", "allowed": [0, 1, 2]},
        "features": features,
    }
    (root / "src" / package).mkdir(parents=True)
    (root / "src" / package / "schema.json").write_text(json.dumps(schema))
    (root / "data").mkdir()
    iris.to_csv(root / "data" / "iris.csv", index=False)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["gate"] = {"metric": "accuracy", "threshold": 0.9}  # a classification gate
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "params.yaml"


def test_three_classes_pass_the_gate_path(tmp_path: Path) -> None:
    """The gate reads the section evaluate writes for three classes, and the value is there."""
    settings = load_settings(SETTINGS_ENV)
    package = settings.package
    params = three_class_project(tmp_path / "project", package)
    inputs = run.pipeline_inputs(params)
    del inputs["problem_type"]
    from pipelines.pipeline import get_pipeline

    definition = json.loads(
        get_pipeline(settings, data_url=run.tracked_data().url, **inputs).definition()
    )
    (condition,) = walk_steps(definition)["QualityGate"]["Arguments"]["Conditions"]
    path = condition["LeftValue"]["Std:JsonGet"]["Path"]

    schema_file = params.parent / "src" / package / "schema.json"
    data = params.parent / "data"
    model_dir, evaluation = tmp_path / "model", tmp_path / "evaluation"
    for module, arguments in (
        ("data", ["--input-dir", data, "--output-dir", tmp_path / "prepared"]),
        ("train", ["--train-dir", tmp_path / "prepared" / "train", "--model-dir", model_dir]),
        (
            "evaluate",
            [
                *("--model-dir", model_dir, "--test-dir", tmp_path / "prepared" / "test"),
                *("--output-dir", evaluation),
            ],
        ),
    ):
        entry = importlib.import_module(f"{package}.{module}")
        assert entry.main([*map(str, arguments), "--schema", str(schema_file)]) == 0, module
    report = json.loads((evaluation / "metrics.json").read_text())
    value: Any = report
    for key in path.split("."):
        value = value[key]
    assert path.startswith("multiclass_classification_metrics.")
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert value >= inputs["gate_threshold"]


def test_a_run_reads_the_data_dvc_pushed(workspace: Path, moto_endpoint: str) -> None:
    """Unpushed data is refused in one line; once `make push` ran, the prepare step's input is
    the object DVC pushed, and the prepare job reads it as SageMaker hands it over."""
    bucket = run.tracked_data().url.removeprefix("s3://").split("/", 1)[0]  # .dvc/config's
    env = loopback_environment(moto_endpoint, "us-east-1", workspace.parent)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dvc",
            "remote",
            "modify",
            "--local",
            "s3",
            "endpointurl",
            moto_endpoint,
        ],
        cwd=workspace,
        check=True,
    )
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "commit", "--force", "-q", DVC_FILE], cwd=workspace, check=True)

    def start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipelines.run", "--start"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    refused = start()
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error: data version ") and line.endswith("run `make push`")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing was uploaded

    subprocess.run([*dvc, "push", "-q", DVC_FILE], cwd=workspace, check=True)
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    resolved = subprocess.run(
        [sys.executable, "-c", "from pipelines import run; print(run.tracked_data().url)"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    url = resolved.stdout.strip()
    assert url == f"s3://{bucket}/{key}"  # the object `dvc push` wrote, nothing else
    dvc_md5 = yaml.safe_load((workspace / DVC_FILE).read_text())["outs"][0]["md5"]
    package = load_settings({}).package
    assert importlib.import_module(f"{package}.lineage").dvc_version(url) == dvc_md5

    # PrepareData's input as SageMaker materialises an S3Prefix naming one object.
    job = workspace / "job"
    local_aws = Aws(env)
    assert local_aws.download_prefix(url, job / "data") == [job / "data" / key.rsplit("/")[-1]]
    prepare = importlib.import_module(f"{package}.data")
    assert prepare.main(["--input-dir", str(job / "data"), "--output-dir", str(job / "out")]) == 0
    prepared = sum(len(pd.read_csv(f)) for f in (job / "out").rglob("*.csv"))
    assert prepared == len(pd.read_csv(workspace / "data" / "raw" / "dataset.csv"))


def test_the_baseline_is_model_monitors_format_and_registered(
    definition: dict[str, Any], tmp_path: Path, clean_frame: Any
) -> None:
    """statistics.json/constraints.json as AWS documents them, registered as drift baselines.

    Keys from "Schema for Statistics" and "Schema for Constraints" (Model Monitor, AWS docs).
    """
    package = load_settings(SETTINGS_ENV).package
    train = tmp_path / "train"
    train.mkdir()
    clean_frame.to_csv(train / "train.csv", index=False)
    entry = importlib.import_module(f"{package}.quality_baseline")
    # The step passes params.yaml's monitor.missing_shift, which sets the completeness constraints.
    container = walk_steps(definition)["BaselineData"]["Arguments"]["AppSpecification"]
    arguments = container["ContainerArguments"]
    shift = arguments[arguments.index("--missing-shift") + 1]
    assert float(shift) == run.pipeline_inputs()["missing_shift"]
    arguments = ["--data-dir", str(train), "--output-dir", str(tmp_path / "baseline")]
    assert entry.main([*arguments, "--missing-shift", shift]) == 0
    statistics = json.loads((tmp_path / "baseline" / "statistics.json").read_text())
    constraints = json.loads((tmp_path / "baseline" / "constraints.json").read_text())
    assert statistics["dataset"]["item_count"] == len(clean_frame)
    names = [f for f in clean_frame.columns][:-1]
    assert [f["name"] for f in statistics["features"]] == names
    for feature in statistics["features"]:
        assert feature["inferred_type"] in ("Fractional", "Integral")
        numbers = feature["numerical_statistics"]
        assert set(numbers) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
        assert set(numbers["common"]) == {"num_present", "num_missing"}
        kll = numbers["distribution"]["kll"]
        assert sum(b["count"] for b in kll["buckets"]) == numbers["common"]["num_present"]
        assert set(kll["sketch"]["parameters"]) == {"c", "k"}
    for feature in constraints["features"]:
        # The sample data has no missing value: completeness 1 less the allowed shift.
        assert feature["completeness"] == pytest.approx(1.0 - float(shift))
        assert set(feature["num_constraints"]) == {"is_non_negative"}
    config = constraints["monitoring_config"]
    assert config["distribution_constraints"]["comparison_method"] in ("Simple", "Robust")

    register = walk_steps(definition)["RegisterModel"]["Arguments"]
    execution = Execution(definition, "exec-1")
    drift = execution.resolve(register["DriftCheckBaselines"]["ModelDataQuality"])
    assert drift["Constraints"]["S3Uri"].endswith("/exec-1/baseline/constraints.json")
    assert drift["Statistics"]["S3Uri"].endswith("/exec-1/baseline/statistics.json")


def test_lineage_is_written_by_the_pipeline_and_registered(
    definition: dict[str, Any], tmp_path: Path, model_dir: Path, clean_frame: Any
) -> None:
    package = load_settings(SETTINGS_ENV).package
    test = tmp_path / "test"
    test.mkdir()
    clean_frame.to_csv(test / "test.csv", index=False)
    entry = importlib.import_module(f"{package}.evaluate")
    execution = Execution(definition, "exec-1")
    evaluate = walk_steps(definition)["EvaluateModel"]["Arguments"]
    arguments = execution.resolve(evaluate["AppSpecification"]["ContainerArguments"])[1:]
    for flag, value in (("--model-dir", model_dir), ("--test-dir", test)):
        arguments[arguments.index(flag) + 1] = str(value)
    arguments[arguments.index("--output-dir") + 1] = str(tmp_path / "out")
    assert entry.main(arguments) == 0
    record = json.loads((tmp_path / "out" / "lineage.json").read_text())
    assert record["pipeline_execution_id"] == "exec-1"
    assert record["training_rows"] == len(clean_frame)
    # The version is the DVC MD5 the .dvc file names, read back from the input's name.
    data = run.tracked_data()
    dvc_md5 = yaml.safe_load(run.DATA_DVC_FILE.read_text())["outs"][0]["md5"]
    assert record["data"] == {"uri": data.url, "version": dvc_md5}

    register = walk_steps(definition)["RegisterModel"]["Arguments"]
    execution.json_files["Steps.EvaluateModel.PropertyFiles.EvaluationLineage"] = {
        "data.version": record["data"]["version"]
    }
    metadata = execution.resolve(register["CustomerMetadataProperties"])
    assert metadata["PipelineExecutionId"] == "exec-1"
    assert metadata["DataUri"] == data.url
    assert metadata["DataVersion"] == dvc_md5
    assert metadata["LineageUri"].endswith("/exec-1/evaluation/lineage.json")
    assert metadata["CodeSha256"] == collect().digest
    # The local record is kept with the model: DVC caches (and `make push` uploads) it.
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    assert "models/lineage.json" in stages["register"]["outs"]
