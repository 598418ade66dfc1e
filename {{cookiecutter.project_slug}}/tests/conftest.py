"""Shared fixtures: the sample data, its schema, and a model trained once per session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def moto_endpoint() -> Iterator[str]:
    """A moto S3/SageMaker server on a free loopback port, stopped after the test."""
    port = free_port()
    server = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("moto_server did not start")
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


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
