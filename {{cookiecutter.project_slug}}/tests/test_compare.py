"""The champion/challenger comparison on captures whose answer is known, and on a served shadow."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from mlops_platform.capture import capture_record
from moto import mock_aws
from test_variants import connect, make_arguments, rollout_server, running

from {{ cookiecutter.package_name }} import compare
from {{ cookiecutter.package_name }}.data import FeatureSpec, Schema
from {{ cookiecutter.package_name }}.evaluate import LOWER_IS_BETTER
from {{ cookiecutter.package_name }}.params import load_params
from {{ cookiecutter.package_name }}.variants import CHALLENGER, CHAMPION

PROJECT = Path(__file__).resolve().parent.parent
ROWS = 40
# Regression: the challenger answers this much more than the champion, on every row.
SHIFT = 5.0
# Classification: the challenger flips the champion's label on every FLIP_EVERY-th row.
FLIP_EVERY = 4


def write_variant(
    root: Path,
    variant: str,
    frame: pd.DataFrame,
    schema: Schema,
    answers: list[Any],
    event_ids: list[str],
    latency_us: int,
) -> None:
    """One captured one-row request per answer, in an endpoint's hourly layout."""
    folder = root / variant / "2026/11/24/01"
    folder.mkdir(parents=True)
    lines = []
    for index, (answer, event_id) in enumerate(zip(answers, event_ids, strict=True)):
        row = frame[schema.feature_names].iloc[index : index + 1]
        prediction: dict[str, Any] = {"prediction": answer}
        if schema.problem_type == "classification":
            prediction["probability"] = 0.9
        record = capture_record(
            row.to_csv(index=False, header=False),
            "text/csv",
            json.dumps({"predictions": [prediction]}),
            "application/json",
            inference_id=f"request-{index}",
            event_id=event_id,
            model_latency_us=latency_us,
        )
        lines.append(json.dumps(record) + "\n")
    (folder / "capture.jsonl").write_text("".join(lines))


def labels_of(frame: pd.DataFrame, schema: Schema) -> list[Any]:
    return [compare._plain(v) for v in frame[schema.target].head(ROWS)]


def shifted(truth: list[Any], schema: Schema) -> list[Any]:
    if schema.problem_type == "regression":
        return [value + SHIFT for value in truth]
    return [1 - v if i % FLIP_EVERY == 0 else v for i, v in enumerate(truth)]


def gate() -> compare.Gate:
    return compare.Gate(**load_params(PROJECT / "params.yaml", "gate"))


@pytest.fixture()
def frame(clean_frame: pd.DataFrame) -> pd.DataFrame:
    # Distinct rows, so that labels matched by feature values are unambiguous.
    return clean_frame.drop_duplicates().head(ROWS).reset_index(drop=True)


def shadow_captures(root: Path, frame: pd.DataFrame, schema: Schema, challenger: list[Any]) -> Path:
    """The champion answers the truth; the challenger answers ``challenger``; shared event ids."""
    events = [str(uuid.uuid4()) for _ in range(ROWS)]
    write_variant(root, CHAMPION, frame, schema, labels_of(frame, schema), events, 2000)
    write_variant(root, CHALLENGER, frame, schema, challenger, events, 3000)
    return root


def test_identical_answers_agree_completely(
    tmp_path: Path, frame: pd.DataFrame, schema: Schema
) -> None:
    truth = labels_of(frame, schema)
    root = shadow_captures(tmp_path, frame, schema, truth)
    report, _, _ = compare.compare(root, schema, gate())
    shared = report["agreement"]
    assert shared["paired_rows"] == ROWS
    if schema.problem_type == "classification":
        assert shared["agreement_rate"] == 1.0
        counts = shared["confusion"]["counts"]
        assert sum(counts[i][i] for i in range(len(counts))) == ROWS
    else:
        assert shared["max_absolute_difference"] == shared["mean_absolute_difference"] == 0.0
    assert report["variants"][CHAMPION]["latency"]["p50_ms"] == 2.0
    assert report["variants"][CHALLENGER]["latency"]["p99_ms"] == 3.0
    assert report["winner"].startswith("undecided")  # no labels were given


def test_a_shifted_challenger_is_detected_and_loses_on_the_gate_metric(
    tmp_path: Path, frame: pd.DataFrame, schema: Schema
) -> None:
    truth = labels_of(frame, schema)
    root = shadow_captures(tmp_path / "captures", frame, schema, shifted(truth, schema))
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    by_features = compare.labels_by_features(labelled, schema)
    report, _, _ = compare.compare(root, schema, gate(), by_features=by_features)
    shared = report["agreement"]
    if schema.problem_type == "classification":
        flipped = len(range(0, ROWS, FLIP_EVERY))
        assert shared["agreement_rate"] == pytest.approx(1 - flipped / ROWS)
        labels = shared["confusion"]["champion_labels"]
        counts = dict(zip(labels, shared["confusion"]["counts"], strict=True))
        off_diagonal = sum(
            count
            for label, row in counts.items()
            for other, count in zip(shared["confusion"]["challenger_labels"], row, strict=True)
            if other != label
        )
        assert off_diagonal == flipped
    else:
        assert shared["mean_difference"] == pytest.approx(SHIFT)
        assert shared["max_absolute_difference"] == pytest.approx(SHIFT)
    champion = report["variants"][CHAMPION]["gate_metric"]
    challenger = report["variants"][CHALLENGER]["gate_metric"]
    assert champion["rows"] == challenger["rows"] == ROWS
    assert champion["metric"] == gate().metric
    if gate().metric in LOWER_IS_BETTER:
        assert champion["value"] < challenger["value"]
    else:
        assert champion["value"] > challenger["value"]
    assert report["winner"].startswith(f"{CHAMPION} by {gate().metric}")


def test_labels_by_inference_id_give_the_same_metric(
    tmp_path: Path, frame: pd.DataFrame, schema: Schema
) -> None:
    truth = labels_of(frame, schema)
    root = shadow_captures(tmp_path / "captures", frame, schema, shifted(truth, schema))
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "inference_id,label\n" + "".join(f"request-{i},{v}\n" for i, v in enumerate(truth))
    )
    by_id, _, _ = compare.compare(
        root, schema, gate(), by_id=compare.labels_by_inference_id(labels)
    )
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    by_features, _, _ = compare.compare(
        root, schema, gate(), by_features=compare.labels_by_features(labelled, schema)
    )
    assert by_id["variants"] == by_features["variants"]
    assert by_id["winner"] == by_features["winner"]


def test_categorical_rows_are_read_and_matched_to_their_labels(tmp_path: Path) -> None:
    """A schema with a categorical feature (text, spelled as sent: '007' stays '007')."""
    schema = Schema("regression", "y", (FeatureSpec("band", categorical=True), FeatureSpec("size")))
    frame = pd.DataFrame(
        {"band": ["007", "high", "low"], "size": [1.5, 2.0, 3.25], "y": [1.0, 2.0, 3.0]}
    )
    truth = frame["y"].tolist()
    events = [str(uuid.uuid4()) for _ in truth]
    write_variant(tmp_path / "c", CHAMPION, frame, schema, truth, events, 1)
    write_variant(tmp_path / "c", CHALLENGER, frame, schema, [v + SHIFT for v in truth], events, 1)
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    rmse = compare.Gate("rmse", 1.0)
    report, _, _ = compare.compare(
        tmp_path / "c", schema, rmse, by_features=compare.labels_by_features(labelled, schema)
    )
    assert report["agreement"]["mean_difference"] == pytest.approx(SHIFT)
    assert report["variants"][CHAMPION]["gate_metric"]["rows"] == 3
    assert report["variants"][CHALLENGER]["gate_metric"]["value"] == pytest.approx(SHIFT)
    assert report["winner"].startswith(f"{CHAMPION} by rmse")


def test_ab_captures_have_no_pairs_but_each_variant_is_scored(
    tmp_path: Path, frame: pd.DataFrame, schema: Schema
) -> None:
    truth = labels_of(frame, schema)
    half = ROWS // 2
    write_variant(
        tmp_path, CHAMPION, frame, schema, truth[:half], [str(uuid.uuid4()) for _ in range(half)], 1
    )
    rest = frame.iloc[half:].reset_index(drop=True)
    other = [str(uuid.uuid4()) for _ in range(ROWS - half)]
    write_variant(tmp_path, CHALLENGER, rest, schema, shifted(truth[half:], schema), other, 1)
    # Different requests (the inference ids restart at 0 for the second half, so drop them).
    for file in (tmp_path / CHALLENGER).rglob("*.jsonl"):
        records = [json.loads(line) for line in file.read_text().splitlines()]
        for record in records:
            record["eventMetadata"].pop("inferenceId")
        file.write_text("".join(json.dumps(r) + "\n" for r in records))
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    report, _, _ = compare.compare(
        tmp_path, schema, gate(), by_features=compare.labels_by_features(labelled, schema)
    )
    assert report["agreement"]["paired_rows"] == 0
    assert report["variants"][CHAMPION]["gate_metric"]["rows"] == half
    assert report["variants"][CHALLENGER]["gate_metric"]["rows"] == ROWS - half


def test_make_compare_writes_html_with_a_plot_and_json(
    tmp_path: Path, frame: pd.DataFrame, schema: Schema, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = labels_of(frame, schema)
    root = shadow_captures(tmp_path / "captures", frame, schema, shifted(truth, schema))
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    output = tmp_path / "report"
    arguments = ["--captures", str(root), "--params", str(PROJECT / "params.yaml")]
    arguments += ["--labelled-data", str(labelled), "--output-dir", str(output)]
    card = tmp_path / "model_card.html"
    card.write_text("<html>card</html>")
    assert compare.main([*arguments, "--model-card", str(card)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["winner"].startswith(CHAMPION)
    page = (output / "report.html").read_text()
    assert '<img src="data:image/png;base64,' in page
    assert '<a href="../model_card.html">' in page  # the card, relative to the report
    assert (output / "comparison.png").read_bytes().startswith(b"\x89PNG")
    assert f"winner: {report['winner']}" in capsys.readouterr().out


def test_unreadable_captures_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (CHAMPION, CHALLENGER):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jsonl").write_text('{"captureData": {}}\n')
    arguments = ["--captures", str(tmp_path), "--params", str(PROJECT / "params.yaml")]
    assert compare.main([*arguments, "--output-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and f"no readable captured answers of '{CHAMPION}'" in error
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_variant_folder_or_bucket_is_one_line_and_exit_2(
    tmp_path: Path,
    frame: pd.DataFrame,
    schema: Schema,
    fake_aws: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = [str(uuid.uuid4()) for _ in range(ROWS)]
    write_variant(tmp_path, CHAMPION, frame, schema, labels_of(frame, schema), events, 1)
    arguments = ["--params", str(PROJECT / "params.yaml"), "--output-dir", str(tmp_path / "out")]
    assert compare.main(["--captures", str(tmp_path), *arguments]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: no folder '{CHALLENGER}' " + (
        "(captures are kept per variant)\n"
    )
    with mock_aws():
        assert compare.main(["--captures", "s3://no-such-bucket/capture", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot read s3://no-such-bucket/capture: ")
    assert "NoSuchBucket" in error and len(error.splitlines()) == 1


def test_captures_are_read_from_an_s3_prefix(
    tmp_path: Path, frame: pd.DataFrame, schema: Schema, fake_aws: None
) -> None:
    truth = labels_of(frame, schema)
    root = shadow_captures(tmp_path / "captures", frame, schema, shifted(truth, schema))
    local, _, _ = compare.compare(root, schema, gate())
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="capture-bucket")
        for file in root.rglob("*.jsonl"):
            key = f"datacapture/my-endpoint/{file.relative_to(root).as_posix()}"
            s3.upload_file(str(file), "capture-bucket", key)
        output = tmp_path / "report"
        arguments = ["--captures", "s3://capture-bucket/datacapture/my-endpoint"]
        arguments += ["--params", str(PROJECT / "params.yaml"), "--output-dir", str(output)]
        assert compare.main(arguments) == 0
    assert json.loads((output / "report.json").read_text()) == json.loads(json.dumps(local))


def test_a_served_shadow_of_the_same_model_agrees_completely(
    tmp_path: Path, model_dir: Path, frame: pd.DataFrame, schema: Schema
) -> None:
    """End to end: make serve in shadow mode writes captures that compare pairs and reads."""
    capture = tmp_path / "capture"
    with running(rollout_server(model_dir, model_dir, "shadow", capture)) as server:
        connection = connect(server)
        body = frame[schema.feature_names].to_csv(index=False, header=False).encode()
        for line in body.splitlines()[:20]:
            connection.request("POST", "/invocations", line, {"Content-Type": "text/csv"})
            assert connection.getresponse().read()
        server.rollout.drain()
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    report, _, _ = compare.compare(
        capture, schema, gate(), by_features=compare.labels_by_features(labelled, schema)
    )
    assert report["paired_by"] == "event_id"
    assert report["agreement"]["paired_rows"] == 20
    if schema.problem_type == "classification":
        assert report["agreement"]["agreement_rate"] == 1.0
    else:
        assert report["agreement"]["max_absolute_difference"] == 0.0
    assert report["winner"].startswith("tie")
    assert report["variants"][CHAMPION]["gate_metric"]["rows"] == 20


def test_make_compare_passes_captures_and_labels() -> None:
    arguments = make_arguments(
        "compare", compare.__name__, "CAPTURES=s3://bucket/capture/endpoint", "LABELS=labels.csv"
    )
    args = compare.argument_parser().parse_args(arguments)
    assert (args.captures, args.labels) == ("s3://bucket/capture/endpoint", Path("labels.csv"))
    assert args.labelled_data is None and args.output_dir == Path("reports/compare")
    arguments = make_arguments("compare", compare.__name__, "LABELLED_DATA=data/processed/test")
    args = compare.argument_parser().parse_args(arguments)
    assert (args.captures, args.labelled_data) == ("data/capture", Path("data/processed/test"))
    assert args.labels is None
