"""Read ``params.yaml``, the one place for hyperparameters and quality-gate thresholds.

Only local runs read the file; SageMaker jobs receive the same values as command-line arguments,
so the containers need no YAML parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_params(path: Path, section: str | None = None) -> dict[str, Any]:
    import yaml  # local runs only, see module docstring

    params: dict[str, Any] = yaml.safe_load(Path(path).read_text()) or {}
    return dict(params.get(section, {})) if section else params
