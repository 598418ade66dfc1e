"""Experiment tracking: where runs go, what a run holds, the experiments table and the plots."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlops_platform import plots

from {{ cookiecutter.package_name }} import evaluate, lineage, tracking
from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.inference import load_model

PROJECT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header; raises on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_nothing_configured_gives_the_project_store_for_local_runs_only(tmp_path: Path) -> None:
    local = tracking.destination(local=True, default_experiment="proj", environ={}, cwd=tmp_path)
    assert local is not None
    assert local.uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert local.experiment == "proj"
    assert local.artifact_root == (tmp_path.resolve() / "mlartifacts" / "proj").as_uri()
    # A pipeline job with no tracking server configured tracks nothing (and fails nothing).
    assert tracking.destination(local=False, default_experiment="proj", environ={}) is None


def test_tracking_uri_and_experiment_from_the_environment_win() -> None:
    arn = "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/team"
    environ = {"MLFLOW_TRACKING_URI": arn, "MLFLOW_EXPERIMENT_NAME": "provisioned-name"}
    for local in (True, False):
        found = tracking.destination(local=local, default_experiment="proj", environ=environ)
        assert found == tracking.Destination(uri=arn, experiment="provisioned-name")


def test_a_dvc_experiment_copy_records_into_the_project_it_came_from(tmp_path: Path) -> None:
    """Queued and temporary `dvc exp run`s run in a copy; DVC names the project in DVC_ROOT."""
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmp123"
    found = tracking.destination(
        local=True, default_experiment="p", environ={"DVC_ROOT": str(tmp_path)}, cwd=copy
    )
    assert found is not None and found.uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_params_are_named_as_dvc_names_them() -> None:
    params = {"train": {"max_iter": 5, "nested": {"a": 1}}, "gate": {"metric": "f1"}}
    assert tracking.flatten(params) == {
        "train.max_iter": 5,
        "train.nested.a": 1,
        "gate.metric": "f1",
    }


def _run(run_id: str, max_iter: int, value: float, result: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": "2026-01-01 00:00:00",
        "params": {"train.max_iter": str(max_iter), "train.seed": "42"},
        "metrics": {"accuracy": value},
        "tags": {
            tracking.GATE_METRIC_TAG: "accuracy",
            tracking.GATE_RESULT_TAG: result,
            tracking.DATA_VERSION_TAG: "0123456789abcdef",
        },
    }


def test_experiments_table_shows_only_the_params_that_differ() -> None:
    table = tracking.experiments_table(
        [_run("a" * 32, 50, 0.91, "passed"), _run("b" * 32, 200, 0.85, "failed")]
    )
    header, first, second = table.splitlines()
    assert "train.max_iter" in header and "train.seed" not in header
    assert first.split()[:1] == ["a" * 8] and "50" in first.split() and "0.9100" in first
    assert "200" in second.split() and "failed" in second and "0123456789ab" in second
    assert "every parameter is the same" in tracking.experiments_table([_run("c" * 32, 5, 1, "")])
    assert "no runs recorded yet" in tracking.experiments_table([])


def test_plots_are_valid_pngs(
    tmp_path: Path, model_dir: Path, clean_frame: pd.DataFrame, schema: Schema
) -> None:
    model, meta = load_model(model_dir)
    written = plots.write_plots(model, meta, clean_frame, tmp_path)
    expected = (
        plots.CLASSIFICATION_PLOTS
        if schema.problem_type == "classification"
        else plots.REGRESSION_PLOTS
    )
    assert sorted(path.name for path in written) == sorted(expected)
    for path in written:
        width, height = png_size(path)
        assert width > 100 and height > 100, path


def test_lineage_of_an_untracked_pipeline_run_names_no_run(model_dir: Path) -> None:
    """The registry step reads ``mlflow_run_id`` from every lineage record: "" when untracked."""
    record = lineage.pipeline_record(
        model_dir, {}, execution_id="e", data_uri="s3://b/d", data_version="v"
    )
    assert record["mlflow_run_id"] == ""


# The data version `dvc repro` records: the DVC MD5 of data/raw/dataset.csv.dvc.
DVC_MD5 = str(
    yaml.safe_load((PROJECT / "data" / "raw" / "dataset.csv.dvc").read_text())["outs"][0]["md5"]
)
# Where the pipeline reads that data: the DVC remote's object (pipelines/run.py tracked_data).
DVC_OBJECT_URL = f"s3://bucket/project/dvc/files/md5/{DVC_MD5[:2]}/{DVC_MD5[2:]}"


def pipeline_evaluation(
    tmp_path: Path, model_dir: Path, frame: pd.DataFrame, schema: Schema
) -> tuple[int, Path]:
    """evaluate.main as the pipeline's evaluation job calls it (no params.yaml, no git): the data
    is named by its DVC remote object, the version read from that name."""
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    frame.to_csv(test_dir / "test.csv", index=False)
    metric = "accuracy" if schema.problem_type == "classification" else "rmse"
    output = tmp_path / "evaluation"
    code = evaluate.main(
        [
            *("--model-dir", str(model_dir), "--test-dir", str(test_dir)),
            *("--output-dir", str(output), "--execution-id", "execution-1"),
            *("--data-uri", DVC_OBJECT_URL),
            *("--gate-metric", metric, "--gate-threshold", "0.5"),
            *("--code-digest", "c0de", "--template-version", "t1"),
        ]
    )
    return code, output


def test_the_data_version_is_the_dvc_md5_in_the_objects_name() -> None:
    assert lineage.dvc_version(DVC_OBJECT_URL) == DVC_MD5
    folder = "0f" + "1" * 30 + ".dir"  # a tracked folder's manifest, as its .dvc file names it
    assert lineage.dvc_version(f"s3://b/p/dvc/files/md5/{folder[:2]}/{folder[2:]}") == folder
    assert lineage.dvc_version("s3://bucket/data/v1/") == ""  # not a DVC object: no version


def test_an_untracked_pipeline_evaluation_logs_nothing_and_fails_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    code, output = pipeline_evaluation(tmp_path, model_dir, clean_frame, schema)
    assert code == 0
    record = json.loads((output / "lineage.json").read_text())
    assert record["mlflow_run_id"] == ""
    assert record["data"] == {"uri": DVC_OBJECT_URL, "version": DVC_MD5}
    assert tracking.read_run_id(output / tracking.RUN_FILE) is None
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert list((output / "plots").glob("*.png"))


@pytest.mark.slow
def test_a_pipeline_evaluation_logs_its_run_where_the_pipeline_points_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
) -> None:
    """What the pipeline's evaluation job does when the project has a tracking server."""
    import mlflow

    store = f"sqlite:///{tmp_path / 'server.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "churn-prod")
    monkeypatch.chdir(tmp_path)
    code, output = pipeline_evaluation(tmp_path, model_dir, clean_frame, schema)
    assert code == 0
    run_id = json.loads((output / "lineage.json").read_text())["mlflow_run_id"]
    run = mlflow.MlflowClient(tracking_uri=store).get_run(run_id)
    assert run.info.run_name == "execution-1"
    assert (
        mlflow.MlflowClient(tracking_uri=store).get_experiment(run.info.experiment_id).name
        == "churn-prod"
    )
    tags = run.data.tags
    assert tags[tracking.PIPELINE_EXECUTION_TAG] == "execution-1"
    assert (tags[tracking.CODE_DIGEST_TAG], tags[tracking.TEMPLATE_VERSION_TAG]) == ("c0de", "t1")
    assert tags[tracking.DATA_VERSION_TAG] == DVC_MD5  # what `dvc repro` records
    assert tags[tracking.GATE_RESULT_TAG] in {"passed", "failed"}
    hyperparameters = json.loads((model_dir / "model_meta.json").read_text())["hyperparameters"]
    assert {f"train.{name}" for name in hyperparameters} | {"gate.metric", "gate.threshold"} == set(
        run.data.params
    )


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, check=True)


@pytest.mark.slow
def test_repro_and_exp_run_are_recorded_as_mlflow_runs(workspace: Path) -> None:
    """`dvc repro`, then `dvc exp run -S` with another max_depth (both frameworks name it so): two
    runs, the table shows both."""
    import mlflow

    dvc(workspace, "repro")
    first_id = tracking.read_run_id(workspace / "reports" / tracking.RUN_FILE)
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    changed = 7 if params["train"]["max_depth"] != 7 else 8
    dvc(workspace, "exp", "run", "-S", f"train.max_depth={changed}")
    second_id = tracking.read_run_id(workspace / "reports" / tracking.RUN_FILE)
    assert first_id and second_id and first_id != second_id

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    first, second = client.get_run(first_id), client.get_run(second_id)
    experiment = client.get_experiment(first.info.experiment_id)
    assert experiment.name == tracking.default_experiment()
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert second.info.experiment_id == first.info.experiment_id  # one experiment per project
    flat = {name: str(value) for name, value in tracking.flatten(params).items()}
    assert first.data.params == flat  # every parameter of params.yaml, as DVC names them
    assert second.data.params == flat | {"train.max_depth": str(changed)}
    scores = json.loads((workspace / "reports" / "scores.json").read_text())
    assert second.data.metrics == pytest.approx(scores)
    pointer = yaml.safe_load((workspace / "data/raw/dataset.csv.dvc").read_text())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout.strip()
    for recorded, dirty in ((first, "false"), (second, "true")):  # exp run edits params.yaml
        tags = recorded.data.tags
        assert tags[tracking.GIT_COMMIT_TAG] == head
        assert tags[tracking.GIT_DIRTY_TAG] == dirty
        assert tags[tracking.DATA_VERSION_TAG] == pointer["outs"][0]["md5"]
        assert tags[tracking.GATE_METRIC_TAG] == params["gate"]["metric"]
        assert tags[tracking.GATE_RESULT_TAG] in {"passed", "failed"}
        assert tags[tracking.TEMPLATE_VERSION_TAG]
    assert second.data.tags["dvc.experiment"] == second.info.run_name

    artifacts = {item.path for item in client.list_artifacts(second_id)}
    assert {"metrics.json", "scores.json", "plots"} <= artifacts
    logged_plots = [item.path for item in client.list_artifacts(second_id, "plots")]
    assert logged_plots and all(path.endswith(".png") for path in logged_plots)
    logged = client.download_artifacts(second_id, "model", str(workspace / "logged"))
    signature = mlflow.models.Model.load(logged).signature
    features = json.loads((workspace / "models" / "model_meta.json").read_text())["features"]
    assert signature is not None and signature.inputs.input_names() == features

    record = json.loads((workspace / "models" / "lineage.json").read_text())
    assert record["mlflow_run_id"] == second_id

    table = subprocess.run(
        ["make", "--no-print-directory", "experiments", "RUN="],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header = next(line for line in table.splitlines() if line.startswith("run "))
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:]}
    assert "train.max_depth" in header.split() and "train.seed" not in header
    assert (
        str(changed) in rows[second_id[:8]]
        and str(params["train"]["max_depth"]) in rows[first_id[:8]]
    )

    shown = dvc(workspace, "plots", "show", "--json")
    images = [path for path in json.loads(shown.stdout)["data"] if path.endswith(".png")]
    assert images and all(path.startswith("reports/plots/") for path in images)


def execution_role_mlflow_actions() -> set[str]:
    """The MLflow actions infrastructure/foundation.yaml grants the jobs' execution role."""
    from cfnlint.decode import decode

    template, errors = decode(str(PROJECT / "infrastructure" / "foundation.yaml"))
    assert not errors and template is not None
    policies = template["Resources"]["SageMakerExecutionRole"]["Properties"]["Policies"]
    granted: set[str] = set()
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:  # [condition, statement, AWS::NoValue]
                statement = statement["Fn::If"][1]
            actions = statement.get("Action", [])
            granted |= {a for a in actions if str(a).startswith("sagemaker-mlflow:")}
    return granted


@pytest.mark.slow
def test_the_execution_role_grants_exactly_the_mlflow_calls_a_run_makes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    clean_frame: pd.DataFrame,
) -> None:
    """A whole run (params, metrics, tags, plots, model) against MLflow's own server, in-process.

    Every REST call the client makes is recorded and named as MLflow's protocol names it; the
    SageMaker MLflow IAM actions carry the same names (sagemaker-mlflow:CreateRun, ...).
    """
    import requests

    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", f"sqlite:///{tmp_path / 'server.db'}")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("_MLFLOW_SERVER_SERVE_ARTIFACTS", "false")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow's server module sets the process's tracking URI to its store: undone after the test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'server.db'}")
    import mlflow.utils.rest_utils as rest
    from mlflow.protos.service_pb2 import MlflowService
    from mlflow.server import app

    server = app.test_client()
    calls: list[tuple[str, str]] = []

    def through_the_server(host_creds: Any, endpoint: str, method: str, **kwargs: Any) -> Any:
        calls.append((method, endpoint))
        answer = server.open(
            endpoint, method=method, query_string=kwargs.get("params"), json=kwargs.get("json")
        )
        response = requests.Response()
        response.status_code, response._content = answer.status_code, answer.data
        response.headers["Content-Type"] = answer.content_type
        return response

    monkeypatch.setattr(rest, "http_request", through_the_server)
    model, meta = load_model(model_dir)
    figures = plots.write_plots(model, meta, clean_frame, tmp_path / "plots")
    record = tracking.RunRecord(
        params={"train.max_iter": 5},
        metrics={"accuracy": 0.9},
        tags={tracking.GATE_RESULT_TAG: "passed"},
        artifacts=figures,
        model=model,
        model_input=clean_frame[meta["features"]],
        pip_requirements=["scikit-learn"],
    )
    target = tracking.Destination(uri="http://tracking-server.invalid", experiment="e")
    before = os.environ["MLFLOW_TRACKING_URI"]  # the in-process server's own store
    tracking.log_run(target, record)
    # Nothing global: a later subprocess (a DVC stage, a pipeline-local job) must not inherit it.
    assert os.environ["MLFLOW_TRACKING_URI"] == before

    names = {
        (method, path): request.__name__
        for request, (path, method) in rest.extract_api_info_for_service(
            MlflowService, rest._REST_API_PATH_PREFIX
        ).items()
    }
    made = {f"sagemaker-mlflow:{names[call]}" for call in calls}
    assert "sagemaker-mlflow:CreateRun" in made
    assert execution_role_mlflow_actions() == made
