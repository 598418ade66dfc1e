"""Least privilege, checked against AWS's own data rather than against the templates themselves.

* Every policy document of every rendered template (and of the product) passes parliament, which
  carries the IAM Service Authorization Reference: unknown actions, ARNs of the wrong format for an
  action, a ``Resource: "*"`` where the action could be scoped, malformed statements.
* ``Resource: "*"`` appears exactly where an action supports no resource-level permission, and the
  line says so in a comment.
* The role that deploys a stack grants every permission the CloudFormation resource schemas list
  for creating, updating and deleting that stack's resources, on the resources it will create.
"""

from __future__ import annotations

import importlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from . import aws_calls as calls
from . import iam_model as iam
from .conftest import MATRIX, load_yaml, matrix_id, rendered_pipelines, stage_template
from .rendered_tag_propagation import tag_propagation

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from parliament import analyze_policy_string

# The only parliament findings accepted, each for a reason true of every document of its kind.
SUPPRESSED: dict[tuple[str, str], tuple[str, str]] = {
    # (document kind, finding) -> (why, regular expression the finding's detail must match)
    ("trust", "MALFORMED"): (
        "a role's trust policy has no Resource element by definition (the role is the resource); "
        "parliament checks every document as an identity or resource policy",
        r"Statement contains neither Resource nor NotResource",
    ),
    ("trust", "UNKNOWN_FEDERATION_SOURCE"): (
        "parliament 1.6.4 knows SAML providers and four web identity providers only; an IAM OIDC "
        "provider ARN is the Federated principal AWS documents for GitHub Actions",
        r"arn:aws:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com",
    ),
    ("key-policy", "MISMATCHED_TYPE"): (
        "parliament types kms:EncryptionContext:<key> as a String; the CloudWatch Logs User "
        "Guide documents ArnLike on kms:EncryptionContext:aws:logs:arn for a log groups' key",
        r"Type mismatch: ArnLike requires a value of type Arn but given String",
    ),
    ("key-policy", "RESOURCE_STAR"): (
        'in a KMS key policy Resource "*" means "this key" and is the only value AWS accepts',
        r".*",
    ),
}


def _kind(document: iam.PolicyDocument) -> str:
    return "key-policy" if document.where.endswith(("Key", "ProjectKey")) else document.kind


# The rendered endpoint template's DeployMode values (pipelines/rollout.py MODES).
DEPLOY_MODES = ("replace", "shadow", "ab")


def rendered_stacks(
    project: Path, name: str = "tumour", parameters: dict[str, Any] | None = None
) -> list[tuple[str, iam.Stack]]:
    """Each rendered template resolved as the deploy flow names its stack, for the project
    ``name`` (with ``parameters``, e.g. its id and bucket, on every stack)."""
    infrastructure = project / "infrastructure"
    given = {"SageMakerProjectName": name} | (parameters or {})
    foundation = iam.Stack(
        load_yaml(infrastructure / "foundation.yaml"), f"{name}-foundation", dict(given)
    )
    exports = foundation.outputs()
    stacks = []
    for path in sorted(infrastructure.glob("*.yaml")):
        template = load_yaml(path)
        if path.stem == "endpoint":
            # as the deploy build writes it
            template = stage_template(project)
            # Each stage in each deploy mode (replace, shadow, ab): the modes add resources
            # (challenger model, alarms, autoscaling) the deploying role must be able to create.
            for stage in ("staging", "prod"):
                for mode in DEPLOY_MODES:
                    stack = iam.Stack(
                        template,
                        f"{name}-endpoint-{stage}",
                        # batch: the deploy build uploads the pipeline definition to the
                        # artifact bucket (pipelines/deploy_config.py, settings.bucket)
                        given
                        | {
                            "StageName": stage,
                            "DeployMode": mode,
                            "PipelineDefinitionBucket": exports[f"{name}-artifact-bucket"],
                        },
                        exports,
                        bucket_keys=iam.encrypted_buckets(foundation),
                    )
                    label = (
                        f"{path.name}[{stage}]"
                        if mode == "replace"
                        else f"{path.name}[{stage},{mode}]"
                    )
                    stacks.append((label, stack))
        else:
            stacks.append(
                (path.name, iam.Stack(template, f"{name}-{path.stem}", dict(given), exports))
            )
    return stacks


def parliament_findings(stacks: list[tuple[str, iam.Stack]]) -> list[str]:
    findings = []
    for label, stack in stacks:
        for document in iam.policy_documents(stack, label):
            policy = analyze_policy_string(json.dumps(document.document))
            for finding in policy.findings:
                suppressed = SUPPRESSED.get((_kind(document), finding.issue))
                if suppressed and re.fullmatch(suppressed[1], str(finding.detail)):
                    continue
                findings.append(f"{document.where}: {finding.issue} {finding.detail}")
    return findings


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_every_policy_passes_parliament(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    assert parliament_findings(rendered_stacks(baked_matrix[matrix_id(extra)])) == []


def _star_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in iam.statements(document) if "*" in iam._as_list(s.get("Resource", []))]


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_star_resource_only_for_actions_without_resource_level_permissions(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    for label, stack in rendered_stacks(baked_matrix[matrix_id(extra)]):
        for document in iam.policy_documents(stack, label):
            if document.kind != "identity":
                continue
            for statement in _star_statements(document.document):
                scoped = [
                    action
                    for pattern in iam._as_list(statement["Action"])
                    for action in iam.expand(pattern)
                    if iam.supports_resource_level(action)
                ]
                assert scoped == [], f"{document.where}: {scoped} can be scoped to a resource"


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_every_star_resource_says_why(baked_matrix: dict[str, Path], extra: dict[str, str]) -> None:
    for path in sorted((baked_matrix[matrix_id(extra)] / "infrastructure").glob("*.yaml")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.search(r"""Resource:\s*["']\*["']|^\s*-\s*["']\*["']\s*(#|$)""", line):
                context = " ".join(lines[max(0, number - 2) : number + 1])
                assert "#" in context, f"{path.name}:{number + 1} has Resource * without a reason"


# Permissions a resource's creation exercises although neither the resource's own ARN nor an ARN
# in its properties names their target: (resource type, action) -> the ARN they act on.
# ({account}: the stack's account.)
IMPLIED_PERMISSIONS: dict[tuple[str, str], str] = {
    # RegisterScalableTarget creates the service-linked role on first use, as the caller.
    ("AWS::ApplicationAutoScaling::ScalableTarget", "iam:CreateServiceLinkedRole"): (
        "arn:aws:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling"
        ".amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    ),
}
# Cross-service permissions SageMaker exercises with the caller's credentials for a KMS key named
# in the endpoint configuration (CreateEndpointConfig / CreateEndpoint API reference, KmsKeyId):
# it describes the key and creates grants for the instances' storage volumes.
KMS_KEY_OF_ENDPOINT = ("kms:DescribeKey", "kms:CreateGrant")


def _referenced_permissions(
    stack: iam.Stack, logical: str, actions: list[str], properties: dict[str, Any]
) -> list[tuple[str, str]]:
    """(action, ARN) a resource's calls are authorized on besides what its schema's handler list
    says, from the Service Authorization Reference (parliament's copy) and AWS's documentation."""
    kind = stack.resources[logical]["Type"]
    own_arn = stack.arn(logical)
    service = own_arn.split(":")[2]
    own = [action for action in actions if action.split(":")[0] == service]
    needed: list[tuple[str, str]] = []
    # A required resource type of the call other than the resource's own, named in its
    # properties: CreateEndpoint and UpdateEndpoint are authorized on the endpoint
    # configuration too (endpoint-config*).
    named = json.dumps(properties)
    for other, _ in stack.active():
        other_arn = stack.arn(other)
        if other == logical or f'"{stack.physical_name(other)}"' not in named:
            continue
        wanted = iam.resource_type_of(other_arn, service)
        needed += [
            (action, other_arn)
            for action in own
            if wanted is not None
            and wanted != iam.resource_type_of(own_arn, service)
            and wanted in iam.required_resource_types(action)
        ]
    # Resource-level tags: a Create call carrying Tags also needs its dependent <service>:AddTags
    # (for types whose schema lists neither it nor a tagging section, e.g. MonitoringSchedule).
    if properties.get("Tags"):
        tagging = f"{service}:AddTags"
        if any(tagging in iam.dependent_actions(action) for action in own):
            needed.append((tagging, own_arn))
    if kind == "AWS::SageMaker::Model":
        # CreateModel from a package (Containers ModelPackageName) reads the package: kept from
        # the grant before (no AWS document found here states it for one account; AWS's
        # cross-account model registry setup grants the deploying account
        # sagemaker:DescribeModelPackage, as foundation.yaml's group policy does).
        for container in properties.get("Containers", []):
            if "ModelPackageName" in container:
                needed.append(("sagemaker:DescribeModelPackage", container["ModelPackageName"]))
    for obj in sorted(iam.s3_objects_in(properties)):
        # Reading an object of a bucket encrypted by default with SSE-KMS decrypts its data key
        # with the reader's credentials (S3 User Guide, "Using SSE-KMS": kms:Decrypt).
        bucket = obj.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        if bucket in stack.bucket_keys:
            needed.append(("kms:Decrypt", stack.bucket_keys[bucket]))
    return needed


def required_permissions(stack: iam.Stack) -> list[tuple[str, str, str | None]]:
    """(resource, action, ARN or None for "any resource") the deploying role must grant.

    From each active resource's schema handlers (create, update, delete): an action of the
    resource's own service acts on the resource's ARN when the action can be scoped to it, on
    ``*`` when the action supports no resource-level permission; an action of another service
    acts on the ARNs of that service named in the resource's properties (iam:PassRole on the
    role it is given, kms:DescribeKey on its key, s3:GetObject on the object a {Bucket, Key}
    names); one whose target no property names is not exercised for this resource (e.g. lambda
    provisioned concurrency for a SageMaker target). Then what :func:`_referenced_permissions`
    adds from AWS's documentation.
    """
    needed: list[tuple[str, str, str | None]] = []
    for logical, resource in stack.active():
        kind = resource["Type"]
        own_arn = stack.arn(logical)
        own_service = own_arn.split(":")[2]
        properties = stack.resolve(resource.get("Properties", {}))
        actions = sorted(
            {a for group in iam.handler_permissions(kind).values() for a in group}
            # Every stack is deployed with stack-level tags, which CloudFormation puts on each
            # resource they reach with the schema's tagging permissions, as the deploying role.
            | set(tag_propagation.tagging_permissions(kind))
        )
        for action in actions:
            service = action.split(":")[0]
            if not iam.supports_resource_level(action):
                needed.append((logical, action, "*"))
                continue
            if service == own_service:
                targets = [own_arn] if iam.action_can_target(action, own_arn) else [None]
            elif service == "s3":
                targets = sorted(iam.s3_objects_in(properties))
            else:
                targets = sorted(iam.arns_in(properties, service))
            if (kind, action) in IMPLIED_PERMISSIONS:
                targets.append(IMPLIED_PERMISSIONS[kind, action].format(account=stack.account))
            needed += [(logical, action, target) for target in targets]
        if kind == "AWS::SageMaker::Endpoint":
            config_ref = resource["Properties"]["EndpointConfigName"]["GetAtt"]
            config = stack.resources[config_ref.split(".")[0]]
            for key in sorted(iam.arns_in(stack.resolve(config["Properties"]), "kms")):
                needed += [(logical, action, key) for action in KMS_KEY_OF_ENDPOINT]
        needed += [
            (logical, action, arn)
            for action, arn in _referenced_permissions(stack, logical, actions, properties)
        ]
    return needed


def excess_grants(stacks: list[iam.Stack], documents: list[dict[str, Any]]) -> list[str]:
    """What a role grants that no resource of these stacks needs: the other direction of
    :func:`missing_permissions`.

    Each action a statement names (wildcards expanded with the authorization data) is paired with
    each of the statement's resources it can act on (a pair whose resource type the action cannot
    be scoped to authorizes nothing); a pair is excess when no required permission of any of the
    stacks is that action on a resource the pattern matches.
    """
    required: dict[str, list[str | None]] = {}
    for stack in stacks:
        for _, action, arn in required_permissions(stack):
            required.setdefault(action.lower(), []).append(arn)
    excess = []
    for document in documents:
        for statement in iam.statements(document):
            if statement.get("Effect") != "Allow":
                continue
            for pattern in iam._as_list(statement["Action"]):
                for action in iam.expand(pattern) or [pattern]:
                    for resource in map(str, iam._as_list(statement["Resource"])):
                        if resource != "*" and not iam.action_can_target(
                            action, resource.replace("*", "x")
                        ):
                            continue
                        targets = required.get(action.lower(), [])
                        if not any(
                            arn is None or iam._glob(resource, arn, case=True) for arn in targets
                        ):
                            excess.append(f"{statement.get('Sid', '?')}: {action} on {resource}")
    return sorted(set(excess))


def _stack_arns(stack: iam.Stack) -> set[str]:
    """The ARNs of the stack's resources that have one."""
    arns = set()
    for logical, _ in stack.active():
        try:
            arns.add(stack.arn(logical))
        except KeyError:  # a type without an ARN of its own (a policy, an alias)
            continue
    return arns


def request_context(stack: iam.Stack, logical: str, action: str, arn: str) -> dict[str, Any]:
    """The condition keys AWS sets on a call CloudFormation makes for a resource.

    * iam:PassRole: ``iam:PassedToService``, the principal of the service the resource's role is
      passed to (IAM User Guide, "Grant a user permissions to pass a role to an AWS service").
    * iam:CreateServiceLinkedRole: ``iam:AWSServiceName``, the service of the role's path.
    * sagemaker:CreateModel: the model's network isolation and VPC (``sagemaker:NetworkIsolation``,
      ``sagemaker:VpcSubnets``, ``sagemaker:VpcSecurityGroupIds``), from its properties.
    * KMS calls another service makes with the caller's credentials: ``kms:ViaService``
      (``<service>.<region>.amazonaws.com``); a grant SageMaker creates for its instances'
      volumes carries ``kms:GrantIsForAWSResource`` (AWS KMS Developer Guide, condition keys).
      A key named in an endpoint configuration is used by SageMaker; an object's data key by S3.
    * A call on a resource of the stack that exists (any but the resource's own Create*; e.g.
      CreateEndpoint on the configuration created before it): ``aws:ResourceTag/
      sagemaker:project-id``, the stack tag every resource of the project carries (what keeps
      one project off another's resources with generated names).
    """
    service = stack.arn(logical).split(":")[2]
    creating = arn == stack.arn(logical) and action.split(":")[1].startswith("Create")
    if not creating and arn in _stack_arns(stack):
        return {"aws:ResourceTag/sagemaker:project-id": str(stack.values["SageMakerProjectId"])}
    if action == "iam:PassRole":
        return {"iam:PassedToService": f"{service}.amazonaws.com"}
    if action == "sagemaker:CreateModel" and creating:
        # SageMaker's keys of the request CloudFormation makes from the model's properties
        # (its VpcConfig and EnableNetworkIsolation), which the standards' denies read.
        properties = stack.resolve(stack.resources[logical].get("Properties", {}))
        return {
            key: value
            for key, value in calls.request_condition_keys(action, properties).items()
            if key.startswith("sagemaker:")
        }
    if action == "iam:CreateServiceLinkedRole":
        return {"iam:AWSServiceName": arn.split("/aws-service-role/")[1].split("/")[0]}
    if action.startswith("kms:"):
        via = "s3" if action == "kms:Decrypt" and arn in stack.bucket_keys.values() else service
        context = {"kms:ViaService": f"{via}.{iam.REGION}.amazonaws.com"}
        if action == "kms:CreateGrant":
            context["kms:GrantIsForAWSResource"] = "true"
        return context
    return {}


def missing_permissions(stack: iam.Stack, documents: list[dict[str, Any]]) -> list[str]:
    missing = []
    for logical, action, arn in required_permissions(stack):
        if arn is None:
            granted = iam.allows_on_some_resource(documents, action)
        else:
            context = request_context(stack, logical, action, arn)
            granted = iam.allows(documents, action, arn, context)
        if not granted:
            missing.append(f"{logical}: {action} on {arn or 'any resource'}")
    return sorted(set(missing))


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
@pytest.mark.parametrize("mode", DEPLOY_MODES)
@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_endpoint_stack_role_grants_what_the_resource_schemas_require(
    baked_matrix: dict[str, Path], extra: dict[str, str], stage: str, mode: str
) -> None:
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    deploy = stacks["deploy-pipeline.yaml"]
    role = iam.role_documents(deploy, "CloudFormationRole")
    label = f"endpoint.yaml[{stage}]" if mode == "replace" else f"endpoint.yaml[{stage},{mode}]"
    assert missing_permissions(stacks[label], role) == []


def stage_stacks(stacks: dict[str, iam.Stack]) -> list[iam.Stack]:
    """Every stage stack the deploying role creates: each stage, in each deploy mode."""
    return [stack for label, stack in stacks.items() if label.startswith("endpoint.yaml[")]


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_endpoint_stack_role_grants_nothing_its_stage_stacks_do_not_need(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    """The other direction: each inference mode's role grants only what its own stage stack's
    resources need (so no autoscaling or Model Monitor grant on a serverless role)."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))
    role = iam.role_documents(stacks["deploy-pipeline.yaml"], "CloudFormationRole")
    assert excess_grants(stage_stacks(stacks), role) == []


SERVERLESS_ROW = next(row for row in MATRIX if row.get("inference_mode") == "serverless")
BATCH_ROW = next(row for row in MATRIX if row.get("inference_mode") == "batch")


def test_the_check_catches_a_grant_of_another_mode(baked_matrix: dict[str, Path]) -> None:
    """Adding the realtime role's autoscaling statements to the serverless role is reported."""
    realtime = dict(rendered_stacks(baked_matrix[matrix_id(MATRIX[0])]))
    serverless = dict(rendered_stacks(baked_matrix[matrix_id(SERVERLESS_ROW)]))
    autoscaling = [
        statement
        for document in iam.role_documents(realtime["deploy-pipeline.yaml"], "CloudFormationRole")
        for statement in iam.statements(document)
        if "application-autoscaling" in str(statement["Action"])
    ]
    assert autoscaling
    role = iam.role_documents(serverless["deploy-pipeline.yaml"], "CloudFormationRole")
    widened = [role[0] | {"Statement": iam.statements(role[0]) + autoscaling}, *role[1:]]
    excess = excess_grants(stage_stacks(serverless), widened)
    assert any("application-autoscaling:RegisterScalableTarget" in line for line in excess)
    assert excess_grants(stage_stacks(serverless), role) == []


# The request keys S3 adds when it decrypts an object's data key for the reader.
VIA_S3 = {"kms:ViaService": f"s3.{iam.REGION}.amazonaws.com"}


@pytest.mark.parametrize("mode", ["batch", "realtime"])
def test_pipeline_definitions_are_read_from_the_artifact_bucket_only(
    baked_matrix: dict[str, Path], mode: str
) -> None:
    """The stage stack's role reads the pipeline definitions (batch inference; monitoring, in
    realtime and batch) where the deploy build uploads them (the artifact bucket, under the
    project's definitions prefixes), decrypting through S3 only."""
    row = next(row for row in MATRIX if row.get("inference_mode", "realtime") == mode)
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(row)]))
    deploy = stacks["deploy-pipeline.yaml"]
    role = iam.role_documents(deploy, "CloudFormationRole")
    # Where the deploy build uploads them: ARTIFACT_BUCKET of its CodeBuild environment
    # (pipelines/settings.py), under <project>/<kind>/definitions/ (pipelines/deploy_config.py).
    (bucket,) = {
        variable["Value"]
        for logical, resource in deploy.active()
        if resource["Type"] == "AWS::CodeBuild::Project"
        for variable in deploy.resolve(resource["Properties"])["Environment"][
            "EnvironmentVariables"
        ]
        if variable["Name"] == "ARTIFACT_BUCKET"
    }
    key = deploy.imports["tumour-kms-key-arn"]
    pipelines = ["MonitorPipeline"] + (["BatchPipeline"] if mode == "batch" else [])
    read = 0
    for stack in stage_stacks(stacks):  # what each stage's pipelines read, and that it is granted
        for logical in pipelines:
            if logical not in dict(stack.active()):
                continue  # the monitoring pipeline: prod only
            definition = stack.resolve(stack.resources[logical]["Properties"])[
                "PipelineDefinition"
            ]["PipelineDefinitionS3Location"]
            assert definition["Bucket"] == bucket
            assert iam.allows(role, "s3:GetObject", f"arn:aws:s3:::{bucket}/{definition['Key']}")
            read += 1
    assert read >= len(pipelines)
    definitions = "tumour/batch/definitions/0123abcd.json"
    refused = [
        f"arn:aws:s3:::another-bucket/{definitions}",
        f"arn:aws:s3:::{bucket}-copy/{definitions}",
        f"arn:aws:s3:::{bucket}/tumour/dvc/files/md5/de/971c087c3c1ca0d4d74f726d4c5b81",
        f"arn:aws:s3:::{bucket}/other-project/batch/definitions/0123abcd.json",
        f"arn:aws:s3:::{bucket}/other-project/monitoring/definitions/0123abcd.json",
        f"arn:aws:s3:::{bucket}/tumour/monitoring/prod/report.json",
    ]
    for arn in refused:
        assert not iam.allows(role, "s3:GetObject", arn), arn
    assert iam.allows_in_context(role, "kms:Decrypt", key, VIA_S3)
    assert not iam.allows_in_context(
        role, "kms:Decrypt", key, {"kms:ViaService": f"sagemaker.{iam.REGION}.amazonaws.com"}
    )
    assert not iam.allows_in_context(role, "kms:Decrypt", key, {})


def test_every_mode_has_resources_of_its_own(baked_matrix: dict[str, Path]) -> None:
    """The mode stacks differ (else the per-mode permission check would check nothing new)."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(MATRIX[0])]))
    active = {
        mode: {name for name, _ in stacks[f"endpoint.yaml[prod,{mode}]"].active()}
        for mode in ("shadow", "ab")
    }
    replace = {name for name, _ in stacks["endpoint.yaml[prod]"].active()}
    assert active["shadow"] - replace == {"ChallengerModel"}
    assert active["ab"] - replace == {
        "ChallengerModel",
        "ChallengerErrorAlarm",
        "ChallengerLatencyAlarm",
        "ChallengerScalableTarget",
        "ChallengerScalingPolicy",
    }


def test_the_check_catches_a_missing_permission(baked_matrix: dict[str, Path]) -> None:
    """Dropping one statement of the deploying role must be reported (the check is not vacuous)."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(MATRIX[0])]))
    role = iam.role_documents(stacks["deploy-pipeline.yaml"], "CloudFormationRole")
    trimmed = [
        document
        | {"Statement": [s for s in iam.statements(document) if "kms:CreateGrant" not in str(s)]}
        for document in role
    ]
    missing = missing_permissions(stacks["endpoint.yaml[prod]"], trimmed)
    assert any("kms:CreateGrant" in line for line in missing), missing


GITHUB_ROW = next(row for row in MATRIX if row.get("ci_system") == "github-actions")
AUDIENCE = "sts.amazonaws.com"


@pytest.mark.parametrize(
    ("subject", "audience", "admitted"),
    [
        ("repo:example-org/tumour-classifier:environment:sagemaker-pipeline", AUDIENCE, True),
        # the branch alone (a job without the protected environment) is not enough
        ("repo:example-org/tumour-classifier:ref:refs/heads/main", AUDIENCE, False),
        ("repo:example-org/tumour-classifier:pull_request", AUDIENCE, False),
        ("repo:example-org/tumour-classifier:ref:refs/heads/feature", AUDIENCE, False),
        ("repo:example-org/tumour-classifier:environment:sagemaker", AUDIENCE, False),
        ("repo:someone-else/tumour-classifier:environment:sagemaker-pipeline", AUDIENCE, False),
        ("repo:example-org/tumour-classifier:environment:sagemaker-pipeline", "other", False),
    ],
)
def test_github_build_role_admits_only_the_protected_environment_of_the_repository(
    baked_matrix: dict[str, Path], subject: str, audience: str, admitted: bool
) -> None:
    """The subject formats are the ones GitHub documents for its OIDC tokens."""
    stacks = dict(rendered_stacks(baked_matrix[matrix_id(GITHUB_ROW)]))
    build = stacks["build-pipeline.yaml"]
    trust = build.resolve(build.resources["GitHubActionsRole"]["Properties"])[
        "AssumeRolePolicyDocument"
    ]
    claims = {
        "token.actions.githubusercontent.com:sub": subject,
        "token.actions.githubusercontent.com:aud": audience,
    }
    assert iam.trust_admits(trust, "sts:AssumeRoleWithWebIdentity", claims) is admitted


def test_only_the_main_branch_job_assumes_the_build_role(baked_matrix: dict[str, Path]) -> None:
    """It runs in the environment the build role trusts, so its token carries that subject."""
    workflow = load_yaml(
        baked_matrix[matrix_id(GITHUB_ROW)] / ".github" / "workflows" / "build.yml"
    )
    assuming = {
        name: job
        for name, job in workflow["jobs"].items()
        if any("configure-aws-credentials" in str(step.get("uses")) for step in job["steps"])
    }
    assert list(assuming) == ["start-pipeline"]
    job = assuming["start-pipeline"]
    assert job["if"] == "github.ref == 'refs/heads/main'"
    build = load_yaml(
        baked_matrix[matrix_id(GITHUB_ROW)] / "infrastructure" / "build-pipeline.yaml"
    )
    assert job["environment"] == build["Parameters"]["GitHubEnvironment"]["Default"]
    assert job["permissions"]["id-token"] == "write"
    assert workflow["permissions"] == {"contents": "read"}


USE_ROLE = (
    f"arn:aws:iam::{iam.ACCOUNT}:role/service-role/AmazonSageMakerServiceCatalogProductsUseRole"
)


def test_a_given_execution_role_replaces_the_project_role_everywhere(
    baked_matrix: dict[str, Path],
) -> None:
    """Foundation creates no role; the stacks that pass the role are scoped to the given one."""
    infrastructure = baked_matrix[matrix_id(MATRIX[0])] / "infrastructure"
    foundation = iam.Stack(
        load_yaml(infrastructure / "foundation.yaml"),
        "tumour-foundation",
        {"ExecutionRoleArn": USE_ROLE},
    )
    assert "SageMakerExecutionRole" not in dict(foundation.active())
    exports = foundation.outputs()
    assert exports["tumour-sagemaker-role-arn"] == USE_ROLE
    deploy = iam.Stack(
        load_yaml(infrastructure / "deploy-pipeline.yaml"), "tumour-deploy", {}, exports
    )
    documents = iam.role_documents(deploy, "CloudFormationRole")
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert iam.allows(documents, "iam:PassRole", USE_ROLE, to_sagemaker)
    created = f"arn:aws:iam::{iam.ACCOUNT}:role/tumour-sagemaker-execution"
    assert not iam.allows(documents, "iam:PassRole", created, to_sagemaker)


# CodePipeline passes the stack's role to CloudFormation.
TO_CLOUDFORMATION = {"iam:PassedToService": "cloudformation.amazonaws.com"}
# What CodePipeline's CloudFormation deploy action calls for each ActionMode (CodePipeline
# action reference, CloudFormation deploy action: a failed stack is deleted before REPLACE).
STACK_CALLS = {
    "CREATE_UPDATE": ["CreateStack", "UpdateStack", "DescribeStacks"],
    "REPLACE_ON_FAILURE": ["CreateStack", "UpdateStack", "DeleteStack", "DescribeStacks"],
    "DELETE_ONLY": ["DeleteStack", "DescribeStacks"],
}


@pytest.mark.parametrize("extra", MATRIX, ids=matrix_id)
def test_deploy_pipeline_role_can_run_its_cloudformation_actions(
    baked_matrix: dict[str, Path], extra: dict[str, str]
) -> None:
    deploy = dict(rendered_stacks(baked_matrix[matrix_id(extra)]))["deploy-pipeline.yaml"]
    pipeline = deploy.resolve(deploy.resources["Pipeline"]["Properties"])
    role = iam.role_documents(deploy, "PipelineRole")
    actions = [
        action
        for stage in pipeline["Stages"]
        for action in stage["Actions"]
        if action["ActionTypeId"]["Provider"] == "CloudFormation"
    ]
    assert actions
    for action in actions:
        configuration = action["Configuration"]
        stack = (
            f"arn:aws:cloudformation:{iam.REGION}:{iam.ACCOUNT}:stack/"
            f"{configuration['StackName']}/0a1b2c3d"
        )
        for call in STACK_CALLS[configuration["ActionMode"]]:
            assert iam.allows(role, f"cloudformation:{call}", stack), (action["Name"], call)
        assert iam.allows(role, "iam:PassRole", configuration["RoleArn"], TO_CLOUDFORMATION), (
            action["Name"]
        )


TRACKING_SERVERS = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:mlflow-tracking-server"
ORG_TRACKING_SERVER = f"{TRACKING_SERVERS}/org-shared"
OTHER_TRACKING_SERVER = f"{TRACKING_SERVERS}/other"
MLFLOW_PRIVILEGES = sorted(
    f"sagemaker-mlflow:{privilege['privilege']}"
    for service in iam.parliament.iam_definition
    if service["prefix"] == "sagemaker-mlflow"
    for privilege in service["privileges"]
)


def _foundation(project: Path, parameters: dict[str, str]) -> iam.Stack:
    template = load_yaml(project / "infrastructure" / "foundation.yaml")
    return iam.Stack(template, "tumour-foundation", parameters)


@pytest.mark.parametrize(
    ("parameters", "server"),
    [
        (
            {"CreateMlflowTrackingServer": "true"},
            f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:mlflow-tracking-server/tumour",
        ),
        ({"MlflowTrackingServerArn": ORG_TRACKING_SERVER}, ORG_TRACKING_SERVER),
        (
            {"MlflowTrackingServerArn": ORG_TRACKING_SERVER, "CreateMlflowTrackingServer": "true"},
            ORG_TRACKING_SERVER,
        ),
    ],
    ids=["created", "organisation's", "given-wins-over-create"],
)
def test_execution_role_may_log_runs_to_the_tracking_server_and_no_other(
    baked_matrix: dict[str, Path], parameters: dict[str, str], server: str
) -> None:
    """The jobs log runs to the project's tracking server; parliament finds nothing in the grant.

    Which MLflow calls a run makes is recorded in the rendered suite (tests/test_tracking.py);
    here: the grant is scoped to the one server, and exported for the build.
    """
    foundation = _foundation(baked_matrix[matrix_id(MATRIX[0])], parameters)
    assert parliament_findings([("foundation.yaml", foundation)]) == []
    assert foundation.outputs()["tumour-mlflow-tracking-server-arn"] == server
    created = dict(foundation.active())
    assert ("MlflowTrackingServer" in created) is (server != ORG_TRACKING_SERVER)
    role = iam.role_documents(foundation, "SageMakerExecutionRole")
    granted = [action for action in MLFLOW_PRIVILEGES if iam.allows(role, action, server)]
    assert "sagemaker-mlflow:CreateRun" in granted and "sagemaker-mlflow:LogBatch" in granted
    assert "sagemaker-mlflow:DeleteExperiment" not in granted  # runs are logged, never removed
    assert not any(iam.allows(role, action, OTHER_TRACKING_SERVER) for action in granted)


def test_no_tracking_server_means_no_mlflow_grant_and_none_exported(
    baked_matrix: dict[str, Path],
) -> None:
    foundation = _foundation(baked_matrix[matrix_id(MATRIX[0])], {})
    assert foundation.outputs()["tumour-mlflow-tracking-server-arn"] == "none"
    assert not {"MlflowTrackingServer", "MlflowTrackingServerRole"} & set(dict(foundation.active()))
    role = iam.role_documents(foundation, "SageMakerExecutionRole")
    assert not any(iam.allows_on_some_resource(role, action) for action in MLFLOW_PRIVILEGES)


def test_the_monitoring_job_publishes_into_the_project_namespace_only(
    baked_matrix: dict[str, Path],
) -> None:
    """The monitoring job's role, in one account (the execution role) and in accounts of their
    own (the target account's model role), may put metrics into the namespace the job publishes
    to and the alarms watch (the rendered ``drift_alarms.namespace``), and into no other."""
    project = baked_matrix[matrix_id(MATRIX[0])]
    with rendered_pipelines(project):
        namespace = importlib.import_module("pipelines.drift_alarms").namespace("tumour")
    stacks = dict(rendered_stacks(project))
    roles = {
        "one account": iam.role_documents(stacks["foundation.yaml"], "SageMakerExecutionRole"),
        "own accounts": iam.role_documents(stacks["target-account.yaml"], "ModelExecutionRole"),
    }
    for layout, role in roles.items():
        published = {"cloudwatch:namespace": namespace}
        assert iam.allows_in_context(role, "cloudwatch:PutMetricData", "*", published), layout
        for other in ("AWS/SageMaker", "other/monitoring", f"{namespace}-copy"):
            context = {"cloudwatch:namespace": other}
            assert not iam.allows_in_context(role, "cloudwatch:PutMetricData", "*", context), (
                layout,
                other,
            )
