"""The call recorder and its IAM translation (tests/aws_recording.py), on calls a real process
makes against loopback moto. The recorded run itself is checked where `make pipeline-local` runs
(tests/test_rendered_project.py: assert_recorded_calls_allowed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import aws_recording as recording
from . import iam_model as iam

# A process that is neither the build nor the pipeline: its calls are recorded all the same.
CLIENT = """
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket="artifacts")
s3.put_object(Bucket="artifacts", Key="tumour/data/current.json", Body=b"{}")
s3.get_object(Bucket="artifacts", Key="tumour/data/current.json")
s3.list_objects_v2(Bucket="artifacts", Prefix="tumour/")
"""
KEY = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/{iam.KEY_ID}"


def record(tmp_path: Path, endpoint: str, program: str) -> list[recording.Recorded]:
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "client.py"
    script.write_text(program)
    env = recording.recording_environment(log, dict(os.environ))
    result = subprocess.run(
        [sys.executable, str(script), endpoint], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return recording.read(log)


def test_every_botocore_call_of_a_started_process_is_recorded(
    tmp_path: Path, moto_endpoint: str
) -> None:
    calls = record(tmp_path, moto_endpoint, CLIENT)
    assert [(c.service, c.operation) for c in calls] == [
        ("s3", "CreateBucket"),
        ("s3", "PutObject"),
        ("s3", "GetObject"),
        ("s3", "ListObjectsV2"),
    ]
    assert calls[1].params["Key"] == "tumour/data/current.json"
    assert calls[1].params["Body"].startswith("<")  # a marker: bodies are not kept
    # argv of a script that is neither the build nor the pipeline: named in full
    assert {c.process for c in calls} == {f"{tmp_path / 'client.py'} {moto_endpoint}"}


def test_recorded_calls_become_the_requests_iam_authorizes(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """Object writes and reads in an SSE-KMS bucket also use its key through S3; a listing is
    s3:ListBucket on the bucket with the prefix as s3:prefix."""
    calls = record(tmp_path, moto_endpoint, CLIENT)[1:]
    translator = recording.Translator({"artifacts": KEY})
    requests = [(r.action, r.resource, r.context) for c in calls for r in translator.requests(c)]
    via_s3 = {"kms:ViaService": f"s3.{iam.REGION}.amazonaws.com"}
    obj = "arn:aws:s3:::artifacts/tumour/data/current.json"
    secure = {"aws:SecureTransport": "true"}
    assert requests == [
        ("s3:PutObject", obj, secure),
        ("kms:GenerateDataKey", KEY, secure | via_s3),
        ("s3:GetObject", obj, secure),
        ("kms:Decrypt", KEY, secure | via_s3),
        ("s3:ListBucket", "arn:aws:s3:::artifacts", secure | {"s3:prefix": "tumour/"}),
    ]


def test_a_create_call_also_needs_its_dependent_actions() -> None:
    """sagemaker:CreatePipeline with Tags and a RoleArn: AddTags on the pipeline and PassRole of
    the role to SageMaker (the Service Authorization Reference's dependent actions)."""
    role = f"arn:aws:iam::{iam.ACCOUNT}:role/tumour-sagemaker-execution"
    call = recording.Recorded(
        recording.BUILD,
        "sagemaker",
        "CreatePipeline",
        {"PipelineName": "Tumour-Pipeline", "RoleArn": role, "Tags": [{"Key": "t", "Value": "v"}]},
    )
    requests = recording.Translator({}).requests(call)
    pipeline = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:pipeline/tumour-pipeline"
    assert [(r.action, r.resource) for r in requests] == [
        ("sagemaker:CreatePipeline", pipeline),
        ("iam:PassRole", role),
        ("sagemaker:AddTags", pipeline),
    ]
    assert requests[0].context["aws:RequestTag/t"] == "v"
    assert requests[1].context["iam:PassedToService"] == "sagemaker.amazonaws.com"


def test_a_call_without_a_mapping_fails_the_check() -> None:
    call = recording.Recorded(recording.PIPELINE, "sagemaker", "DeleteEndpoint", {})
    with pytest.raises(LookupError, match=r"sagemaker\.DeleteEndpoint has no IAM mapping"):
        recording.Translator({}).requests(call)


# DVC's push as fsspec runs it: s3fs's requests on fsspec's own thread, named "fsspecIO".
FSSPEC_CLIENT = """
import threading, boto3, sys
def push():
    s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
    s3.create_bucket(Bucket="pushed")
    s3.put_object(Bucket="pushed", Key="tumour/dvc/files/md5/de/971c", Body=b"data")
thread = threading.Thread(target=push, name="fsspecIO")
thread.start()
thread.join()
"""


def test_the_data_push_of_pipeline_local_is_the_teams_not_the_pipeline_roles(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """DVC's requests (s3fs, on fsspec's thread) in pipeline-local's process are the team's
    `make push`; the same request on its main thread is the pipeline role's, and checked."""
    local = tmp_path / "pipelines" / "local.py"
    local.parent.mkdir()
    local.write_text(FSSPEC_CLIENT)
    log = tmp_path / "calls.jsonl"
    env = recording.recording_environment(log, dict(os.environ))
    result = subprocess.run(
        [sys.executable, str(local), moto_endpoint], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    put = [c for c in recording.read(log) if c.operation == "PutObject"]
    assert [c.process for c in put] == [recording.DATA_PUSH]
    assert recording.process_of([str(local)], "MainThread") == recording.PIPELINE
    assert recording.DATA_PUSH in recording.OUTSIDE_THE_ROLES
