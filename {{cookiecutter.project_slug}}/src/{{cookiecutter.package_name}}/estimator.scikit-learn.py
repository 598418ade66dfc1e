"""The estimator at the end of the model pipeline: scikit-learn's histogram gradient boosting.

``model_framework`` picks this module when the project is generated (each framework's has the
same names), so training, evaluation, serving and monitoring never ask which framework it is.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

FRAMEWORK = "scikit-learn"
# params.yaml's `train` section and the training job's --name value pairs, in scikit-learn's names.
HYPERPARAMETERS: dict[str, type] = {
    "learning_rate": float,
    "max_iter": int,
    "max_depth": int,
    "min_samples_leaf": int,
    "l2_regularization": float,
    "random_state": int,
}


def build_estimator(problem_type: str, hyperparameters: dict[str, Any]) -> BaseEstimator:
    if problem_type == "classification":
        return HistGradientBoostingClassifier(**hyperparameters)
    return HistGradientBoostingRegressor(**hyperparameters)


def framework_versions() -> dict[str, str]:
    """The estimator library's version, for the lineage record."""
    import sklearn

    return {"scikit-learn": sklearn.__version__}
