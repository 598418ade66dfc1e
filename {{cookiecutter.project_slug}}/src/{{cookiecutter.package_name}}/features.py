"""Feature engineering, as a scikit-learn transformer saved inside the model.

Keeping the transformation in the fitted pipeline means training, batch prediction and the
endpoint apply exactly the same steps; there is no second copy to drift apart.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer

from .data import Schema


def build_preprocessor(schema: Schema) -> ColumnTransformer:
    """Select the contract's features in a fixed order and impute nullable ones by the median."""
    return ColumnTransformer(
        [("numeric", SimpleImputer(strategy="median"), schema.feature_names)],
        remainder="drop",
        verbose_feature_names_out=False,
    )
