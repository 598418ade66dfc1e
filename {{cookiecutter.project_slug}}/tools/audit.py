"""Audit every locked package for known vulnerabilities (``make audit``; CI runs it on each build).

Exports ``uv.lock`` (every group: what the jobs and the model run and what builds and deploys
them) as a hashed requirements file and runs pip-audit on it with ``--disable-pip``: nothing is
resolved or installed, so the packages audited are exactly the locked ones. pip-audit asks its
vulnerability service (PyPI's JSON API by default; ``PIP_AUDIT_VULNERABILITY_SERVICE=osv`` with
``PIP_AUDIT_OSV_URL`` for an OSV-compatible one) about each name and version.

A known vulnerability the team has judged and accepts goes in ``audit-ignore.txt``, one ID per
line with the reason after ``#`` (``GHSA-xxxx-xxxx-xxxx  # not reachable: ...; revisit by ...``);
an entry without a reason is refused. Exit 0: no vulnerability outside the list; 1: one found
(pip-audit names it and the fixed versions) or a package could not be audited; 2: a bad ignore
list.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
IGNORE_FILE = PROJECT / "audit-ignore.txt"
# An advisory ID as PyPI and OSV name them: GHSA-..., PYSEC-..., CVE-..., OSV-...
ADVISORY_ID = re.compile(r"^[A-Z]+-[A-Za-z0-9-]+$")


class IgnoreListError(ValueError):
    """A line of the ignore list that is not ``ID  # reason``."""


def ignored(text: str) -> list[str]:
    """The advisory IDs of the ignore list, each with its reason."""
    ids = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry, _, reason = raw.partition("#")
        entry = entry.strip()
        if not entry:
            continue
        if not ADVISORY_ID.match(entry):
            raise IgnoreListError(f"{IGNORE_FILE.name}:{number}: {entry!r} is not an advisory ID")
        if not reason.strip():
            raise IgnoreListError(
                f"{IGNORE_FILE.name}:{number}: {entry} has no reason: add '# why it is accepted'"
            )
        ids.append(entry)
    return ids


def main() -> int:
    try:
        ids = ignored(IGNORE_FILE.read_text() if IGNORE_FILE.exists() else "")
    except IgnoreListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    uv = os.environ.get("UV") or "uv"
    with tempfile.TemporaryDirectory() as tmp:
        locked = Path(tmp) / "locked-requirements.txt"
        subprocess.run(  # noqa: S603 - fixed uv command
            [
                *(uv, "export", "--frozen", "--no-emit-project", "--all-groups", "--quiet"),
                # The platform library is no index's package (the project carries its wheel):
                # nothing to ask about it; its dependencies are audited like the rest.
                *("--no-emit-package", "mlops-platform"),
                *("--format", "requirements-txt", "--output-file", str(locked)),
            ],
            cwd=PROJECT,
            check=True,
        )
        command = [sys.executable, "-m", "pip_audit", "--requirement", str(locked)]
        # --strict: a package the service cannot answer for fails the audit, never passes it.
        command += ["--require-hashes", "--disable-pip", "--strict", "--progress-spinner", "off"]
        command += [f"--ignore-vuln={advisory}" for advisory in ids]
        return subprocess.run(command, check=False).returncode  # noqa: S603 - fixed command


if __name__ == "__main__":
    sys.exit(main())
