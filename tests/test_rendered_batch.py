"""A batch-inference project passes its whole suite, and `make pipeline-local` runs its batch
pipeline after the model-building one (about 6-10 minutes on 2 loaded cores, like the other rows).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .test_rendered_project import FULL, assert_suite_passes

pytestmark = pytest.mark.slow

ANSWERS = {"inference_mode": "batch", "project_name": "Nightly Scores"}


def test_batch_project_suite_passes_and_pipeline_local_scores_a_batch(cookies: Any) -> None:
    project = assert_suite_passes(cookies, ANSWERS, FULL)
    batch = json.loads((project / "reports" / "pipeline-local.json").read_text())["batch"]
    assert batch["status"] == "Succeeded", batch["failure_message"]
    assert batch["predicted_rows"] == batch["rows"] > 0
    assert batch["predictions"].endswith("/batch/predictions/local-batch")
