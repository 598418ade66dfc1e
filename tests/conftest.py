"""Shared helpers for baking the template and inspecting what it rendered."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.ports import free_port, wait_for_port

TEMPLATE = Path(__file__).resolve().parent.parent
# Working-tree clutter a copy of the template needs none of (cruft would even see it as changes).
LOCAL_CLUTTER = (".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache")
LOCAL_CLUTTER += (".hypothesis", "bench", "build")


PYENV_ROOT = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def user_shell_env(**extra: str) -> dict[str, str]:
    """A user's shell: the caller's environment without this test run's venv and uv variables."""
    dropped = ("VIRTUAL_ENV", "UV", "UV_PROJECT", "UV_RUN_RECURSION_DEPTH", "MAKEFLAGS", "MFLAGS")
    dropped += ("PYENV_VERSION", "PYENV_DIR")  # set by `pyenv exec`, not by a shell
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    # Also what `pyenv exec` (the uv shim that started this run) put in front of PATH.
    added = (
        str(Path(sys.prefix) / "bin"),
        str(PYENV_ROOT / "versions"),
        str(PYENV_ROOT / "libexec"),
    )
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(added)
    )
    return env | extra


def copy_template(target: Path) -> Path:
    """A copy of the template's own files, for tests that must edit or commit them."""
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns(*LOCAL_CLUTTER))
    return target


# Each choice value appears at least once; the first row is the --no-input default.
MATRIX: list[dict[str, str]] = [
    {},
    {
        "problem_type": "regression",
        "source_control": "github",
        "ci_system": "github-actions",
        "python_version": "3.12",
        "license": "MIT",
        "model_framework": "lightgbm",
    },
    {
        "problem_type": "classification",
        "source_control": "codecommit",
        "ci_system": "codepipeline",
        "python_version": "3.13",
        "license": "Proprietary",
        "inference_mode": "serverless",
        "project_name": "Fraud Score",
        "aws_region": "eu-west-1",
    },
    {
        "problem_type": "regression",
        "source_control": "github",
        "ci_system": "codepipeline",
        "python_version": "3.11",
        "license": "Apache-2.0",
        "inference_mode": "batch",
        # The longest slug (32 characters): rendered lines must fit any package name.
        "project_name": "Quarterly Demand Forecast For Retail Stores",
        "model_framework": "xgboost",
    },
]


# bench/run.py times these tests on the first N rows to show how test time grows with the matrix.
MATRIX = MATRIX[: int(os.environ.get("TEMPLATE_MATRIX_ROWS") or len(MATRIX))]


# Rows whose model runs on an instance-based endpoint (the inference_mode default).
REALTIME_ROWS = [row for row in MATRIX if row.get("inference_mode", "realtime") == "realtime"]


MATRIX_ID_KEYS = ("problem_type", "ci_system", "source_control", "python_version", "inference_mode")


def matrix_id(extra: dict[str, str]) -> str:
    return "-".join(extra.get(key, "default") for key in MATRIX_ID_KEYS)


class CfnLoader(yaml.SafeLoader):
    """Loads CloudFormation YAML, keeping short-form intrinsics (!Ref, !Sub ...) as plain data."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


@contextlib.contextmanager
def rendered_pipelines(project: Path) -> Iterator[None]:
    """The rendered project's ``pipelines`` package importable (and forgotten afterwards)."""
    sys.path.insert(0, str(project))
    try:
        yield
    finally:
        sys.path.remove(str(project))
        for name in [m for m in sys.modules if m == "pipelines" or m.startswith("pipelines.")]:
            del sys.modules[name]


def stage_template(project: Path) -> Any:
    """``infrastructure/endpoint.yaml``, as the deploy build deploys it: unchanged, whatever the
    data contract (``deploy_config.endpoint_template``; tests/test_quotas.py runs it)."""
    return load_yaml(project / "infrastructure" / "endpoint.yaml")


def bake(cookies: Any, **extra: str) -> Path:
    result = cookies.bake(extra_context=extra)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    return Path(result.project_path)


@pytest.fixture(scope="session")
def baked_matrix(cookies_session: Any) -> dict[str, Path]:
    """Every matrix row rendered once per session (rendering is the slow part of these tests)."""
    return {matrix_id(extra): bake(cookies_session, **extra) for extra in MATRIX}


def run_cookiecutter(output_dir: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """The cookiecutter CLI, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(TEMPLATE),
            "-o",
            str(output_dir),
            *answers,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"NO_COLOR": "1"},
        check=False,
    )


@pytest.fixture()
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Keep cookiecutter's replay files and user config out of the real home folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture()
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server on a free loopback port, with fake credentials; stopped after the test."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = free_port()
    server = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_for_port(port):
        process.kill()
        pytest.fail("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
