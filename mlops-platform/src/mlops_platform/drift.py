"""Drift statistics of a categorical feature: one definition for the baselines and the monitor.

A categorical feature is summarised by its category counts (``category_counts``): the training
baseline (``train``), Model Monitor's ``statistics.json`` (``quality_baseline``) and a monitored
batch are all counted by this one function, so they agree on what a category is (its text, a
missing value not being one).

A batch is compared with the baseline's counts by:

- the population stability index over the baseline's categories plus one bin for categories
  never seen in training (``psi``, the same formula the monitor applies to numeric deciles);
- the chi-square test of homogeneity between the two count tables (``chi2_p_value``): is the
  difference more than sampling noise;
- the L-infinity distance between the two frequency tables (``linf_distance``), the largest
  change in any category's share (the distance ``constraints.json`` names with
  ``categorical_drift_method`` ``LInfinity``), shown in the report;
- the new-category rate: the share of the batch's values that training never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

PSI_FLOOR = 1e-4  # keeps empty bins from dividing by zero


def category_counts(values: pd.Series) -> dict[str, int]:
    """How often each category occurs, most frequent first; missing values are not counted."""
    counts = values.dropna().astype(str).value_counts(sort=True)
    return {str(category): int(count) for category, count in counts.items()}


def psi_of_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    expected = np.clip(expected, PSI_FLOOR, None)
    actual = np.clip(actual, PSI_FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True)
class CategoryDrift:
    psi: float
    chi2_p_value: float
    linf_distance: float
    new_category_rate: float
    new_categories: dict[str, int]


def category_drift(baseline: dict[str, int], current: dict[str, int]) -> CategoryDrift:
    """Compare a batch's category counts with the baseline's (both from ``category_counts``)."""
    known = list(baseline)
    new = {category: count for category, count in current.items() if category not in baseline}
    base_total = max(sum(baseline.values()), 1)
    current_total = max(sum(current.values()), 1)
    base_counts = np.array([baseline[c] for c in known] + [0], dtype=float)
    current_counts = np.array([current.get(c, 0) for c in known] + [sum(new.values())], dtype=float)
    base_shares = base_counts / base_total
    current_shares = current_counts / current_total
    # L-infinity over every category, each new one on its own (as Model Monitor compares them).
    shares = [abs(current.get(c, 0) / current_total - baseline[c] / base_total) for c in known]
    shares += [count / current_total for count in new.values()]
    return CategoryDrift(
        psi=psi_of_shares(base_shares, current_shares),
        chi2_p_value=_homogeneity_p_value(base_counts, current_counts),
        linf_distance=float(max(shares, default=0.0)),
        new_category_rate=float(sum(new.values()) / current_total),
        new_categories=dict(sorted(new.items(), key=lambda item: -item[1])),
    )


def _homogeneity_p_value(base_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Chi-square test that both samples come from one distribution over the categories."""
    table = np.vstack([base_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)
