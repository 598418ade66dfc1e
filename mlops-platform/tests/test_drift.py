"""Categorical drift: the numbers the baselines and the monitor share, on hand-made counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_platform import drift


def test_counts_skip_missing_values_and_read_categories_as_text() -> None:
    counts = drift.category_counts(pd.Series(["a", "b", None, "a", 3, np.nan]))
    assert counts == {"a": 2, "b": 1, "3": 1}
    assert list(counts) == ["a", "b", "3"]  # most frequent first


def test_the_same_shares_do_not_drift() -> None:
    result = drift.category_drift({"a": 50, "b": 50}, {"a": 100, "b": 100})
    assert result.psi == pytest.approx(0.0, abs=1e-9)
    assert result.linf_distance == pytest.approx(0.0)
    assert result.chi2_p_value == pytest.approx(1.0)
    assert result.new_category_rate == 0.0 and result.new_categories == {}


def test_a_reversed_mix_and_a_new_category_drift() -> None:
    result = drift.category_drift({"a": 90, "b": 10}, {"a": 10, "b": 80, "c": 10})
    assert result.psi > 1.0
    assert result.chi2_p_value < 1e-6
    assert result.linf_distance == pytest.approx(0.8)  # a: 0.9 -> 0.1
    assert result.new_category_rate == pytest.approx(0.1)
    assert result.new_categories == {"c": 10}


def test_psi_is_finite_for_empty_bins() -> None:
    value = drift.psi_of_shares(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert np.isfinite(value) and value > 10


def test_an_empty_batch_is_no_evidence_of_drift() -> None:
    assert drift.category_drift({"a": 5}, {}).chi2_p_value == 1.0
