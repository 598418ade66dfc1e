"""The evaluation's plots, as PNG files: where people look at a model beyond its numbers.

Classification: the confusion matrix, the ROC curve and the precision-recall curve (the curves need
two classes and predicted probabilities). Regression: predicted against actual, and the residuals.
``dvc plots show`` lists them (``dvc.yaml``) and each MLflow run keeps them as artifacts.

matplotlib is a tooling dependency (the ``plots`` group): a job whose image lacks it writes no plots
and says so, instead of failing the evaluation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

PLOTS_DIR = "plots"
CLASSIFICATION_PLOTS = ("confusion_matrix.png", "roc_curve.png", "precision_recall_curve.png")
REGRESSION_PLOTS = ("predicted_vs_actual.png", "residuals.png")
DPI = 100


def write_plots(
    model: Any, meta: dict[str, Any], frame: pd.DataFrame, output_dir: Path
) -> list[Path]:
    """Write the plots of ``model`` on ``frame`` under ``output_dir``; return the files written."""
    try:
        import matplotlib
    except ImportError:
        print("note: matplotlib is not installed, so no evaluation plots", file=sys.stderr)
        return []
    matplotlib.use("Agg")  # files only: no display on a build machine or in a job
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    features, truth = frame[meta["features"]], frame[meta["target"]]
    predicted = model.predict(features)
    figures: dict[str, Any] = {}
    if meta["problem_type"] == "regression":
        figures.update(_regression(plt, np.asarray(truth, float), np.asarray(predicted, float)))
    else:
        figures.update(_classification(plt, model, features, truth, predicted, meta["classes"]))
    written = []
    for name, figure in figures.items():
        path = output_dir / name
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def _classification(
    plt: Any,
    model: Any,
    features: pd.DataFrame,
    truth: pd.Series,
    predicted: Any,
    classes: list[int],
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    figure, axes = plt.subplots(figsize=(4.5, 4))
    skm.ConfusionMatrixDisplay.from_predictions(truth, predicted, labels=classes, ax=axes)
    axes.set_title("Confusion matrix (test split)")
    figures[CLASSIFICATION_PLOTS[0]] = figure
    if len(classes) != 2 or truth.nunique() != 2 or not hasattr(model, "predict_proba"):
        return figures  # the curves score one class against the other
    scores = model.predict_proba(features)[:, 1]
    figure, axes = plt.subplots(figsize=(4.5, 4))
    skm.RocCurveDisplay.from_predictions(truth, scores, pos_label=classes[1], ax=axes)
    axes.set_title("ROC curve (test split)")
    figures[CLASSIFICATION_PLOTS[1]] = figure
    figure, axes = plt.subplots(figsize=(4.5, 4))
    skm.PrecisionRecallDisplay.from_predictions(truth, scores, pos_label=classes[1], ax=axes)
    axes.set_title("Precision-recall curve (test split)")
    figures[CLASSIFICATION_PLOTS[2]] = figure
    return figures


def _regression(plt: Any, truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    figure, axes = plt.subplots(figsize=(4.5, 4))
    skm.PredictionErrorDisplay.from_predictions(
        truth, predicted, kind="actual_vs_predicted", ax=axes
    )
    axes.set_title("Predicted vs actual (test split)")
    vs_actual = figure
    figure, axes = plt.subplots(figsize=(4.5, 4))
    skm.PredictionErrorDisplay.from_predictions(
        truth, predicted, kind="residual_vs_predicted", ax=axes
    )
    axes.set_title("Residuals (test split)")
    return {REGRESSION_PLOTS[0]: vs_actual, REGRESSION_PLOTS[1]: figure}
