"""`make audit`: pip-audit over every locked package, with the project's ignore list.

The advisories come from a loopback server speaking OSV's query API (pip-audit's
``PIP_AUDIT_VULNERABILITY_SERVICE=osv`` with ``PIP_AUDIT_OSV_URL``), so the test needs no network
and controls what is known: one advisory against a package the lock pins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

PROJECT = Path(__file__).resolve().parent.parent
ADVISORY = "GHSA-test-0000-0000"
# A package every lock pins (the runtime's), at its locked version.
AFFECTED = "pandas"


def _locked_version(name: str) -> str:
    for line in (PROJECT / "src" / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError(f"{name} is not in src/requirements.txt")


class _Osv(BaseHTTPRequestHandler):
    """OSV's POST /v1/query: one advisory for AFFECTED at its locked version, none otherwise."""

    queried: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name, version = query["package"]["name"], query["version"]
        self.queried.append(name)
        vulns = []
        if name == AFFECTED and version == _locked_version(AFFECTED):
            vulns = [
                {
                    "id": ADVISORY,
                    "summary": "a test advisory",
                    "affected": [
                        {
                            "package": {"name": AFFECTED, "ecosystem": "PyPI"},
                            "ranges": [
                                {
                                    "type": "ECOSYSTEM",
                                    "events": [{"introduced": "0"}, {"fixed": "99.0"}],
                                }
                            ],
                        }
                    ],
                }
            ]
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def osv() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Osv)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Osv.queried = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()
    server.server_close()


def _audit(project: Path, osv_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_AUDIT_")}
    env |= {"PIP_AUDIT_VULNERABILITY_SERVICE": "osv", "PIP_AUDIT_OSV_URL": osv_url}
    return subprocess.run(
        [sys.executable, str(project / "tools" / "audit.py")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=project,
    )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """The files the audit reads (lock, pyproject, the tool), beside an ignore list of its own."""
    copy = tmp_path / "project"
    (copy / "tools").mkdir(parents=True)
    for name in ("uv.lock", "pyproject.toml", "tools/audit.py", "audit-ignore.txt"):
        (copy / name).write_bytes((PROJECT / name).read_bytes())
    return copy


def test_a_known_vulnerability_of_a_locked_package_fails_the_audit(project: Path, osv: str) -> None:
    result = _audit(project, osv)
    assert result.returncode == 1, result.stderr[-2000:]
    assert ADVISORY in result.stdout and AFFECTED in result.stdout
    # Every locked package was asked about, tooling included (the lock, not the environment).
    assert {AFFECTED, "scikit-learn", "pytest", "boto3"} <= set(_Osv.queried)


def test_an_accepted_advisory_with_its_reason_passes(project: Path, osv: str) -> None:
    ignore = project / "audit-ignore.txt"
    ignore.write_text(ignore.read_text() + f"{ADVISORY}  # the test's own advisory\n")
    result = _audit(project, osv)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_an_accepted_advisory_without_a_reason_is_refused_in_one_line(
    project: Path, osv: str
) -> None:
    (project / "audit-ignore.txt").write_text(f"{ADVISORY}\n")
    result = _audit(project, osv)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: audit-ignore.txt:1: {ADVISORY} has no reason: add '# why it is accepted'"
    )
    assert _Osv.queried == []


def test_the_shipped_ignore_list_is_valid_and_ci_runs_the_audit() -> None:
    sys.path.insert(0, str(PROJECT / "tools"))
    try:
        import audit
    finally:
        sys.path.pop(0)
    audit.ignored((PROJECT / "audit-ignore.txt").read_text())
    ci = [PROJECT / "buildspec.yml", *(PROJECT / ".github" / "workflows").glob("*.yml")]
    assert any("make audit" in path.read_text() for path in ci if path.exists())
