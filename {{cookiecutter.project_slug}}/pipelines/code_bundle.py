"""The job code: the files of ``src/`` that every pipeline job runs, named by their content hash.

The pipeline definition points each job at ``<prefix>/code/<sha256>/``; the hash is computed from
the files themselves, so building a definition needs no upload and no AWS account, two builds of
the same code give byte-identical definitions (step caching can hit across builds), and
``--upsert``/``--start`` upload the files to exactly the location the definition names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
SOURCE_DIR = PROJECT / "src"
# What a job needs: code, the data contract, and the pinned runtime requirements.
SHIPPED_SUFFIXES = frozenset({".py", ".json", ".txt"})
SKIPPED_PARTS = frozenset({"__pycache__"})


@dataclass(frozen=True)
class CodeBundle:
    """The files shipped to every job, relative to ``src/``, with their combined hash."""

    root: Path
    files: tuple[str, ...]
    digest: str

    def uri(self, prefix: str) -> str:
        """Where the files live in S3: ``<prefix>/code/<sha256>/`` (a folder, as jobs read it)."""
        return f"{prefix}/code/{self.digest}/"

    def upload(self, s3: Any, bucket: str, key_prefix: str) -> list[str]:
        """Upload the files under ``<key_prefix>/code/<sha256>/``; return the keys written.

        Keys already present are left alone: the same hash means the same bytes.
        """
        base = f"{key_prefix}/code/{self.digest}"
        written = []
        for relative in self.files:
            key = f"{base}/{relative}"
            if _exists(s3, bucket, key):
                continue
            s3.put_object(Bucket=bucket, Key=key, Body=(self.root / relative).read_bytes())
            written.append(key)
        return written


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def collect(root: Path = SOURCE_DIR) -> CodeBundle:
    """The bundle of ``root``: shipped files, sorted, and the SHA-256 over names and bytes."""
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
    return CodeBundle(root=root, files=tuple(files), digest=digest.hexdigest())
