"""Regenerate the sample datasets, their schemas and DVC pointers shipped in the template.

The rendered project must train offline, so its sample data is written here from the datasets
scikit-learn ships (nothing is downloaded) and committed into the template. Each file carries its
problem type as an infix (``dataset.classification.csv``); the post-generation hook keeps the
chosen variant and drops the infix. Run: ``uv run python tools/make_sample_data.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parent.parent / "{{cookiecutter.project_slug}}"
# JSON, not YAML: the schema travels inside the package to SageMaker containers, whose Python
# may lack PyYAML.
PACKAGE = PROJECT / "src" / "{{cookiecutter.package_name}}"
# Plausible ranges are wider than the sample so that honest new data passes, yet a unit mix-up
# (a value ten times too large) still fails validation.
RANGE_SLACK = 0.5


def _rendered_sample_data() -> ModuleType:
    """The rendered project's tools/sample_data.py (plain Python): the one definition of the
    sample, which a provisioned project's first build rebuilds with the same code. Executed from
    its source, so no __pycache__ folder lands in the template (and in every render)."""
    source = PROJECT / "tools" / "sample_data.py"
    module = ModuleType("sample_data")
    module.__file__ = str(source)
    sys.modules[module.__name__] = module
    exec(compile(source.read_text(), str(source), "exec"), module.__dict__)  # noqa: S102
    return module


sample_data = _rendered_sample_data()


def frames() -> dict[str, tuple[pd.DataFrame, str]]:
    return {kind: sample_data.sample_frame(kind) for kind in ("classification", "regression")}


def schema_for(frame: pd.DataFrame, target: str, problem_type: str) -> dict[str, object]:
    features: dict[str, dict[str, object]] = {}
    for column in frame.columns.drop(target):
        values = frame[column]
        spread = float(values.max() - values.min())
        low = float(values.min()) - RANGE_SLACK * spread
        if values.min() >= 0:
            low = max(low, 0.0)
        features[column] = {
            "dtype": "float",
            "min": round(low, 6),
            "max": round(float(values.max()) + RANGE_SLACK * spread, 6),
            "nullable": False,
        }
    target_spec: dict[str, object] = {"name": target}
    if problem_type == "classification":
        target_spec |= {"dtype": "int", "allowed": sorted(int(v) for v in frame[target].unique())}
    else:
        target_spec |= {"dtype": "float", "min": 0.0}
    return {"problem_type": problem_type, "target": target_spec, "features": features}


def dvc_pointer(data: bytes) -> dict[str, object]:
    return {
        "outs": [
            {
                "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - DVC's content address, not security
                "size": len(data),
                "hash": "md5",
                "path": "dataset.csv",
            }
        ]
    }


def main() -> None:
    raw = PROJECT / "data" / "raw"
    for problem_type, (frame, target) in frames().items():
        data = sample_data.sample_csv(problem_type)
        (raw / f"dataset.{problem_type}.csv").write_bytes(data)
        (raw / f"dataset.{problem_type}.csv.dvc").write_text(
            yaml.safe_dump(dvc_pointer(data), sort_keys=False)
        )
        (PACKAGE / f"schema.{problem_type}.json").write_text(
            json.dumps(schema_for(frame, target, problem_type), indent=2) + "\n"
        )
        print(f"{problem_type}: {len(frame)} rows, {frame.shape[1] - 1} features")


if __name__ == "__main__":
    main()
