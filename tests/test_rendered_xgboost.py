"""An XGBoost project passes the same suite as the scikit-learn ones: its own tests (quality gate
on the sample data, the container's handler contract, the pipeline definition), lint, `dvc repro`
through the gate, and the SageMaker pipeline executed offline (`make pipeline-local`)."""

from __future__ import annotations

from typing import Any

import pytest

from .test_rendered_project import assert_suite_passes

pytestmark = pytest.mark.slow

ANSWERS = {"model_framework": "xgboost", "project_name": "Churn Boost"}
TARGETS = ("setup", "test", "lint", "repro", "pipeline-local")


def test_xgboost_project_suite_passes(cookies: Any) -> None:
    assert_suite_passes(cookies, ANSWERS, TARGETS)
