"""A LightGBM regression project on GitHub Actions, Python 3.12: fast suite (quality gate on the
sample data, the container's handler contract, the pipeline definition), lint, `dvc repro`
through the gate, and the SageMaker pipeline executed offline (`make pipeline-local`).

LightGBM rides on this row rather than a whole rendered suite of its own (CI's time budget)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from .test_rendered_project import SMOKE, assert_suite_passes

pytestmark = pytest.mark.slow

ANSWERS = {
    "problem_type": "regression",
    "model_framework": "lightgbm",
    "ci_system": "github-actions",
    "source_control": "github",
    "license": "MIT",
    "project_name": "Demand Forecast",
    "aws_region": "eu-west-1",
    "python_version": "3.12",
}


def test_lightgbm_regression_github_actions_312_project_suite_passes(cookies: Any) -> None:
    project = assert_suite_passes(cookies, ANSWERS, SMOKE)
    assert_lightgbm_links_the_system_openmp_and_no_gpu_library(project)


def assert_lightgbm_links_the_system_openmp_and_no_gpu_library(project: Path) -> None:
    """The installed manylinux wheel carries no OpenMP runtime of its own (no vendored
    ``lightgbm.libs``, unlike scikit-learn's wheel) and its library resolves the system's
    libgomp.so.1; nothing it loads is a GPU library (ldd: the dynamic loader's own answer)."""
    (site,) = (project / ".venv" / "lib").glob("python*/site-packages")
    assert (site / "lightgbm").is_dir() and not (site / "lightgbm.libs").exists()
    library = site / "lightgbm" / "lib" / "lib_lightgbm.so"
    loaded = subprocess.run(
        ["ldd", str(library)], capture_output=True, text=True, check=True
    ).stdout
    (openmp,) = [line for line in loaded.splitlines() if "libgomp.so.1" in line]
    assert "=> /" in openmp and "not found" not in loaded, loaded  # the system's runtime
    assert not [n for n in ("cuda", "nvidia", "OpenCL", "nccl") if n in loaded], loaded
