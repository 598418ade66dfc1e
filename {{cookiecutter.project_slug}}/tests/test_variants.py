"""Champion and challenger on the local server, over real HTTP on a loopback port.

The A/B routing test sends a few thousand requests, so both of its variants are scikit-learn
dummy models (microseconds per prediction): what it measures is the routing, not the model.
"""

from __future__ import annotations

import gzip
import http.client
import json
import shlex
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import NormalDist
from typing import Any, ClassVar

import botocore
import joblib
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor

from {{ cookiecutter.package_name }} import serve, variants
from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.inference import META_FILE, MODEL_FILE
from {{ cookiecutter.package_name }}.serve import InferenceServer, make_server, serve_in_thread
from {{ cookiecutter.package_name }}.variants import (
    CHALLENGER,
    CHAMPION,
    INVOKED_VARIANT_HEADER,
    TARGET_VARIANT_HEADER,
    parse_weights,
)

PROJECT = Path(__file__).resolve().parent.parent
# A false alarm rate for the statistical checks: one failing run in a million.
FALSE_ALARM = 1e-6


def dummy_model_dir(
    folder: Path, model_dir: Path, frame: pd.DataFrame, schema: Schema, shift: float = 0.0
) -> Path:
    """A model directory like ``model_dir``'s whose model predicts a constant (plus ``shift``)."""
    folder.mkdir(parents=True)
    shutil.copy(model_dir / META_FILE, folder / META_FILE)
    features, target = frame[schema.feature_names], frame[schema.target]
    model: Any
    if schema.problem_type == "classification":
        model = DummyClassifier(strategy="most_frequent").fit(features, target)
    else:
        model = DummyRegressor(strategy="constant", constant=target.mean() + shift)
        model.fit(features, target)
    joblib.dump(model, folder / MODEL_FILE)
    return folder


def rollout_server(
    champion_dir: Path,
    challenger_dir: Path,
    mode: str,
    capture_dir: Path | None = None,
    weights: tuple[float, float] = (90.0, 10.0),
) -> InferenceServer:
    """``make serve`` with a challenger, on a free loopback port (not yet serving)."""
    return make_server(
        champion_dir,
        "127.0.0.1",
        0,
        capture_dir=capture_dir,
        challenger_dir=challenger_dir,
        mode=mode,
        weights=weights,
    )


@contextmanager
def running(server: InferenceServer) -> Iterator[InferenceServer]:
    serve_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def post(
    connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, str | None, dict[str, Any]]:
    """(status, invoked variant, JSON body) on a kept-alive connection."""
    connection.request(
        "POST", "/invocations", body=body, headers={"Content-Type": "text/csv", **(headers or {})}
    )
    response = connection.getresponse()
    return response.status, response.getheader(INVOKED_VARIANT_HEADER), json.loads(response.read())


def connect(server: InferenceServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)


def captured(root: Path, variant: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for file in sorted((root / variant).rglob("*.jsonl"))
        for line in file.read_text().splitlines()
    ]


def rows(frame: pd.DataFrame, schema: Schema, start: int, count: int = 1) -> bytes:
    part = frame[schema.feature_names].iloc[start : start + count]
    return part.to_csv(index=False, header=False).encode()


@pytest.fixture(scope="module")
def constant_dirs(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("constant")
    return (
        dummy_model_dir(folder / "a", model_dir, clean_frame, schema),
        dummy_model_dir(folder / "b", model_dir, clean_frame, schema, shift=10.0),
    )


def test_header_names_are_invoke_endpoints_own() -> None:
    """The names come from botocore's sagemaker-runtime service model, not from memory."""
    model_file = (
        Path(botocore.__file__).parent / "data/sagemaker-runtime/2017-05-13/service-2.json.gz"
    )
    shapes = json.loads(gzip.decompress(model_file.read_bytes()))["shapes"]
    request = shapes["InvokeEndpointInput"]["members"]["TargetVariant"]
    response = shapes["InvokeEndpointOutput"]["members"]["InvokedProductionVariant"]
    assert (request["location"], request["locationName"]) == ("header", TARGET_VARIANT_HEADER)
    assert (response["location"], response["locationName"]) == ("header", INVOKED_VARIANT_HEADER)


def test_shadow_never_answers_and_both_variants_are_captured(
    tmp_path: Path,
    model_dir: Path,
    constant_dirs: tuple[Path, Path],
    clean_frame: pd.DataFrame,
    schema: Schema,
) -> None:
    capture = tmp_path / "capture"
    alone = make_server(model_dir, "127.0.0.1", 0)
    shadowed = rollout_server(model_dir, constant_dirs[1], "shadow", capture)
    with running(alone), running(shadowed):
        solo, both = connect(alone), connect(shadowed)
        for index in range(20):
            body = rows(clean_frame, schema, index)
            headers = {"X-Amzn-SageMaker-Inference-Id": f"request-{index}"}
            assert post(both, body, headers) == post(solo, body)  # both: (200, champion, ...)
        shadowed.rollout.drain()
    champion, challenger = captured(capture, CHAMPION), captured(capture, CHALLENGER)
    assert len(champion) == len(challenger) == 20
    # One event per request: the two records of a shadowed request share its event and inference id.
    pairs = {r["eventMetadata"]["eventId"]: r["eventMetadata"]["inferenceId"] for r in champion}
    assert pairs == {
        r["eventMetadata"]["eventId"]: r["eventMetadata"]["inferenceId"] for r in challenger
    }
    answers = {
        json.loads(r["captureData"]["endpointOutput"]["data"])["predictions"][0]["prediction"]
        for r in challenger
    }
    assert len(answers) == 1  # the constant challenger's answers were captured, never returned
    assert all(r["eventMetadata"]["modelLatencyMicroseconds"] > 0 for r in champion + challenger)


def test_ab_weights_are_honoured_within_a_binomial_tolerance(
    tmp_path: Path, constant_dirs: tuple[Path, Path], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    requests, challenger_share = 2000, 0.2
    capture = tmp_path / "capture"
    server = rollout_server(*constant_dirs, "ab", capture, weights=(80.0, 20.0))
    body = rows(clean_frame, schema, 0)
    with running(server):
        connection = connect(server)
        answers = [post(connection, body) for _ in range(requests)]
    counts = Counter(variant for _, variant, _ in answers)
    assert {status for status, _, _ in answers} == {200}
    assert set(counts) == {CHAMPION, CHALLENGER}
    # Each request is a Bernoulli draw: the challenger's count is Binomial(n, p). Two-sided bound
    # with FALSE_ALARM probability under the normal approximation (n p (1 - p) = 320 here).
    z = NormalDist().inv_cdf(1 - FALSE_ALARM / 2)
    tolerance = z * (requests * challenger_share * (1 - challenger_share)) ** 0.5
    assert abs(counts[CHALLENGER] - requests * challenger_share) <= tolerance, counts
    # Each variant captured exactly the requests it answered.
    assert len(captured(capture, CHAMPION)) == counts[CHAMPION]
    assert len(captured(capture, CHALLENGER)) == counts[CHALLENGER]


def test_the_target_variant_header_is_honoured(
    constant_dirs: tuple[Path, Path], clean_frame: pd.DataFrame, schema: Schema
) -> None:
    body = rows(clean_frame, schema, 0)
    ab = rollout_server(*constant_dirs, "ab", weights=(100, 0))
    shadow = rollout_server(*constant_dirs, "shadow")
    with running(ab), running(shadow):
        connection = connect(ab)
        for name in (CHALLENGER, CHAMPION, CHALLENGER):
            for _ in range(20):
                status, variant, _ = post(connection, body, {TARGET_VARIANT_HEADER: name})
                assert (status, variant) == (200, name)
        status, _, answer = post(connection, body, {TARGET_VARIANT_HEADER: "nobody"})
        assert status == 400
        assert "'nobody' is not a production variant" in answer["error"]
        # A shadow variant is not a production variant: it cannot be targeted.
        status, _, answer = post(connect(shadow), body, {TARGET_VARIANT_HEADER: CHALLENGER})
        assert status == 400
        assert f"use one of: {CHAMPION}" in answer["error"]


class Exploding:
    """A fitted model's stand-in whose every prediction raises (a challenger's bug)."""

    classes_: ClassVar[list[int]] = [0, 1]

    def predict(self, frame: pd.DataFrame) -> Any:
        raise RuntimeError("the challenger's bug")

    predict_proba = predict


@pytest.mark.parametrize("mode", ["shadow", "ab"])
@pytest.mark.parametrize("broken", ["unloadable", "raises"])
def test_a_broken_challenger_never_breaks_the_champions_answers(
    tmp_path: Path,
    model_dir: Path,
    constant_dirs: tuple[Path, Path],
    clean_frame: pd.DataFrame,
    schema: Schema,
    mode: str,
    broken: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    challenger_dir = tmp_path / "not-a-model"
    challenger_dir.mkdir()
    if broken == "raises":
        challenger_dir = constant_dirs[1]
    capture = tmp_path / "capture"
    # In A/B, every request is routed to the challenger.
    server = rollout_server(model_dir, challenger_dir, mode, capture, weights=(0, 100))
    challenger = server.rollout.challenger
    assert challenger is not None
    if broken == "raises":
        assert challenger.model is not None
        challenger.model.pipeline = Exploding()
    else:
        assert challenger.model is None
    with running(server):
        connection = connect(server)
        for index in range(10):
            status, variant, answer = post(connection, rows(clean_frame, schema, index))
            assert (status, variant) == (200, CHAMPION)
            assert len(answer["predictions"]) == 1
        # Bad payloads are still the client's error, whichever variant was drawn.
        status, _, answer = post(connection, b"1,2,3")
        assert status == 400 and "expected" in answer["error"]
        if mode == "ab":  # asking for the broken challenger by name: it cannot answer
            status, variant, answer = post(
                connection, rows(clean_frame, schema, 0), {TARGET_VARIANT_HEADER: CHALLENGER}
            )
            assert (status, variant) == (503, CHALLENGER)
            assert "cannot answer" in answer["error"]
        server.rollout.drain()
    assert len(captured(capture, CHAMPION)) == 10
    assert captured(capture, CHALLENGER) == []
    assert "challenger 'challenger'" in capsys.readouterr().err


class Waiting:
    """A model that predicts only once the test lets it: a challenger slower than any champion."""

    def __init__(self, model: Any, release: threading.Event) -> None:
        self.model = model
        self.release = release
        self.classes_ = getattr(model, "classes_", None)

    def predict(self, frame: pd.DataFrame) -> Any:
        self.release.wait(30)
        return self.model.predict(frame)

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        self.release.wait(30)
        return self.model.predict_proba(frame)


def test_the_champion_never_waits_for_a_slow_shadow(
    tmp_path: Path,
    constant_dirs: tuple[Path, Path],
    clean_frame: pd.DataFrame,
    schema: Schema,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(variants, "SHADOW_QUEUE_SIZE", 2)
    capture = tmp_path / "capture"
    server = rollout_server(*constant_dirs, "shadow", capture)
    challenger = server.rollout.challenger
    assert challenger is not None and challenger.model is not None
    release = threading.Event()
    challenger.model.pipeline = Waiting(challenger.model.pipeline, release)
    with running(server):
        connection = connect(server)
        # Every answer arrives while the challenger is still held: nothing waited for it.
        answers = [post(connection, rows(clean_frame, schema, i))[:2] for i in range(10)]
        assert answers == [(200, CHAMPION)] * 10
        # One copy is being scored, at most two wait in the queue: the rest were dropped.
        dropped = server.rollout.shadow_dropped
        assert dropped >= 10 - 1 - 2
        release.set()
        server.rollout.drain()
    assert len(captured(capture, CHAMPION)) == 10
    assert len(captured(capture, CHALLENGER)) == 10 - dropped


def make_arguments(target: str, module: str, *variables: str) -> list[str]:
    """The arguments ``make <target> <variables>`` would pass to ``python -m <module>``."""
    printed = subprocess.run(
        ["make", "-n", "--no-print-directory", target, *variables],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    words = shlex.split(printed.replace("\\\n", " "))
    return words[words.index(module) + 1 :]


def test_make_serve_passes_the_challenger_options() -> None:
    variables = ("CHALLENGER=build/challenger", "MODE=ab", "WEIGHTS=70,30")
    args = serve.argument_parser().parse_args(make_arguments("serve", serve.__name__, *variables))
    assert (args.challenger_dir, args.mode) == (Path("build/challenger"), "ab")
    assert parse_weights(args.weights) == (70.0, 30.0)
    assert args.capture_dir == Path("data/capture")
    alone = serve.argument_parser().parse_args(make_arguments("serve", serve.__name__))
    assert alone.challenger_dir is None
