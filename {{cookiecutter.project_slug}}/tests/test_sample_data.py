"""A repository seeded by a SageMaker project (the pointer, no CSV) against its new, empty DVC
remote: the build's ``make setup`` gives the remote the sample and pulls it; data that is not the
sample is refused. Executed against a moto S3 server on loopback."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
POINTER = "data/raw/dataset.csv.dvc"
CSV = "data/raw/dataset.csv"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fake_aws")]


def seeded_clone(target: Path, endpoint: str) -> Path:
    """What a clone of the seeded repository holds: tracked files only, no data, no DVC cache."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, target / name)
    assert not (target / CSV).exists()
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    dvc(target, "remote", "modify", "--local", "s3", "endpointurl", endpoint)
    return target


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, check=True
    )


def first_build_setup(clone: Path) -> subprocess.CompletedProcess[str]:
    """The build's `make setup`, with the environment this test runs in (no uv sync)."""
    return subprocess.run(
        ["make", "--no-print-directory", "setup", "RUN=", "UV=true"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )


def remote_bucket(clone: Path) -> tuple[str, str]:
    """Bucket and prefix of the DVC remote, as DVC itself reports them."""
    listed = dvc(clone, "remote", "list").stdout.split()
    bucket, _, prefix = listed[1].removeprefix("s3://").partition("/")
    return bucket, prefix


def test_first_build_fills_an_empty_remote_and_pull_works_afterwards(
    tmp_path: Path, moto_endpoint: str
) -> None:
    build = seeded_clone(tmp_path / "build", moto_endpoint)
    bucket, prefix = remote_bucket(build)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket)

    setup = first_build_setup(build)
    assert setup.returncode == 0, setup.stderr[-2000:]
    assert "pushed the" in setup.stdout
    expected = yaml.safe_load((build / POINTER).read_text())["outs"][0]["md5"]
    assert hashlib.md5((build / CSV).read_bytes()).hexdigest() == expected  # noqa: S324
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 1

    # Every later clone (a teammate, the next build) pulls it; nothing is pushed again.
    later = seeded_clone(tmp_path / "later", moto_endpoint)
    again = first_build_setup(later)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "the DVC remote has" in again.stdout
    assert hashlib.md5((later / CSV).read_bytes()).hexdigest() == expected  # noqa: S324
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 1


def test_a_pointer_to_other_data_is_refused_and_nothing_is_pushed(
    tmp_path: Path, moto_endpoint: str
) -> None:
    clone = seeded_clone(tmp_path / "clone", moto_endpoint)
    bucket, _ = remote_bucket(clone)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    pointer = yaml.safe_load((clone / POINTER).read_text())
    pointer["outs"][0]["md5"] = "0" * 32  # the team's own data, never pushed
    (clone / POINTER).write_text(yaml.safe_dump(pointer, sort_keys=False))

    setup = first_build_setup(clone)
    assert setup.returncode != 0
    errors = [line for line in setup.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, setup.stderr
    assert "lacks data/raw/dataset.csv (md5 00000000000000000000000000000000)" in errors[0]
    assert "make push" in errors[0]
    assert not (clone / CSV).exists()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
