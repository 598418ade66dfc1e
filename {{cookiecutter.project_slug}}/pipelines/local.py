"""Execute the exported SageMaker pipeline definition on this machine: no AWS account, no Docker.

python -m pipelines.local                                   # what `make pipeline-local` runs
python -m pipelines.local --parameter QualityThreshold=0.99 # override a pipeline parameter
python -m pipelines.local --trigger rule --parameter ModelApprovalStatus=PendingManualApproval

What happens, in order:

1. A loopback AWS (``moto_server`` on 127.0.0.1, a free port) is started, unless ``--endpoint-url``
   names one already running. It stands in for S3 and the SageMaker API (pipelines, model registry).
   The artifact bucket and the model package group are created first, as the foundation stack does.
2. The data ``data/raw/dataset.csv.dvc`` names is pushed from the DVC cache to the DVC remote on
   the loopback, as ``make push`` pushes it to the real one. The pipeline is published the way the
   build publishes it: ``python -m pipelines.run --upsert --start`` runs against the loopback
   (``--trigger build``, the default), so the job code lands where the definition puts it and the
   run reads the data from the DVC remote by its DVC MD5. ``--trigger rule`` instead
   upserts and starts an execution with only the ``--parameter`` values, as the EventBridge
   retraining rule does. ``--definition FILE`` executes that JSON (e.g. ``make pipeline-definition``
   output) instead of the upserted one.
3. The execution's definition is interpreted step by step (in dependency order, one at a time):
   ``Get`` (parameters, step properties, execution variables), ``Std:Join`` and ``Std:JsonGet``
   (property files read back from the loopback S3) are resolved from real outputs; each Processing
   and Training step runs its container entrypoint and arguments *from the definition* as a
   subprocess in this project's environment (see ``JobRoot`` for the ``/opt/ml`` mapping); the
   condition is evaluated; a Fail step fails the execution with its resolved message;
   RegisterModel's request is checked with botocore's ``ParamValidator`` against the SageMaker
   service model and sent to the loopback model registry.
4. ``reports/pipeline-local.json`` records the execution; the exit code is 1 when it failed.

Step caching is ignored: every step runs on every execution (CacheConfig is read but not honoured).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
REPORT = PROJECT / "reports" / "pipeline-local.json"
CONTAINER_ROOT = "/opt/ml"
# Shipped helper files the local run replaces: the job installs requirements.txt into the image's
# Python; here the project environment already holds the locked set (uv.lock), and installing into
# it would change the environment every later command runs in.
SKIPPED_HELPERS = frozenset({"install_requirements.py"})
# Files of a job's inputs whose text names container paths: rewritten to the job's root.
REWRITTEN_SUFFIXES = frozenset({".sh", ".py", ".json"})
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "pipeline-local",
    "AWS_SECRET_ACCESS_KEY": "pipeline-local",  # pragma: allowlist secret - loopback only
    "AWS_SESSION_TOKEN": "pipeline-local",
}
TELEMETRY_OFF = (
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)
# CreateTransformJob's MaxPayloadInMB when a request leaves it out (its API reference).
DEFAULT_PAYLOAD_MB = 6
SUPPORTED_STEPS = (
    "Processing",
    "Training",
    "Transform",
    "Condition",
    "Fail",
    "RegisterModel",
    "Model",
)
_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")


class PipelineLocalError(Exception):
    """A definition this command cannot execute, or a loopback that does not answer."""


class StepError(Exception):
    """A step ended in failure; the message is the step's failure reason."""


# ----------------------------------------------------------------------------- loopback AWS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def loopback_server(timeout: float = 30.0) -> Iterator[str]:
    """A ``moto_server`` on a free 127.0.0.1 port for the duration of the block; yields its URL.

    moto is a development tool of this project: it runs as a separate process, never imported.
    """
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(executable).exists():
        raise PipelineLocalError(
            "moto_server not found: run `make setup` (moto is a dev dependency)"
        )
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed executable on loopback
        [executable, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise PipelineLocalError(f"moto_server did not start on port {port}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def loopback_environment(endpoint: str, region: str, workdir: Path) -> dict[str, str]:
    """The environment of every process of the run: all AWS calls go to the loopback endpoint.

    Credentials are throw-away, no profile or instance metadata is consulted, and the SageMaker
    SDK's telemetry (plain HTTPS to AWS, outside boto3's endpoint setting) is switched off.
    """
    if not re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/?$", endpoint):
        raise PipelineLocalError(f"--endpoint-url must be a loopback address, got {endpoint}")
    sdk_config = workdir / "sagemaker-config.yaml"
    sdk_config.write_text(TELEMETRY_OFF)
    # No profile: an empty file, not /dev/null, which DVC's S3 client refuses as no file.
    aws_config = workdir / "aws-config"
    aws_config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Each job is a new interpreter: without bytecode caching every one recompiles scikit-learn
    # and SciPy (seconds per job; the Makefile unexports it for the same reason).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(aws_config),
            "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
            "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(sdk_config),
        }
    )
    return env


class Aws:
    """boto3 clients bound to the loopback endpoint (boto3 is imported only when a run starts)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
            region_name=env["AWS_REGION"],
        )
        self.region = env["AWS_REGION"]
        self.s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        self.sagemaker = session.client("sagemaker", endpoint_url=env["AWS_ENDPOINT_URL"])

    def ensure_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            location = (
                {}
                if self.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
            )
            self.s3.create_bucket(Bucket=bucket, **location)

    def ensure_model_package_group(self, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        except ClientError:
            self.sagemaker.create_model_package_group(ModelPackageGroupName=name)

    def download_prefix(self, uri: str, destination: Path) -> list[Path]:
        """An S3Prefix input as SageMaker materialises it: every key under the prefix, its path
        relative to the prefix kept below ``destination`` (a URI naming one object: that file)."""
        bucket, prefix = split_s3_uri(uri)
        written = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
                if key.endswith("/"):
                    continue
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(target))
                written.append(target)
        return written

    def download_manifest(self, uri: str, destination: Path) -> list[Path]:
        """A ManifestFile input: ``[{"prefix": "s3://b/p/"}, "relative/key", ...]``."""
        entries = json.loads(self.read(uri))
        if not entries or not isinstance(entries[0], dict) or "prefix" not in entries[0]:
            raise StepError(f"manifest {uri} does not start with its prefix entry")
        bucket, prefix = split_s3_uri(entries[0]["prefix"])
        written = []
        for relative in entries[1:]:
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(bucket, prefix + relative, str(target))
            written.append(target)
        return written

    def upload_tree(self, source: Path, uri: str) -> None:
        bucket, prefix = split_s3_uri(uri)
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(source).as_posix()}".lstrip("/")
            self.s3.upload_file(str(path), bucket, key)

    def list_keys(self, uri: str) -> list[str]:
        """Every object key under an S3 prefix, sorted (folders' placeholder keys left out)."""
        bucket, prefix = split_s3_uri(uri)
        keys = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(key for key in keys if not key.endswith("/"))

    def read(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def exists(self, uri: str) -> bool:
        bucket, prefix = split_s3_uri(uri)
        return bool(
            self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount")
        )


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise StepError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


# ----------------------------------------------------------------------------- the job directory


@dataclass
class JobRoot:
    """Where a job's ``/opt/ml`` lives on this machine: ``<workdir>/<job name>/opt/ml``.

    No mount namespace and no root: the container path prefix ``/opt/ml`` is mapped to the job's
    own folder in the command line, the environment and the text of the job's shell, Python and
    JSON input files (runproc.sh, sm_train.sh, the SageMaker SDK's training drivers). Files
    inside archives (``sourcedir.tar.gz``, ``model.tar.gz``) are not rewritten: the project's code
    takes its paths from its arguments and the ``SM_*`` variables, as it must on SageMaker too.
    """

    path: Path

    def local(self, container_path: str) -> Path:
        if not container_path.startswith(CONTAINER_ROOT):
            raise StepError(f"{container_path} is outside {CONTAINER_ROOT}")
        return self.path / container_path.lstrip("/")

    def map_text(self, text: str) -> str:
        return text.replace(CONTAINER_ROOT, str(self.path / CONTAINER_ROOT.lstrip("/")))

    def rewrite_inputs(self, files: list[Path]) -> None:
        for file in files:
            if file.name in SKIPPED_HELPERS:
                file.write_text(
                    "print('pipeline-local: requirements not installed: "
                    "the project environment already holds the locked set (uv.lock)')\n"
                )
            elif file.suffix in REWRITTEN_SUFFIXES:
                try:
                    text = file.read_text()
                except UnicodeDecodeError:
                    continue
                if CONTAINER_ROOT in text:
                    file.write_text(self.map_text(text))


def shim_directory(workdir: Path) -> Path:
    """``python3``/``python`` are this project's interpreter; ``pip``/``pip3`` do nothing.

    Job scripts call ``python3`` (the image's interpreter): here it is the project environment.
    The jobs' ``pip`` calls (runproc.sh uninstalls ``typing``; sm_train.sh checks pip exists) must
    not touch that environment.
    """
    shims = workdir / "bin"
    shims.mkdir(exist_ok=True)
    for name in ("python", "python3"):
        (shims / name).write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    for name in ("pip", "pip3"):
        (shims / name).write_text(
            "#!/bin/sh\necho \"pipeline-local: skipped 'pip $*' (the project environment is "
            'locked)"\n'
        )
    for shim in shims.iterdir():
        shim.chmod(0o755)
    return shims


# ----------------------------------------------------------------------------- the interpreter


def property_path(expression: str) -> list[str | int]:
    """``Outputs['train'].S3Output.S3Uri`` -> ``["Outputs", "train", "S3Output", "S3Uri"]``."""
    tokens: list[str | int] = []
    position = 0
    while position < len(expression):
        match = _PATH_TOKEN.match(expression, position)
        if not match:
            raise StepError(f"cannot parse property path {expression!r}")
        name, single, double, index = match.groups()
        tokens.append(int(index) if index is not None else name or single or double or "")
        position = match.end()
    return tokens


def walk(value: Any, tokens: list[str | int], expression: str) -> Any:
    for token in tokens:
        try:
            value = value[token]
        except (KeyError, IndexError, TypeError):
            raise StepError(f"{expression} is undefined") from None
    return value


def json_path(document: Any, path: str) -> Any:
    """The JsonPath subset SageMaker's JsonGet accepts: ``a.b[0].c``."""
    return walk(document, property_path(path), f"JSON path {path!r}")


@dataclass
class StepRecord:
    name: str
    type: str
    status: str = "Skipped"
    failure_reason: str | None = None
    job_name: str | None = None
    outputs: dict[str, str] | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "type": self.type, "status": self.status}
        for key in ("failure_reason", "job_name", "outputs", "seconds"):
            if getattr(self, key) is not None:
                entry[key] = getattr(self, key)
        return entry


@dataclass
class Execution:
    """One execution of a definition: parameters in, step properties out."""

    definition: dict[str, Any]
    pipeline_name: str
    execution_arn: str
    parameters: dict[str, Any]
    started_with: dict[str, str]
    aws: Aws
    workdir: Path
    env: dict[str, str]
    log: Any = field(default=sys.stderr)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, StepRecord] = field(default_factory=dict)
    failure_message: str | None = None
    model_package_arn: str | None = None
    model_metrics_uri: str | None = None
    model_card: dict[str, Any] | None = None

    @property
    def execution_id(self) -> str:
        return self.execution_arn.rsplit("/", 1)[-1]

    # ---- resolution of the definition's expressions

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self.get(value["Get"])
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return str(join["On"]).join(self.text(self.resolve(v)) for v in join["Values"])
        if set(value) == {"Std:JsonGet"}:
            return self.json_get(value["Std:JsonGet"])
        return {key: self.resolve(item) for key, item in value.items()}

    @staticmethod
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)

    def get(self, expression: str) -> Any:
        root, _, rest = expression.partition(".")
        if root == "Parameters":
            if rest not in self.parameters:
                raise StepError(f"{expression} is not a parameter of the pipeline")
            return self.parameters[rest]
        if root == "Execution":
            return self.execution_variable(rest)
        if root == "Steps":
            step, _, path = rest.partition(".")
            if step not in self.properties:
                raise StepError(f"{expression}: step {step} has not run")
            return walk(self.properties[step], property_path(path), expression)
        raise StepError(f"unsupported reference {expression}")

    def execution_variable(self, name: str) -> Any:
        pipeline_arn = self.execution_arn.split("/execution/")[0]
        variables = {
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": self.execution_arn,
            "PipelineName": self.pipeline_name,
            "PipelineArn": pipeline_arn,
            "StartDateTime": self.started.isoformat(),
            "CurrentDateTime": datetime.now(UTC).isoformat(),
        }
        if name not in variables:
            raise StepError(f"unsupported execution variable Execution.{name}")
        return variables[name]

    def json_get(self, function: dict[str, Any]) -> Any:
        if "PropertyFile" in function:
            reference = function["PropertyFile"]["Get"]  # Steps.<step>.PropertyFiles.<name>
            _, step_name, _, file_name = reference.split(".", 3)
            step = self.step_definitions()[step_name]
            (property_file,) = [
                f for f in step.get("PropertyFiles", []) if f["PropertyFileName"] == file_name
            ]
            outputs = self.properties[step_name]["ProcessingOutputConfig"]["Outputs"]
            base = outputs[property_file["OutputName"]]["S3Output"]["S3Uri"]
            uri = f"{base.rstrip('/')}/{property_file['FilePath']}"
        else:
            uri = self.text(self.resolve(function["S3Uri"]))
        try:
            document = json.loads(self.aws.read(uri))
        except Exception as error:  # any read failure fails the step, as on AWS
            raise StepError(f"JsonGet could not read {uri}: {error}") from None
        return json_path(document, function["Path"])

    # ---- the graph

    def step_definitions(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        pending = list(self.definition["Steps"])
        while pending:
            step = pending.pop(0)
            found[step["Name"]] = step
            arguments = step.get("Arguments", {})
            if step["Type"] == "Condition":
                pending += arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])
        return found

    def dependencies(self, step: dict[str, Any]) -> set[str]:
        """Steps a step reads from (``Steps.<name>``) or names in DependsOn."""
        text = json.dumps({k: v for k, v in step.items() if k not in ("Name",)})
        if step["Type"] == "Condition":  # the branches are the condition's own steps
            arguments = {k: v for k, v in step["Arguments"].items() if k == "Conditions"}
            text = json.dumps(arguments)
        found = set(re.findall(r'"Get": "Steps\.([^.\"]+)', text))
        return found | set(step.get("DependsOn", []))

    def run(self) -> bool:
        steps = self.step_definitions()
        branch_of: dict[str, tuple[str, bool]] = {}
        for step in steps.values():
            if step["Type"] == "Condition":
                for outcome, key in ((True, "IfSteps"), (False, "ElseSteps")):
                    for child in step["Arguments"].get(key, []):
                        branch_of[child["Name"]] = (step["Name"], outcome)
        for name, step in steps.items():
            self.records[name] = StepRecord(name=name, type=step["Type"])
        pending = list(steps)
        while pending and self.failure_message is None:
            ready = [
                name
                for name in pending
                if all(
                    self.records[d].status == "Succeeded" for d in self.dependencies(steps[name])
                )
                and (
                    name not in branch_of or self.records[branch_of[name][0]].status == "Succeeded"
                )
            ]
            if not ready:
                break  # what is left depends on a branch not taken
            name = ready[0]
            pending.remove(name)
            if name in branch_of:
                condition, outcome = branch_of[name]
                if self.properties[condition]["Outcome"] != outcome:
                    continue  # the branch not taken: Skipped
            self.execute(steps[name])
        return self.failure_message is None

    def execute(self, step: dict[str, Any]) -> None:
        record = self.records[step["Name"]]
        start = time.monotonic()
        print(f"pipeline-local: {step['Name']} ({step['Type']}) ...", file=self.log, flush=True)
        try:
            if step["Type"] not in SUPPORTED_STEPS:
                raise StepError(
                    f"pipeline-local does not run {step['Type']} steps "
                    f"(supported: {', '.join(SUPPORTED_STEPS)})"
                )
            handler = getattr(self, f"_{step['Type'].lower()}")
            self.properties[step["Name"]] = handler(step, record)
            record.status = "Succeeded"
        except StepError as error:
            record.status = "Failed"
            record.failure_reason = str(error)
            self.failure_message = self.failure_message or f"{step['Name']}: {error}"
        record.seconds = round(time.monotonic() - start, 2)
        print(
            f"pipeline-local: {step['Name']} {record.status} in {record.seconds} s",
            file=self.log,
            flush=True,
        )

    # ---- step types

    def _job_name(self, step: dict[str, Any]) -> str:
        return f"pipelines-{self.execution_id}-{step['Name']}"[:63].rstrip("-")

    def _run_container(
        self, root: JobRoot, command: list[str], environment: dict[str, str], log_name: str
    ) -> None:
        env = dict(self.env)
        env.update({key: root.map_text(str(value)) for key, value in environment.items()})
        env["PATH"] = f"{shim_directory(self.workdir)}{os.pathsep}{env.get('PATH', '')}"
        argv = [root.map_text(part) for part in command]
        log_file = self.workdir / "logs" / f"{log_name}.log"
        log_file.parent.mkdir(exist_ok=True)
        with log_file.open("w") as log:
            result = subprocess.run(  # noqa: S603 - the definition's own command, by design
                argv, cwd=root.path, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if result.returncode != 0:
            tail = log_file.read_text().strip().splitlines()[-15:]
            print("\n".join(f"  | {line}" for line in tail), file=self.log)
            reason = ""
            for message in ("output/failure", "output/message"):
                candidate = root.local(f"{CONTAINER_ROOT}/{message}")
                if candidate.exists() and candidate.read_text().strip():
                    reason = candidate.read_text().strip().splitlines()[-1]
            raise StepError(
                f"AlgorithmError: exit code {result.returncode}"
                + (f": {reason}" if reason else "")
                + f" (log: {log_file})"
            )

    def _download(self, root: JobRoot, source: dict[str, Any], container_path: str) -> None:
        destination = root.local(container_path)
        destination.mkdir(parents=True, exist_ok=True)
        data_type = source.get("S3DataType", "S3Prefix")
        if source.get("S3InputMode", source.get("InputMode", "File")) != "File":
            raise StepError(f"input {source['S3Uri']}: only File mode runs locally")
        if source.get("S3CompressionType", "None") != "None":
            raise StepError(f"input {source['S3Uri']}: compressed inputs are not supported")
        if data_type == "S3Prefix":
            files = self.aws.download_prefix(source["S3Uri"], destination)
        elif data_type == "ManifestFile":
            files = self.aws.download_manifest(source["S3Uri"], destination)
        else:
            raise StepError(f"input {source['S3Uri']}: S3DataType {data_type} is not supported")
        root.rewrite_inputs(files)

    def _processing(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        request = self.resolve(step["Arguments"])
        job_name = record.job_name = self._job_name(step)
        root = JobRoot(self.workdir / job_name)
        for job_input in request.get("ProcessingInputs", []):
            if "S3Input" not in job_input:
                raise StepError(f"input {job_input['InputName']}: only S3 inputs run locally")
            self._download(root, job_input["S3Input"], job_input["S3Input"]["LocalPath"])
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for output in outputs:
            root.local(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        application = request["AppSpecification"]
        if not application.get("ContainerEntrypoint"):
            raise StepError("no ContainerEntrypoint: the image's own entry point is not run here")
        environment = dict(request.get("Environment", {}))
        environment["AWS_REGION"] = self.aws.region
        self._run_container(
            root,
            application["ContainerEntrypoint"] + application.get("ContainerArguments", []),
            environment,
            job_name,
        )
        for output in outputs:
            self.aws.upload_tree(
                root.local(output["S3Output"]["LocalPath"]), output["S3Output"]["S3Uri"]
            )
        record.outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs}
        described = dict(request)
        described.update(
            ProcessingJobName=job_name,
            ProcessingJobStatus="Completed",
            ProcessingJobArn=self._arn("processing-job", job_name),
        )
        if outputs:
            described["ProcessingOutputConfig"] = dict(request["ProcessingOutputConfig"])
            described["ProcessingOutputConfig"]["Outputs"] = {o["OutputName"]: o for o in outputs}
        described["ProcessingInputs"] = {
            i["InputName"]: i for i in request.get("ProcessingInputs", [])
        }
        return described

    def _training(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        request = self.resolve(step["Arguments"])
        job_name = record.job_name = self._job_name(step)
        root = JobRoot(self.workdir / job_name)
        algorithm = request["AlgorithmSpecification"]
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise StepError("only File input mode runs locally")
        if not algorithm.get("ContainerEntrypoint"):
            raise StepError("no ContainerEntrypoint: the image's own entry point is not run here")
        for channel in request.get("InputDataConfig", []):
            source = channel["DataSource"].get("S3DataSource")
            if source is None:
                raise StepError(f"channel {channel['ChannelName']}: only S3 channels run locally")
            self._download(root, source, f"{CONTAINER_ROOT}/input/data/{channel['ChannelName']}")
        write_training_config(root.local(f"{CONTAINER_ROOT}/input/config"), request)
        for folder in ("model", "output/data", "code", "checkpoints"):
            root.local(f"{CONTAINER_ROOT}/{folder}").mkdir(parents=True, exist_ok=True)
        environment = dict(request.get("Environment", {}))
        environment.update(
            TRAINING_JOB_NAME=job_name,
            TRAINING_JOB_ARN=self._arn("training-job", job_name),
            AWS_REGION=self.aws.region,
        )
        self._run_container(
            root,
            algorithm["ContainerEntrypoint"] + algorithm.get("ContainerArguments", []),
            environment,
            job_name,
        )
        output_path = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        model_uri = f"{output_path}/{job_name}/output/model.tar.gz"
        self._upload_archive(root.local(f"{CONTAINER_ROOT}/model"), model_uri)
        record.outputs = {"ModelArtifacts": model_uri}
        self._upload_archive(
            root.local(f"{CONTAINER_ROOT}/output/data"),
            f"{output_path}/{job_name}/output/output.tar.gz",
        )
        described = dict(request)
        described.update(
            TrainingJobName=job_name,
            TrainingJobArn=self._arn("training-job", job_name),
            TrainingJobStatus="Completed",
            ModelArtifacts={"S3ModelArtifacts": model_uri},
        )
        return described

    def _upload_archive(self, folder: Path, uri: str) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted(folder.rglob("*")):
                archive.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        bucket, key = split_s3_uri(uri)
        self.aws.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    def _condition(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        conditions = self.resolve(step["Arguments"]["Conditions"])
        return {"Outcome": all(evaluate_condition(c) for c in conditions)}

    def _fail(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        message = self.text(self.resolve(step["Arguments"].get("ErrorMessage", "")))
        raise StepError(message)

    def _validated(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """The request exactly as the definition builds it, checked against the service model."""
        from botocore.validate import ParamValidator

        shape = self.aws.sagemaker.meta.service_model.operation_model(operation).input_shape
        report = ParamValidator().validate(request, shape)
        if report.has_errors():
            raise StepError(f"invalid {operation} request: {report.generate_report()}")
        return request

    def _registermodel(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        request = self._validated("CreateModelPackage", self.resolve(step["Arguments"]))
        from botocore.exceptions import ClientError

        try:
            arn = self.aws.sagemaker.create_model_package(**request)["ModelPackageArn"]
        except ClientError as error:
            raise StepError(f"CreateModelPackage: {error}") from None
        self.model_package_arn = arn
        statistics = request.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        self.model_metrics_uri = statistics.get("S3Uri")
        # moto's registry does not keep a package's card: the report keeps what was sent.
        self.model_card = request.get("ModelCard")
        return {**request, "ModelPackageArn": arn}

    def _model(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        request = self.resolve(step["Arguments"])
        request.setdefault("ModelName", self._job_name(step))
        self._validated("CreateModel", request)
        from botocore.exceptions import ClientError

        try:
            arn = self.aws.sagemaker.create_model(**request)["ModelArn"]
        except ClientError as error:
            raise StepError(f"CreateModel: {error}") from None
        return {**request, "ModelArn": arn}

    def _transform(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        """A batch transform job: the model's own handler over every input object.

        As SageMaker's batch transform does it: each object under the input prefix is split into
        records (``SplitType``), ``DataProcessing.InputFilter`` selects what the model sees, records
        are sent ``MaxPayloadInMB`` at a time (``BatchStrategy`` MultiRecord) to the handler's
        ``transform_fn`` with ``ContentType`` and ``Accept``, the answers are joined to their input
        records (``JoinSource``), filtered (``OutputFilter``) and written to
        ``<S3OutputPath>/<relative key>.out``, one line per record (``AssembleWith`` Line).
        ``DataCaptureConfig`` copies what went in and came out under its destination.
        """
        request = self._validated("CreateTransformJob", self._transform_request(step, record))
        transform = transform_job(request)
        handler = self._model_handler(
            request["ModelName"], record.job_name or "transform", batch_environment(request)
        )
        source = request["TransformInput"]["DataSource"]["S3DataSource"]
        output_path = request["TransformOutput"]["S3OutputPath"].rstrip("/")
        capture = request.get("DataCaptureConfig", {}).get("DestinationS3Uri")
        bucket, prefix = split_s3_uri(source["S3Uri"])
        objects = self.aws.list_keys(source["S3Uri"])
        if not objects:
            raise StepError(f"ClientError: no input objects under {source['S3Uri']}")
        for key in objects:
            relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
            body = self.aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            output = transform.run(handler, body.decode("utf-8"), relative)
            out_bucket, out_prefix = split_s3_uri(f"{output_path}/{relative}.out")
            self.aws.s3.put_object(Bucket=out_bucket, Key=out_prefix, Body=output.encode())
            if capture:
                for kind, content in (("input", body), ("output", output.encode())):
                    target_bucket, target_key = split_s3_uri(
                        f"{capture.rstrip('/')}/{record.job_name}/{kind}/{relative}"
                    )
                    self.aws.s3.put_object(Bucket=target_bucket, Key=target_key, Body=content)
        record.outputs = {"Predictions": output_path}
        described = dict(request)
        described.update(
            TransformJobStatus="Completed",
            TransformJobArn=self._arn("transform-job", request["TransformJobName"]),
        )
        return described

    def _transform_request(self, step: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        request = self.resolve(step["Arguments"])
        record.job_name = self._job_name(step)
        request.setdefault("TransformJobName", record.job_name)
        return dict(request)

    def _model_handler(
        self, model_name: str, job_name: str, environment: dict[str, str]
    ) -> ModelHandler:
        """The inference code and model of a SageMaker model, unpacked as the container would,
        loaded with ``environment`` set as the container's."""
        from botocore.exceptions import ClientError

        try:
            model = self.aws.sagemaker.describe_model(ModelName=model_name)
        except ClientError as error:
            raise StepError(f"model {model_name}: {error}") from None
        container = model.get("PrimaryContainer") or model["Containers"][0]
        if "ModelPackageName" in container:
            package = self.aws.sagemaker.describe_model_package(
                ModelPackageName=container["ModelPackageName"]
            )
            container = package["InferenceSpecification"]["Containers"][0]
        model_dir = self.workdir / job_name / "opt" / "ml" / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(self.aws.read(container["ModelDataUrl"]))) as archive:
            archive.extractall(model_dir, filter="data")
        program = container.get("Environment", {}).get("SAGEMAKER_PROGRAM", "inference.py")
        return ModelHandler.load(model_dir, model_dir / "code" / program, environment)

    def _arn(self, kind: str, name: str) -> str:
        account = self.execution_arn.split(":")[4]
        return f"arn:aws:sagemaker:{self.aws.region}:{account}:{kind}/{name.lower()}"

    def report(self) -> dict[str, Any]:
        order = list(self.step_definitions())
        return {
            "execution_id": self.execution_id,
            "execution_arn": self.execution_arn,
            "pipeline_name": self.pipeline_name,
            "status": "Succeeded" if self.failure_message is None else "Failed",
            "started_with": self.started_with,
            "parameters": self.parameters,
            "steps": [self.records[name].as_dict() for name in order],
            "model_package_arn": self.model_package_arn,
            "model_metrics_uri": self.model_metrics_uri,
            "model_card": self.model_card,
            "failure_message": self.failure_message,
            "step_caching": "ignored: every step runs",
        }


class ModelHandler:
    """A model's ``model_fn``/``transform_fn``, loaded from its own ``code/`` folder."""

    def __init__(self, module: Any, model: Any) -> None:
        self.module = module
        self.model = model

    @classmethod
    def load(
        cls, model_dir: Path, program: Path, environment: dict[str, str] | None = None
    ) -> ModelHandler:
        import importlib.util
        from unittest import mock

        if not program.is_file():
            raise StepError(f"the model has no {program.relative_to(model_dir)}")
        spec = importlib.util.spec_from_file_location(f"model_code_{id(program)}", program)
        if spec is None or spec.loader is None:
            raise StepError(f"cannot load {program}")
        module = importlib.util.module_from_spec(spec)
        with mock.patch.dict(os.environ, environment or {}):
            spec.loader.exec_module(module)
            return cls(module, module.model_fn(str(model_dir)))

    def invoke(self, body: str, content_type: str, accept: str) -> tuple[int, str]:
        answer = self.module.transform_fn(self.model, body, content_type, accept)
        return int(answer.status), bytes(answer.body).decode("utf-8")


@dataclass(frozen=True)
class TransformJob:
    """What a CreateTransformJob request says about splitting, batching, joining and filtering."""

    content_type: str
    accept: str
    split_type: str
    max_payload_bytes: int
    multi_record: bool
    input_filter: str
    output_filter: str
    join_input: bool

    def run(self, handler: ModelHandler, text: str, name: str) -> str:
        if self.split_type != "Line":
            records = [text]
        else:
            records = [line for line in text.splitlines() if line.strip()]
        if self.content_type != "text/csv":
            raise StepError("pipeline-local runs text/csv transform inputs only")
        rows = [next(csv.reader([record])) for record in records]
        model_input = [",".join(select(row, self.input_filter)) for row in rows]
        answers: list[str] = []
        for batch in self._batches(model_input):
            status, body = handler.invoke("\n".join(batch) + "\n", self.content_type, self.accept)
            if status != 200:
                raise StepError(f"ClientError: {name}: the model answered {status}: {body[:200]}")
            lines = [line for line in body.splitlines() if line.strip()]
            if len(lines) != len(batch):
                raise StepError(
                    f"{name}: {len(batch)} records in, {len(lines)} lines out: the output cannot "
                    "be joined to its input"
                )
            answers += lines
        output = []
        for row, answer in zip(rows, answers, strict=True):
            answer_row = next(csv.reader([answer]))
            joined = [*row, *answer_row] if self.join_input else answer_row
            output.append(",".join(select(joined, self.output_filter)))
        return "".join(line + "\n" for line in output)

    def _batches(self, records: list[str]) -> Iterator[list[str]]:
        if not self.multi_record:
            yield from ([record] for record in records)
            return
        batch: list[str] = []
        size = 0
        for record in records:
            if batch and size + len(record) + 1 > self.max_payload_bytes:
                yield batch
                batch, size = [], 0
            batch.append(record)
            size += len(record.encode()) + 1
        if batch:
            yield batch


def batch_environment(request: dict[str, Any]) -> dict[str, str]:
    """What SageMaker adds to a batch transform container's environment (the variables its
    "Use your own inference code with batch transform" guide lists)."""
    single = request.get("BatchStrategy") == "SingleRecord"
    return {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(request.get("MaxPayloadInMB", DEFAULT_PAYLOAD_MB)),
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD" if single else "MULTI_RECORD",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(request.get("MaxConcurrentTransforms", 1)),
    }


def transform_job(request: dict[str, Any]) -> TransformJob:
    transform_input = request["TransformInput"]
    source = transform_input["DataSource"]["S3DataSource"]
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise StepError("pipeline-local reads S3Prefix transform inputs only")
    if transform_input.get("CompressionType", "None") != "None":
        raise StepError("compressed transform inputs are not supported")
    output = request["TransformOutput"]
    if output.get("AssembleWith", "None") != "Line" and transform_input.get("SplitType") == "Line":
        raise StepError("records split by Line must be assembled with Line")
    processing = request.get("DataProcessing", {})
    return TransformJob(
        content_type=transform_input.get("ContentType", "text/csv"),
        accept=output.get("Accept", "text/csv"),
        split_type=transform_input.get("SplitType", "None"),
        max_payload_bytes=int(request.get("MaxPayloadInMB", DEFAULT_PAYLOAD_MB)) * 1024 * 1024,
        multi_record=request.get("BatchStrategy", "MultiRecord") == "MultiRecord",
        input_filter=processing.get("InputFilter", "$"),
        output_filter=processing.get("OutputFilter", "$"),
        join_input=processing.get("JoinSource", "None") == "Input",
    )


def select(row: list[str], expression: str) -> list[str]:
    """A CSV record seen as a JSON array, filtered by the JSONPath subset batch transform takes
    for arrays: ``$`` or ``$[i, j:k, ...]`` (negative indexes count from the end)."""
    if expression == "$":
        return row
    match = re.fullmatch(r"\$\[([-0-9:, ]+)\]", expression)
    if not match:
        raise StepError(f"unsupported JSONPath filter {expression!r} for a CSV record")
    selected: list[str] = []
    for part in match.group(1).split(","):
        part = part.strip()
        if ":" in part:
            start, _, stop = part.partition(":")
            selected += row[slice(int(start) if start else None, int(stop) if stop else None)]
        else:
            index = int(part)
            if not -len(row) <= index < len(row):
                raise StepError(f"{expression}: index {index} is outside a record of {len(row)}")
            selected.append(row[index])
    return selected


def write_training_config(config: Path, request: dict[str, Any]) -> None:
    """What the SageMaker training platform writes to ``/opt/ml/input/config`` before the container
    starts, from a (resolved) CreateTrainingJob request: ``hyperparameters.json`` (the strings as
    given), ``inputdataconfig.json`` (per channel) and ``resourceconfig.json`` (one host,
    ``algo-1``). Documented at https://docs.aws.amazon.com/sagemaker/latest/dg/
    your-algorithms-training-algo-running-container.html; AWS's training toolkit
    (``sagemaker-training``) reads these files back in the template's tests.
    """
    channels = {}
    for channel in request.get("InputDataConfig", []):
        source = channel["DataSource"].get("S3DataSource", {})
        channels[channel["ChannelName"]] = {
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            **({"ContentType": channel["ContentType"]} if "ContentType" in channel else {}),
        }
    instance_type = str(request["ResourceConfig"]["InstanceType"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters", {})))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {
                "current_host": "algo-1",
                "current_instance_type": instance_type,
                "current_group_name": "homogeneousCluster",
                "hosts": ["algo-1"],
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": instance_type,
                        "hosts": ["algo-1"],
                    }
                ],
                "network_interface_name": "eth0",
            }
        )
    )


def evaluate_condition(condition: dict[str, Any]) -> bool:
    """One condition of a ConditionStep, its operands already resolved."""
    kind = condition["Type"]
    if kind == "Not":
        return not evaluate_condition(condition["Expression"])
    if kind == "Or":
        return any(evaluate_condition(c) for c in condition["Conditions"])
    if kind == "In":
        return bool(condition["QueryValue"] in condition["Values"])
    left, right = condition["LeftValue"], condition["RightValue"]
    try:
        comparisons = {
            "Equals": lambda: left == right,
            "GreaterThan": lambda: left > right,
            "GreaterThanOrEqualTo": lambda: left >= right,
            "LessThan": lambda: left < right,
            "LessThanOrEqualTo": lambda: left <= right,
        }
        if kind not in comparisons:
            raise StepError(f"unsupported condition type {kind}")
        return bool(comparisons[kind]())
    except TypeError:
        raise StepError(f"{kind} cannot compare {left!r} with {right!r}") from None


def typed_parameters(definition: dict[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """The definition's parameters: defaults, overridden by the values given (as text)."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PipelineLocalError(
            f"unknown pipeline parameter '{unknown[0]}' (the definition has: "
            f"{', '.join(sorted(declared))})"
        )
    kinds: dict[str, Any] = {"String": str, "Integer": int, "Float": float}
    values: dict[str, Any] = {}
    for name, parameter in declared.items():
        if name in given:
            kind = parameter.get("Type", "String")
            try:
                if kind == "Boolean":
                    values[name] = given[name].lower() == "true"
                else:
                    values[name] = kinds[kind](given[name])
            except (KeyError, ValueError):
                raise PipelineLocalError(
                    f"parameter {name}: {given[name]!r} is not a valid {kind}"
                ) from None
        elif "DefaultValue" in parameter:
            values[name] = parameter["DefaultValue"]
    return values


# ----------------------------------------------------------------------------- publishing


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment replaced by ``env`` for a while (DVC's S3 client reads it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def push_data(endpoint: str, env: Mapping[str, str], aws: Aws) -> str:
    """``make push`` of the tracked data to the DVC remote on the loopback; return its version.

    The endpoint is a configuration override of this process only: nothing is written to the
    project's DVC configuration, so the team's own ``make push`` still reaches the real remote.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from .run import DATA_DVC_FILE, DataError, tracked_data

    try:
        data = tracked_data(DATA_DVC_FILE)
    except DataError as error:
        raise PipelineLocalError(str(error)) from None
    aws.ensure_bucket(split_s3_uri(data.url)[0])  # the DVC remote's bucket (.dvc/config)
    no_scm = {"core": {"no_scm": True}}
    try:
        with Repo(str(PROJECT), config=no_scm) as repo:
            remote = repo.config["core"]["remote"]
            cached = repo.cache.local.exists(data.version)
        if not cached:  # DVC would only warn and push nothing
            raise PipelineLocalError(
                f"data version {data.version} is not in the DVC cache: run `make setup` "
                f"(or `dvc commit {DATA_DVC_FILE.relative_to(PROJECT)}` after changing the data)"
            )
        loopback = no_scm | {"remote": {remote: {"endpointurl": endpoint}}}
        with environment(env), Repo(str(PROJECT), config=loopback) as repo:
            repo.push(targets=[str(DATA_DVC_FILE)], remote=remote)
    except DvcException as error:
        raise PipelineLocalError(
            f"cannot push data version {data.version} to the loopback DVC remote: {error}"
        ) from None
    return data.version


def publish(
    trigger: str, parameters: Mapping[str, str], env: dict[str, str], aws: Aws, pipeline_name: str
) -> tuple[str, dict[str, str]]:
    """Upsert (and for ``build`` start) the pipeline as the build does; return the execution ARN
    and the parameters it was started with."""
    command = [sys.executable, "-m", "pipelines.run", "--upsert"]
    if trigger == "build":
        command.append("--start")
    result = subprocess.run(  # noqa: S603 - the project's own CLI
        command, cwd=PROJECT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PipelineLocalError(
            f"{' '.join(command[1:])} failed against the loopback:\n{result.stderr[-3000:]}"
        )
    if trigger == "build":
        executions = aws.sagemaker.list_pipeline_executions(
            PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending"
        )["PipelineExecutionSummaries"]
        arn = max(executions, key=lambda e: e["StartTime"])["PipelineExecutionArn"]
    else:  # what an EventBridge target does: StartPipelineExecution with its parameter list
        arn = aws.sagemaker.start_pipeline_execution(
            PipelineName=pipeline_name,
            PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
        )["PipelineExecutionArn"]
    started = aws.sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    given = {p["Name"]: p["Value"] for p in started.get("PipelineParameters", [])}
    return arn, given | dict(parameters)


def literal_inputs(definition: dict[str, Any]) -> list[str]:
    """The input locations a definition fixes (the job code): they must exist before it runs."""
    found = []
    pending: list[Any] = [definition]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending += value
        elif isinstance(value, dict):
            for key in ("S3Input", "S3DataSource"):
                uri = value.get(key, {}).get("S3Uri") if isinstance(value.get(key), dict) else None
                if isinstance(uri, str):
                    found.append(uri)
            pending += value.values()
    return sorted(set(found))


def parse_parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def execute(args: argparse.Namespace, endpoint: str, workdir: Path) -> dict[str, Any]:
    from .settings import load_settings

    settings = load_settings({})  # the rendered defaults: nothing of a real account applies
    env = loopback_environment(endpoint, settings.region, workdir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    for name in ("SAGEMAKER_PROJECT_NAME", "SAGEMAKER_PROJECT_ID", "ARTIFACT_BUCKET"):
        env.pop(name, None)
    aws = Aws(env)
    aws.ensure_bucket(settings.bucket)
    aws.ensure_model_package_group(settings.model_package_group)
    push_data(endpoint, env, aws)
    parameters = dict(args.parameter or [])
    arn, started_with = publish(args.trigger, parameters, env, aws, settings.pipeline_name)
    if args.definition:
        definition = json.loads(args.definition.read_text())
    else:
        described = aws.sagemaker.describe_pipeline(PipelineName=settings.pipeline_name)
        definition = json.loads(described["PipelineDefinition"])
    missing = [uri for uri in literal_inputs(definition) if not aws.exists(uri)]
    if missing:
        raise PipelineLocalError(
            f"the definition reads {missing[0]}, which was never uploaded to the loopback"
        )
    execution = Execution(
        definition=definition,
        pipeline_name=settings.pipeline_name,
        execution_arn=arn,
        parameters=typed_parameters(definition, started_with),
        started_with=started_with,
        aws=aws,
        workdir=workdir,
        env=env,
    )
    execution.run()
    report = execution.report()
    if settings.inference_mode == "batch" and report["model_package_arn"]:
        report["batch"] = run_batch(settings, report["model_package_arn"], aws, env, workdir)
    return report


# Sample records the batch run scores: the first rows of the project's data, ids 1, 2, ...
BATCH_SAMPLE_ROWS = 50


def run_batch(
    settings: Any, package_arn: str, aws: Aws, env: dict[str, str], workdir: Path
) -> dict[str, Any]:
    """What the batch stage stack does with an approved package, on the registered one.

    A model is created from the package (as the stack's ``Model``), a sample of the project's data
    is uploaded as the newest input prefix, and the batch-inference pipeline's definition
    (``python -m pipelines.batch --definition-only``, run against the loopback) is executed
    with that model.
    """
    model_name = f"{settings.project_name}-local-batch"
    aws.sagemaker.create_model(
        ModelName=model_name,
        ExecutionRoleArn=settings.role_arn,
        Containers=[{"ModelPackageName": package_arn}],
    )
    sample = workdir / "batch-input"
    sample.mkdir(exist_ok=True)
    rows = batch_sample(sample / "part-0.csv")
    upload = subprocess.run(  # noqa: S603 - the project's own CLI
        [sys.executable, "-m", "pipelines.batch", "--upload-input", str(sample)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    built = subprocess.run(
        [sys.executable, "-m", "pipelines.batch", "--definition-only"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for result in (upload, built):
        if result.returncode != 0:
            raise PipelineLocalError(f"pipelines.batch failed:\n{result.stderr[-3000:]}")
    definition = json.loads(built.stdout)
    execution = Execution(
        definition=definition,
        pipeline_name=f"{settings.project_name}-batch-inference",
        execution_arn=(
            f"arn:aws:sagemaker:{aws.region}:000000000000:pipeline/"
            f"{settings.project_name}-batch-inference/execution/local-batch"
        ),
        parameters=typed_parameters(definition, {"ModelName": model_name}),
        started_with={"ModelName": model_name},
        aws=aws,
        workdir=workdir / "batch",
        env=env,
    )
    execution.workdir.mkdir(exist_ok=True)
    execution.run()
    step = execution.properties.get("BatchTransform", {})
    output = step.get("TransformOutput", {}).get("S3OutputPath")
    predicted = 0
    if output:
        bucket, _ = split_s3_uri(output)
        for key in aws.list_keys(output):
            predicted += len(aws.read(f"s3://{bucket}/{key}").splitlines())
    return {
        "status": "Succeeded" if execution.failure_message is None else "Failed",
        "failure_message": execution.failure_message,
        "model_name": model_name,
        "input": step.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}),
        "predictions": output,
        "rows": rows,
        "predicted_rows": predicted,
    }


def batch_sample(target: Path) -> int:
    """Headerless CSV of the first rows of ``data/raw``: an id, then the features in order."""
    schema = json.loads(next(PROJECT.glob("src/*/schema.json")).read_text())
    features = list(schema["features"])
    with next(iter(sorted((PROJECT / "data" / "raw").glob("*.csv")))).open(newline="") as source:
        reader = csv.DictReader(source)
        rows = [row for _, row in zip(range(BATCH_SAMPLE_ROWS), reader, strict=False)]
    with target.open("w", newline="") as output:
        writer = csv.writer(output, lineterminator="\n")
        for number, row in enumerate(rows, start=1):
            writer.writerow([number, *(row[name] for name in features)])
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--parameter",
        action="append",
        type=parse_parameter,
        metavar="NAME=VALUE",
        help="a pipeline parameter for this execution (repeatable)",
    )
    parser.add_argument(
        "--trigger",
        choices=("build", "rule"),
        default="build",
        help="build: `pipelines.run --upsert --start` as CodeBuild runs it (default); "
        "rule: upsert, then start with only the --parameter values, as the EventBridge rule does",
    )
    parser.add_argument(
        "--endpoint-url", help="a loopback moto server already running (default: start one)"
    )
    parser.add_argument(
        "--definition", type=Path, help="execute this definition JSON instead of the upserted one"
    )
    parser.add_argument("--report", type=Path, default=REPORT, help=f"default: {REPORT}")
    parser.add_argument("--keep", type=Path, help="keep the jobs' folders and logs here")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep.resolve()
        else:
            temporary = tempfile.TemporaryDirectory(prefix="pipeline-local-")
            workdir = Path(stack.enter_context(temporary))
        try:
            endpoint = args.endpoint_url or stack.enter_context(loopback_server())
            report = execute(args, endpoint, workdir)
        except PipelineLocalError as error:
            print(f"pipeline-local: error: {error}", file=sys.stderr)
            return 2
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    if report["status"] != "Succeeded":
        print(
            f"pipeline-local: execution {report['execution_id']} failed: "
            f"{report['failure_message']}",
            file=sys.stderr,
        )
        return 1
    print(
        f"pipeline-local: execution {report['execution_id']} succeeded: "
        f"registered {report['model_package_arn']} (report: {args.report})"
    )
    batch = report.get("batch")
    if batch is not None:
        if batch["status"] != "Succeeded":
            print(f"pipeline-local: batch inference failed: {batch['failure_message']}")
            return 1
        print(
            f"pipeline-local: batch inference scored {batch['predicted_rows']} of "
            f"{batch['rows']} sample rows into {batch['predictions']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
