"""Shared fixtures: the sample data, its schema, and a model trained once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import train as train_module
from {{ cookiecutter.package_name }}.data import Schema, load_schema, validate
from {{ cookiecutter.package_name }}.params import load_params

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def schema() -> Schema:
    return load_schema()


@pytest.fixture(scope="session")
def raw_frame() -> pd.DataFrame:
    return pd.read_csv(PROJECT / "data" / "raw" / "dataset.csv")


@pytest.fixture(scope="session")
def clean_frame(raw_frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    return validate(raw_frame, schema)


@pytest.fixture(scope="session")
def model_dir(
    tmp_path_factory: pytest.TempPathFactory, clean_frame: pd.DataFrame, schema: Schema
) -> Path:
    directory = tmp_path_factory.mktemp("model")
    hyperparameters = load_params(PROJECT / "params.yaml", "train")
    model = train_module.train(clean_frame, schema, hyperparameters)
    train_module.save(model, schema, clean_frame, directory, hyperparameters)
    return directory


@pytest.fixture()
def moto_endpoint() -> Iterator[str]:
    """A moto S3/SageMaker server on a free loopback port, stopped after the test.

    The same server `make pipeline-local` starts (``pipelines.local.loopback_server``).
    """
    from pipelines.local import loopback_server

    with loopback_server() as endpoint:
        yield endpoint


@pytest.fixture()
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that can only ever reach the loopback stand-ins of these tests."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret - a fake for moto
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    os.environ.pop("AWS_CONFIG_FILE", None)


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding the committed project plus the sample data (never this checkout).

    Its runs go to its own MLflow store (``mlflow.db`` in the copy), never to a configured server.
    """
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns(
        ".venv",
        ".git",
        "models",
        "processed",
        "reports",
        "dvc.lock",
        ".pytest_cache",
        "__pycache__",
        "cache",
        "tmp",
        "mlflow.db",
        "mlartifacts",
    )
    shutil.copytree(PROJECT, copy, ignore=ignore)
    for name in ("models", "data/processed", "reports"):
        (copy / name).mkdir(parents=True, exist_ok=True)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"],
    ):
        subprocess.run(command, cwd=copy, check=True)
    return copy


@pytest.fixture()
def registry(fake_aws: None) -> Iterator[Any]:
    """A model registry (moto, in process) with the group ``churn`` and the bucket ``artifacts``."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model_package_group(ModelPackageGroupName="churn")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="artifacts")
        yield sagemaker
