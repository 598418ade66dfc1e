"""The estimator at the end of the model pipeline: XGBoost, through its scikit-learn interface.

``model_framework`` picks this module when the project is generated (the scikit-learn variant has
the same names), so training, evaluation, serving and monitoring never ask which framework it is:
the model stays one scikit-learn ``Pipeline`` (features, then this estimator), pickled whole.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import VotingClassifier
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
    if problem_type == "classification":
        # XGBoost takes only labels 0..k-1. scikit-learn's VotingClassifier encodes the labels
        # (text, or any integers) to those before fitting, and its predict returns the original
        # labels; with one soft-voting member its probabilities are that member's own. A stock
        # class, so the endpoint unpickles the model without this package.
        return VotingClassifier([(FRAMEWORK, XGBClassifier(**hyperparameters))], voting="soft")
    return XGBRegressor(**hyperparameters)


def framework_versions() -> dict[str, str]:
    """The estimator library's version, for the lineage record (on Linux and Windows the wheel
    is ``xgboost-cpu``, elsewhere ``xgboost``; both are imported as ``xgboost``)."""
    import xgboost

    return {"xgboost": xgboost.__version__}
