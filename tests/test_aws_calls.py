"""Every documented call of the running system, decided against the policies that govern it.

The calls live as data in tests/aws_calls.py (with the AWS page for each); here each is made
concrete for every distinct render and decided by tests/iam_policy.py against the caller's
rendered identity policies and the resource's policy (the key policy of a KMS key, the bucket
policy of an S3 object): what AWS would refuse fails here. moto checks none of it (its IAM
enforcement compares non-S3 requests with resource ``*``, and KMS key policies not at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

from . import aws_calls as calls
from . import iam_model as iam
from .conftest import MATRIX, TEMPLATE, load_yaml, matrix_id
from .iam_policy import Decision, Request, decide, explain
from .test_permissions import rendered_stacks

PROJECT = "tumour"


class Policies:
    """The resource policies of a layout: key ARN -> key policy, bucket name -> bucket policy."""

    def __init__(self, stacks: Iterable[iam.Stack]) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        self.buckets: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, str] = {}  # alias ARN -> the key ARN it names
        for stack in stacks:
            for logical, resource in stack.active():
                properties = resource.get("Properties", {})
                if resource["Type"] == "AWS::KMS::Key":
                    self.keys[stack.arn(logical)] = stack.resolve(properties["KeyPolicy"])
                elif resource["Type"] == "AWS::KMS::Alias":
                    name = stack.resolve(properties["AliasName"])
                    target = properties["TargetKeyId"]
                    assert set(target) == {"Ref"}, target  # the alias names a key of its stack
                    alias = f"arn:{iam.PARTITION}:kms:{iam.REGION}:{stack.account}:{name}"
                    self.aliases[alias] = stack.arn(target["Ref"])
                elif resource["Type"] == "AWS::S3::BucketPolicy":
                    bucket = str(stack.resolve(properties["Bucket"]))
                    self.buckets[bucket] = stack.resolve(properties["PolicyDocument"])

    def key(self, arn: str) -> str:
        """The key ARN a KmsKeyId names (KMS authorizes a request naming an alias on its key)."""
        return self.aliases.get(arn, arn)

    def of(self, arn: str) -> dict[str, Any] | None:
        if arn.startswith("arn:aws:kms:"):
            return self.keys[arn]  # every key the project uses has its policy here
        if arn.startswith("arn:aws:s3:::"):
            return self.buckets.get(arn.removeprefix("arn:aws:s3:::").split("/", 1)[0])
        return None


def refused(
    caller: str,
    identity: list[dict[str, Any]],
    policies: Policies,
    requested: Iterable[calls.Call],
    values: dict[str, str],
    owners: dict[str, str] | None = None,
) -> list[str]:
    """Each call AWS would refuse, with the reason (``owners``: bucket -> owning account)."""
    refusals = []
    for call in requested:
        action, resource, context = call.concrete(values)
        context = {"aws:SecureTransport": "true"} | context
        if resource.startswith("arn:aws:s3:::") and owners:
            bucket = resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
            context["aws:ResourceAccount"] = owners.get(bucket, iam.ACCOUNT)
        request = Request(caller, action, resource, context)
        resource_policy = policies.of(resource)
        if decide(request, identity, resource_policy) is not Decision.ALLOW:
            refusals.append(f"{explain(request, identity, resource_policy)} [{call.source}]")
    return refusals


def values_for(foundation: iam.Stack, **extra: str) -> dict[str, str]:
    exports = foundation.outputs()
    bucket = exports[f"{PROJECT}-artifact-bucket"]
    return {
        "partition": iam.PARTITION,
        "region": iam.REGION,
        "account": foundation.account,
        "project": PROJECT,
        "bucket": bucket,
        "key": exports[f"{PROJECT}-kms-key-arn"],
        "role": exports[f"{PROJECT}-sagemaker-role-arn"],
        "group": exports[f"{PROJECT}-model-package-group"],
        "data_bucket": bucket,
        "data_key": exports[f"{PROJECT}-kms-key-arn"],
    } | extra


BATCH_ROWS = [row for row in MATRIX if row.get("inference_mode") == "batch"]


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_the_build_pipelines_steps_and_jobs_are_allowed(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """The model-building pipeline's role (the foundation's execution role, which its jobs and
    in one account the model also run as) may make every call of its step types and jobs."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    foundation = stacks["foundation.yaml"]
    role = foundation.arn("SageMakerExecutionRole")
    identity = iam.role_documents(foundation, "SageMakerExecutionRole")
    requested = [
        *calls.PIPELINE_STEPS["Processing"],
        *calls.PIPELINE_STEPS["Training"],
        *calls.PIPELINE_STEPS["RegisterModel"],
        *calls.JOB_CALLS,
        *calls.MODEL_CALLS,
    ]
    values = values_for(foundation, data_prefix="")
    assert refused(role, identity, Policies([foundation]), requested, values) == []
    # The data versions in the DVC remote are read-only to the jobs.
    outside = calls.JOB_REFUSED_CALLS
    assert len(refused(role, identity, Policies([foundation]), outside, values)) == len(outside)


MONITORED_ROWS = [row for row in MATRIX if row.get("inference_mode") != "serverless"]


@pytest.mark.parametrize("extra", MONITORED_ROWS, ids=matrix_id)
def test_the_monitoring_pipeline_may_run_its_job(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """Prod's monitoring pipeline runs its processing job as the model's role (in one account
    the foundation's execution role), which may make every call of the job."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    foundation = stacks["foundation.yaml"]
    prod = stacks["endpoint.yaml[prod]"]
    pipeline = prod.resolve(prod.resources["MonitorPipeline"]["Properties"])
    role = foundation.arn("SageMakerExecutionRole")
    assert pipeline["RoleArn"] == role
    identity = iam.role_documents(foundation, "SageMakerExecutionRole")
    requested = [*calls.PIPELINE_STEPS["Processing"], *calls.MONITORING_JOB_CALLS]
    values = values_for(foundation, data_prefix=PROJECT)
    assert refused(role, identity, Policies([foundation]), requested, values) == []


@pytest.mark.parametrize("extra", BATCH_ROWS, ids=matrix_id)
@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_the_batch_pipeline_may_run_its_transform(
    baked_matrix: dict[str, Path], extra: dict[str, str], stage: str
) -> None:
    """Defect: the scheduled batch pipeline runs as the model execution role, which could not
    create, watch or stop its transform job. In one account that role is the foundation's."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    foundation = stacks["foundation.yaml"]
    stage_stack = stacks[f"endpoint.yaml[{stage}]"]
    pipeline = stage_stack.resolve(stage_stack.resources["BatchPipeline"]["Properties"])
    role = foundation.arn("SageMakerExecutionRole")
    assert pipeline["RoleArn"] == role
    identity = iam.role_documents(foundation, "SageMakerExecutionRole")
    requested = [
        *calls.PIPELINE_STEPS["Transform"],
        *calls.PIPELINE_STEPS["JsonGet"],
        *calls.TRANSFORM_JOB_CALLS,
        *calls.MODEL_CALLS,
    ]
    values = values_for(foundation, data_prefix=f"{PROJECT}/batch/{stage}")
    assert refused(role, identity, Policies([foundation]), requested, values) == []


def test_the_batch_grant_is_scoped_to_the_projects_jobs(baked_matrix: dict[str, Path]) -> None:
    """A transform job without the project's tag (another project's) is refused."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(BATCH_ROWS[0])]))
    foundation = stacks["foundation.yaml"]
    role = foundation.arn("SageMakerExecutionRole")
    identity = iam.role_documents(foundation, "SageMakerExecutionRole")
    values = values_for(foundation, project="other", data_prefix="")
    transform = calls.PIPELINE_STEPS["Transform"]
    assert len(refused(role, identity, Policies([foundation]), transform, values)) == len(transform)


# --- every service that uses a project key, as AWS documents it ---------------------------


def key_users(stack: iam.Stack) -> Iterable[tuple[str, str, str, list[calls.Call], dict[str, str]]]:
    """(resource, caller, key ARN, calls, extra values) for each resource that encrypts with a
    KMS key: the service principal or role that then uses the key, with the documented calls."""
    for logical, resource in stack.active():
        kind = resource["Type"]
        properties = stack.resolve(resource.get("Properties", {}))
        if kind == "AWS::Logs::LogGroup" and "KmsKeyId" in properties:
            group = stack.arn(logical).removesuffix(":*")
            yield (
                logical,
                f"logs.{iam.REGION}.amazonaws.com",
                properties["KmsKeyId"],
                calls.LOGS_KEY_CALLS,
                {"log_group": group},
            )
        elif kind == "AWS::CodeBuild::Project" and "EncryptionKey" in properties:
            yield (
                logical,
                properties["ServiceRole"],
                properties["EncryptionKey"],
                calls.S3_KEY_CALLS,
                {},
            )
        elif kind == "AWS::CodePipeline::Pipeline":
            store = properties.get("ArtifactStore", {}).get("EncryptionKey")
            if store:
                yield logical, properties["RoleArn"], store["Id"], calls.S3_KEY_CALLS, {}
        elif kind == "AWS::ECR::Repository":
            # The project pulls AWS's framework images and encrypts no repository; a repository
            # under a project key would need its pullers' kms:Decrypt modelled here first.
            raise AssertionError(f"{logical}: an ECR repository's key use is not modelled")


def _role_documents_by_arn(stacks: Iterable[iam.Stack]) -> dict[str, list[dict[str, Any]]]:
    return {
        stack.arn(logical): iam.role_documents(stack, logical)
        for stack in stacks
        for logical, resource in stack.active()
        if resource["Type"] == "AWS::IAM::Role"
    }


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_every_service_using_the_project_key_is_allowed_by_its_key_policy(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """Defect: the build and deploy log groups are encrypted with the project key, whose policy
    did not let CloudWatch Logs use it (the stacks fail to create). Each resource that names
    the key, the stage endpoints' log groups included: the service (or its role, through S3)
    may make the calls AWS documents."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    layout = [
        stacks["foundation.yaml"],
        stacks["build-pipeline.yaml"],
        stacks["deploy-pipeline.yaml"],
    ]
    groups = {
        stacks["foundation.yaml"].resolve(r["Properties"]["LogGroupName"])
        for _, r in stacks["foundation.yaml"].active()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    endpoints = {f"/aws/sagemaker/Endpoints/{PROJECT}-{stage}" for stage in ("staging", "prod")}
    assert endpoints <= groups if extra.get("inference_mode") != "batch" else not groups
    policies = Policies([stacks["foundation.yaml"]])
    roles = _role_documents_by_arn(layout)
    users = [user for stack in layout for user in key_users(stack)]
    assert users  # the check is not vacuous: every layout has encrypted log groups or builds
    refusals = []
    for logical, caller, key, requested, extra_values in users:
        values = {"region": iam.REGION, "key": key} | extra_values
        identity = roles.get(caller, [])
        refusals += [
            f"{logical}: {line}" for line in refused(caller, identity, policies, requested, values)
        ]
    assert refusals == []


@pytest.mark.parametrize(
    "extra", [r for r in MATRIX if r.get("inference_mode") != "batch"], ids=matrix_id
)
def test_the_endpoint_key_is_usable_by_the_role_creating_the_endpoint(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """The endpoint configuration names the project key: the deploying role (CloudFormation's)
    may describe it and create the volumes' grant, by its identity policy and the key policy."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    deploy = stacks["deploy-pipeline.yaml"]
    caller = deploy.arn("CloudFormationRole")
    identity = iam.role_documents(deploy, "CloudFormationRole")
    policies = Policies([stacks["foundation.yaml"]])
    for label, stack in stacks.items():
        if not label.startswith("endpoint.yaml"):
            continue
        config = stack.resolve(stack.resources["EndpointConfig"]["Properties"])
        values = {"region": iam.REGION, "key": config["KmsKeyId"]}
        assert config["KmsKeyId"] in policies.keys, label
        assert refused(caller, identity, policies, calls.ENDPOINT_KEY_CALLS, values) == [], label


def test_the_logs_statement_admits_only_the_projects_log_groups(
    baked_matrix: dict[str, Path],
) -> None:
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(MATRIX[0])]))
    policies = Policies([stacks["foundation.yaml"]])
    key = stacks["foundation.yaml"].arn("ProjectKey")
    other = f"arn:aws:logs:{iam.REGION}:{iam.ACCOUNT}:log-group:/aws/codebuild/other-build"
    values = {"key": key, "log_group": other}
    logs = f"logs.{iam.REGION}.amazonaws.com"
    assert len(refused(logs, [], policies, calls.LOGS_KEY_CALLS, values)) == len(
        calls.LOGS_KEY_CALLS
    )


# --- the stage stacks' runtime uses of a key: schedules and captured data ----------------------


def runtime_key_users(
    stack: iam.Stack, policies: Policies
) -> Iterable[tuple[str, str, str, list[calls.Call], dict[str, str]]]:
    """(resource, caller, key ARN, calls, extra values) for each stage-stack resource whose key
    a role uses at run time: a schedule's execution role decrypting it (SCHEDULER_KMS), each
    model's role encrypting the endpoint's captured data (CAPTURE_KMS)."""
    models = [
        stack.resolve(resource["Properties"])["ExecutionRoleArn"]
        for _, resource in stack.active()
        if resource["Type"] == "AWS::SageMaker::Model"
    ]
    for logical, resource in stack.active():
        properties = stack.resolve(resource.get("Properties", {}))
        if resource["Type"] == "AWS::Scheduler::Schedule" and "KmsKeyArn" in properties:
            schedule = (
                f"arn:{iam.PARTITION}:scheduler:{iam.REGION}:{stack.account}:schedule/"
                f"{properties.get('GroupName', 'default')}/{properties['Name']}"
            )
            key = policies.key(properties["KmsKeyArn"])
            caller = properties["Target"]["RoleArn"]
            yield logical, caller, key, calls.SCHEDULE_KEY_CALLS, {"schedule": schedule}
        elif resource["Type"] == "AWS::SageMaker::EndpointConfig":
            capture = properties.get("DataCaptureConfig", {}).get("KmsKeyId")
            if capture:
                for role in models:
                    yield logical, role, policies.key(capture), calls.CAPTURE_KEY_CALLS, {}


def runtime_key_refusals(
    stage: iam.Stack, policies: Policies, roles: dict[str, list[dict[str, Any]]]
) -> tuple[int, list[str]]:
    """How many runtime key uses a stage stack has, and those its key and role policies refuse."""
    users = list(runtime_key_users(stage, policies))
    refusals = []
    for logical, caller, key, requested, extra_values in users:
        assert caller in roles, f"{logical}: {caller} is not a rendered role"
        values = {"region": iam.REGION, "key": key} | extra_values
        refusals += [
            f"{logical}: {line}"
            for line in refused(caller, roles[caller], policies, requested, values)
        ]
    return len(users), refusals


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_every_runtime_use_of_the_project_key_is_allowed(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """In one account the stage stacks encrypt schedules and captured data with the project
    key: the schedule's role may decrypt it and the model's role may encrypt captures."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    policies = Policies([stacks["foundation.yaml"]])
    roles = _role_documents_by_arn(  # one account: target-account.yaml is not deployed
        stack for label, stack in stacks.items() if label != "target-account.yaml"
    )
    uses = 0
    for label, stack in stacks.items():
        if label.startswith("endpoint.yaml"):
            count, refusals = runtime_key_refusals(stack, policies, roles)
            uses += count
            assert refusals == [], label
    if extra.get("inference_mode") != "serverless":  # serverless: no schedule, no capture
        assert uses


# --- S3 server access logs ----------------------------------------------------------------


def access_log_targets(stack: iam.Stack) -> dict[str, dict[str, Any]]:
    """Logical id -> resolved properties of each bucket another bucket logs to."""
    buckets = {
        logical: stack.resolve(resource.get("Properties", {}))
        for logical, resource in stack.active()
        if resource["Type"] == "AWS::S3::Bucket"
    }
    names = {stack.physical_name(logical): logical for logical in buckets}
    return {
        names[target]: buckets[names[target]]
        for properties in buckets.values()
        if (target := properties.get("LoggingConfiguration", {}).get("DestinationBucketName"))
    }


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_access_log_buckets_use_sse_s3(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """Amazon S3 User Guide, "Enabling Amazon S3 server access logging" (enable-server-access-
    logging.html): the destination bucket's default encryption may be SSE-S3 (AES256) only;
    server access logs are not delivered to a bucket that encrypts by default with SSE-KMS."""
    project = baked_matrix[matrix_id(extra)]
    targets = {}
    for path in sorted((project / "infrastructure").glob("*.yaml")):
        if path.stem == "endpoint":
            continue
        stack = iam.Stack(load_yaml(path), f"{PROJECT}-{path.stem}", {}, _exports(project))
        targets |= {f"{path.name}:{k}": v for k, v in access_log_targets(stack).items()}
    assert {name.split(":")[0] for name in targets} == {"foundation.yaml", "target-account.yaml"}
    for name, properties in targets.items():
        rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        algorithms = {rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in rules}
        assert algorithms == {"AES256"}, f"{name} [{calls.ACCESS_LOGS}]"


def _exports(project: Path) -> dict[str, Any]:
    foundation = iam.Stack(load_yaml(project / "infrastructure" / "foundation.yaml"), "f")
    return foundation.outputs()


# --- the batch pipeline in a stage's own account --------------------------------------------

from .test_accounts import (  # noqa: E402  (module-scoped renders with separate accounts)
    ACCOUNTS,
    BUILD,
    build_stacks,
    mode_renders,
    renders,
    target_stacks,
)

__all__ = ["mode_renders", "renders"]  # fixtures used by name


@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_the_batch_pipeline_may_run_its_transform_in_a_target_account(
    mode_renders: dict[str, Path], stage: str
) -> None:
    """Defect: in a stage's own account the batch pipeline runs as target-account.yaml's model
    role, which could not create its transform job. The job and the model then read the build
    account's artifact across accounts (its bucket and key policies must agree)."""
    project = mode_renders["batch"]
    foundation = build_stacks(project, separate=True)["foundation"]
    stacks = target_stacks(project, stage)
    target, stage_stack = stacks["target"], stacks["endpoint"]
    role = target.arn("ModelExecutionRole")
    pipeline = stage_stack.resolve(stage_stack.resources["BatchPipeline"]["Properties"])
    assert pipeline["RoleArn"] == role
    identity = iam.role_documents(target, "ModelExecutionRole")
    values = values_for(
        foundation,
        account=ACCOUNTS[stage],
        role=role,
        data_bucket=target.physical_name("DataBucket"),
        data_key=target.arn("StageKey"),
        data_prefix=f"{PROJECT}/batch/{stage}",
    )
    requested = [
        *calls.PIPELINE_STEPS["Transform"],
        *calls.PIPELINE_STEPS["JsonGet"],
        *calls.TRANSFORM_JOB_CALLS,
        *calls.MODEL_CALLS,
    ]
    owners = {values["bucket"]: BUILD, values["data_bucket"]: ACCOUNTS[stage]}
    policies = Policies([foundation, target])
    assert refused(role, identity, policies, requested, values, owners) == []


@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_a_target_accounts_endpoint_log_group_is_encrypted_with_a_key_logs_may_use(
    mode_renders: dict[str, Path], stage: str
) -> None:
    """In a stage's own account target-account.yaml creates the endpoint's log group with the
    stage key, whose key policy lets CloudWatch Logs use it for that group only."""
    target = target_stacks(mode_renders["realtime"], stage)["target"]
    users = list(key_users(target))
    assert [(logical, key) for logical, _, key, _, _ in users] == [
        ("EndpointLogGroup", target.arn("StageKey"))
    ]
    group = target.resolve(target.resources["EndpointLogGroup"]["Properties"]["LogGroupName"])
    assert group == f"/aws/sagemaker/Endpoints/{PROJECT}-{stage}"
    policies = Policies([target])
    for logical, caller, key, requested, extra_values in users:
        values = {"region": iam.REGION, "key": key} | extra_values
        assert refused(caller, [], policies, requested, values) == [], logical
    # and for no other stage's group
    other = "prod" if stage == "staging" else "staging"
    group = f"arn:aws:logs:{iam.REGION}:{ACCOUNTS[stage]}:log-group:/aws/sagemaker/Endpoints/"
    values = {"region": iam.REGION, "key": target.arn("StageKey"), "log_group": group + other}
    assert len(
        refused(f"logs.{iam.REGION}.amazonaws.com", [], policies, calls.LOGS_KEY_CALLS, values)
    ) == len(calls.LOGS_KEY_CALLS)


# S3 uses the bucket's default key with the credentials of whoever writes or reads an object.
KEY_OF_OBJECT_CALL = {"s3:PutObject": "kms:GenerateDataKey", "s3:GetObject": "kms:Decrypt"}


def objects_a_role_may_touch(
    identity: list[dict[str, Any]], bucket: str
) -> Iterable[tuple[str, str]]:
    """(S3 action, an object ARN) for each statement of a role granting it on the bucket."""
    for document in identity:
        for statement in iam.statements(document):
            if statement.get("Effect") != "Allow":
                continue
            for pattern in map(str, iam._as_list(statement.get("Resource", []))):
                if not pattern.startswith(f"arn:aws:s3:::{bucket}/"):
                    continue
                for action in KEY_OF_OBJECT_CALL:
                    if any(
                        iam.policy.action_matches(a, action)
                        for a in iam._as_list(statement.get("Action", []))
                    ):
                        yield action, pattern.replace("*", "x")


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_every_role_that_reads_or_writes_an_encrypted_bucket_may_use_its_key(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """Each role granted s3:PutObject/GetObject on an SSE-KMS bucket may also make the KMS call
    S3 then makes with its credentials (SSE_KMS), by its policy and the key policy."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    foundation = stacks["foundation.yaml"]
    layout = [s for label, s in stacks.items() if label != "target-account.yaml"]
    policies = Policies([foundation])
    checked, refusals = 0, []
    for bucket, key in iam.encrypted_buckets(foundation).items():
        for arn, identity in _role_documents_by_arn(layout).items():
            for action, obj in objects_a_role_may_touch(identity, bucket):
                request = Request(arn, action, obj, {"aws:SecureTransport": "true"})
                if decide(request, identity, policies.of(obj)) is not Decision.ALLOW:
                    continue  # a narrower grant elsewhere; not a use of the key
                checked += 1
                use = calls.Call(KEY_OF_OBJECT_CALL[action], "{key}", calls.SSE_KMS, calls.VIA_S3)
                values = {"key": key, "region": iam.REGION}
                refusals += [
                    f"{obj}: {line}" for line in refused(arn, identity, policies, [use], values)
                ]
    assert checked
    assert refusals == []


@pytest.mark.parametrize("mode", ["realtime", "batch"])
@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_every_runtime_use_of_a_stage_key_is_allowed_in_its_account(
    mode_renders: dict[str, Path], stage: str, mode: str
) -> None:
    """In a stage's own account the schedules and captured data use the stage's key, named by
    its alias: the schedule's role may decrypt it and the model's role may encrypt captures."""
    stacks = target_stacks(mode_renders[mode], stage)
    target, stage_stack = stacks["target"], stacks["endpoint"]
    policies = Policies([target])
    uses, refusals = runtime_key_refusals(stage_stack, policies, _role_documents_by_arn([target]))
    assert uses
    assert refusals == []


# --- the organisation's key -----------------------------------------------------------------

ORGANISATION_KEY = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/organisation"
# The key is the organisation's, its policy not the project's: AWS's default key policy
# (KMS developer guide, "Default key policy"), which lets the account's IAM policies decide.
DEFAULT_KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{iam.ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}


@pytest.fixture(scope="module")
def organisation_key_renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Under standards naming the organisation's key: the default answers in one account, and
    batch inference with stages in accounts of their own."""
    from .test_accounts import _render

    root = tmp_path_factory.mktemp("organisation-key")
    single = _render(root / "single", {"kms_key_arn": ORGANISATION_KEY}, root / "home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root / "home"))
        standards = root / "batch-standards.yaml"
        standards.write_text(json.dumps({"kms_key_arn": ORGANISATION_KEY, "accounts": ACCOUNTS}))
        patch.setenv("MLOPS_ORG_STANDARDS", str(standards))
        batch = Path(
            cookiecutter(
                str(TEMPLATE),
                no_input=True,
                extra_context={"inference_mode": "batch"},
                output_dir=str(root / "batch"),
            )
        )
    return {"single": single, "batch": batch}


def test_the_organisations_key_is_usable_by_the_roles_sagemaker_uses_it_as(
    organisation_key_renders: dict[str, Path],
) -> None:
    """Defect: under the kms_key_arn standard the pipeline's jobs name the organisation's key as
    their volume and output key and the endpoint as its key, but no role could use it: every
    training job and endpoint of such a project failed. The pipeline's role (which its jobs and
    the model run as) may make the jobs' key calls, the deploying role the endpoint's."""
    stacks = dict(
        rendered_stacks(
            organisation_key_renders["single"], parameters={"KmsKeyArn": ORGANISATION_KEY}
        )
    )
    policies = Policies([stacks["foundation.yaml"]])
    policies.keys[ORGANISATION_KEY] = DEFAULT_KEY_POLICY
    values = {"region": iam.REGION, "key": ORGANISATION_KEY}
    foundation, deploy = stacks["foundation.yaml"], stacks["deploy-pipeline.yaml"]
    job_role = foundation.arn("SageMakerExecutionRole")
    identity = iam.role_documents(foundation, "SageMakerExecutionRole")
    refusals = refused(job_role, identity, policies, calls.JOB_KEY_CALLS, values)
    deployer = deploy.arn("CloudFormationRole")
    identity = iam.role_documents(deploy, "CloudFormationRole")
    refusals += refused(deployer, identity, policies, calls.ENDPOINT_KEY_CALLS, values)
    roles = _role_documents_by_arn(  # one account: target-account.yaml is not deployed
        stack for label, stack in stacks.items() if label != "target-account.yaml"
    )
    for label, stack in stacks.items():
        if label.startswith("endpoint.yaml"):
            refusals += runtime_key_refusals(stack, policies, roles)[1]
    assert refusals == []


@pytest.mark.parametrize("stage", list(ACCOUNTS))
def test_the_organisations_key_is_usable_by_the_batch_pipeline_in_a_target_account(
    organisation_key_renders: dict[str, Path], stage: str
) -> None:
    """Defect: in a stage's own account the batch transform names the organisation's key as its
    volume and output key (pipelines/batch.py), and the model role running the batch pipeline
    could not use it. The organisation's key policy must admit the stage's account (the
    organisation's part); the role's own policy is the project's."""
    stacks = target_stacks(organisation_key_renders["batch"], stage)
    target = stacks["target"]
    policies = Policies([target])
    policies.keys[ORGANISATION_KEY] = {
        "Version": "2012-10-17",
        "Statement": [
            statement
            | {
                "Principal": {
                    "AWS": [f"arn:aws:iam::{a}:root" for a in (BUILD, *ACCOUNTS.values())]
                }
            }
            for statement in DEFAULT_KEY_POLICY["Statement"]
        ],
    }
    role = target.arn("ModelExecutionRole")
    identity = iam.role_documents(target, "ModelExecutionRole")
    values = {"region": iam.REGION, "key": ORGANISATION_KEY}
    assert refused(role, identity, policies, calls.JOB_KEY_CALLS, values) == []
