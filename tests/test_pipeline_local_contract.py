"""The training-job files `make pipeline-local` writes, read back by AWS's own training toolkit.

``pipelines/local.py`` writes ``/opt/ml/input/config/*.json`` as the SageMaker training platform
does before a container starts. ``sagemaker-training`` (the toolkit inside AWS's framework images)
reads them into the ``SM_*`` environment; if it reads back the channels, hosts and hyperparameters
the request named, the files follow the platform's format. The toolkit runs in a subprocess with
``SAGEMAKER_BASE_DIR`` pointing at the job's folder, the relocation the toolkit itself offers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .conftest import bake

TOOLKIT_READ = """
import json
from sagemaker_training import environment
env = environment.Environment()
print(json.dumps({"variables": env.to_env_vars(), "hyperparameters": env.hyperparameters}))
"""


def rendered_module(project: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rendered_{name}", project / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_training_toolkit_reads_the_platform_files(cookies: Any, tmp_path: Path) -> None:
    local = rendered_module(bake(cookies), "pipelines/local")
    base = tmp_path / "job" / "opt" / "ml"
    request = {
        "HyperParameters": {"learning_rate": "0.1", "max_iter": "200", "loss": "log_loss"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3Uri": "s3://b/train", "S3DataType": "S3Prefix"}},
                "InputMode": "File",
            },
            {
                "ChannelName": "code",
                "DataSource": {"S3DataSource": {"S3Uri": "s3://b/code", "S3DataType": "S3Prefix"}},
                "InputMode": "File",
            },
        ],
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    local.write_training_config(base / "input" / "config", request)

    result = subprocess.run(
        [sys.executable, "-c", TOOLKIT_READ],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])
    variables = read["variables"]
    assert variables["SM_CHANNEL_TRAIN"] == str(base / "input" / "data" / "train")
    assert variables["SM_CHANNEL_CODE"] == str(base / "input" / "data" / "code")
    assert json.loads(variables["SM_CHANNELS"]) == ["code", "train"]
    assert variables["SM_MODEL_DIR"] == str(base / "model")
    assert variables["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(variables["SM_HOSTS"]) == ["algo-1"]
    assert variables["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    # the platform passes hyperparameters as strings; the toolkit decodes JSON values
    assert read["hyperparameters"] == {"learning_rate": 0.1, "max_iter": 200, "loss": "log_loss"}
