"""The AWS calls a rendered project really makes, recorded, and decided against its roles.

``make pipeline-local`` runs with tests/aws_recorder on ``PYTHONPATH``: every botocore call of
every Python process it starts is written to a log (service, operation, parameters). Each call
is then turned into the IAM requests AWS authorizes for it (action, the ARN it touches, the
condition keys its parameters set) and decided by tests/iam_policy.py against the rendered
policy of the role that makes it on AWS:

* ``python -m pipelines.run --upsert --start`` is what buildspec.yml's ``make
  pipeline-run-async`` runs: its calls are the build project's, as its CodeBuild service role,
  with the build project's environment variables (so the tags and role it passes are AWS's);
* the interpreter (``pipelines/local.py``) stands in for SageMaker Pipelines and its jobs: what
  it reads and writes for a step, and the steps' own calls (RegisterModel's CreateModelPackage),
  are the pipeline's, as the role the pipeline was created with (its jobs run as it too).

The operation -> IAM action and resource mapping is small and explicit (``OPERATIONS``), and each
mapped action and ARN is checked against parliament's copy of the Service Authorization
Reference (the action exists, the ARN is of a resource type the action is scoped to); dependent
actions (sagemaker:AddTags for a Create with Tags, iam:PassRole for the role it names) come from
the same reference. A call with no mapping fails the check: a new call is decided, not skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import iam_model as iam
from .iam_policy import Decision, Request, action_matches, decide, explain

RECORDER = Path(__file__).parent / "aws_recorder"
LOG_VARIABLE = "RECORD_AWS_CALLS"

# The processes of `make pipeline-local` and who each is on AWS.
BUILD = "build"  # pipelines/run.py: buildspec.yml's `make pipeline-run-async`
PIPELINE = "pipeline"  # pipelines/local.py: SageMaker Pipelines running the steps and their jobs
# Calls that no project role makes on AWS, with the reason.
NOT_A_ROLE_CALL: dict[tuple[str, str, str], str] = {
    # local.py creates, before the run, what the foundation and stage stacks create on AWS
    (PIPELINE, "s3", "HeadBucket"): "the foundation stack's bucket",
    (PIPELINE, "s3", "CreateBucket"): "the foundation stack's bucket",
    (PIPELINE, "sagemaker", "DescribeModelPackageGroup"): "the foundation stack's group",
    (PIPELINE, "sagemaker", "CreateModelPackageGroup"): "the foundation stack's group",
    (PIPELINE, "sagemaker", "CreateModel"): "the batch stage stack's Model",
    # local.py unpacking a transform step's model: SageMaker resolves a job's model itself
    (PIPELINE, "sagemaker", "DescribeModel"): "the service resolving a transform job's model",
    (PIPELINE, "sagemaker", "DescribeModelPackage"): "the service resolving a model's package",
    # local.py finding the execution it interprets: SageMaker Pipelines knows its own
    (PIPELINE, "sagemaker", "DescribePipeline"): "the service reading its own pipeline",
    (PIPELINE, "sagemaker", "ListPipelineExecutions"): "the service reading its own execution",
    (PIPELINE, "sagemaker", "ListPipelineParametersForExecution"): "the service's own execution",
}
DATA_PRODUCER = "data-producer"  # `pipelines.batch --upload-input`: whoever sends the batch
# local.py's `make push` of the tracked data to the loopback DVC remote before the run: DVC's
# requests, which fsspec runs on its own thread, are the team's (their credentials), not a role's.
DATA_PUSH = "data-push"
FSSPEC_THREAD = "fsspecIO"
OUTSIDE_THE_ROLES = {
    DATA_PRODUCER: "the batch input's producer, outside the project's roles",
    DATA_PUSH: "the team's `make push` of the data to the DVC remote, with their own credentials",
}


def process_of(argv: list[str], thread: str = "MainThread") -> str:
    script = Path(argv[0]).as_posix() if argv else ""
    if script.endswith("pipelines/run.py"):
        return BUILD
    if script.endswith("pipelines/local.py"):
        return DATA_PUSH if thread == FSSPEC_THREAD else PIPELINE
    if script.endswith("pipelines/batch.py") and "--upload-input" in argv:
        return DATA_PRODUCER
    return " ".join(argv)  # unknown: fails the check below, naming the command


def recording_environment(log: Path, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the recorder installed in every Python process started from it."""
    path = os.pathsep.join(filter(None, [str(RECORDER), base.get("PYTHONPATH")]))
    return {**base, "PYTHONPATH": path, LOG_VARIABLE: str(log)}


@dataclass(frozen=True)
class Recorded:
    process: str
    service: str
    operation: str
    params: Mapping[str, Any]

    def describe(self) -> str:
        return f"{self.process}: {self.service}.{self.operation}"


def read(log: Path) -> list[Recorded]:
    calls = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        calls.append(
            Recorded(
                process_of(entry["argv"], entry.get("thread", "MainThread")),
                entry["service"],
                entry["operation"],
                entry["params"],
            )
        )
    return calls


# --- operation -> IAM requests --------------------------------------------------------------

SAGEMAKER_ARN = f"arn:{iam.PARTITION}:sagemaker:{iam.REGION}:{iam.ACCOUNT}"


def _object(p: Mapping[str, Any]) -> list[str]:
    return [f"arn:{iam.PARTITION}:s3:::{p['Bucket']}/{p['Key']}"]


def _bucket(p: Mapping[str, Any]) -> list[str]:
    return [f"arn:{iam.PARTITION}:s3:::{p['Bucket']}"]


def _pipeline(p: Mapping[str, Any]) -> list[str]:
    return [f"{SAGEMAKER_ARN}:pipeline/{p['PipelineName'].lower()}"]


def _model_package(p: Mapping[str, Any]) -> list[str]:
    # CreateModelPackage is authorized on the new version and on its group (SAR resource types)
    group = p["ModelPackageGroupName"]
    return [
        f"{SAGEMAKER_ARN}:model-package/{group}/1",
        f"{SAGEMAKER_ARN}:model-package-group/{group}",
    ]


# (service, operation) -> (IAM action, the ARNs it is authorized on). S3's object reads are
# s3:GetObject whatever the verb (HeadObject: "you must have the s3:GetObject permission", S3 API
# reference); listing is s3:ListBucket on the bucket (ListObjectsV2's page says so).
OPERATIONS: dict[tuple[str, str], tuple[str, Callable[[Mapping[str, Any]], list[str]]]] = {
    ("s3", "GetObject"): ("s3:GetObject", _object),
    ("s3", "HeadObject"): ("s3:GetObject", _object),
    ("s3", "PutObject"): ("s3:PutObject", _object),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject", _object),
    ("s3", "UploadPart"): ("s3:PutObject", _object),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject", _object),
    ("s3", "ListObjectsV2"): ("s3:ListBucket", _bucket),
    ("sagemaker", "CreatePipeline"): ("sagemaker:CreatePipeline", _pipeline),
    ("sagemaker", "UpdatePipeline"): ("sagemaker:UpdatePipeline", _pipeline),
    ("sagemaker", "DescribePipeline"): ("sagemaker:DescribePipeline", _pipeline),
    ("sagemaker", "StartPipelineExecution"): ("sagemaker:StartPipelineExecution", _pipeline),
    ("sagemaker", "CreateModelPackage"): ("sagemaker:CreateModelPackage", _model_package),
}
# Parameters naming the role a Create call passes to SageMaker (its iam:PassRole).
ROLE_PARAMETERS = ("RoleArn", "ExecutionRoleArn")
# S3 writes an SSE-KMS object's data key, and decrypts it on read, with the caller's credentials
# (S3 User Guide, "Using server-side encryption with AWS KMS keys").
KEY_USE = {"s3:PutObject": "kms:GenerateDataKey", "s3:GetObject": "kms:Decrypt"}
KEY_READING_OPERATIONS = {"GetObject"}  # HeadObject returns metadata: no decryption


@dataclass(frozen=True)
class IamRequest:
    call: Recorded
    action: str
    resource: str
    context: dict[str, Any]


def _tag_context(tags: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    pairs = {tag["Key"]: tag["Value"] for tag in tags}
    if not pairs:
        return {}
    return {f"aws:RequestTag/{k}": v for k, v in pairs.items()} | {"aws:TagKeys": list(pairs)}


class Translator:
    """Recorded calls -> IAM requests, remembering the tags each created resource carries."""

    def __init__(self, bucket_keys: Mapping[str, str]) -> None:
        self.bucket_keys = bucket_keys  # bucket -> KMS key of its default encryption
        self.resource_tags: dict[str, dict[str, str]] = {}

    def requests(self, call: Recorded) -> list[IamRequest]:
        mapped = OPERATIONS.get((call.service, call.operation))
        if mapped is None:
            raise LookupError(f"{call.describe()} has no IAM mapping in tests/aws_recording.py")
        action, arns_of = mapped
        params = call.params
        tags = list(params.get("Tags") or [])
        base: dict[str, Any] = {"aws:SecureTransport": "true"}
        if call.service == "s3":
            if "Prefix" in params:
                base["s3:prefix"] = params["Prefix"]
            if "ServerSideEncryption" in params:
                base["s3:x-amz-server-side-encryption"] = params["ServerSideEncryption"]
            if "SSEKMSKeyId" in params:
                base["s3:x-amz-server-side-encryption-aws-kms-key-id"] = params["SSEKMSKeyId"]
        if "ModelApprovalStatus" in params:
            base["sagemaker:ModelApprovalStatus"] = params["ModelApprovalStatus"]
        out = []
        arns = arns_of(params)
        for arn in arns:
            assert iam.action_can_target(action, arn), f"{action} cannot be scoped to {arn}"
            resource_tags = self.resource_tags.get(arn, {})
            context = base | {f"aws:ResourceTag/{k}": v for k, v in resource_tags.items()}
            out.append(IamRequest(call, action, arn, context | _tag_context(tags)))
        # The dependent actions (Service Authorization Reference) on the resource the call creates.
        for dependent in sorted(iam.dependent_actions(action)):
            if dependent == "sagemaker:AddTags":
                if tags:
                    out.append(IamRequest(call, dependent, arns[0], base | _tag_context(tags)))
            elif dependent == "iam:PassRole":
                passed = {"iam:PassedToService": "sagemaker.amazonaws.com"}
                out += [
                    IamRequest(call, dependent, params[p], base | passed)
                    for p in ROLE_PARAMETERS
                    if p in params
                ]
            else:
                raise LookupError(f"{call.describe()}: dependent action {dependent} not modelled")
        if call.operation.startswith("Create") and tags:
            self.resource_tags[arns[0]] = {tag["Key"]: tag["Value"] for tag in tags}
        key = self.bucket_keys.get(params.get("Bucket", ""))
        if (
            key
            and action in KEY_USE
            and (action == "s3:PutObject" or call.operation in KEY_READING_OPERATIONS)
        ):
            via = {"kms:ViaService": f"s3.{iam.REGION}.amazonaws.com"}
            out.append(IamRequest(call, KEY_USE[action], key, base | via))
        return out


def _build_project(stacks: Mapping[str, iam.Stack]) -> dict[str, Any] | None:
    """The resolved CodeBuild project that runs buildspec.yml (None: GitHub Actions builds)."""
    build = stacks["build-pipeline.yaml"]
    for _, resource in build.active():
        if resource["Type"] == "AWS::CodeBuild::Project":
            properties = build.resolve(resource["Properties"])
            if properties["Source"].get("BuildSpec") == "buildspec.yml":
                return dict(properties)
    return None


def build_role(stacks: Mapping[str, iam.Stack]) -> str:
    """The role the build runs as: the CodeBuild project's, or the one GitHub Actions assumes
    (``role-to-assume``: build-pipeline.yaml's GitHubActionsRole)."""
    project = _build_project(stacks)
    if project is not None:
        return str(project["ServiceRole"])
    return stacks["build-pipeline.yaml"].arn("GitHubActionsRole")


def build_environment(stacks: Mapping[str, iam.Stack]) -> dict[str, str]:
    """The build's environment variables: the CodeBuild project's, or what the README has the
    user set as the GitHub repository's variables (the foundation stack's outputs)."""
    project = _build_project(stacks)
    if project is not None:
        variables = project["Environment"].get("EnvironmentVariables", [])
        return {v["Name"]: str(v["Value"]) for v in variables}
    foundation = stacks["foundation.yaml"]
    name = str(foundation.values["SageMakerProjectName"])
    exports = foundation.outputs()
    return {
        "SAGEMAKER_PROJECT_NAME": name,
        "SAGEMAKER_PROJECT_ID": str(
            foundation.values.get("SageMakerProjectId", iam.SAMPLE_PARAMETERS["SageMakerProjectId"])
        ),
        "ARTIFACT_BUCKET": str(exports[f"{name}-artifact-bucket"]),
        "SAGEMAKER_PIPELINE_ROLE_ARN": str(exports[f"{name}-sagemaker-role-arn"]),
    }


def caller_roles(stacks: Mapping[str, iam.Stack], calls: list[Recorded]) -> dict[str, str]:
    """Process -> the ARN of the role it acts as on AWS, from the rendered stacks."""
    created = [c for c in calls if c.operation == "CreatePipeline" and c.process == BUILD]
    assert created, "the build created no pipeline: nothing says which role the pipeline has"
    return {BUILD: build_role(stacks), PIPELINE: created[0].params["RoleArn"]}


@dataclass
class Verdicts:
    checked: dict[str, int]  # role ARN -> IAM requests decided
    refusals: list[str]
    skipped: dict[str, int]  # reason -> recorded calls no project role makes


def decide_recorded(
    calls: list[Recorded],
    stacks: Mapping[str, iam.Stack],
    identities: Mapping[str, list[dict[str, Any]]],
    resource_policy: Callable[[str], dict[str, Any] | None],
) -> Verdicts:
    """Each recorded call as the role that makes it on AWS; a refusal names role, action, ARN."""
    roles = caller_roles(stacks, calls)
    translator = Translator(iam.encrypted_buckets(stacks["foundation.yaml"]))
    verdicts = Verdicts({}, [], {})
    for call in calls:
        reason = NOT_A_ROLE_CALL.get((call.process, call.service, call.operation))
        reason = reason or OUTSIDE_THE_ROLES.get(call.process)
        if reason:
            verdicts.skipped[reason] = verdicts.skipped.get(reason, 0) + 1
            continue
        role = roles.get(call.process)
        if role is None:
            verdicts.refusals.append(f"{call.describe()}: no role known for this process")
            continue
        identity = identities.get(role)
        if identity is None:
            verdicts.refusals.append(f"{call.describe()}: {role} is not a rendered role")
            continue
        for request in translator.requests(call):
            decided = Request(role, request.action, request.resource, request.context)
            policy = resource_policy(request.resource)
            verdicts.checked[role] = verdicts.checked.get(role, 0) + 1
            if decide(decided, identity, policy) is not Decision.ALLOW:
                verdicts.refusals.append(
                    f"{call.describe()} as {role}: {request.action} on {request.resource}: "
                    f"{explain(decided, identity, policy)}"
                )
    return verdicts


def without_grant(documents: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """A copy of a role's policies whose Allow statements no longer grant ``action`` (an older
    or narrower policy), to prove a recorded call then fails the check."""
    narrowed = []
    for document in documents:
        kept = []
        for statement in iam.statements(document):
            actions = [str(a) for a in iam._as_list(statement.get("Action", []))]
            if statement.get("Effect") == "Allow":
                actions = [a for a in actions if not action_matches(a, action)]
                if not actions:
                    continue
                statement = {**statement, "Action": actions}
            kept.append(statement)
        narrowed.append({**document, "Statement": kept})
    return narrowed


def check_recorded_calls(
    project: Path, log: Path, without: tuple[str, str] | None = None
) -> Verdicts:
    """Decide every call ``log`` recorded in ``project`` against its rendered roles (one
    account: the foundation and build stacks); ``without`` = (process, action) first removes
    the grants of ``action`` from the policies of that process's role."""
    from .test_aws_calls import Policies, _role_documents_by_arn
    from .test_permissions import rendered_stacks

    stacks = dict(rendered_stacks(project, project.name))
    layout = [stack for label, stack in stacks.items() if label != "target-account.yaml"]
    policies = Policies([stacks["foundation.yaml"]])
    identities = _role_documents_by_arn(layout)
    calls = read(log)
    if without:
        process, action = without
        role = caller_roles(stacks, calls)[process]
        identities[role] = without_grant(identities[role], action)
    return decide_recorded(calls, stacks, identities, policies.of)
