"""The batch-inference pipeline, built offline and executed by `make pipeline-local`'s interpreter.

The definition's Transform step runs against a loopback moto server: its request is validated
with botocore's CreateTransformJob model, the model's own bundled ``code/inference.py`` scores
the newest input prefix, and each output line is the record's id and the handler's answer.
"""

from __future__ import annotations

import importlib
import io
import json
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines import local
from pipelines.settings import load_settings

pytestmark = pytest.mark.usefixtures("fake_aws")

ACCOUNT_EXECUTION = "arn:aws:sagemaker:{region}:123456789012:pipeline/{name}/execution/run1"


@pytest.fixture()
def batch(fake_aws: None) -> Any:
    """``pipelines.batch``, imported once a region is set (the SageMaker SDK needs one)."""
    return importlib.import_module("pipelines.batch")


@pytest.fixture()
def loopback(moto_endpoint: str, tmp_path: Path) -> local.Aws:
    settings = load_settings({})
    env = local.loopback_environment(moto_endpoint, settings.region, tmp_path)
    aws = local.Aws(env)
    aws.ensure_bucket(settings.bucket)
    return aws


def register_model(aws: local.Aws, model_dir: Path, name: str) -> None:
    """The trained model with its inference code (train --bundle-inference-code), as a model."""
    settings = load_settings({})
    package = importlib.import_module(f"{settings.package}.inference")
    bundle = model_dir.parent / f"{model_dir.name}-bundle"
    shutil.copytree(model_dir, bundle, dirs_exist_ok=True)
    (bundle / "code").mkdir(exist_ok=True)
    shutil.copy(str(package.__file__), bundle / "code" / "inference.py")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(bundle.rglob("*")):
            tar.add(path, arcname=path.relative_to(bundle).as_posix(), recursive=False)
    key = f"{settings.project_name}/models/model.tar.gz"
    aws.s3.put_object(Bucket=settings.bucket, Key=key, Body=archive.getvalue())
    aws.sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=settings.role_arn,
        PrimaryContainer={
            "Image": "sklearn-image",
            "ModelDataUrl": f"s3://{settings.bucket}/{key}",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )


def execute(
    batch: Any,
    aws: local.Aws,
    tmp_path: Path,
    model_name: str,
    given: dict[str, str] | None = None,
) -> local.Execution:
    """Run the definition as a schedule starts it: with the model and ``given`` parameters."""
    settings = load_settings({})
    definition = batch.definition(settings, batch_schema())
    started_with = {"ModelName": model_name} | (given or {})
    execution = local.Execution(
        definition=definition,
        pipeline_name=definition.get("PipelineName", "batch"),
        execution_arn=ACCOUNT_EXECUTION.format(region=settings.region, name="batch"),
        parameters=local.typed_parameters(definition, started_with),
        started_with=started_with,
        aws=aws,
        workdir=tmp_path,
        env={},
        log=io.StringIO(),
    )
    execution.run()
    return execution


def batch_schema() -> dict[str, Any]:
    return dict(json.loads(next(Path(local.PROJECT).glob("src/*/schema.json")).read_text()))


def stage_scale(stage: str) -> dict[str, str]:
    """The scale settings the stage's schedule passes (infrastructure/<stage>-config.json); a
    realtime or serverless stage schedules no transform, so the pipeline's defaults apply."""
    import pipelines.deploy_config as deploy_config
    import pipelines.endpoint_requests as endpoint_requests

    configured = deploy_config.read_stage_settings(stage)["Parameters"]
    return {
        name: str(configured.get(name, default))
        for name, default in endpoint_requests.TRANSFORM_SCALE.items()
    }


@pytest.mark.slow
def test_the_batch_transform_scores_the_newest_prefix_next_to_each_id(
    batch: Any, loopback: local.Aws, model_dir: Path, clean_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The newest prefix holds several objects, one with more lines than an endpoint request may
    carry: MultiRecord sends its lines in MaxPayloadInMB mini-batches, which the handler scores
    whole in a batch container."""
    settings = load_settings({})
    register_model(loopback, model_dir, "churn-batch")
    features = json.loads((model_dir / "model_meta.json").read_text())["features"]
    inference = importlib.import_module(f"{settings.package}.inference")
    rows = clean_frame[features].head(40).reset_index(drop=True)
    many = clean_frame[features].sample(inference.MAX_ROWS + 500, replace=True, random_state=1)
    older, newer = tmp_path / "older", tmp_path / "newer"
    objects = {"part-0.csv": rows, "part-1.csv": many, "more/part-2.csv": rows}
    first_ids: dict[str, int] = {}
    for folder, stamp in ((older, 0), (newer, 1000)):
        for name, part in objects.items():
            first_ids[name] = stamp
            frame = part.reset_index(drop=True)
            frame.insert(0, "id", range(stamp, stamp + len(frame)))
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(folder / name, header=False, index=False)
            stamp += len(frame)
    s3 = loopback.s3
    batch.upload_input(settings, s3, older, now=datetime(2026, 1, 1, tzinfo=UTC))
    newest = batch.upload_input(settings, s3, newer, now=datetime(2026, 1, 2, tzinfo=UTC))
    scale = stage_scale("prod")

    execution = execute(batch, loopback, tmp_path / "work", "churn-batch", scale)

    assert execution.failure_message is None, execution.failure_message
    step = execution.properties["BatchTransform"]
    assert step["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == newest
    assert step["TransformInput"]["SplitType"] == "Line"
    assert step["BatchStrategy"] == "MultiRecord"
    assert step["TransformResources"]["InstanceCount"] == int(scale["TransformInstanceCount"])
    assert step["MaxPayloadInMB"] == int(scale["MaxPayloadInMB"])
    assert step["MaxConcurrentTransforms"] == int(scale["MaxConcurrentTransforms"])
    output = step["TransformOutput"]["S3OutputPath"]
    assert output.endswith("/batch/predictions/run1")
    model = inference.model_fn(str(model_dir))
    for name, part in objects.items():
        lines = loopback.read(f"{output}/{name}.out").decode().splitlines()
        expected = inference.score(part.values.tolist(), model)
        assert len(lines) == len(expected) == len(part)
        ids = range(first_ids[name], first_ids[name] + len(part))
        for line, record_id, answer in zip(lines, ids, expected, strict=True):
            cells = line.split(",")
            assert cells[0] == str(record_id)
            assert [float(value) for value in cells[1:]] == pytest.approx(
                [float(value) for value in answer.values()]
            )
    # What went in and came out is kept for monitoring, under the capture destination.
    captured = loopback.list_keys(f"{settings.prefix}/batch/capture/")
    # <job name>/<input|output>/<the object's key under the input prefix>
    kinds = {key.split("/batch/capture/", 1)[1].split("/")[1] for key in captured}
    assert kinds == {"input", "output"}


@pytest.mark.slow
def test_a_missing_model_fails_the_step_with_its_reason(
    batch: Any, loopback: local.Aws, tmp_path: Path
) -> None:
    settings = load_settings({})
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "part.csv").write_text("1,2,3\n")
    batch.upload_input(settings, loopback.s3, folder)
    execution = execute(batch, loopback, tmp_path / "work", "no-such-model")
    assert execution.failure_message is not None
    assert execution.failure_message.startswith("BatchTransform: model no-such-model")


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("$", ["id", "a", "b", "label", "p"]),
        ("$[1:]", ["a", "b", "label", "p"]),
        ("$[0,-2:]", ["id", "label", "p"]),
        ("$[0,-1:]", ["id", "p"]),
        ("$[0, 2]", ["id", "b"]),
    ],
)
def test_filters_select_as_batch_transform_does_for_a_csv_record(
    expression: str, selected: list[str]
) -> None:
    assert local.select(["id", "a", "b", "label", "p"], expression) == selected


def test_a_stage_upload_lands_where_the_stage_schedule_points(
    batch: Any, loopback: local.Aws, tmp_path: Path
) -> None:
    settings = load_settings({})
    (tmp_path / "part.csv").write_text("7,1.0\n")
    root = f"{settings.prefix}/batch/prod/input"
    uri = batch.upload_input(settings, loopback.s3, tmp_path, root=root)
    assert uri.startswith(f"{root}/") and uri.endswith("Z/")
    assert json.loads(loopback.read(f"{root}/newest.json")) == {"uri": uri}
    assert loopback.list_keys(uri) == [f"{uri.split('/', 3)[3]}part.csv"]


def test_a_filter_outside_the_record_or_a_count_mismatch_fails_the_job() -> None:
    with pytest.raises(local.StepError, match="index 7 is outside a record of 2"):
        local.select(["a", "b"], "$[7]")

    class Echo:
        def invoke(self, body: str, content_type: str, accept: str) -> tuple[int, str]:
            return 200, "only-one-line\n"

    job = local.transform_job(
        {
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3Uri": "s3://b/p"}},
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://b/o", "AssembleWith": "Line"},
        }
    )
    with pytest.raises(local.StepError, match="2 records in, 1 lines out"):
        job.run(Echo(), "1,2\n3,4\n", "part.csv")  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_step_request_is_what_create_transform_job_accepts(batch: Any) -> None:
    """Every field of the request, with its expressions resolved and each stage's scale settings
    (what its schedule passes as the pipeline's parameters), passes botocore's validation and the
    bounds botocore leaves to the service."""
    import pipelines.endpoint_requests as endpoint_requests

    settings = load_settings({})
    (step,) = batch.definition(settings, batch_schema())["Steps"]
    assert step["Type"] == "Transform"
    capture = step["Arguments"]["DataCaptureConfig"]["DestinationS3Uri"]
    assert capture == {"Get": "Parameters.CaptureUri"}
    resolved = {f"Parameters.{name}": name for name in endpoint_requests.TRANSFORM_SCALE}
    for stage in ("staging", "prod"):
        values = stage_scale(stage)

        def stage_value(node: Any, values: dict[str, str] = values) -> Any:
            if isinstance(node, dict) and node.get("Get") in resolved:
                return values[resolved[node["Get"]]]
            if isinstance(node, dict):
                return {key: stage_value(item) for key, item in node.items()}
            return node

        arguments: dict[str, Any] = stage_value(step["Arguments"])
        arguments["ModelName"] = "m"
        source = arguments["TransformInput"]["DataSource"]["S3DataSource"]
        source["S3Uri"] = "s3://b/batch/input/x/"
        arguments["TransformOutput"]["S3OutputPath"] = "s3://b/batch/predictions/x"
        arguments["TransformJobName"] = "x"
        arguments["DataCaptureConfig"]["DestinationS3Uri"] = "s3://b/batch/capture"
        typed = endpoint_requests.validate("CreateTransformJob", arguments)
        assert typed["TransformResources"]["InstanceCount"] == int(values["TransformInstanceCount"])
        assert typed["BatchStrategy"] == "MultiRecord"
        assert typed["TransformInput"]["SplitType"] == "Line"
