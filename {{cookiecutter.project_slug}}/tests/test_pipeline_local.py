"""`make pipeline-local`: the exported SageMaker pipeline definition, executed against loopback AWS.

Every test runs ``python -m pipelines.local`` end to end (publish as the build does, each job's own
command from the definition, registration in the loopback model registry) in a copy of this project,
so the data can change between executions. One moto server serves the whole module.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_model_card import assert_card_carries

from pipelines import local
from pipelines.deploy_config import load_template
from pipelines.settings import LOWER_IS_BETTER, load_settings

PROJECT = Path(__file__).resolve().parent.parent
SCHEMA = next(PROJECT.glob("src/*/schema.json"))
PROBLEM_TYPE = json.loads(SCHEMA.read_text())["problem_type"]
PARAMS = yaml.safe_load((PROJECT / "params.yaml").read_text())
# The DVC configuration is copied (the remote the pipeline reads), not its cache or state.
COPY_IGNORED = shutil.ignore_patterns(
    ".venv",
    ".git",
    "cache",
    "tmp",
    "__pycache__",
    "*_cache",
    "build",
    "models",
    "processed",
    "reports",
)
DVC_FILE = "data/raw/dataset.csv.dvc"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with local.loopback_server() as url:
        yield url


@pytest.fixture(scope="module")
def aws(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> local.Aws:
    """Clients of the loopback, its account set up as the foundation stack leaves it."""
    workdir = tmp_path_factory.mktemp("clients")
    settings = load_settings({})
    clients = local.Aws(local.loopback_environment(endpoint, settings.region, workdir))
    clients.ensure_bucket(settings.bucket)
    clients.ensure_model_package_group(settings.model_package_group)
    return clients


def project_copy(tmp_path: Path) -> Path:
    """This project without its environment, caches and outputs: a team's checkout."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT, copy, ignore=COPY_IGNORED)
    for folder in ("models", "reports", "data/processed"):
        (copy / folder).mkdir(parents=True, exist_ok=True)
    dvc(copy, "config", "--local", "core.no_scm", "true")  # a checkout without its git history
    return copy


def dvc(project: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, check=True)


def data_version(project: Path) -> str:
    """The DVC MD5 of the project's data: what `dvc repro` records (the lineage stage)."""
    return str(yaml.safe_load((project / DVC_FILE).read_text())["outs"][0]["md5"])


def pipeline_local(project: Path, endpoint: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """`make pipeline-local` on the data as it is now, versioned by DVC first (`dvc commit`)."""
    report = project / "reports" / "pipeline-local.json"
    report.unlink(missing_ok=True)
    dvc(project, "commit", "--force", "-q", DVC_FILE)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.local", "--endpoint-url", endpoint, *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert report.exists(), output[-4000:]
    return result.returncode, json.loads(report.read_text()), output


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {step["name"]: step["status"] for step in report["steps"]}


def package(aws: local.Aws, arn: str) -> dict[str, Any]:
    return dict(aws.sagemaker.describe_model_package(ModelPackageName=arn))


def package_count(aws: local.Aws) -> int:
    group = load_settings({}).model_package_group
    listed = aws.sagemaker.list_model_packages(ModelPackageGroupName=group, MaxResults=100)
    return len(listed["ModelPackageSummaryList"])


def metrics_of(aws: local.Aws, arn: str) -> bytes:
    """What the model registry shows as this package's quality metrics."""
    statistics = package(aws, arn)["ModelMetrics"]["ModelQuality"]["Statistics"]
    return aws.read(statistics["S3Uri"])


def trained_rows(aws: local.Aws, arn: str) -> int:
    """How many rows the registered model was trained on (its own baseline, inside model.tar.gz)."""
    (container,) = package(aws, arn)["InferenceSpecification"]["Containers"]
    with tarfile.open(fileobj=io.BytesIO(aws.read(container["ModelDataUrl"]))) as archive:
        member = archive.extractfile("baseline.json")
        assert member is not None
        return int(json.load(member)["rows"])


def train_split_rows(project: Path) -> int:
    """How many rows of the project's data (its dataset and schema as they are now) the prepare
    step trains on: ``data.split`` decides per row."""
    data = importlib.import_module(f"{load_settings({}).package}.data")
    schema = data.load_schema(project / SCHEMA.relative_to(PROJECT))
    raw = data.read_csv_dir(project / "data" / "raw" / "dataset.csv", schema.text_columns)
    prepare = PARAMS["prepare"]
    train, _ = data.split(data.validate(raw, schema), prepare["test_size"], prepare["seed"])
    return len(train)


def assert_registered(code: int, report: dict[str, Any], output: str) -> None:
    assert code == 0, output[-4000:]
    assert report["status"] == "Succeeded"
    assert statuses(report)["RegisterModel"] == "Succeeded"
    assert statuses(report)["QualityGateFailed"] == "Skipped"
    assert report["model_package_arn"] and report["model_metrics_uri"]
    assert report["failure_message"] is None


def recorded_versions(aws: local.Aws, report: dict[str, Any]) -> set[str]:
    """The data versions the execution recorded: package metadata, lineage and model card."""
    metadata = package(aws, report["model_package_arn"])["CustomerMetadataProperties"]
    lineage = json.loads(aws.read(metadata["LineageUri"]))
    card = json.loads(report["model_card"]["ModelCardContent"])
    return {metadata["DataVersion"], lineage["data"]["version"], card_data_version(card)}


def card_data_version(card: dict[str, Any]) -> str:
    (evaluation,) = card["evaluation_details"]
    return str(evaluation["metadata"]["data_version"])


def test_data_missing_from_the_dvc_cache_is_refused_in_one_line(
    endpoint: str, tmp_path: Path
) -> None:
    """A checkout whose data never reached the DVC cache: nothing to push, nothing is run."""
    project = project_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.local", "--endpoint-url", endpoint],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert f"data version {data_version(project)} is not in the DVC cache: run `make setup`" in line


def test_two_executions_keep_their_own_outputs_and_metrics(
    endpoint: str, aws: local.Aws, tmp_path: Path
) -> None:
    """The sample, twice (the second time on fewer rows): both register, nothing is shared."""
    project = project_copy(tmp_path)
    code, first, output = pipeline_local(project, endpoint)
    assert_registered(code, first, output)
    assert set(statuses(first).values()) == {"Succeeded", "Skipped"}
    # One data version: the DVC MD5 `dvc repro` records is what the SageMaker run recorded.
    first_version = data_version(project)
    assert recorded_versions(aws, first) == {first_version}
    assert first["parameters"]["InputDataUrl"].endswith(f"/{first_version[:2]}/{first_version[2:]}")
    first_metrics = metrics_of(aws, first["model_package_arn"])
    assert aws.read(first["model_metrics_uri"]) == first_metrics
    # The registered package's model card (ModelCardContent) carries these metrics.
    assert first["model_card"]["ModelCardStatus"] == "PendingReview"
    card = json.loads(first["model_card"]["ModelCardContent"])
    assert_card_carries(card, json.loads(first_metrics))

    dataset = project / "data" / "raw" / "dataset.csv"
    frame = pd.read_csv(dataset)
    frame.iloc[: len(frame) * 3 // 4].to_csv(dataset, index=False)
    code, second, output = pipeline_local(project, endpoint)
    assert_registered(code, second, output)
    assert recorded_versions(aws, second) == {data_version(project)} != {first_version}

    assert first["execution_id"] != second["execution_id"]
    assert first["model_package_arn"] != second["model_package_arn"]
    for run in (first, second):
        for step in run["steps"]:
            for uri in step.get("outputs", {}).values():
                assert run["execution_id"] in uri, f"{step['name']} writes {uri}, shared by runs"
    assert metrics_of(aws, second["model_package_arn"]) != first_metrics
    assert metrics_of(aws, first["model_package_arn"]) == first_metrics, (
        "package 1 shows another execution's metrics"
    )
    assert trained_rows(aws, second["model_package_arn"]) == train_split_rows(project)


def test_a_model_below_the_gate_fails_and_registers_nothing(
    endpoint: str, aws: local.Aws, tmp_path: Path
) -> None:
    """Run on the JSON `make pipeline-definition` prints (offline, no AWS): it names the very
    code locations the build uploads; its gate fails the execution, threshold in the message."""
    project = project_copy(tmp_path)
    exported = tmp_path / "definition.json"
    offline = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    printed = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--definition-only", "--output", str(exported)],
        cwd=project,
        env=offline,
        capture_output=True,
        text=True,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr[-3000:]
    unreachable = "0.0" if PARAMS["gate"]["metric"] in LOWER_IS_BETTER else "1.01"
    before = package_count(aws)
    code, report, output = pipeline_local(
        project,
        endpoint,
        "--definition",
        str(exported),
        "--parameter",
        f"QualityThreshold={unreachable}",
    )
    assert code == 1, output[-4000:]
    assert report["status"] == "Failed"
    assert statuses(report)["QualityGateFailed"] == "Failed"
    assert statuses(report)["RegisterModel"] == "Skipped"
    assert report["model_package_arn"] is None
    assert PARAMS["gate"]["metric"] in report["failure_message"]
    assert unreachable in report["failure_message"]
    assert report["parameters"]["QualityThreshold"] == float(unreachable)
    assert package_count(aws) == before
    # one clear line for the person at the terminal
    assert "failed: QualityGateFailed: Model below the quality gate" in output


@pytest.mark.skipif(PROBLEM_TYPE != "classification", reason="a classification project's data")
def test_a_teams_three_class_data_passes_the_gate_and_registers(
    endpoint: str, aws: local.Aws, tmp_path: Path
) -> None:
    """Bring your own data: three classes (iris, written as the team's own file and schema)."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame = frame.rename(columns={"target": "species"})
    features = [c for c in frame.columns if c != "species"]
    schema = {
        "problem_type": "classification",
        "target": {"name": "species", "dtype": "int", "allowed": [0, 1, 2]},
        "features": {
            name: {"dtype": "float", "min": 0.0, "max": 10.0, "nullable": False}
            for name in features
        },
    }
    project = project_copy(tmp_path)
    (project / SCHEMA.relative_to(PROJECT)).write_text(json.dumps(schema, indent=2))
    frame.to_csv(project / "data" / "raw" / "dataset.csv", index=False)

    code, report, output = pipeline_local(project, endpoint)
    assert_registered(code, report, output)
    metrics = json.loads(metrics_of(aws, report["model_package_arn"]))
    assert "multiclass_classification_metrics" in metrics
    assert trained_rows(aws, report["model_package_arn"]) == train_split_rows(project)


def retraining_rule_parameters() -> dict[str, str]:
    """The parameters the EventBridge retraining rules pass, read from their templates.

    The endpoint stack's rule starts the pipeline when it runs in the pipeline's account; with
    staging and prod in accounts of their own the build account's rule (deploy-pipeline.yaml)
    does, for the prod account's alarms. Both must start it the same way.
    """

    def branches(value: Any) -> list[Any]:  # both sides of an Fn::If, without AWS::NoValue
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            return [v for v in value["Fn::If"][1:] if v != {"Ref": "AWS::NoValue"}]
        return [value]

    def rules(name: str) -> list[list[dict[str, Any]]]:
        return [
            [{"Name": p["Name"], "Value": p["Value"]} for p in parameters["PipelineParameterList"]]
            for resource in load_template(PROJECT / "infrastructure" / name)["Resources"].values()
            if resource["Type"] == "AWS::Events::Rule"
            for target in resource["Properties"].get("Targets", [])
            for parameters in branches(target.get("SageMakerPipelineParameters"))
            if parameters
        ]

    endpoint_rules = rules("endpoint.yaml")
    # A serverless endpoint has no monitoring, hence no rule: retraining is then a start with
    # no parameters (by hand or a schedule of the team's own), which this test runs instead.
    assert len(endpoint_rules) <= 1
    for build_account_rule in rules("deploy-pipeline.yaml") if endpoint_rules else []:
        assert build_account_rule == endpoint_rules[0]
    return {p["Name"]: str(p["Value"]) for p in (endpoint_rules[0] if endpoint_rules else [])}


def test_alarm_started_retraining_trains_on_the_data_of_the_last_upsert(
    endpoint: str, aws: local.Aws, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    dataset = project / "data" / "raw" / "dataset.csv"
    frame = pd.read_csv(dataset)
    new_rows = len(frame) * 2 // 3
    frame.iloc[:new_rows].to_csv(dataset, index=False)
    arguments = []
    for name, value in retraining_rule_parameters().items():
        arguments += ["--parameter", f"{name}={value}"]
    code, report, output = pipeline_local(project, endpoint, "--trigger", "rule", *arguments)
    assert_registered(code, report, output)
    assert report["started_with"] == retraining_rule_parameters()
    # the lineage record registered with the package, and the model itself, count the new rows
    described = package(aws, report["model_package_arn"])
    lineage = json.loads(aws.read(described["CustomerMetadataProperties"]["LineageUri"]))
    assert lineage["pipeline_execution_id"] == report["execution_id"]
    assert lineage["training_rows"] == train_split_rows(project)
    assert lineage["data"]["version"] == data_version(project)
    assert trained_rows(aws, report["model_package_arn"]) == train_split_rows(project)
