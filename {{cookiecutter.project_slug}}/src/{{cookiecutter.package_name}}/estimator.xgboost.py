"""The estimator at the end of the model pipeline: XGBoost, through its scikit-learn interface.

``model_framework`` picks this module when the project is generated (the scikit-learn variant has
the same names), so training, evaluation, serving and monitoring never ask which framework it is:
the model stays one scikit-learn ``Pipeline`` (features, then this estimator), pickled whole.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from xgboost import XGBClassifier, XGBRegressor

FRAMEWORK = "xgboost"
# params.yaml's `train` section and the training job's --name value pairs, in XGBoost's names.
HYPERPARAMETERS: dict[str, type] = {
    "n_estimators": int,
    "learning_rate": float,
    "max_depth": int,
    "min_child_weight": float,
    "subsample": float,
    "colsample_bytree": float,
    "reg_lambda": float,
    "reg_alpha": float,
    "tree_method": str,
    "random_state": int,
}


def build_estimator(problem_type: str, hyperparameters: dict[str, Any]) -> BaseEstimator:
    # Classification labels must be 0..k-1: XGBoost refuses others and names the labels it found.
    estimator: BaseEstimator
    if problem_type == "classification":
        estimator = XGBClassifier(**hyperparameters)
    else:
        estimator = XGBRegressor(**hyperparameters)
    return estimator


def framework_versions() -> dict[str, str]:
    """The estimator library's version, for the lineage record (on Linux and Windows the wheel
    is ``xgboost-cpu``, elsewhere ``xgboost``; both are imported as ``xgboost``)."""
    import xgboost

    return {"xgboost": xgboost.__version__}
