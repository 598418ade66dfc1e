"""A LightGBM regression project on GitHub Actions, Python 3.12: fast suite (quality gate on the
sample data, the container's handler contract, the pipeline definition), lint, `dvc repro`
through the gate, and the SageMaker pipeline executed offline (`make pipeline-local`).

LightGBM rides on this row rather than a whole rendered suite of its own (CI's time budget)."""

from __future__ import annotations

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
    assert_suite_passes(cookies, ANSWERS, SMOKE)
