"""Experiment tracking: every evaluated model is an MLflow run, on a laptop and on SageMaker.

Where runs go:

- ``MLFLOW_TRACKING_URI`` when it is set: a tracking server, or in a SageMaker job the managed
  MLflow server's ARN (the ``sagemaker-mlflow`` plugin signs the requests with the job's role);
- otherwise, for local runs (``dvc repro``, ``dvc exp run``), the SQLite store ``mlflow.db`` at the
  project root, with artifacts in ``mlartifacts/`` (both ignored by git and DVC);
- otherwise (a pipeline job with no tracking server configured) nowhere: tracking is skipped.

One experiment per project: ``MLFLOW_EXPERIMENT_NAME`` (the pipeline sets the SageMaker project's
name), else the project's name. A run holds every parameter, the evaluation metrics, the gate's
result, tags naming the code, data and template versions, the evaluation report and plots, and the
model with its input signature. Its id is written beside the report (``mlflow_run.json``), for the
lineage record and the model registry.

    python -m <package>.tracking --experiments   # the last runs, as a table (make experiments)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
RUN_FILE = "mlflow_run.json"
MODEL_ARTIFACT = "model"
# `dvc exp run` names the project's root and the experiment in these (queued and temporary
# experiments run in a copy of the project, deleted afterwards: their runs belong in the project).
DVC_ROOT_ENV = "DVC_ROOT"
DVC_EXPERIMENT_ENV = "DVC_EXP_NAME"
# The names the table and the tests read: one definition.
GATE_METRIC_TAG = "gate.metric"
GATE_RESULT_TAG = "gate.result"
DATA_VERSION_TAG = "data.version"
GIT_COMMIT_TAG = "git.commit"
GIT_DIRTY_TAG = "git.dirty"
TEMPLATE_VERSION_TAG = "template.version"
CODE_DIGEST_TAG = "code.sha256"
PIPELINE_EXECUTION_TAG = "sagemaker.pipeline_execution_id"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


def project_root(environ: Mapping[str, str], cwd: Path | None = None) -> Path:
    """The project a local run belongs to: the one a DVC experiment names, else ``cwd``."""
    return Path(environ.get(DVC_ROOT_ENV) or cwd or Path.cwd()).resolve()


@dataclass(frozen=True)
class Destination:
    """Where runs are recorded; ``artifact_root`` is set for the local store only."""

    uri: str
    experiment: str
    artifact_root: str | None = None


def destination(
    *,
    local: bool,
    default_experiment: str,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Destination | None:
    """The configured destination, the local store when ``local``, else None (no tracking)."""
    env = os.environ if environ is None else environ
    experiment = env.get(EXPERIMENT_ENV) or default_experiment
    if env.get(TRACKING_URI_ENV):
        return Destination(uri=env[TRACKING_URI_ENV], experiment=experiment)
    if not local:
        return None
    root = project_root(env, cwd)
    return Destination(
        uri=f"sqlite:///{root / LOCAL_STORE}",
        experiment=experiment,
        artifact_root=(root / LOCAL_ARTIFACTS / experiment).as_uri(),
    )


@dataclass
class RunRecord:
    """What one evaluated model leaves in its run."""

    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[Path] = field(default_factory=list)
    model: Any = None
    model_input: pd.DataFrame | None = None
    pip_requirements: list[str] | None = None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"max_iter": 5}}`` -> ``{"train.max_iter": 5}``, as DVC names parameters."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def _mlflow() -> Any:
    # Telemetry off before the first import: a run must send nothing anywhere but its store.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    # Two warnings every run would print: the model is pickled on purpose (as model.joblib is),
    # and its requirements are the locked ones, so MLflow's pip probe has nothing to add.
    for name in ("mlflow.sklearn", "mlflow.utils.environment"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return mlflow


def _client(target: Destination) -> tuple[Any, str]:
    """A client of ``target`` and its experiment's id, creating the experiment when it is new."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri=target.uri)
    experiment = client.get_experiment_by_name(target.experiment)
    if experiment is not None:
        return client, str(experiment.experiment_id)
    created = client.create_experiment(
        target.experiment,
        artifact_location=target.artifact_root,
        # The UI then opens on the training runs, not on the GenAI (traces) overview.
        tags={EXPERIMENT_KIND_TAG: "custom_model_development"},
    )
    return client, str(created)


def log_run(target: Destination, record: RunRecord, run_name: str | None = None) -> dict[str, str]:
    """Record one run; return what names it (``run_id``, ``experiment_id``, ``tracking_uri``).

    Through a client of ``target`` only: MLflow's module-level API would set the process's
    ``MLFLOW_TRACKING_URI``, which every later subprocess would inherit.
    """
    from mlflow.entities import Metric, Param, RunTag

    client, experiment_id = _client(target)
    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(name, float(value), now, 0) for name, value in record.metrics.items()],
            params=[Param(name, str(value)) for name, value in record.params.items()],
            tags=[RunTag(name, str(value)) for name, value in record.tags.items()],
        )
        for path in record.artifacts:
            folder = "plots" if path.suffix == ".png" else None
            client.log_artifact(run_id, str(path), artifact_path=folder)
        if record.model is not None and record.model_input is not None:
            _log_model(client, run_id, record)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "experiment": target.experiment,
        "tracking_uri": target.uri,
    }


def _log_model(client: Any, run_id: str, record: RunRecord) -> None:
    """The model as an MLflow Model (``runs:/<id>/model``), with its input signature.

    Saved, then uploaded as the run's artifacts: a tracking server then needs only the run calls
    (MLflow 3's ``log_model`` also calls the logged-model API, which the IAM Service Authorization
    Reference gives no SageMaker MLflow action for).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    assert record.model_input is not None  # noqa: S101 - checked by the caller
    sample = record.model_input.head(50)
    with tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch) / "model"
        mlflow.sklearn.save_model(
            record.model,
            path=str(saved),
            signature=infer_signature(sample, record.model.predict(sample)),
            # The locked runtime, not what MLflow would guess by importing the model.
            pip_requirements=record.pip_requirements,
            # Pickle, as models/model.joblib is: skops refuses the gradient-boosting trees.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
        )
        client.log_artifacts(run_id, str(saved), artifact_path=MODEL_ARTIFACT)


def write_run_file(output_dir: Path, run: Mapping[str, str] | None) -> Path:
    """``mlflow_run.json`` beside the report: the run's ids, or nulls when nothing was tracked."""
    path = output_dir / RUN_FILE
    keys = ("run_id", "experiment_id", "experiment", "tracking_uri")
    path.write_text(json.dumps({key: (run or {}).get(key) for key in keys}, indent=2) + "\n")
    return path


def read_run_id(path: Path) -> str | None:
    if not path.exists():
        return None
    run_id = json.loads(path.read_text()).get("run_id")
    return str(run_id) if run_id else None


def template_version(root: Path) -> str:
    """The template commit ``.cruft.json`` records (what ``cruft update`` starts from)."""
    cruft = root / ".cruft.json"
    if not cruft.exists():
        return "unknown"
    return str(json.loads(cruft.read_text()).get("commit") or "unknown")


def experiments_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs (newest first) as a text table: the params that differ, gate metric and result."""
    if not runs:
        return "no runs recorded yet: `dvc repro` or `dvc exp run` records one"
    names = sorted({name for run in runs for name in run["params"]})
    differing = [name for name in names if len({run["params"].get(name) for run in runs}) > 1]
    header = ["run", "name", "started", *differing, "gate metric", "value", "gate", "data version"]
    rows = []
    for run in runs:
        metric = run["tags"].get(GATE_METRIC_TAG, "")
        value = run["metrics"].get(metric)
        rows.append(
            [
                run["run_id"][:8],
                run["tags"].get("mlflow.runName", ""),
                run["started"],
                *(str(run["params"].get(name, "")) for name in differing),
                metric,
                "" if value is None else f"{value:.4f}",
                run["tags"].get(GATE_RESULT_TAG, ""),
                run["tags"].get(DATA_VERSION_TAG, "")[:12],
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    note = "" if differing else "\n(every parameter is the same in these runs)"
    return "\n".join(lines) + note


def recent_runs(target: Destination, limit: int) -> list[dict[str, Any]]:
    """The experiment's last ``limit`` runs, newest first, as plain dictionaries."""
    from datetime import UTC, datetime

    client, experiment_id = _client(target)
    found = client.search_runs([experiment_id], order_by=["start_time DESC"], max_results=limit)
    return [
        {
            "run_id": run.info.run_id,
            "started": datetime.fromtimestamp(run.info.start_time / 1000, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "tags": dict(run.data.tags),
        }
        for run in found
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", action="store_true", help="print the last runs")
    parser.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")
    args = parser.parse_args(argv)
    if not args.experiments:
        parser.error("nothing to do: pass --experiments")
    target = destination(local=True, default_experiment=default_experiment())
    assert target is not None  # noqa: S101 - local=True always gives one
    print(f"experiment '{target.experiment}' in {target.uri}")
    print(experiments_table(recent_runs(target, args.limit)))
    return 0


def default_experiment() -> str:
    """The project's name: its package's, with hyphens (``MLFLOW_EXPERIMENT_NAME`` wins)."""
    return (__package__ or "project").replace("_", "-")


if __name__ == "__main__":
    sys.exit(main())
