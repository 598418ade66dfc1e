from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import estimator, evaluate, lineage, train
from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.inference import load_model
from {{ cookiecutter.package_name }}.params import load_params

PROJECT = Path(__file__).resolve().parent.parent


def test_model_artifacts_and_baseline(model_dir: Path, schema: Schema) -> None:
    meta = json.loads((model_dir / train.META_FILE).read_text())
    assert meta["features"] == schema.feature_names
    assert meta["problem_type"] == schema.problem_type
    baseline = json.loads((model_dir / train.BASELINE_FILE).read_text())
    assert set(baseline["features"]) == set(schema.feature_names)
    first = baseline["features"][schema.feature_names[0]]
    assert first["min"] <= first["mean"] <= first["max"]
    assert len(first["quantile_edges"]) == train.BASELINE_BINS + 1


def test_metrics_follow_sagemaker_model_quality_format(
    model_dir: Path, clean_frame: pd.DataFrame
) -> None:
    model, meta = load_model(model_dir)
    report = evaluate.compute_metrics(model, meta, clean_frame)
    ((section, values),) = report.items()
    expected = {
        "regression_metrics": {"mse", "rmse", "mae", "r2"},
        "binary_classification_metrics": {"accuracy", "precision", "recall", "f1", "auc"},
    }
    assert set(values) == expected[section]
    assert all(set(entry) == {"value", "standard_deviation"} for entry in values.values())


@pytest.mark.parametrize(
    ("metric", "threshold", "value", "passes"),
    [
        ("accuracy", 0.9, 0.95, True),
        ("accuracy", 0.9, 0.85, False),
        ("rmse", 50.0, 40.0, True),
        ("rmse", 50.0, 60.0, False),
        ("r2", 0.3, 0.2, False),
    ],
)
def test_gate_direction(metric: str, threshold: float, value: float, passes: bool) -> None:
    assert evaluate.Gate(metric, threshold).passes(value) is passes


def _write_params(path: Path, threshold: float, metric: str) -> Path:
    path.write_text(f"gate:\n  metric: {metric}\n  threshold: {threshold}\n")
    return path


def test_evaluate_cli_enforces_gate(
    tmp_path: Path,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    capsys: pytest.CaptureFixture[str],
) -> None:
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    clean_frame.to_csv(test_dir / "test.csv", index=False)
    metric = "accuracy" if schema.problem_type == "classification" else "rmse"
    impossible = 1.01 if metric == "accuracy" else 0.0
    args = [
        "--model-dir",
        str(model_dir),
        "--test-dir",
        str(test_dir),
        "--output-dir",
        str(tmp_path / "out"),
        "--enforce-gate",
        "--params",
    ]
    assert evaluate.main([*args, str(_write_params(tmp_path / "p.yaml", impossible, metric))]) == 1
    assert "quality gate FAILED" in capsys.readouterr().err
    assert (tmp_path / "out" / "metrics.json").exists()  # written even when the gate fails
    lenient = 0.0 if metric == "accuracy" else 1e9
    assert evaluate.main([*args, str(_write_params(tmp_path / "q.yaml", lenient, metric))]) == 0


def test_train_cli_accepts_sagemaker_style_hyperparameters(
    tmp_path: Path, clean_frame: pd.DataFrame
) -> None:
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    clean_frame.to_csv(train_dir / "train.csv", index=False)
    code = train.main(
        [
            "--train-dir",
            str(train_dir),
            "--model-dir",
            str(tmp_path / "model"),
            "--params",
            str(PROJECT / "params.yaml"),
            "--max_depth",  # a hyperparameter both frameworks call the same
            "2",
        ]
    )
    assert code == 0
    meta = json.loads((tmp_path / "model" / train.META_FILE).read_text())
    assert meta["hyperparameters"]["max_depth"] == 2


def test_lineage_record(tmp_path: Path, model_dir: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"regression_metrics": {}}')
    out = tmp_path / "lineage.json"
    assert (
        lineage.main(
            [
                "--model-dir",
                str(model_dir),
                "--metrics",
                str(metrics),
                "--params",
                str(PROJECT / "params.yaml"),
                "--data-pointer",
                str(PROJECT / "data/raw/dataset.csv.dvc"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert len(record["data"]["md5"]) == 32
    # The hyperparameters as params.yaml holds them, whatever the framework calls them.
    assert record["params"]["train"] == load_params(PROJECT / "params.yaml", "train")
    assert record["packages"]["scikit-learn"]
    assert record["packages"][estimator.FRAMEWORK]  # the estimator's library
    assert len(record["model"]["sha256"]) == 64
    assert "commit" in record["code"]


def test_lineage_records_the_commit_and_whether_the_tree_was_dirty(tmp_path: Path) -> None:
    """A model trained from uncommitted changes must not pass for the commit it names."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "train.py").write_text("A = 1\n")
    git("add", "train.py")
    git("commit", "-qm", "first")
    assert lineage.git_state(tmp_path) == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "train.py").write_text("A = 2\n")
    assert lineage.git_state(tmp_path)["dirty"] is True
    (tmp_path / "notes.txt").write_text("untracked files do not change what was trained\n")
    git("checkout", "-q", "train.py")
    assert lineage.git_state(tmp_path)["dirty"] is False
    assert lineage.git_state(tmp_path / "not-a-repository")["commit"] is None
