"""A CodeCommit project on Python 3.13: fast suite, lint, repro, pipeline-local."""

from __future__ import annotations

from typing import Any

import pytest

from .test_rendered_project import SMOKE, assert_suite_passes

pytestmark = pytest.mark.slow

ANSWERS = {
    "source_control": "codecommit",
    "license": "Proprietary",
    "project_name": "Fraud Score",
    "python_version": "3.13",
}


def test_codecommit_313_project_suite_passes(cookies: Any) -> None:
    assert_suite_passes(cookies, ANSWERS, SMOKE)
