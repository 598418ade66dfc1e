"""Bake the option matrix and check every rendered tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import template_files

from .conftest import MATRIX, bake, load_yaml, matrix_id

COMMON_FILES = [
    "README.md",
    "pyproject.toml",
    "uv.lock",
    "src/requirements.txt",
    "Makefile",
    "tools/uv.sh",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "params.yaml",
    "dvc.yaml",
    ".dvc/config",
    "data/raw/dataset.csv",
    "data/raw/dataset.csv.dvc",
    "tests/conftest.py",
    "pipelines/__init__.py",
    "pipelines/pipeline.py",
    "pipelines/run.py",
    "buildspec-deploy.yml",
    "infrastructure/deploy-pipeline.yaml",
    "infrastructure/staging-config.json",
    "infrastructure/prod-config.json",
]
PACKAGE_MODULES = [
    "__init__.py",
    "data.py",
    "features.py",
    "estimator.py",
    "train.py",
    "evaluate.py",
    "inference.py",
    "serve.py",
    "predict.py",
    "lineage.py",
    "params.py",
    "monitor.py",
    "schema.json",
]
# What each inference mode has that the others have not (hooks/template_files.py prunes the rest).
MODE_FILES = {
    "realtime": ["tests/test_deploy_realtime.py"],
    "serverless": ["tests/test_deploy_serverless.py"],
    "batch": ["tests/test_deploy_batch.py"],
}
ENDPOINT_MODES = ("realtime", "serverless")
# Prod runs Model Monitor, so the deploy build writes drift alarms (serverless: no monitoring).
MONITORED_MODES = ("realtime", "batch")
CI_FILES = {
    "codepipeline": ["buildspec.yml"],
    "github-actions": [".github/workflows/build.yml"],
}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", ".lock", ""}


def answers(extra: dict[str, str]) -> dict[str, Any]:
    defaults = json.loads((Path(__file__).parent.parent / "cookiecutter.json").read_text())
    chosen = {
        key: (value[0] if isinstance(value, list) else value) for key, value in defaults.items()
    } | extra
    return chosen


def rendered_files(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts]


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_expected_files(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    project = baked_matrix[matrix_id(extra)]
    chosen = answers(extra)
    package = project / "src" / project.name.replace("-", "_")
    missing = [f for f in COMMON_FILES if not (project / f).is_file()]
    missing += [f"src/.../{m}" for m in PACKAGE_MODULES if not (package / m).is_file()]
    assert not missing
    for ci, files in CI_FILES.items():
        for name in files:
            assert (project / name).exists() is (ci == chosen["ci_system"]), name
    assert (project / "LICENSE").exists() is (chosen["license"] != "Proprietary")
    mode = chosen["inference_mode"]
    for other, files in MODE_FILES.items():
        for name in files:
            assert (project / name).exists() is (other == mode), name
    for name in template_files.ENDPOINT_PATHS:
        assert (project / name).exists() is (mode in ENDPOINT_MODES), name
    assert (project / "tests/test_drift_alarms.py").exists() is (mode in MONITORED_MODES)
    assert not [p for m in ("serverless", "batch") for p in project.rglob(f"*.{m}.*")]
    # Variant files are settled: no infix left, the schema is the chosen problem type's.
    assert not list(project.rglob("*.classification.*")) + list(project.rglob("*.regression.*"))
    frameworks = template_files.VARIANT_CHOICES["model_framework"]
    assert not [p for f in frameworks for p in project.rglob(f"*.{f}.*")]
    # The chosen framework's estimator, lock and runtime; nothing of the other frameworks.
    for library in ("xgboost", "lightgbm"):
        uses = chosen["model_framework"] == library
        for relative in ("pyproject.toml", "uv.lock", "src/requirements.txt", "params.yaml"):
            assert (library in (project / relative).read_text()) is uses, (library, relative)
        assert (f"from {library} import" in (package / "estimator.py").read_text()) is uses
    schema = json.loads((package / "schema.json").read_text())
    assert schema["problem_type"] == chosen["problem_type"]
    assert (project / ".python-version").read_text().strip() == chosen["python_version"]


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_no_template_markers_left(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    project = baked_matrix[matrix_id(extra)]
    leftovers = [
        str(path.relative_to(project))
        for path in rendered_files(project)
        if path.suffix in TEXT_SUFFIXES
        and any(marker in path.read_text(errors="ignore") for marker in ("{{", "{%", "{#"))
        and path.name != "build.yml"  # GitHub Actions' own ${{ }} expressions
    ]
    assert not leftovers
    workflow = project / ".github" / "workflows" / "build.yml"
    if workflow.exists():
        assert "cookiecutter" not in workflow.read_text()
        assert "{%" not in workflow.read_text()


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_config_files_parse(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    project = baked_matrix[matrix_id(extra)]
    parsed = 0
    for path in rendered_files(project):
        if path.suffix in (".yaml", ".yml") or path.name == ".pre-commit-config.yaml":
            assert load_yaml(path) is not None, path
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".toml" or path.name == "uv.lock":
            tomllib.loads(path.read_text())
        else:
            continue
        parsed += 1
    assert parsed >= 12


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_rendered_python_passes_ruff(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    project = baked_matrix[matrix_id(extra)]
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    for command in (
        [ruff, "check", "--no-cache", "."],
        [ruff, "format", "--check", "--no-cache", "."],
    ):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_git_repository_with_initial_commit(baked_matrix: dict[str, Path]) -> None:
    project = baked_matrix[matrix_id({})]
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=project, capture_output=True, text=True, check=True
    )
    assert "Initial commit" in log.stdout
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "data/raw/dataset.csv.dvc" in tracked
    assert "data/raw/dataset.csv" not in tracked  # data lives in DVC


def test_gitignore_keeps_data_models_and_secrets_out_of_git(
    baked_matrix: dict[str, Path],
) -> None:
    """The README's promise: data, models and `.env` stay out of git even before DVC lists them."""
    project = baked_matrix[matrix_id({})]
    paths = [
        ".env",
        ".env.production",
        "deploy-key.pem",
        ".aws/credentials",
        ".dvc/config.local",
        "data/capture/2026/11/23/00/capture.jsonl",
        "data/processed/extra.csv",
        "models/any-model.joblib",
        "data/raw/dataset.csv",
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert sorted(ignored) == sorted(paths)


def test_lock_matches_project_name(baked_matrix: dict[str, Path]) -> None:
    for project in baked_matrix.values():
        lock = tomllib.loads((project / "uv.lock").read_text())
        names = {package["name"] for package in lock["package"]}
        assert project.name in names


def test_sample_data_matches_its_dvc_pointer(baked_matrix: dict[str, Path]) -> None:
    import hashlib

    for project in baked_matrix.values():
        data = (project / "data/raw/dataset.csv").read_bytes()
        pointer = load_yaml(project / "data/raw/dataset.csv.dvc")["outs"][0]
        assert pointer["md5"] == hashlib.md5(data).hexdigest()  # noqa: S324 - DVC's address
        assert pointer["size"] == len(data)


def test_custom_names_flow_everywhere(cookies: Any) -> None:
    project = bake(
        cookies,
        project_name="Churn Radar",
        package_name="churn_model",
        s3_bucket="acme-ml-artifacts",
        organisation="acme",
    )
    assert project.name == "churn-radar"
    assert (project / "src" / "churn_model" / "train.py").exists()
    assert "churn_model" in (project / "dvc.yaml").read_text()
    assert "s3://acme-ml-artifacts/churn-radar/dvc" in (project / ".dvc/config").read_text()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "churn-radar"
