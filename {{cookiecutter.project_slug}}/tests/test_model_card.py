"""The model card: AWS's model card schema, the same card locally and in the registry."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipelines.settings import load_settings

PROJECT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "data" / "model_card_schema.json").read_text())
PACKAGE = load_settings({}).package
model_card = importlib.import_module(f"{PACKAGE}.model_card")
evaluate = importlib.import_module(f"{PACKAGE}.evaluate")
data = importlib.import_module(f"{PACKAGE}.data")


def assert_valid(card: dict[str, Any]) -> None:
    """The card as SageMaker checks a model package's card (tests/data/README.md)."""
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(card), key=str)
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def assert_card_carries(card: dict[str, Any], metrics: dict[str, Any]) -> None:
    """A card carries exactly the metrics of its evaluation, the gate and the data contract."""
    assert_valid(card)
    told = {
        m["name"]: m["value"]
        for group in card["evaluation_details"][0]["metric_groups"]
        for m in group["metric_data"]
    }
    assert told == {name: value for name, value in evaluate.scores(metrics).items()}
    details = card["additional_information"]["custom_details"]
    schema = data.load_schema()
    assert {key.removeprefix("feature ") for key in details if key.startswith("feature ")} == set(
        schema.feature_names
    )
    assert details["gate_result"] in ("passed", "failed")
    assert card["intended_uses"]["intended_uses"] == load_settings({}).intended_use


def sample_report() -> dict[str, Any]:
    section = evaluate.schema_section(data.load_schema())
    names = {
        "binary_classification_metrics": ("accuracy", "f1", "auc"),
        "multiclass_classification_metrics": ("accuracy", "weighted_f1"),
        "regression_metrics": ("rmse", "mae", "r2"),
    }[section]
    return {
        section: {
            name: {"value": 0.5 + i / 10, "standard_deviation": "NaN"}
            for i, name in enumerate(names)
        }
    }


def test_a_local_card_validates_and_renders_the_same_content(tmp_path: Path) -> None:
    report = sample_report()
    # The threshold is the metric's own value: the gate passes whichever way the metric improves
    # (accuracy up, RMSE down).
    metric, value = next(iter(evaluate.scores(report).items()))
    params = {"gate": {"metric": metric, "threshold": value}}
    record = {
        "data": {"pointer": "data/raw/dataset.csv.dvc", "md5": "0a1b2c3d"},
        "code": {"commit": "abc123"},
    }
    card = model_card.local_card(report, params["gate"], record)
    assert_card_carries(card, report)
    assert card["training_details"]["training_observations"].startswith(
        "Trained on data version 0a1b2c3d"
    )
    text = model_card.markdown(card, "project")
    page = model_card.to_html(card, "project")
    for name, value in evaluate.scores(report).items():
        assert f"| {name} | {value:.4f} |" in text
        assert f"<td>{name}</td><td>{value:.4f}</td>" in page
    assert "quality gate requires" in text and "passed" in text


def test_make_model_card_refuses_without_a_repro_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = model_card.main(
        ["--metrics", str(tmp_path / "metrics.json"), "--output-dir", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run `make repro` first" in err[0]
    assert not list(tmp_path.iterdir())


def test_a_card_breaking_the_schema_is_caught() -> None:
    report = sample_report()
    card = model_card.local_card(
        report, {"metric": next(iter(evaluate.scores(report))), "threshold": 0.4}, {}
    )
    card["intended_uses"]["risk_rating"] = "Moderate"  # not one of AWS's ratings
    with pytest.raises(AssertionError, match="risk_rating"):
        assert_valid(card)
