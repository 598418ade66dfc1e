"""DVC end to end on a copy of this project: repro, the no-op rerun, the gate, push and pull."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipelines.settings import LOWER_IS_BETTER

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, check=check)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - comparing content only


def test_repro_then_noop(workspace: Path) -> None:
    first = dvc(workspace, "repro")
    assert "quality gate passed" in first.stdout
    for output in (
        "models/model.joblib",
        "models/baseline.json",
        "models/lineage.json",
        "reports/metrics.json",
        "dvc.lock",
    ):
        assert (workspace / output).exists(), output
    second = dvc(workspace, "repro")
    assert "Data and pipelines are up to date" in second.stdout
    assert "Running stage" not in second.stdout

    shown = dvc(workspace, "metrics", "show").stdout
    gate = yaml.safe_load((workspace / "params.yaml").read_text())["gate"]["metric"]
    assert gate in shown.split()  # a column named after the metric, not section.metric.value
    assert "NaN" not in shown and "standard_deviation" not in shown
    # `make metrics` before anything is committed: what to do, not DVC's "failed to load".
    fresh = make_metrics(workspace)
    assert fresh.returncode == 0, fresh.stderr
    assert "No metrics committed yet" in fresh.stdout and "failed to load" not in fresh.stderr
    commit_all(workspace)
    compared = make_metrics(workspace)
    assert compared.returncode == 0 and "HEAD" in compared.stdout, compared.stderr
    assert "failed to load" not in compared.stderr and "NaN" not in compared.stdout


def test_make_retrain_reruns_the_whole_chain_through_the_gate(workspace: Path) -> None:
    """What a failed monitor triggers: a new model is evaluated against the gate and registered."""
    dvc(workspace, "repro")
    retrained = subprocess.run(
        ["make", "--no-print-directory", "retrain", "RUN="],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
    )
    assert retrained.returncode == 0, retrained.stderr[-2000:]
    for stage in ("prepare", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in retrained.stdout, stage
    assert "quality gate passed" in retrained.stdout


def make_metrics(workspace: Path) -> subprocess.CompletedProcess[str]:
    """`make metrics` with this test's environment (RUN= skips `uv run`, which would install)."""
    return subprocess.run(
        ["make", "--no-print-directory", "metrics", "RUN="],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
    )


def commit_all(workspace: Path) -> None:
    for command in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"],
    ):
        subprocess.run(command, cwd=workspace, check=True)


def test_gate_failure_fails_the_run(workspace: Path) -> None:
    params_file = workspace / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    lower_is_better = params["gate"]["metric"] in LOWER_IS_BETTER
    params["gate"]["threshold"] = 0.001 if lower_is_better else 1.01
    params_file.write_text(yaml.safe_dump(params))
    result = dvc(workspace, "repro", check=False)
    assert result.returncode != 0
    assert "quality gate FAILED" in result.stderr + result.stdout
    assert not (workspace / "models" / "lineage.json").exists()  # nothing registered


def remote_location(workspace: Path) -> tuple[str, str]:
    """Bucket and prefix of the DVC remote, as DVC itself reports them."""
    listed = dvc(workspace, "remote", "list").stdout.split()
    bucket, _, prefix = listed[1].removeprefix("s3://").partition("/")
    return bucket, prefix


@pytest.mark.usefixtures("fake_aws")
def test_push_and_pull_through_loopback_s3(workspace: Path, moto_endpoint: str) -> None:
    bucket, prefix = remote_location(workspace)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    dvc(workspace, "remote", "modify", "--local", "s3", "endpointurl", moto_endpoint)
    dvc(workspace, "commit", "--force", "data/raw/dataset.csv.dvc")
    dvc(workspace, "repro")
    tracked = ["data/raw/dataset.csv", "models/model.joblib", "data/processed/train/train.csv"]
    before = {name: md5(workspace / name) for name in tracked}
    dvc(workspace, "push")

    shutil.rmtree(workspace / ".dvc" / "cache")
    for name in tracked:
        (workspace / name).unlink()
    dvc(workspace, "pull")
    assert {name: md5(workspace / name) for name in tracked} == before
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    assert listed["KeyCount"] >= len(tracked)


def pushed_workspace(workspace: Path, endpoint: str) -> tuple[Any, str, str]:
    """The sample data pushed to the loopback remote; the S3 client, bucket and object key."""
    bucket, prefix = remote_location(workspace)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    dvc(workspace, "remote", "modify", "--local", "s3", "endpointurl", endpoint)
    dvc(workspace, "commit", "--force", "data/raw/dataset.csv.dvc")
    dvc(workspace, "push", "data/raw/dataset.csv.dvc")
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    return s3, bucket, key


@pytest.mark.usefixtures("fake_aws")
def test_object_corrupted_in_the_remote_is_refused(workspace: Path, moto_endpoint: str) -> None:
    """`verify = true`: DVC rehashes the download, drops it and fails instead of checking it out."""
    s3, bucket, key = pushed_workspace(workspace, moto_endpoint)
    s3.put_object(Bucket=bucket, Key=key, Body=b"overwritten in the bucket\n")
    # `dvc status -c` compares names, not content: the overwritten remote still looks in sync.
    status = dvc(workspace, "status", "-c", "data/raw/dataset.csv.dvc")
    assert "Cache and remote 's3' are in sync" in status.stdout, status.stdout
    shutil.rmtree(workspace / ".dvc" / "cache")
    (workspace / "data/raw/dataset.csv").unlink()
    result = dvc(workspace, "pull", "-v", "data/raw/dataset.csv.dvc", check=False)
    assert result.returncode == 1
    # What DVC prints (the README quotes it): the file it could not check out, and why.
    assert "Checkout failed for following targets:\ndata/raw/dataset.csv" in result.stderr
    assert "Is your cache up to date?" in result.stderr
    assert "corrupted cache file" in result.stdout + result.stderr
    assert not (workspace / "data/raw/dataset.csv").exists()
    assert not list((workspace / ".dvc" / "cache").rglob("*.csv")) and not any(
        p.is_file() for p in (workspace / ".dvc" / "cache" / "files").rglob("*")
    )


@pytest.mark.usefixtures("fake_aws")
def test_object_corrupted_in_the_cache_is_found_and_fetched_again(
    workspace: Path, moto_endpoint: str
) -> None:
    """DVC checks a read-only cache file out unhashed; tools/check_cache.py finds and removes it."""
    pushed_workspace(workspace, moto_endpoint)
    good = md5(workspace / "data/raw/dataset.csv")
    (cached,) = [p for p in (workspace / ".dvc" / "cache" / "files").rglob("*") if p.is_file()]
    cached.chmod(0o644)
    cached.write_bytes(b"bit rot\n")
    cached.chmod(0o444)
    (workspace / "data/raw/dataset.csv").unlink()
    silent = dvc(workspace, "checkout", "data/raw/dataset.csv.dvc")  # what DVC does on its own
    assert silent.returncode == 0 and md5(workspace / "data/raw/dataset.csv") != good

    # What a user does: `make check-cache`, then the `make pull` its message names. Without the
    # pipeline (never run in this copy: no dvc.lock) every tracked file is the raw data's.
    (workspace / "dvc.yaml").unlink()
    check = make(workspace, "check-cache")
    assert check.returncode != 0
    assert f"error: corrupted DVC cache object {cached.relative_to(workspace)}" in check.stdout
    assert "run `make pull`" in check.stdout
    assert not cached.exists()
    pulled = make(workspace, "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert md5(workspace / "data/raw/dataset.csv") == good  # the file, not only the cache
    again = make(workspace, "check-cache")
    assert again.returncode == 0, again.stdout
    assert dvc(workspace, "status", "data/raw/dataset.csv.dvc").returncode == 0


def make(workspace: Path, target: str) -> subprocess.CompletedProcess[str]:
    """A Makefile target in the workspace, with this environment's tools (``RUN=``)."""
    return subprocess.run(
        ["make", "--no-print-directory", target, "RUN="],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
    )
