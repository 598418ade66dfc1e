"""Promote or discard each stage's challenger: ``make promote``, ``make discard``.

Starts the deploy pipeline with ``ModelPackageArn`` set to ``promote`` or ``discard``. Its deploy
build (``pipelines/deploy_config.py``) reads what each stage's endpoint serves and writes the
configurations that make the challenger the champion, or remove it; staging is updated and tested
first, then prod after the manual approval, as for any deploy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import boto3

from .deploy_config import DISCARD, PROMOTE
from .settings import Settings, load_settings

# The deploy pipeline's name and its one variable (infrastructure/deploy-pipeline.yaml).
PIPELINE_NAME = "{project}-deploy"
PACKAGE_VARIABLE = "ModelPackageArn"


def start(codepipeline: Any, settings: Settings, action: str) -> str:
    """Start the deploy pipeline for ``action``; returns the execution id."""
    response = codepipeline.start_pipeline_execution(
        name=PIPELINE_NAME.format(project=settings.project_name),
        variables=[{"name": PACKAGE_VARIABLE, "value": action}],
    )
    return str(response["pipelineExecutionId"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=[PROMOTE, DISCARD])
    args = parser.parse_args(argv)
    settings = load_settings()
    codepipeline = boto3.client("codepipeline", region_name=settings.region)
    execution = start(codepipeline, settings, args.action)
    pipeline = PIPELINE_NAME.format(project=settings.project_name)
    print(f"{pipeline}: execution {execution} started to {args.action} the challenger")
    return 0


if __name__ == "__main__":
    sys.exit(main())
