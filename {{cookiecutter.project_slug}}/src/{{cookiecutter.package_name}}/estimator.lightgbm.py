"""The estimator at the end of the model pipeline: LightGBM, through its scikit-learn interface.

``model_framework`` picks this module when the project is generated (the scikit-learn variant has
the same names), so training, evaluation, serving and monitoring never ask which framework it is:
the model stays one scikit-learn ``Pipeline`` (features, then this estimator), pickled whole.
Categorical columns reach LightGBM one-hot encoded by the features step, as they reach the other
frameworks; LightGBM's own categorical splits are not used, so every framework scores the same
columns.
"""

from __future__ import annotations

import sys
from typing import Any

from sklearn.base import BaseEstimator

# LightGBM's library links to the system's OpenMP runtime (its wheels do not bundle one): a
# missing runtime is an OSError at import, which would name only a shared library. Say what to
# install instead.
OPENMP_RUNTIME = {
    "linux": "libgomp.so.1 (Debian, Ubuntu: apt-get install libgomp1; Fedora: dnf install libgomp)",
    "darwin": "libomp.dylib (Homebrew: brew install libomp)",
    "win32": "VCOMP140.DLL (the Microsoft Visual C++ Redistributable, 2015-2022)",
}

try:
    from lightgbm import LGBMClassifier, LGBMRegressor
except OSError as error:
    runtime = OPENMP_RUNTIME.get(sys.platform, "an OpenMP runtime")
    raise ImportError(f"lightgbm cannot load its OpenMP runtime; install {runtime}") from error

FRAMEWORK = "lightgbm"
# params.yaml's `train` section and the training job's --name value pairs, in LightGBM's names
# (its scikit-learn interface; `verbose` is a LightGBM parameter it passes through).
HYPERPARAMETERS: dict[str, type] = {
    "n_estimators": int,
    "learning_rate": float,
    "num_leaves": int,
    "max_depth": int,
    "min_child_samples": int,
    "subsample": float,
    "subsample_freq": int,
    "colsample_bytree": float,
    "reg_lambda": float,
    "reg_alpha": float,
    "random_state": int,
    "verbose": int,
}


def build_estimator(problem_type: str, hyperparameters: dict[str, Any]) -> BaseEstimator:
    estimator: BaseEstimator
    if problem_type == "classification":
        estimator = LGBMClassifier(**hyperparameters)
    else:
        estimator = LGBMRegressor(**hyperparameters)
    return estimator


def framework_versions() -> dict[str, str]:
    """The estimator library's version, for the lineage record."""
    import lightgbm

    return {"lightgbm": lightgbm.__version__}
