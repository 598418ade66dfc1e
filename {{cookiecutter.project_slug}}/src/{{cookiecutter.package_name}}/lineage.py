"""Record where a model came from: data version, code version, parameters, metrics, packages.

    python -m <package>.lineage --model-dir models --metrics reports/metrics.json \
        --params params.yaml --data-pointer data/raw/dataset.csv.dvc --output models/lineage.json \
        --mlflow-run reports/mlflow_run.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "joblib", "dvc")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_state(cwd: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(  # noqa: S603 - fixed git command
                ["git", *args],  # noqa: S607 - git from PATH, like a developer runs it
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            )
        except (OSError, subprocess.CalledProcessError):
            return None
        return result.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def data_version(pointer: Path) -> dict[str, Any]:
    """The DVC content hash of the raw data, read from its ``.dvc`` pointer file."""
    if not pointer.exists():
        return {"pointer": str(pointer), "md5": None}
    import yaml  # local runs only

    outs = yaml.safe_load(pointer.read_text()).get("outs", [])
    return {"pointer": str(pointer), "md5": outs[0].get("md5") if outs else None}


# Where a DVC 3 remote keeps an object: files/md5/<first 2 hex>/<other 30 hex>[.dir].
DVC_OBJECT = re.compile(r"/files/md5/([0-9a-f]{2})/([0-9a-f]{30}(?:\.dir)?)$")


def dvc_version(url: str) -> str:
    """The DVC MD5 (as its ``.dvc`` file writes it) of the remote object at ``url``; "" when
    ``url`` names no DVC object. The pipeline's data is that object, so its name is the version."""
    match = DVC_OBJECT.search(url.rstrip("/"))
    return "".join(match.groups()) if match else ""


def training_rows(model_dir: Path) -> int | None:
    """Rows the model was trained on, from the baseline the training job saved beside it."""
    baseline = model_dir / "baseline.json"
    if not baseline.exists():
        return None
    return int(json.loads(baseline.read_text())["rows"])


def pipeline_record(
    model_dir: Path,
    report: dict[str, Any],
    *,
    execution_id: str,
    data_uri: str,
    data_version: str,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """The record a pipeline execution keeps beside its metrics (and registers with the model).

    ``mlflow_run_id`` is "" when tracking was not configured: the registry step reads the key.
    """
    return {
        "pipeline_execution_id": execution_id,
        "mlflow_run_id": mlflow_run_id or "",
        "model": {"sha256": sha256(model_dir / "model.joblib")},
        "data": {"uri": data_uri, "version": data_version},
        "training_rows": training_rows(model_dir),
        "metrics": report,
        "packages": package_versions(),
    }


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    from .estimator import framework_versions  # the estimator's library

    return versions | framework_versions()


def build_record(
    model_dir: Path, metrics: Path, params: Path, pointer: Path, run_file: Path | None = None
) -> dict[str, Any]:
    from .params import load_params
    from .tracking import read_run_id

    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "path": str(model_dir / "model.joblib"),
            "sha256": sha256(model_dir / "model.joblib"),
        },
        "data": data_version(pointer),
        "training_rows": training_rows(model_dir),
        "code": git_state(Path.cwd()),
        "params": load_params(params),
        "metrics": json.loads(metrics.read_text()),
        "mlflow_run_id": read_run_id(run_file) if run_file else None,
        "packages": package_versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data-pointer", type=Path, default=Path("data/raw/dataset.csv.dvc"))
    parser.add_argument("--output", type=Path, default=Path("models/lineage.json"))
    parser.add_argument(
        "--mlflow-run", type=Path, help="the mlflow_run.json evaluation wrote (the run's id)"
    )
    args = parser.parse_args(argv)
    record = build_record(
        args.model_dir, args.metrics, args.params, args.data_pointer, args.mlflow_run
    )
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"lineage written to {args.output} (model sha256 {record['model']['sha256'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
