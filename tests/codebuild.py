"""CodeBuild as it is: a buildspec run the way a CodePipeline CodeBuild action runs it.

What is taken from the rendered project, never restated here:

* the source each build receives, from the pipeline's Source action (``OutputArtifactFormat``): the
  default ``CODE_ZIP`` is the commit's files without ``.git`` (``git archive``), and
  ``CODEBUILD_CLONE_REF`` a clone checked out at the commit;
* the environment, from the CodeBuild project's ``Environment.EnvironmentVariables`` (resolved
  with the foundation stack's exports, :mod:`tests.iam_model`), the action's
  ``EnvironmentVariables`` (pipeline variables at their defaults) and the buildspec's
  ``env.variables``, in CodeBuild's precedence; plus the variables CodeBuild itself sets
  (``CODEBUILD_SRC_DIR``, ``CODEBUILD_BUILD_ID``, ``AWS_REGION`` ...);
* the Python, from the buildspec's ``runtime-versions`` (pyenv's interpreter of that version, in a
  virtual environment of its own so that ``pip install`` does not touch pyenv's copy);
* the phases: ``install``, ``pre_build``, ``build``, ``post_build`` in order, in one bash (buildspec
  version 0.2 keeps the shell between commands), each command in turn; a failing command fails its
  phase and skips the rest of it; ``build`` and ``post_build`` are skipped after a failed
  ``install``/``pre_build``; ``post_build`` runs after a failed ``build`` (with
  ``CODEBUILD_BUILD_SUCCEEDING=0``); and the ``artifacts`` files must exist afterwards.

Where this differs from CodeBuild, and why:

* AWS is moto on loopback: ``AWS_ENDPOINT_URL`` points every SDK client (boto3, DVC's s3fs) at it,
  with throw-away credentials instead of the role's;
* moto serves no model, so ``InvokeEndpoint`` goes to :class:`EndpointStandIn` (through
  ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``), which answers as a SageMaker endpoint does: a row of
  the data contract's width gets a prediction, anything else the container's 4xx wrapped in
  ``ModelError``;
* ``make audit`` asks :class:`AdvisoryStandIn`, a loopback service speaking OSV's query API
  (pip-audit's ``PIP_AUDIT_VULNERABILITY_SERVICE=osv`` with ``PIP_AUDIT_OSV_URL``), instead of
  PyPI's vulnerability API, which this machine's registry mirror does not serve; it knows no
  advisory, so the build audits every locked package and finds nothing (the rendered
  ``tests/test_audit.py`` shows a known advisory failing the audit);
* the package index and uv's cache are this machine's (PIP_*, UV_CACHE_DIR), as a CodeBuild
  project with a local cache would have them; nothing else of this machine's environment.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from . import iam_model as iam
from .conftest import PYENV_ROOT, load_yaml

ZIP = "CODE_ZIP"  # CodePipeline's default OutputArtifactFormat
CLONE = "CODEBUILD_CLONE_REF"
PHASES = ("install", "pre_build", "build", "post_build")
PROJECT_NAME = iam.SAMPLE_PARAMETERS["SageMakerProjectName"]
# Directories of an Amazon Linux build image's PATH (after the runtime's own).
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@dataclass(frozen=True)
class BuildAction:
    """One CodeBuild action of a rendered pipeline, with what it gets."""

    template: str  # the pipeline's template file
    action: str
    buildspec: str
    source_format: str  # of the action's primary source artifact
    environment: dict[str, str]  # project variables, overridden by the action's


def foundation_exports(project: Path) -> dict[str, Any]:
    infrastructure = project / "infrastructure"
    foundation = iam.Stack(load_yaml(infrastructure / "foundation.yaml"), f"{PROJECT_NAME}-found")
    return foundation.outputs()


def build_actions(project: Path) -> list[BuildAction]:
    """Every CodeBuild action of the rendered pipelines, in pipeline order."""
    exports = foundation_exports(project)
    actions: list[BuildAction] = []
    for path in sorted((project / "infrastructure").glob("*-pipeline.yaml")):
        stack = iam.Stack(load_yaml(path), f"{PROJECT_NAME}-{path.stem}", {}, exports)
        pipelines = [r for _, r in stack.active() if r["Type"] == "AWS::CodePipeline::Pipeline"]
        for pipeline in pipelines:
            actions += _pipeline_actions(stack, path.name, pipeline)
    return actions


def _pipeline_actions(
    stack: iam.Stack, template: str, pipeline: dict[str, Any]
) -> list[BuildAction]:
    properties = stack.resolve(pipeline["Properties"])
    variables = {v["Name"]: v.get("DefaultValue", "") for v in properties.get("Variables", [])}
    projects = {
        stack.physical_name(logical): resource
        for logical, resource in stack.active()
        if resource["Type"] == "AWS::CodeBuild::Project"
    }
    formats: dict[str, str] = {}
    found = []
    for stage in properties["Stages"]:
        for action in stage["Actions"]:
            kind, configuration = action["ActionTypeId"], action.get("Configuration", {})
            if kind["Category"] == "Source":
                for output in action.get("OutputArtifacts", []):
                    formats[output["Name"]] = configuration.get("OutputArtifactFormat", ZIP)
            if kind["Provider"] != "CodeBuild":
                continue
            inputs = [artifact["Name"] for artifact in action["InputArtifacts"]]
            primary = configuration.get("PrimarySource") or inputs[0]
            codebuild = stack.resolve(projects[configuration["ProjectName"]]["Properties"])
            environment = {
                v["Name"]: str(v["Value"]) for v in codebuild["Environment"]["EnvironmentVariables"]
            }
            for override in json.loads(configuration.get("EnvironmentVariables", "[]")):
                value = str(override["value"])
                for name, default in variables.items():
                    value = value.replace(f"#{{variables.{name}}}", str(default))
                environment[override["name"]] = value
            found.append(
                BuildAction(
                    template=template,
                    action=action["Name"],
                    buildspec=codebuild["Source"]["BuildSpec"],
                    source_format=formats[primary],
                    environment=environment,
                )
            )
    return found


def source_artifact(project: Path, source_format: str, target: Path) -> Path:
    """What the action's build finds in CODEBUILD_SRC_DIR for the project's HEAD commit."""
    if source_format == CLONE:
        subprocess.run(["git", "clone", "--quiet", str(project), str(target)], check=True)
        subprocess.run(["git", "checkout", "--quiet", "--detach", "HEAD"], cwd=target, check=True)
        return target
    if source_format != ZIP:
        raise ValueError(f"OutputArtifactFormat {source_format!r} is not one CodePipeline has")
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"], cwd=project, capture_output=True, check=True
    ).stdout
    archive_file = target.parent / f"{target.name}.tar"
    archive_file.write_bytes(archive)
    with tarfile.open(archive_file) as tar:
        tar.extractall(target, filter="data")
    archive_file.unlink()
    return target


def image_python(version: str, home: Path) -> Path:
    """A fresh environment of the build image's Python ``version``: its bin folder."""
    installed = sorted(
        (
            p
            for p in (PYENV_ROOT / "versions").glob(f"{version}.*")
            if p.name[len(version) + 1 :].isdigit()
        ),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    if not installed:
        raise FileNotFoundError(f"no pyenv Python {version} for the build image's runtime")
    venv = home / f"python{version}"
    subprocess.run([str(installed[-1] / "bin" / "python"), "-m", "venv", str(venv)], check=True)
    return venv / "bin"


def _script(spec: Mapping[str, Any]) -> str:
    """The phases as one bash script (buildspec 0.2: one shell for every command)."""
    lines = [
        'cd "$CODEBUILD_SRC_DIR" || exit 90',
        "failed=''",
        "export CODEBUILD_BUILD_SUCCEEDING=1",
    ]
    phases = spec.get("phases") or {}
    for phase in PHASES:
        commands = (phases.get(phase) or {}).get("commands") or []
        if phase == "post_build":
            guard = 'case "$failed" in install|pre_build) false;; *) true;; esac'
        else:
            guard = '[ -z "$failed" ]'
        lines.append(f"if {guard}; then")
        lines.append(f"  echo '[Container] Entering phase {phase.upper()}'")
        steps = [
            f"{{ echo {shlex.quote('[Container] Running command ' + c)}; eval {shlex.quote(c)}; }}"
            for c in map(str, commands)
        ]
        if steps:
            lines.append(
                f"  {' && '.join(steps)} || {{ failed=${{failed:-{phase}}}; "
                f"[ {phase} = build ] && export CODEBUILD_BUILD_SUCCEEDING=0; "
                f"echo '[Container] Phase {phase.upper()} failed'; }}"
            )
        lines.append("fi")
    lines.append(
        '[ -z "$failed" ] || { echo "[Container] build failed in phase $failed"; exit 1; }'
    )
    return "\n".join(lines) + "\n"


@dataclass
class BuildResult:
    returncode: int
    output: str
    missing_artifacts: list[str]

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.missing_artifacts

    def summary(self) -> str:
        tail = "\n".join(self.output.splitlines()[-60:])
        return f"exit {self.returncode}, missing artifacts {self.missing_artifacts}\n{tail}"


def run_build(
    action: BuildAction,
    source: Path,
    home: Path,
    aws: Mapping[str, str],
    timeout: float = 3600,
) -> BuildResult:
    """Run the action's buildspec in ``source`` (a :func:`source_artifact`); ``aws`` is the
    loopback endpoint settings and credentials this build uses instead of its role's."""
    spec = yaml.safe_load((source / action.buildspec).read_text())
    runtime = ((spec.get("phases") or {}).get("install") or {}).get("runtime-versions") or {}
    if "python" not in runtime:
        raise ValueError(f"{action.buildspec} names no python runtime-version")
    python_bin = image_python(str(runtime["python"]), home)
    region = iam.REGION
    build_id = f"{action.environment.get('SAGEMAKER_PROJECT_NAME', PROJECT_NAME)}:{uuid.uuid4()}"
    machine = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("PIP_") or k in ("LANG", "LC_ALL", "TZ", "SSL_CERT_FILE")
    }
    environment = (
        {str(k): str(v) for k, v in ((spec.get("env") or {}).get("variables") or {}).items()}
        | action.environment
        | machine
        | {
            "PATH": os.pathsep.join([str(python_bin), *SYSTEM_PATH]),
            "HOME": str(home),
            "UV_CACHE_DIR": _uv_cache_dir(),
            "CODEBUILD_SRC_DIR": str(source),
            "CODEBUILD_BUILD_ID": build_id,
            "CODEBUILD_BUILD_ARN": f"arn:aws:codebuild:{region}:{iam.ACCOUNT}:build/{build_id}",
            "CODEBUILD_INITIATOR": f"codepipeline/{action.template}",
            "CODEBUILD_CI": "true",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        | dict(aws)
    )
    completed = subprocess.run(
        ["bash", "-c", _script(spec)],
        cwd=source,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # interleaved, as the build log shows them
        text=True,
        timeout=timeout,
        check=False,
    )
    artifacts = spec.get("artifacts") or {}
    base = source / str(artifacts.get("base-directory", "."))
    missing = [f for f in artifacts.get("files", []) if not list(base.glob(str(f)))]
    return BuildResult(completed.returncode, completed.stdout, missing)


def _uv_cache_dir() -> str:
    uv = shutil.which("uv")
    if uv is None:
        return str(Path.home() / ".cache" / "uv")
    return subprocess.run(
        [uv, "cache", "dir"], capture_output=True, text=True, check=True
    ).stdout.strip()


class EndpointStandIn(ThreadingHTTPServer):
    """``InvokeEndpoint`` of SageMaker runtime for endpoints serving the data contract ``width``:
    CSV rows of that many numbers get one prediction each; other input gets what SageMaker
    returns for a container's 4xx (``ModelError``, HTTP 424, the container's status inside)."""

    def __init__(self, width: int) -> None:
        super().__init__(("127.0.0.1", 0), _InvokeHandler)
        self.width = width
        self.invoked: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _InvokeHandler(BaseHTTPRequestHandler):
    server: EndpointStandIn

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the build's own output is what the test shows."""

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
            self._answer(404, {"message": f"no route {self.path}"}, "UnknownOperationException")
            return
        self.server.invoked.append(parts[1])
        rows = [line.split(",") for line in body.splitlines() if line.strip()]
        if rows and all(
            len(row) == self.server.width and all(_number(v) for v in row) for row in rows
        ):
            self._answer(200, {"predictions": [{"label": 1} for _ in rows]})
            return
        self._answer(
            424,
            {
                "Message": "Received client error (400)",
                "OriginalStatusCode": 400,
                "OriginalMessage": "malformed rows",
            },
            "ModelError",
        )

    def _answer(self, status: int, document: dict[str, Any], error: str | None = None) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class AdvisoryStandIn(ThreadingHTTPServer):
    """OSV's ``POST /v1/query`` with no advisory for any package; records what was asked."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AdvisoryHandler)
        self.asked: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/query"


class _AdvisoryHandler(BaseHTTPRequestHandler):
    server: AdvisoryStandIn

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the build's own output is what the test shows."""

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.asked.append(str(query.get("package", {}).get("name")))
        payload = b"{}"  # OSV's answer for a version with no known vulnerability
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    """``server`` answering on its loopback port for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def endpoint_stand_in(width: int) -> Iterator[EndpointStandIn]:
    server = EndpointStandIn(width)
    with serving(server):
        yield server


@contextmanager
def advisory_stand_in() -> Iterator[AdvisoryStandIn]:
    server = AdvisoryStandIn()
    with serving(server):
        yield server
