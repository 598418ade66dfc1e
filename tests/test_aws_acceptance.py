"""`make aws-acceptance`: its refusals touch no network; against loopback AWS it runs as far as
moto implements the services, and its teardown removes what it created.

moto implements STS, S3 and the model registry, but not the Service Catalog calls the publisher
makes (SearchProductsAsAdmin, ...) nor SageMaker's CreateProject: the stages from provisioning on
run only in a real account (docs/admin/acceptance.md, "What runs where").
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest

from tools import aws_acceptance as acceptance

ACCOUNT = "123456789012"  # moto's account
BUCKET = "sandbox-templates"
LINE = re.compile(r"^(ok|failed|skipped) +[a-z-]+(: .+)?$")


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every socket connection attempted, refused (a refusal must reach no endpoint at all)."""
    attempts: list[Any] = []

    def refuse(_sock: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def _without_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(acceptance.os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "absent-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "absent-credentials"))


def test_without_credentials_it_refuses_in_one_line_and_calls_nothing(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_network: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _without_credentials(monkeypatch, tmp_path)
    assert acceptance.main(["--account-id", ACCOUNT, "--bucket", BUCKET]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("refused: no AWS credentials")
    assert no_network == []  # not even the instance-metadata endpoint


def test_without_the_sandbox_account_it_refuses_in_one_line_and_calls_nothing(
    monkeypatch: pytest.MonkeyPatch, no_network: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("ACCEPTANCE_ACCOUNT_ID", raising=False)
    assert acceptance.main(["--bucket", BUCKET]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "refused: --account-id required (the sandbox account and its bucket); nothing was called"
    ]
    assert no_network == []


def _run(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, account: str) -> acceptance.Run:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # every client, the publisher's too
    session = boto3.session.Session(region_name="us-east-1")
    return acceptance.Run(session, account, BUCKET, [], poll_seconds=0.01)


def test_credentials_of_another_account_stop_before_any_write(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(moto_endpoint, monkeypatch, account="999999999999")
    run.client("s3").create_bucket(Bucket=BUCKET)
    lines: list[str] = []
    assert acceptance.run_stages(run, lines.append) == 1
    assert lines[0] == (
        f"failed   identity: the credentials are for account {ACCOUNT}, not 999999999999"
    )
    assert [line.split()[0] for line in lines[1:-1]] == ["skipped"] * (len(acceptance.STAGES) - 1)
    assert lines[-1] == "ok       teardown: removed nothing"
    assert "Contents" not in run.client("s3").list_objects_v2(Bucket=BUCKET)


def test_against_loopback_it_runs_until_moto_stops_and_removes_what_it_published(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(moto_endpoint, monkeypatch, account=ACCOUNT)
    s3 = run.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    uploaded: list[str] = []
    real_upload = acceptance.publish.upload
    monkeypatch.setattr(
        acceptance.publish,
        "upload",
        lambda clients, bucket, key, *rest, **tags: (
            uploaded.append(key) or real_upload(clients, bucket, key, *rest, **tags)
        ),
    )
    lines: list[str] = []
    assert acceptance.run_stages(run, lines.append) == 1
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0] == f"ok       identity: account {ACCOUNT}, region us-east-1"
    # The publisher uploads the seed, its nested templates and the product template (S3 is
    # moto's), then stops at the first Service Catalog call moto does not implement.
    assert lines[1].startswith("failed   publish: Service Catalog SearchProductsAsAdmin failed")
    assert any(key.endswith("/seed.zip") for key in uploaded)
    assert all(key.startswith(f"acceptance/{run.project}/") for key in uploaded)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)  # the published objects are gone
    # The portfolio the publisher created is found by its name; listing its products is the call
    # moto lacks, so that part of the teardown is reported, in one line, not skipped silently.
    assert lines[-1].startswith(
        "failed   teardown: portfolio and product: Service Catalog SearchProductsAsAdmin failed"
    )


def test_the_approver_stage_approves_the_newest_pending_package_only(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(moto_endpoint, monkeypatch, account=ACCOUNT)
    sagemaker = run.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=run.project)
    arns = [
        sagemaker.create_model_package(
            ModelPackageGroupName=run.project, ModelApprovalStatus="PendingManualApproval"
        )["ModelPackageArn"]
        for _ in range(2)
    ]
    assert acceptance.approve(run) == f"approved {arns[-1]}"
    statuses = [
        sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
        for arn in arns
    ]
    assert statuses == ["PendingManualApproval", "Approved"]
    with pytest.raises(acceptance.StageError, match="is Approved, not pending approval"):
        acceptance.approve(run)  # a second run must not re-approve what a person decided on
