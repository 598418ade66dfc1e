"""Feature engineering, as a scikit-learn transformer saved inside the model.

Keeping the transformation in the fitted pipeline means training, batch prediction and the
endpoint apply exactly the same steps; there is no second copy to drift apart. Its output is a
dense matrix of numbers, so any estimator placed after it (scikit-learn's or another framework's)
takes categorical columns without knowing they were text.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from .data import Schema

# Categories seen fewer times than this in training share one "infrequent" column: a rare
# category gets no column of its own that the model could overfit.
MIN_CATEGORY_COUNT = 5


def category_encoder() -> OneHotEncoder:
    """One column per training category; a category never seen in training (or grouped as
    infrequent) sets none of them, so the endpoint scores it instead of failing."""
    return OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        min_frequency=MIN_CATEGORY_COUNT,
        sparse_output=False,
        dtype=float,
    )


def build_preprocessor(schema: Schema) -> ColumnTransformer:
    """Select the contract's features in a fixed order: numbers imputed by the median, categories
    one-hot encoded (a missing value is a category of its own)."""
    transformers: list[tuple[str, Any, list[str]]] = [
        ("numeric", SimpleImputer(strategy="median"), schema.numeric_features)
    ]
    if schema.categorical_features:
        transformers.append(("categorical", category_encoder(), schema.categorical_features))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
