"""A team's own data as it really is: missing values in a nullable feature, and text class labels.

Two datasets built from the sample data, each prepared and trained by the project's own commands
(``data``, ``train``) and then scored through the entry points a user runs: the endpoint's
``transform_fn``, the local server over HTTP, batch prediction, the monitor and the Model Monitor
baseline. The slow tests run ``make repro``, ``make predict`` and ``make monitor`` on them.

- ``holey``: one feature declared ``"nullable": true`` with 20% of its values missing.
- ``graded``: a classification target of text labels, ``bronze`` / ``silver`` / ``gold``.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from {{ cookiecutter.package_name }} import (
    data,
    evaluate,
    monitor,
    predict,
    quality_baseline,
    train,
)
from {{ cookiecutter.package_name }}.data import DataValidationError, load_schema
from {{ cookiecutter.package_name }}.estimator import HYPERPARAMETERS
from {{ cookiecutter.package_name }}.inference import (
    MISSING_SPELLINGS,
    Model,
    is_missing,
    model_fn,
    transform_fn,
)
from {{ cookiecutter.package_name }}.serve import make_server, serve_in_thread

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"
SCHEMA = PROJECT / "src" / PACKAGE / "schema.json"
MISSING_SHARE = 0.2
LABELS = ["bronze", "silver", "gold"]
GRADE = "grade"


def schema_document() -> dict[str, Any]:
    return dict(json.loads(SCHEMA.read_text()))


def holey_dataset(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The sample data with 20% of its first feature missing, declared nullable."""
    document = schema_document()
    nullable = next(iter(document["features"]))
    document["features"][nullable]["nullable"] = True
    frame = raw.copy()
    rows = np.random.default_rng(0).random(len(frame)) < MISSING_SHARE
    frame.loc[rows, nullable] = np.nan
    return frame, document


def graded_dataset(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The sample features with a text target: the tertile of the first feature."""
    document = schema_document()
    first = next(iter(document["features"]))
    frame = raw.drop(columns=[document["target"]["name"]])
    frame[GRADE] = pd.qcut(frame[first], 3, labels=LABELS).astype(str)
    document["problem_type"] = "classification"
    document["target"] = {"name": GRADE, "dtype": "category", "allowed": LABELS}
    return frame, document


def prepare_and_train(root: Path, frame: pd.DataFrame, document: dict[str, Any]) -> dict[str, Any]:
    """Split with ``data`` and train with ``train``, as ``dvc repro`` does."""
    schema_path = root / "schema.json"
    schema_path.write_text(json.dumps(document))
    (root / "raw").mkdir()
    frame.to_csv(root / "raw" / "dataset.csv", index=False)
    prepared = root / "processed"
    schema_arg = ["--schema", str(schema_path)]
    split = ["--input-dir", str(root / "raw"), "--output-dir", str(prepared), *schema_arg]
    assert data.main(split) == 0
    model_dir = root / "model"
    arguments = ["--train-dir", str(prepared / "train"), "--model-dir", str(model_dir), *schema_arg]
    arguments += ["--params", str(PROJECT / "params.yaml")]
    # Fewer boosting rounds train sooner; accuracy is not what most of these tests check.
    rounds = next(name for name in ("max_iter", "n_estimators") if name in HYPERPARAMETERS)
    arguments += [f"--{rounds.replace('_', '-')}", "50"]
    with threadpool_limits(1):  # one OpenMP thread: spinning threads stall on a loaded machine
        assert train.main(arguments) == 0
    return {
        "root": root,
        "schema": load_schema(schema_path),
        "schema_path": schema_path,
        "test": prepared / "test" / "test.csv",
        "train": prepared / "train" / "train.csv",
        "model_dir": model_dir,
        "model": model_fn(str(model_dir)),
    }


@pytest.fixture(scope="module")
def holey(tmp_path_factory: pytest.TempPathFactory, raw_frame: pd.DataFrame) -> dict[str, Any]:
    frame, document = holey_dataset(raw_frame)
    trained = prepare_and_train(tmp_path_factory.mktemp("holey"), frame, document)
    return trained | {"nullable": next(iter(document["features"]))}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, raw_frame: pd.DataFrame) -> dict[str, Any]:
    return prepare_and_train(tmp_path_factory.mktemp("graded"), *graded_dataset(raw_frame))


@pytest.fixture(scope="module")
def servers(holey: dict[str, Any], graded: dict[str, Any]) -> Iterator[dict[str, tuple[str, int]]]:
    """The local server (what ``make serve`` runs) for each model, on loopback."""
    running = {
        name: make_server(
            trained["model_dir"], "127.0.0.1", 0, capture_dir=trained["root"] / "capture"
        )
        for name, trained in (("holey", holey), ("graded", graded))
    }
    for instance in running.values():
        serve_in_thread(instance)
    yield {name: ("127.0.0.1", instance.server_address[1]) for name, instance in running.items()}
    for instance in running.values():
        instance.shutdown()
        instance.server_close()


def post(
    server: tuple[str, int], body: str, content_type: str, accept: str = "application/json"
) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        headers = {"Content-Type": content_type, "Accept": accept}
        connection.request("POST", "/invocations", body.encode(), headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def features_of(trained: dict[str, Any], count: int) -> pd.DataFrame:
    test = pd.read_csv(trained["test"])
    return test[trained["schema"].feature_names].head(count).reset_index(drop=True)


def holey_rows(holey: dict[str, Any]) -> pd.DataFrame:
    """Six rows, the nullable feature missing in the first three."""
    rows = features_of(holey, 6)
    rows[holey["nullable"]] = rows[holey["nullable"]].astype(float)
    rows.loc[:2, holey["nullable"]] = np.nan
    return rows


def missing_payloads(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The same rows as a client sends them: empty CSV cells, JSON null and JSON NaN."""
    records = rows.to_dict(orient="records")
    as_null = [{k: None if pd.isna(v) else v for k, v in r.items()} for r in records]
    return [
        (rows.to_csv(index=False), "text/csv"),
        (rows.to_csv(index=False, header=False), "text/csv"),
        (json.dumps(as_null), "application/json"),
        (json.dumps({"instances": [list(r.values()) for r in as_null]}), "application/json"),
        # Python's json writes NaN for a float NaN; the endpoint reads it as missing.
        (json.dumps(records), "application/json"),
    ]


def expected_predictions(model: Model, rows: pd.DataFrame) -> list[Any]:
    """What the model itself predicts for the rows, missing values imputed as in training."""
    return [v.item() if hasattr(v, "item") else v for v in model.pipeline.predict(rows)]


def test_a_nullable_features_missing_values_are_scored_by_the_handler(
    holey: dict[str, Any],
) -> None:
    rows = holey_rows(holey)
    expected = expected_predictions(holey["model"], rows)
    for body, content_type in missing_payloads(rows):
        answer = transform_fn(holey["model"], body, content_type, "application/json")
        assert answer.status == 200, answer.body
        predictions = [p["prediction"] for p in json.loads(answer.body)["predictions"]]
        assert predictions == pytest.approx(expected), body[:80]


def test_a_missing_value_elsewhere_is_refused_naming_the_column(holey: dict[str, Any]) -> None:
    rows = holey_rows(holey)
    other = holey["schema"].feature_names[1]
    rows[other] = rows[other].astype(float)
    rows.loc[4, other] = np.nan
    for body, content_type in missing_payloads(rows):
        answer = transform_fn(holey["model"], body, content_type, "application/json")
        assert answer.status == 400
        message = json.loads(answer.body)["error"]
        assert message == (
            f"row 5, column '{other}': missing value, and the feature is not nullable (schema.json)"
        )


def test_the_local_server_scores_missing_values_over_http(
    holey: dict[str, Any], servers: dict[str, tuple[str, int]]
) -> None:
    rows = holey_rows(holey)
    expected = expected_predictions(holey["model"], rows)
    for body, content_type in missing_payloads(rows):
        status, answer = post(servers["holey"], body, content_type)
        assert status == 200, answer
        predictions = [p["prediction"] for p in json.loads(answer)["predictions"]]
        assert predictions == pytest.approx(expected)
    rows.loc[0, holey["schema"].feature_names[1]] = np.nan
    status, answer = post(servers["holey"], rows.to_csv(index=False), "text/csv")
    assert status == 400 and f"column '{holey['schema'].feature_names[1]}'" in answer
    # The monitor reads the captured empty cells as missing values, not as non-numeric ones.
    captured = monitor.read_batch(holey["root"] / "capture", holey["schema"].feature_names)
    answered = holey_rows(holey)
    missing = answered[holey["nullable"]].isna().sum() * len(missing_payloads(answered))
    assert captured[holey["nullable"]].isna().sum() == missing
    baseline = json.loads((holey["model_dir"] / "baseline.json").read_text())
    result = monitor.monitor(baseline, captured, monitor.Thresholds())
    assert not [v for v in result["violations"] if "non-numeric" in v]


def test_every_spelling_of_a_missing_value_is_one_pandas_reads_as_missing() -> None:
    """Training read its CSV with pandas' defaults; the endpoint reads the same cells as missing."""
    spellings = sorted(MISSING_SPELLINGS)
    text = "a,b\n" + "".join(f"1,{spelling}\n" for spelling in spellings)
    assert pd.read_csv(io.StringIO(text))["b"].isna().all()
    assert not is_missing("0") and not is_missing("missing") and is_missing(" NA ")


def test_batch_prediction_scores_the_projects_own_test_split(
    holey: dict[str, Any], tmp_path: Path
) -> None:
    test = pd.read_csv(holey["test"])
    assert test[holey["nullable"]].isna().any()  # the split itself holds missing values
    out = tmp_path / "predictions"
    arguments = ["--model-dir", str(holey["model_dir"]), "--input", str(holey["test"].parent)]
    assert predict.main([*arguments, "--output-dir", str(out)]) == 0
    scored = pd.read_csv(out / "test.csv")
    assert len(scored) == len(test)
    features = test[holey["schema"].feature_names]
    assert scored["prediction"].tolist() == pytest.approx(
        expected_predictions(holey["model"], features)
    )


def run_monitor(trained: dict[str, Any], batch: Path, out: Path) -> tuple[int, dict[str, Any]]:
    arguments = ["--baseline", str(trained["model_dir"] / "baseline.json"), "--data", str(batch)]
    arguments += ["--params", str(PROJECT / "params.yaml"), "--output-dir", str(out)]
    arguments += ["--model-dir", str(out / "no-model")]  # data quality only
    code = monitor.main(arguments)
    return code, json.loads((out / "report.json").read_text())


def test_the_monitor_compares_missing_fractions_with_the_training_baseline(
    holey: dict[str, Any], tmp_path: Path
) -> None:
    nullable = holey["nullable"]
    baseline = json.loads((holey["model_dir"] / "baseline.json").read_text())
    trained_share = baseline["features"][nullable]["missing_fraction"]
    assert trained_share == pytest.approx(MISSING_SHARE, abs=0.05)
    code, report = run_monitor(holey, holey["test"], tmp_path / "own")
    assert code == 0, report["violations"]
    # Twice the training share missing: beyond monitor.missing_shift, and named.
    shift = yaml.safe_load((PROJECT / "params.yaml").read_text())["monitor"]["missing_shift"]
    test = pd.read_csv(holey["test"])
    batch = pd.concat([test, test], ignore_index=True)
    holes = np.random.default_rng(1).random(len(batch)) < trained_share + shift + 0.15
    batch.loc[holes, nullable] = np.nan
    batch.to_csv(tmp_path / "more-holes.csv", index=False)
    code, report = run_monitor(holey, tmp_path / "more-holes.csv", tmp_path / "jump")
    assert code == 1
    assert [v for v in report["violations"] if v.startswith(f"{nullable}: missing fraction")]


def test_model_monitors_completeness_allows_what_the_local_monitor_allows(
    holey: dict[str, Any], tmp_path: Path
) -> None:
    """Model Monitor flags completeness_check when a feature's observed completeness is below
    the constraint's: the baseline's completeness less monitor.missing_shift."""
    shift = yaml.safe_load((PROJECT / "params.yaml").read_text())["monitor"]["missing_shift"]
    arguments = ["--data-dir", str(holey["train"].parent), "--output-dir", str(tmp_path)]
    arguments += ["--schema", str(holey["schema_path"]), "--missing-shift", str(shift)]
    assert quality_baseline.main(arguments) == 0
    constraints = json.loads((tmp_path / "constraints.json").read_text())
    completeness = {f["name"]: f["completeness"] for f in constraints["features"]}
    train_frame = pd.read_csv(holey["train"])
    trained = train_frame[holey["nullable"]].notna().mean()
    assert completeness[holey["nullable"]] == pytest.approx(trained - shift)
    other = holey["schema"].feature_names[1]
    assert completeness[other] == pytest.approx(1 - shift)
    test = pd.read_csv(holey["test"])
    assert test[holey["nullable"]].notna().mean() >= completeness[holey["nullable"]]
    assert trained - shift - 0.05 < completeness[holey["nullable"]]


# Text class labels.


def test_the_schema_declares_text_labels_and_refuses_contradictions(tmp_path: Path) -> None:
    document = graded_dataset(pd.read_csv(PROJECT / "data" / "raw" / "dataset.csv"))[1]
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))
    schema = load_schema(path)
    assert schema.target_categorical and schema.target_allowed == tuple(LABELS)
    assert schema.text_columns == [GRADE]
    first = next(iter(document["features"]))
    wrong = {
        "category with a minimum": (
            {"target": document["target"] | {"min": 0}},
            f"schema: target '{GRADE}': dtype 'category' has no 'min' or 'max'",
        ),
        "category with numbers": (
            {"target": document["target"] | {"allowed": [0, 1, 2]}},
            f"schema: target '{GRADE}': dtype 'category' needs 'allowed', the labels as strings",
        ),
        "integers with text": (
            {"target": document["target"] | {"dtype": "int"}},
            f"schema: target '{GRADE}': dtype 'int' allows integer labels only",
        ),
        "a text regression target": (
            {"problem_type": "regression"},
            f"schema: target '{GRADE}': a regression target is a number",
        ),
        "a category feature with a maximum": (
            {
                "features": document["features"]
                | {first: {"dtype": "category", "max": 3.0, "nullable": False}}
            },
            f"schema: feature '{first}': dtype 'category' has no 'min' or 'max'",
        ),
    }
    for case, (change, message) in wrong.items():
        path.write_text(json.dumps(document | change))
        with pytest.raises(DataValidationError) as raised:
            load_schema(path)
        assert str(raised.value).startswith(message), case
        assert "\n" not in str(raised.value)


def test_text_labels_are_encoded_inside_the_model(graded: dict[str, Any]) -> None:
    meta = json.loads((graded["model_dir"] / "model_meta.json").read_text())
    assert meta["classes"] == sorted(LABELS)
    test = pd.read_csv(graded["test"])
    predicted = graded["model"].pipeline.predict(test[graded["schema"].feature_names])
    assert set(predicted) <= set(LABELS)
    assert (predicted == test[GRADE]).mean() > 0.8


def check_answers(records: list[dict[str, Any]], truth: list[str]) -> None:
    columns = [f"probability_{label}" for label in sorted(LABELS)]
    assert len(records) == len(truth)
    for record in records:
        assert list(record) == ["prediction", "probability", *columns]
        assert record["prediction"] in LABELS
        assert sum(float(record[c]) for c in columns) == pytest.approx(1.0)
        assert float(record["probability"]) == pytest.approx(
            float(record[f"probability_{record['prediction']}"])
        )
    predicted = [record["prediction"] for record in records]
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= 0.8 * len(truth)


def csv_answers(text: str) -> list[dict[str, Any]]:
    """A headerless CSV answer, named as the JSON answer names its fields."""
    names = ["prediction", "probability", *(f"probability_{label}" for label in sorted(LABELS))]
    return [dict(zip(names, row, strict=True)) for row in csv.reader(io.StringIO(text))]


def test_the_handler_answers_text_labels_in_json_and_csv(graded: dict[str, Any]) -> None:
    rows = features_of(graded, 20)
    truth = pd.read_csv(graded["test"])[GRADE].head(20).tolist()
    body = rows.to_csv(index=False)
    answer = transform_fn(graded["model"], body, "text/csv", "application/json")
    assert answer.status == 200, answer.body
    check_answers(json.loads(answer.body)["predictions"], truth)
    answer = transform_fn(graded["model"], body, "text/csv", "text/csv")
    assert answer.status == 200, answer.body
    check_answers(csv_answers(answer.body.decode()), truth)


def test_the_local_server_answers_text_labels(
    graded: dict[str, Any], servers: dict[str, tuple[str, int]]
) -> None:
    rows = features_of(graded, 20)
    truth = pd.read_csv(graded["test"])[GRADE].head(20).tolist()
    records = rows.to_json(orient="records")
    status, answer = post(servers["graded"], records, "application/json")
    assert status == 200, answer
    check_answers(json.loads(answer)["predictions"], truth)
    status, answer = post(servers["graded"], records, "application/json", accept="text/csv")
    assert status == 200, answer
    check_answers(csv_answers(answer), truth)


def test_batch_prediction_writes_text_labels_and_named_probabilities(
    graded: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "predictions"
    arguments = ["--model-dir", str(graded["model_dir"]), "--input", str(graded["test"])]
    assert predict.main([*arguments, "--output-dir", str(out)]) == 0
    with (out / "test.csv").open(newline="") as source:
        records = list(csv.DictReader(source))
    check_answers(records, pd.read_csv(graded["test"])[GRADE].tolist())


def test_evaluation_reports_each_label_and_the_gate_judges_it(
    graded: dict[str, Any], tmp_path: Path
) -> None:
    arguments = ["--model-dir", str(graded["model_dir"]), "--test-dir", str(graded["test"].parent)]
    arguments += ["--output-dir", str(tmp_path), "--schema", str(graded["schema_path"])]
    arguments += ["--gate-metric", "f1", "--gate-threshold", "0.8", "--enforce-gate"]
    assert evaluate.main(arguments) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    section = report["multiclass_classification_metrics"]
    assert evaluate.schema_section(graded["schema"]) == "multiclass_classification_metrics"
    for label in LABELS:
        for metric in ("precision", "recall", "f1"):
            assert 0.5 < section[f"{metric}_{label}"]["value"] <= 1.0
    # Beyond any score: the gate refuses (a perfect model cannot pass it).
    assert evaluate.main([*arguments[:-2], "1.01", "--enforce-gate"]) == 1


def test_the_model_quality_monitor_scores_a_labelled_batch_of_text_labels(
    graded: dict[str, Any], tmp_path: Path
) -> None:
    arguments = ["--baseline", str(graded["model_dir"] / "baseline.json")]
    arguments += ["--data", str(graded["test"]), "--output-dir", str(tmp_path)]
    arguments += ["--params", str(tmp_path / "params.yaml")]
    arguments += ["--model-dir", str(graded["model_dir"])]
    arguments += ["--training-metrics", str(tmp_path / "none.json")]
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for threshold, code in ((0.8, 0), (1.01, 1)):
        params["gate"] = {"metric": "accuracy", "threshold": threshold}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        assert monitor.main(arguments) == code
        quality = json.loads((tmp_path / "report.json").read_text())["model_quality"]
        assert quality["rows"] == len(pd.read_csv(graded["test"]))
        assert quality["passed"] is (code == 0)


# The commands a user runs, end to end.


def make(workspace: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """A make target in this test's environment (RUN= instead of `uv run`, which would install),
    running the workspace's own package (its schema.json)."""
    env = os.environ | {
        "PYTHONPATH": str(workspace / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["make", "--no-print-directory", *arguments, "RUN=", "UV=uv"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def repro_predict_monitor(
    workspace: Path, frame: pd.DataFrame, document: dict[str, Any]
) -> pd.DataFrame:
    frame.to_csv(workspace / "data" / "raw" / "dataset.csv", index=False)
    (workspace / "src" / PACKAGE / "schema.json").write_text(json.dumps(document, indent=2))
    for target in ("repro", "predict", "monitor"):
        result = make(workspace, target)
        assert result.returncode == 0, f"make {target}: {result.stderr[-3000:]}"
    assert (workspace / "reports" / "monitor" / "report.json").exists()
    return pd.read_csv(workspace / "build" / "predictions" / "test.csv")


@pytest.mark.slow
def test_make_repro_predict_and_monitor_take_missing_values(
    workspace: Path, raw_frame: pd.DataFrame
) -> None:
    frame, document = holey_dataset(raw_frame)
    predictions = repro_predict_monitor(workspace, frame, document)
    test = pd.read_csv(workspace / "data" / "processed" / "test" / "test.csv")
    assert test[next(iter(document["features"]))].isna().any()
    assert len(predictions) == len(test) and not predictions["prediction"].isna().any()


@pytest.mark.slow
def test_make_repro_predict_and_monitor_take_text_labels(
    workspace: Path, raw_frame: pd.DataFrame
) -> None:
    frame, document = graded_dataset(raw_frame)
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["gate"] = {"metric": "accuracy", "threshold": 0.85}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    predictions = repro_predict_monitor(workspace, frame, document)
    assert set(predictions["prediction"]) == set(LABELS)
    assert [c for c in predictions.columns if c.startswith("probability_")] == [
        f"probability_{label}" for label in sorted(LABELS)
    ]
    scores = json.loads((workspace / "reports" / "scores.json").read_text())
    assert {f"f1_{label}" for label in LABELS} <= set(scores)
    quality = json.loads((workspace / "reports" / "monitor" / "report.json").read_text())
    assert quality["model_quality"]["passed"] and not quality["failed"]
    assert not math.isnan(quality["model_quality"]["value"])
