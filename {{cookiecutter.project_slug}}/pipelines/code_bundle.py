"""The job code: the files of ``src/`` that every pipeline job runs, named by their content hash.

The pipeline definition points each job at ``<prefix>/code/<sha256>/``; the hash is computed from
the files themselves, so building a definition needs no upload and no AWS account, two builds of
the same code give byte-identical definitions (step caching can hit across builds), and
``--upsert``/``--start`` upload the files to exactly the location the definition names.

When the organisation's standards require network isolation (``org-standards.json``), a job can
download nothing, so the bundle also carries ``wheels/``: for every pin of ``requirements.txt``
the image lacks, the wheel of the locked version for the image's Python and platform, and
setuptools for the model's ``code/`` (``pipelines/offline_install.py`` picks them from
``uv.lock``). A wheel enters the hash by its lock hash, so the definition is computed with no
download; ``upload``/``write`` fetch the files (from a local cache, else from the URL the lock
names) and refuse any whose SHA-256 differs from the lock's. ``src/job_entry.py`` installs them
with ``--no-index --find-links wheels --require-hashes``; training copies them into the model's
``code/``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import offline_install
from .settings import load_standards

PROJECT = Path(__file__).resolve().parent.parent
SOURCE_DIR = PROJECT / "src"
LOCK_FILE = PROJECT / "uv.lock"
WHEELS_DIR = "wheels"
# Wheels fetched once per machine, by SHA-256 (a file there is the lock's bytes or is replaced).
WHEEL_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sagemaker-job-wheels"
)
# What a job needs: code, the data contract, the pinned runtime requirements and the platform
# library's wheel (src/platform-wheels/, which requirements.txt names with --find-links).
SHIPPED_SUFFIXES = frozenset({".py", ".json", ".txt", ".whl"})
SKIPPED_PARTS = frozenset({"__pycache__"})


@dataclass(frozen=True)
class CodeBundle:
    """The files shipped to every job, relative to ``src/``, with their combined hash."""

    root: Path
    files: tuple[str, ...]
    digest: str
    # Shipped as wheels/<filename> (network isolation only); fetched on upload or write.
    wheels: tuple[offline_install.LockedWheel, ...] = ()

    def contents(self) -> dict[str, Any]:
        """Each path of the bundle and a function returning its bytes."""
        shipped: dict[str, Any] = {
            relative: (self.root / relative).read_bytes for relative in self.files
        }
        for wheel in self.wheels:
            shipped[f"{WHEELS_DIR}/{wheel.filename}"] = lambda wheel=wheel: fetch_wheel(wheel)
        return shipped

    def write(self, folder: Path) -> Path:
        """The bundle as a job sees it (its code input), in ``folder``."""
        for relative, read in self.contents().items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read())
        return folder

    def uri(self, prefix: str) -> str:
        """Where the files live in S3: ``<prefix>/code/<sha256>/`` (a folder, as jobs read it)."""
        return f"{prefix}/code/{self.digest}/"

    def upload(self, s3: Any, bucket: str, key_prefix: str) -> list[str]:
        """Upload the files under ``<key_prefix>/code/<sha256>/``; return the keys written.

        Keys already present are left alone: the same hash means the same bytes.
        """
        base = f"{key_prefix}/code/{self.digest}"
        written = []
        for relative, read in self.contents().items():
            key = f"{base}/{relative}"
            if _exists(s3, bucket, key):
                continue
            s3.put_object(Bucket=bucket, Key=key, Body=read())
            written.append(key)
        return written


def fetch_wheel(wheel: offline_install.LockedWheel, cache: Path = WHEEL_CACHE) -> bytes:
    """The wheel's bytes, checked against the lock's SHA-256: from the cache, else downloaded
    from the URL uv.lock names (the package index's file host)."""
    cached = cache / wheel.sha256 / wheel.filename
    if cached.is_file():
        content = cached.read_bytes()
        if hashlib.sha256(content).hexdigest() == wheel.sha256:
            return content
    if not wheel.url.startswith("https://"):
        raise ValueError(f"uv.lock names {wheel.url} for {wheel.filename}: not an https URL")
    with urllib.request.urlopen(wheel.url, timeout=120) as response:  # noqa: S310 - https only
        content = bytes(response.read())
    actual = hashlib.sha256(content).hexdigest()
    if actual != wheel.sha256:
        raise ValueError(
            f"{wheel.url} has SHA-256 {actual}, not the {wheel.sha256} uv.lock names: refused"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(content)
    partial.replace(cached)
    return content


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def collect(
    root: Path = SOURCE_DIR, *, isolated: bool | None = None, lock: Path = LOCK_FILE
) -> CodeBundle:
    """The bundle of ``root``: shipped files, sorted, and the SHA-256 over names and bytes; under
    network isolation (``isolated``, by default the standards') the image's wheels as well."""
    files = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix in SHIPPED_SUFFIXES
        and not SKIPPED_PARTS.intersection(path.relative_to(root).parts)
        and not any(part.endswith(".egg-info") for part in path.relative_to(root).parts)
    )
    if not files:
        raise FileNotFoundError(f"no job code found in {root}")
    digest = hashlib.sha256()
    for relative in files:
        content = (root / relative).read_bytes()
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    if isolated is None:
        isolated = load_standards().network_isolation
    wheels: list[offline_install.LockedWheel] = []
    if isolated:
        requirements = (root / "requirements.txt").read_text()
        image = offline_install.load_image()
        wheels = offline_install.wheels_for_image(requirements, lock.read_text(), image)
        for wheel in wheels:  # a wheel's lock hash names its bytes
            digest.update(f"{WHEELS_DIR}/{wheel.filename}\0sha256:{wheel.sha256}\0".encode())
    return CodeBundle(
        root=root, files=tuple(files), digest=digest.hexdigest(), wheels=tuple(wheels)
    )
