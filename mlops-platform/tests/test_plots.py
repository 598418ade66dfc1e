"""The evaluation plots: PNG files for each problem type, none (and a note) without matplotlib."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlops_platform import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _frame(target: np.ndarray[Any, Any]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=len(target)), "y": target})


def test_a_classifier_gets_its_confusion_matrix_and_curves(tmp_path: Path) -> None:
    frame = _frame(np.array(["no", "yes"] * 20))
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    meta = {"features": ["x"], "target": "y", "problem_type": "classification"}
    written = plots.write_plots(model, meta | {"classes": ["no", "yes"]}, frame, tmp_path)
    assert sorted(path.name for path in written) == sorted(plots.CLASSIFICATION_PLOTS)
    assert all(path.read_bytes().startswith(PNG) for path in written)


def test_a_regressor_gets_predicted_against_actual_and_residuals(tmp_path: Path) -> None:
    frame = _frame(np.linspace(0, 1, 30))
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    meta = {"features": ["x"], "target": "y", "problem_type": "regression"}
    written = plots.write_plots(model, meta, frame, tmp_path)
    assert sorted(path.name for path in written) == sorted(plots.REGRESSION_PLOTS)


def test_without_matplotlib_no_plots_and_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert plots.write_plots(None, {}, pd.DataFrame(), tmp_path / "out") == []
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
