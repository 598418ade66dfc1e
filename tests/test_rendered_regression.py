"""A regression project on GitHub Actions, Python 3.12: fast suite, lint, repro, pipeline-local."""

from __future__ import annotations

from typing import Any

import pytest

from .test_rendered_project import SMOKE, assert_suite_passes

pytestmark = pytest.mark.slow

ANSWERS = {
    "problem_type": "regression",
    "ci_system": "github-actions",
    "source_control": "github",
    "license": "MIT",
    "project_name": "Demand Forecast",
    "aws_region": "eu-west-1",
    "python_version": "3.12",
}


def test_regression_github_actions_312_project_suite_passes(cookies: Any) -> None:
    assert_suite_passes(cookies, ANSWERS, SMOKE)
