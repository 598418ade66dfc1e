"""Install rendered projects from their lock files and run their own test suites."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tools.ports import free_port, wait_for_port

from . import aws_recording
from .conftest import bake, run_cookiecutter, user_shell_env
from .test_permissions import rendered_stacks

pytestmark = pytest.mark.slow

FULL = ("setup", "test", "lint", "hooks", "repro", "pipeline-local")
# A whole rendered suite (its slow end-to-end tests included) takes about ten minutes on 2 cores,
# so it runs on the rows whose code differs most (the default, XGBoost, batch inference); the other
# rows (LightGBM among them: the Python 3.12 regression row) run the fast suite and the end-to-end
# make targets from their own interpreter.
SMOKE = ("setup", "test-fast", "lint", "repro", "pipeline-local")
# Every supported Python runs a rendered project's suite from its own interpreter (uv finds 3.12
# and 3.13 through pyenv here; without them the test fails, it never skips). Each row lives in
# a file of its own so `--dist loadfile` spreads the rows over the workers.
DEFAULT: dict[str, str] = {}


def make(
    project: Path, target: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", target],
        cwd=project,
        env=env or user_shell_env(),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


# The default project is rendered into a folder whose name has a space, and every target that runs
# offline runs there: FULL, then these (cheap once `make repro` has run), then the two servers.
SPACED_FOLDER = "my projects"
OFFLINE = (
    "help",
    "metrics",
    "experiments",
    "predict",
    "monitor",
    "check-cache",
    "pipeline-definition",
    "clean",
)
SERVERS = {"serve": ("PORT", "/ping"), "mlflow-ui": ("MLFLOW_PORT", "/")}


def test_default_project_suite_passes(tmp_path: Path) -> None:
    config = tmp_path / "cookiecutter.yaml"  # replays stay out of the home folder
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\n")
    rendered = run_cookiecutter(tmp_path / SPACED_FOLDER, "--config-file", str(config))
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    project = tmp_path / SPACED_FOLDER / "tumour-classifier"
    assert_targets_pass(project, DEFAULT, FULL + OFFLINE)
    for target, (variable, path) in SERVERS.items():
        assert_server_answers(project, target, variable, path)


def assert_server_answers(project: Path, target: str, variable: str, path: str) -> None:
    """`make <target> <variable>=<port>` starts a server that answers GET ``path`` with 200."""
    port = free_port()
    server = subprocess.Popen(
        ["make", target, f"{variable}={port}"],
        cwd=project,
        env=user_shell_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # make, uv and the server in one group, stopped together
    )
    try:
        started = wait_for_port(port, timeout=120)
        if not started:
            server.kill()
            _, errors = server.communicate(timeout=30)
            pytest.fail(f"make {target} did not start:\n{errors.decode()[-3000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            assert answer.status == 200, f"make {target}: GET {path}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def assert_suite_passes(cookies: Any, extra: dict[str, str], targets: tuple[str, ...]) -> Path:
    """Render with `extra` answers, run each make target, and check what the full run leaves;
    return the project."""
    project = bake(cookies, **extra)
    assert_targets_pass(project, extra, targets)
    return project


def assert_targets_pass(project: Path, extra: dict[str, str], targets: tuple[str, ...]) -> None:
    """Run each make target in ``project`` (rendered with ``extra``) and check what they leave."""
    log = project.parent / f"{project.name}-aws-calls.jsonl"
    for target in targets:
        env = None
        if target == "pipeline-local":  # recorded, with the build project's environment
            build = aws_recording.build_environment(dict(rendered_stacks(project, project.name)))
            env = aws_recording.recording_environment(log, user_shell_env() | build)
        result = make(project, target, env)
        assert result.returncode == 0, (
            f"make {target}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    version = (project / ".venv" / "pyvenv.cfg").read_text()
    assert f"version_info = {extra.get('python_version', '3.11')}." in version
    if "pipeline-local" in targets:
        assert (project / "models" / "lineage.json").exists()
        # The SageMaker pipeline definition executed against loopback AWS registered a model.
        report = json.loads((project / "reports" / "pipeline-local.json").read_text())
        assert report["status"] == "Succeeded" and report["model_package_arn"]
        assert_recorded_calls_allowed(project, log)
        assert_hooks_run_on_commit_from_a_plain_shell(project)


def assert_recorded_calls_allowed(project: Path, log: Path) -> None:
    """Every AWS call `make pipeline-local` made is allowed to the role that makes it on AWS
    (tests/aws_recording.py): the build project's, and the pipeline's for the steps and jobs.
    Without one grant each role uses, the same recorded calls are refused, naming it."""
    verdicts = aws_recording.check_recorded_calls(project, log)
    assert verdicts.refusals == []
    roles = aws_recording.caller_roles(
        dict(rendered_stacks(project, project.name)), aws_recording.read(log)
    )
    assert set(verdicts.checked) == set(roles.values()), verdicts.checked
    for process, action in NARROWER_POLICIES:
        narrower = aws_recording.check_recorded_calls(project, log, without=(process, action))
        assert any(
            f" as {roles[process]}: {action} on " in refusal for refusal in narrower.refusals
        ), (process, action)


# A grant of each role that the recorded calls need: removed in a copy, the check fails.
NARROWER_POLICIES = (
    (aws_recording.BUILD, "sagemaker:StartPipelineExecution"),
    (aws_recording.PIPELINE, "sagemaker:CreateModelPackage"),
    (aws_recording.PIPELINE, "kms:Decrypt"),
)


def assert_hooks_run_on_commit_from_a_plain_shell(project: Path) -> None:
    """After `pre-commit install`, `git commit` works without the environment on PATH."""
    shell = user_shell_env()
    assert str(project / ".venv" / "bin") not in shell["PATH"]
    commands = [
        [str(project / ".venv" / "bin" / "pre-commit"), "install"],
        ["git", "add", "notes.py"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-m", "a plain commit"],
    ]
    (project / "notes.py").write_text('"""Notes."""\n\nANSWER = 42\n')
    for command in commands:
        result = subprocess.run(
            command, cwd=project, env=shell, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    assert "ruff (lint)" in result.stdout + result.stderr  # the hooks ran, and passed
