"""Categorical columns end to end, on a dataset mixing numbers and text categories.

The dataset is the sample data plus two text columns: ``band`` (low/mid/high tertiles of the first
feature, declared with its allowed values) and ``site`` (four sites drawn at random, declared
without). The model is trained from CSV by the ``train`` command, as ``dvc repro`` does, then
served over HTTP, monitored and baselined for Model Monitor; the slow test runs ``dvc repro``.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlops_platform import drift
from threadpoolctl import threadpool_limits

from {{ cookiecutter.package_name }} import (
    compare,
    features,
    monitor,
    predict,
    quality_baseline,
    train,
)
from {{ cookiecutter.package_name }}.data import (
    DataValidationError,
    Schema,
    load_schema,
    read_csv_dir,
    validate,
)
from {{ cookiecutter.package_name }}.estimator import HYPERPARAMETERS
from {{ cookiecutter.package_name }}.inference import model_fn, transform_fn
from {{ cookiecutter.package_name }}.serve import make_server, serve_in_thread

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"
SITES = ["north", "south", "east", "west"]
SITE_SHARES = [0.4, 0.3, 0.2, 0.1]
BANDS = ["low", "mid", "high"]


def mixed_frame(raw: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    frame = raw.copy()
    first = schema.feature_names[0]
    frame.insert(0, "band", pd.qcut(frame[first], 3, labels=BANDS).astype(str))
    rng = np.random.default_rng(0)
    frame.insert(1, "site", rng.choice(SITES, size=len(frame), p=SITE_SHARES))
    return frame


def mixed_schema_document() -> dict[str, Any]:
    document = json.loads((PROJECT / "src" / PACKAGE / "schema.json").read_text())
    document["features"] = {
        "band": {"dtype": "category", "allowed": BANDS, "nullable": False},
        "site": {"dtype": "category", "nullable": True},
        **document["features"],
    }
    return dict(document)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, raw_frame: pd.DataFrame) -> dict[str, Any]:
    """The mixed dataset on disk, its schema, and a model trained from it by ``train``."""
    root = tmp_path_factory.mktemp("mixed")
    schema_path = root / "schema.json"
    schema_path.write_text(json.dumps(mixed_schema_document()))
    schema = load_schema(schema_path)
    frame = mixed_frame(raw_frame, load_schema())
    (root / "train").mkdir()
    frame.to_csv(root / "train" / "train.csv", index=False)
    model_dir = root / "model"
    arguments = ["--train-dir", str(root / "train"), "--model-dir", str(model_dir)]
    arguments += ["--schema", str(schema_path), "--params", str(PROJECT / "params.yaml")]
    # Fewer boosting rounds train sooner; this model's accuracy is not what is tested here.
    rounds = next(name for name in ("max_iter", "n_estimators") if name in HYPERPARAMETERS)
    arguments += [f"--{rounds.replace('_', '-')}", "50"]
    with threadpool_limits(1):  # one OpenMP thread: spinning threads stall on a loaded machine
        assert train.main(arguments) == 0
    return {
        "root": root,
        "schema": schema,
        "schema_path": schema_path,
        "frame": frame,
        "model_dir": model_dir,
        "model": model_fn(str(model_dir)),
    }


def test_the_schema_declares_categorical_columns(mixed: dict[str, Any], tmp_path: Path) -> None:
    schema: Schema = mixed["schema"]
    assert schema.categorical_features == ["band", "site"]
    assert schema.numeric_features == load_schema().feature_names
    band = schema.features[0]
    assert band.categorical and band.allowed == tuple(BANDS)
    assert schema.features[1].allowed is None
    document = mixed_schema_document()
    document["features"]["band"]["dtype"] = "text"
    (tmp_path / "schema.json").write_text(json.dumps(document))
    with pytest.raises(DataValidationError, match="feature 'band': dtype 'text' is not one of"):
        load_schema(tmp_path / "schema.json")


def test_the_contract_reports_every_broken_rule_of_a_batch_at_once(mixed: dict[str, Any]) -> None:
    schema: Schema = mixed["schema"]
    bad = mixed["frame"].copy()
    first, second = schema.numeric_features[:2]
    bad.loc[bad.index[:3], "band"] = "extreme"
    bad.loc[bad.index[3:5], "band"] = None
    bad[first] = bad[first].astype(object)
    bad.loc[bad.index[5], first] = "twelve"
    bad.loc[bad.index[6:10], second] = 1e9
    bad = bad.drop(columns=schema.numeric_features[2])
    with pytest.raises(DataValidationError) as raised:
        validate(bad, schema)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("5 rules broken: ")
    for expected in (
        "column 'band': 3 value(s) not among the allowed ['low', 'mid', 'high'], e.g. 'extreme'",
        "column 'band': 2 missing value(s), not nullable",
        f"column '{first}': 1 non-numeric value(s), e.g. 'twelve'",
        f"column '{second}': 4 value(s) above the maximum",
        f"column '{schema.numeric_features[2]}': required by the schema but missing",
    ):
        assert expected in message
    # Categories are text, whatever they look like; a nullable one may be missing.
    clean = mixed["frame"].copy()
    clean.loc[clean.index[:2], "site"] = None
    checked = validate(clean, schema)
    assert checked["site"].isna().sum() == 2
    assert set(checked["band"]) == set(BANDS)


def test_categories_are_encoded_inside_the_model(mixed: dict[str, Any]) -> None:
    model_dir: Path = mixed["model_dir"]
    meta = json.loads((model_dir / "model_meta.json").read_text())
    assert meta["categorical_features"] == ["band", "site"]
    pipeline = joblib.load(model_dir / "model.joblib")
    encoder = pipeline.named_steps["features"].named_transformers_["categorical"]
    assert [list(c) for c in encoder.categories_] == [sorted(BANDS), sorted(SITES)]
    # Read back from CSV, a category spelled like a number stays text: "007" is not 7.
    path = mixed["root"] / "codes.csv"
    path.write_text("band,site\nlow,007\n")
    assert read_csv_dir(path, ["band", "site"])["site"].tolist() == ["007"]


def test_rare_and_unseen_categories_share_the_infrequent_column() -> None:
    """A category seen under 5 times in training gets no column of its own; one never seen is
    encoded like the rare ones, so it is scored, not refused."""
    encoder = features.category_encoder()
    training = pd.DataFrame({"site": ["north"] * 10 + ["south"] * 6 + ["east"] * 2})
    encoder.fit(training)
    assert list(encoder.get_feature_names_out()) == [
        "site_north",
        "site_south",
        "site_infrequent_sklearn",
    ]
    encoded = encoder.transform(pd.DataFrame({"site": ["south", "east", "moon"]}))
    assert encoded.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 1]]
    common = features.category_encoder().fit(training.head(16))
    assert common.transform(pd.DataFrame({"site": ["moon"]})).tolist() == [[0, 0]]


@pytest.fixture(scope="module")
def server(mixed: dict[str, Any]) -> Iterator[tuple[str, int]]:
    instance = make_server(mixed["model_dir"], "127.0.0.1", 0, capture_dir=mixed["root"] / "cap")
    serve_in_thread(instance)
    yield "127.0.0.1", instance.server_address[1]
    instance.shutdown()
    instance.server_close()


def post(server: tuple[str, int], body: str, content_type: str) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request("POST", "/invocations", body.encode(), {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_server_scores_csv_and_json_with_an_unseen_category(
    server: tuple[str, int], mixed: dict[str, Any]
) -> None:
    schema: Schema = mixed["schema"]
    rows = mixed["frame"][schema.feature_names].head(3).copy()
    rows.loc[rows.index[0], "site"] = "moon"  # never seen in training
    rows.loc[rows.index[1], "site"] = None  # missing
    for header in (True, False):
        status, body = post(server, rows.to_csv(index=False, header=header), "text/csv")
        assert status == 200, body
        assert len(body["predictions"]) == 3
    records = json.loads(rows.to_json(orient="records"))
    status, by_record = post(server, json.dumps(records), "application/json")
    assert status == 200, by_record
    status, by_list = post(
        server, json.dumps({"instances": [list(r.values()) for r in records]}), "application/json"
    )
    assert status == 200 and by_list == by_record
    known = dict(records[2])
    for site in ("moon", "atlantis"):  # two unseen categories score alike: neither is known
        status, body = post(server, json.dumps(known | {"site": site}), "application/json")
        assert status == 200, body
    records[0]["band"] = 3
    status, body = post(server, json.dumps(records), "application/json")
    assert status == 400
    assert body["error"] == "row 1, column 'band': expected a category as text, got 3.0"


# Any text but NUL (which the csv module refuses: a 400) and lone surrogates (not UTF-8).
CATEGORY_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sites=st.lists(CATEGORY_TEXT, min_size=1, max_size=4), as_json=st.booleans())
def test_any_text_in_a_categorical_column_is_scored(
    mixed: dict[str, Any], sites: list[str], as_json: bool
) -> None:
    """Unseen, empty, numeric-looking or exotic categories: the answer is always a prediction."""
    schema: Schema = mixed["schema"]
    rows = mixed["frame"][schema.feature_names].head(len(sites)).copy()
    rows["site"] = sites
    if as_json:
        body, content_type = rows.to_json(orient="records"), "application/json"
    else:
        # RFC 4180 (CRLF rows): a category holding a line break is quoted.
        body, content_type = rows.to_csv(index=False, lineterminator="\r\n"), "text/csv"
    with threadpool_limits(1):  # as the server does: OpenMP threads spin on a loaded machine
        answer = transform_fn(mixed["model"], body, content_type, "application/json")
    assert answer.status == 200, answer.body
    assert len(json.loads(answer.body)["predictions"]) == len(sites)


def test_batch_scoring_takes_categories_unseen_ones_included(
    mixed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema: Schema = mixed["schema"]
    frame = mixed["frame"].head(5).copy()
    frame.loc[frame.index[0], "site"] = "moon"
    frame.to_csv(tmp_path / "batch.csv", index=False)
    arguments = ["--model-dir", str(mixed["model_dir"]), "--input", str(tmp_path / "batch.csv")]
    assert predict.main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("prediction") and len(lines) == 1 + len(frame)
    assert schema.target in frame.columns  # other columns, the target too, are ignored


def test_the_monitor_flags_a_shifted_category_and_reports_new_ones(
    mixed: dict[str, Any], tmp_path: Path
) -> None:
    schema: Schema = mixed["schema"]
    baseline = json.loads((mixed["model_dir"] / "baseline.json").read_text())
    assert baseline["features"]["site"]["categories"] == drift.category_counts(
        mixed["frame"]["site"]
    )
    inputs = mixed["frame"][schema.feature_names]
    limits = monitor.Thresholds()
    false_alarms = sum(
        monitor.monitor(baseline, inputs.sample(200, replace=True, random_state=s), limits)[
            "failed"
        ]
        for s in range(5)
    )
    assert false_alarms == 0
    shifted = inputs.sample(200, replace=True, random_state=1).reset_index(drop=True)
    rng = np.random.default_rng(1)
    shifted["site"] = rng.choice(SITES, size=len(shifted), p=SITE_SHARES[::-1])
    shifted.loc[shifted.index[:20], "site"] = "moon"
    path = tmp_path / "batch.csv"
    shifted.to_csv(path, index=False)
    out = tmp_path / "report"
    arguments = ["--baseline", str(mixed["model_dir"] / "baseline.json"), "--data", str(path)]
    assert monitor.main([*arguments, "--output-dir", str(out)]) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["drifted_features"] == ["site"]
    site = next(f for f in report["features"] if f["name"] == "site")
    assert site["kind"] == "categorical"
    assert site["new_category_rate"] == pytest.approx(0.1)
    assert site["new_categories"] == {"moon": 20}
    assert site["chi2_p_value"] < limits.chi2_p_value and site["psi"] > limits.psi_threshold
    assert any(
        v.startswith("site: 0.100 of values in categories unseen in training")
        for v in report["violations"]
    )
    assert (out / "drift-site.png").stat().st_size > 1000
    assert "categorical" in (out / "report.html").read_text()


def test_monitor_and_compare_read_categories_from_what_the_server_captured(
    server: tuple[str, int], mixed: dict[str, Any]
) -> None:
    schema: Schema = mixed["schema"]
    rows = mixed["frame"][schema.feature_names].head(4)
    status, _ = post(server, rows.to_csv(index=False, header=False), "text/csv")
    assert status == 200
    baseline = json.loads((mixed["model_dir"] / "baseline.json").read_text())
    captured = monitor.read_batch(
        mixed["root"] / "cap", schema.feature_names, monitor.categorical_features(baseline)
    )
    assert captured["site"].tolist()[-4:] == rows["site"].tolist()
    # make compare reads the same captures, and finds their labels by the features, text included.
    captures = compare.read_variant(
        mixed["root"] / "cap", "champion", schema.feature_names, schema.categorical_features
    )
    assert captures.unreadable == 0 and captures.rows == len(captured)
    by_features = compare.labels_by_features(mixed["root"] / "train", schema)
    truth, _, _ = compare.labelled(captures, schema, None, by_features)
    assert len(truth) >= len(rows)


def test_model_monitor_baseline_and_alarm_threshold_fit_categories(
    mixed: dict[str, Any], tmp_path: Path
) -> None:
    """The String features of statistics.json count what the local baseline counts, and the
    distance Model Monitor alarms on (L-infinity) separates a shifted batch from clean ones at
    the prod DriftThreshold."""
    args = ["--data-dir", str(mixed["root"] / "train"), "--output-dir", str(tmp_path)]
    args += ["--missing-shift", "0.1"]
    assert quality_baseline.main([*args, "--schema", str(mixed["schema_path"])]) == 0
    statistics = json.loads((tmp_path / "statistics.json").read_text())
    constraints = json.loads((tmp_path / "constraints.json").read_text())
    baseline = json.loads((mixed["model_dir"] / "baseline.json").read_text())
    by_name = {f["name"]: f for f in statistics["features"]}
    for name in ("band", "site"):
        strings = by_name[name]["string_statistics"]
        assert by_name[name]["inferred_type"] == "String"
        buckets = strings["distribution"]["categorical"]["buckets"]
        assert {b["value"]: b["count"] for b in buckets} == baseline["features"][name]["categories"]
        assert strings["common"]["num_present"] == sum(b["count"] for b in buckets)
    domains = {
        f["name"]: f.get("string_constraints", {}).get("domains") for f in constraints["features"]
    }
    assert domains["band"] == BANDS and sorted(domains["site"]) == sorted(SITES)
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    assert distribution["categorical_drift_method"] == "LInfinity"

    prod = json.loads((PROJECT / "infrastructure" / "prod-config.json").read_text())
    if "DriftThreshold" not in prod["Parameters"]:
        return  # this inference mode deploys no drift alarm (README: where the model runs)
    threshold = float(prod["Parameters"]["DriftThreshold"])
    counts = baseline["features"]["site"]["categories"]
    rng = np.random.default_rng(2)
    clean = [
        drift.category_drift(
            counts, drift.category_counts(pd.Series(rng.choice(SITES, size=200, p=SITE_SHARES)))
        ).linf_distance
        for _ in range(20)
    ]
    shifted = drift.category_drift(
        counts, drift.category_counts(pd.Series(rng.choice(SITES, 200, p=SITE_SHARES[::-1])))
    ).linf_distance
    assert max(clean) < threshold < shifted


@pytest.mark.slow
def test_dvc_repro_trains_evaluates_and_gates_the_mixed_data(
    workspace: Path,
    raw_frame: pd.DataFrame,
) -> None:
    mixed_frame(raw_frame, load_schema()).to_csv(workspace / "data/raw/dataset.csv", index=False)
    schema_path = workspace / "src" / PACKAGE / "schema.json"
    schema_path.write_text(json.dumps(mixed_schema_document(), indent=2))
    # The stages run the workspace's own package (its schema.json), not the installed one.
    env = os.environ | {"PYTHONPATH": str(workspace / "src")}
    # Up to the gate (prepare, train, evaluate); DVC takes the changed raw data as it finds it.
    result = subprocess.run(
        ["dvc", "repro", "evaluate"], cwd=workspace, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "quality gate passed" in result.stdout
    meta = json.loads((workspace / "models" / "model_meta.json").read_text())
    assert meta["categorical_features"] == ["band", "site"]
    train_csv = pd.read_csv(workspace / "data/processed/train/train.csv", dtype=str)
    assert set(train_csv["band"]) == set(BANDS)
