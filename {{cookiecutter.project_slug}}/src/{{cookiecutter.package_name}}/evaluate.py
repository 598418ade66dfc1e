"""Evaluate the trained model on the test split and apply the quality gate.

Writes ``metrics.json`` in the SageMaker model-quality format
(``{section: {metric: {"value": x, "standard_deviation": "NaN"}}}``) for the pipeline's quality
gate and the model registry, and ``scores.json`` (``{metric: value}``, the same numbers) for DVC:
``dvc metrics show/diff`` would list every ``standard_deviation`` as a column of NaN.

    python -m <package>.evaluate --model-dir models --test-dir data/processed/test \
        --output-dir reports --params params.yaml --enforce-gate
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlops_platform.plots import PLOTS_DIR, write_plots
from sklearn import metrics as skm

from .data import SCHEMA_PATH, DataValidationError, Schema, load_schema, read_csv_dir, validate
from .inference import load_model
from .model_code import without_hashes
from .params import load_params
from .tracking import write_run_file

METRICS_FILE = "metrics.json"
LINEAGE_FILE = "lineage.json"
SCORES_FILE = "scores.json"
# Gate metrics where smaller is better: one list for the gate, the pipeline and the hooks.
GATE_METRICS_FILE = Path(__file__).with_name("gate_metrics.json")
LOWER_IS_BETTER = frozenset(json.loads(GATE_METRICS_FILE.read_text())["lower_is_better"])


@dataclass(frozen=True)
class Gate:
    metric: str
    threshold: float

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    def passes(self, value: float) -> bool:
        return value <= self.threshold if self.lower_is_better else value >= self.threshold

    def describe(self, value: float) -> str:
        relation = "<=" if self.lower_is_better else ">="
        verdict = "passed" if self.passes(value) else "FAILED"
        required = f"required {relation} {self.threshold}"
        return f"quality gate {verdict}: {self.metric} = {value:.4f}, {required}"


def metrics_section(problem_type: str, n_classes: int) -> str:
    if problem_type == "regression":
        return "regression_metrics"
    return (
        "binary_classification_metrics" if n_classes <= 2 else "multiclass_classification_metrics"
    )


def schema_section(schema: Schema) -> str:
    """The report section the data contract implies: what the pipeline's gate reads.

    The label count comes from the schema, not from the labels a split happens to contain, so the
    section evaluate writes and the path the pipeline reads agree for every dataset.
    """
    if schema.problem_type == "classification" and schema.target_allowed is None:
        raise ValueError("a classification schema must list the target's allowed labels")
    return metrics_section(schema.problem_type, len(schema.target_allowed or ()))


def _entry(value: float) -> dict[str, Any]:
    return {"value": float(value), "standard_deviation": "NaN"}


def scores(report: dict[str, Any]) -> dict[str, float]:
    """The report's values by metric name, flat: what DVC shows and compares."""
    return {
        name: float(entry["value"])
        for section in report.values()
        for name, entry in section.items()
    }


def compute_metrics(
    model: Any, meta: dict[str, Any], frame: pd.DataFrame, n_labels: int | None = None
) -> dict[str, Any]:
    """The report; ``n_labels`` (from the schema) decides binary or multiclass when given."""
    features, truth = frame[meta["features"]], frame[meta["target"]]
    return metrics_from_predictions(
        meta["problem_type"],
        truth,
        model.predict(features),
        meta.get("classes", []),
        n_labels,
        positive_probability=lambda: model.predict_proba(features)[:, 1],
    )


def metrics_from_predictions(
    problem_type: str,
    truth: Any,
    predicted: Any,
    classes: list[Any],
    n_labels: int | None = None,
    positive_probability: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """The report from predictions already made (``compare`` scores captured answers with it).

    ``positive_probability`` gives each row's probability of ``classes[1]``; AUC is reported for
    a binary problem when it is given and the truth holds both labels.
    """
    truth = pd.Series(np.asarray(truth))
    if problem_type == "regression":
        mse = skm.mean_squared_error(truth, predicted)
        values = {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": skm.mean_absolute_error(truth, predicted),
            "r2": skm.r2_score(truth, predicted),
        }
        return {"regression_metrics": {name: _entry(v) for name, v in values.items()}}
    n_classes = n_labels if n_labels is not None else len(classes)
    average = "binary" if n_classes <= 2 else "weighted"
    # Binary precision and recall are the positive label's: the second of the sorted labels
    # (1 of 0/1, "yes" of "no"/"yes"), the class predict_proba's second column scores.
    binary = average == "binary" and len(classes) == 2
    positive = {"pos_label": sorted(classes)[1]} if binary else {}
    values = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(
            truth, predicted, average=average, zero_division=0, **positive
        ),
        "recall": skm.recall_score(truth, predicted, average=average, zero_division=0, **positive),
        "f1": skm.f1_score(truth, predicted, average=average, zero_division=0, **positive),
    }
    if n_classes > 2:
        # Per label too: a weighted average hides a label the model misses.
        labels = list(classes)
        for name, metric in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            per_label = metric(truth, predicted, labels=labels, average=None, zero_division=0)
            values |= {f"{name}_{label}": v for label, v in zip(labels, per_label, strict=True)}
    if (
        positive_probability is not None
        and n_classes == 2
        and len(classes) == 2
        and truth.nunique() == 2
    ):
        values["auc"] = skm.roc_auc_score(truth, positive_probability())
    section = metrics_section("classification", n_classes)
    return {section: {name: _entry(v) for name, v in values.items()}}


def metric_value(report: dict[str, Any], metric: str) -> float:
    for section in report.values():
        if metric in section:
            return float(section[metric]["value"])
    raise KeyError(f"metric '{metric}' not in the evaluation report")


def unpack_model_dir(model_dir: Path) -> Path:
    """SageMaker hands evaluation the training output as model.tar.gz; unpack it if so."""
    archive = model_dir / "model.tar.gz"
    if not archive.exists():
        return model_dir
    target = Path(tempfile.mkdtemp(prefix="model-"))
    with tarfile.open(archive) as tar:
        if hasattr(
            tarfile, "data_filter"
        ):  # refuses unsafe members; absent on old container Pythons
            tar.extractall(target, filter="data")
        else:
            tar.extractall(target)  # noqa: S202 - our own training output
    return target


def gate_from(args: argparse.Namespace) -> Gate | None:
    """The gate: ``params.yaml``'s (local runs) or the one the pipeline passes; None if neither."""
    if args.gate_metric is not None and args.gate_threshold is not None:
        return Gate(args.gate_metric, args.gate_threshold)
    if args.params is not None:
        return Gate(**load_params(args.params, "gate"))
    return None


def track(
    args: argparse.Namespace,
    *,
    model: Any,
    meta: dict[str, Any],
    frame: pd.DataFrame,
    report: dict[str, Any],
    gate: Gate | None,
    files: list[Path],
) -> dict[str, str] | None:
    """Record this evaluation as an MLflow run when tracking is configured (``tracking``)."""
    from . import tracking

    target = tracking.destination(
        local=args.track_locally, default_experiment=tracking.default_experiment()
    )
    if target is None:
        return None
    params = tracking.flatten(load_params(args.params)) if args.params else {}
    params |= tracking.flatten({"train": meta.get("hyperparameters", {})})
    tags = {
        tracking.TEMPLATE_VERSION_TAG: args.template_version
        or tracking.template_version(tracking.project_root(os.environ))
    }
    if gate is not None:
        params |= {"gate.metric": gate.metric, "gate.threshold": gate.threshold}
        passed = gate.passes(metric_value(report, gate.metric))
        tags |= {
            tracking.GATE_METRIC_TAG: gate.metric,
            tracking.GATE_RESULT_TAG: "passed" if passed else "failed",
        }
    data_version = args.data_version
    if not data_version and args.data_pointer is not None:
        from .lineage import data_version as pointer_version

        data_version = pointer_version(args.data_pointer)["md5"] or ""
    tags[tracking.DATA_VERSION_TAG] = data_version
    if args.execution_id:
        tags[tracking.PIPELINE_EXECUTION_TAG] = args.execution_id
        tags[tracking.CODE_DIGEST_TAG] = args.code_digest
    else:
        from .lineage import git_state

        code = git_state(Path.cwd())
        tags[tracking.GIT_COMMIT_TAG] = code["commit"] or "unknown"
        tags[tracking.GIT_DIRTY_TAG] = str(code["dirty"]).lower()
    experiment = os.environ.get(tracking.DVC_EXPERIMENT_ENV)
    if experiment:
        tags["dvc.experiment"] = experiment
    requirements = Path(__file__).resolve().parent.parent / "requirements.txt"
    record = tracking.RunRecord(
        params=params,
        metrics=scores(report),
        tags=tags,
        artifacts=files,
        model=model,
        model_input=frame[meta["features"]],
        pip_requirements=_requirement_lines(requirements),
    )
    return tracking.log_run(target, record, run_name=args.execution_id or experiment)


def _requirement_lines(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    # The pins without their hashes: MLflow records what to install, the lock checks the files.
    lines = (line.strip() for line in without_hashes(path.read_text()).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    parser.add_argument("--params", type=Path, help="params.yaml; its 'gate' section is the gate")
    parser.add_argument(
        "--enforce-gate",
        action="store_true",
        help="exit 1 when the model misses the gate (the SageMaker pipeline "
        "gates in a ConditionStep instead)",
    )
    parser.add_argument("--gate-metric", help="the gate's metric, when there is no --params")
    parser.add_argument("--gate-threshold", type=float, help="the gate's threshold, likewise")
    parser.add_argument("--execution-id", help="pipeline execution id: also write lineage.json")
    parser.add_argument("--data-uri", default="", help="the data's S3 location (lineage)")
    parser.add_argument(
        "--data-version", default="", help="the data's DVC MD5 (default: read from --data-uri)"
    )
    parser.add_argument("--data-pointer", type=Path, help="the raw data's .dvc file (data version)")
    parser.add_argument("--code-digest", default="", help="the job code's SHA-256 (run tag)")
    parser.add_argument("--template-version", default="", help="the template commit (run tag)")
    parser.add_argument("--intended-use", default="", help="the model card's intended use")
    parser.add_argument("--image", default="", help="the image the model is registered with")
    parser.add_argument(
        "--track-locally",
        action="store_true",
        help="with no MLFLOW_TRACKING_URI, record the run in the project's mlflow.db",
    )
    args = parser.parse_args(argv)
    if args.enforce_gate and args.params is None and args.gate_metric is None:
        parser.error("--enforce-gate needs --params (or --gate-metric and --gate-threshold)")
    if not args.data_version and args.data_uri:
        from .lineage import dvc_version

        args.data_version = dvc_version(args.data_uri)

    model_dir = unpack_model_dir(args.model_dir)
    model, meta = load_model(model_dir)
    schema = load_schema(args.schema)
    try:
        frame = validate(read_csv_dir(args.test_dir, schema.text_columns), schema)
    except DataValidationError as error:
        print(f"error: invalid test data in {args.test_dir}: {error}", file=sys.stderr)
        return 2
    n_labels = len(schema.target_allowed) if schema.target_allowed is not None else None
    report = compute_metrics(model, meta, frame, n_labels)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    files = [args.output_dir / METRICS_FILE, args.output_dir / SCORES_FILE]
    files[0].write_text(json.dumps(report, indent=2) + "\n")
    files[1].write_text(json.dumps(scores(report), indent=2) + "\n")
    files += write_plots(model, meta, frame, args.output_dir / PLOTS_DIR)
    gate = gate_from(args)
    run = track(args, model=model, meta=meta, frame=frame, report=report, gate=gate, files=files)
    write_run_file(args.output_dir, run)
    if run:
        where = f"experiment '{run['experiment']}' ({run['tracking_uri']})"
        print(f"MLflow run {run['run_id']} in {where}")
    if args.execution_id:
        from .lineage import pipeline_record

        record = pipeline_record(
            model_dir,
            report,
            execution_id=args.execution_id,
            data_uri=args.data_uri,
            data_version=args.data_version,
            mlflow_run_id=run["run_id"] if run else None,
        )
        (args.output_dir / LINEAGE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if gate is not None:
            from . import model_card

            card = model_card.from_project(
                report,
                gate_metric=gate.metric,
                gate_threshold=gate.threshold,
                data_version=args.data_version,
                data_uri=args.data_uri,
                intended_use=args.intended_use,
                image=args.image,
                lineage={
                    "pipeline_execution_id": args.execution_id,
                    "code_sha256": args.code_digest,
                    "model_sha256": record["model"]["sha256"],
                    "mlflow_run_id": record["mlflow_run_id"],
                },
            )
            # The register step reads the card as text (JsonGet of "content"): ModelCardContent.
            (args.output_dir / model_card.CARD_FILE).write_text(
                json.dumps({"content": json.dumps(card)}) + "\n"
            )
    print(json.dumps(report))
    if not args.enforce_gate or gate is None:
        return 0
    value = metric_value(report, gate.metric)
    print(gate.describe(value), file=sys.stdout if gate.passes(value) else sys.stderr)
    return 0 if gate.passes(value) else 1


if __name__ == "__main__":
    sys.exit(main())
