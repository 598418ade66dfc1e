"""What the rendered CloudFormation grants, resolved to concrete ARNs, and what AWS says it needs.

Three sources, none of them the templates under test:

* the CloudFormation resource schemas bundled in cfn-lint (``handlers.create/update/delete.
  permissions``: the calls CloudFormation makes for each resource type),
* parliament's copy of the IAM Service Authorization Reference (which resource types each action
  can be scoped to; an action with none needs ``Resource: "*"``),
* tests/iam_policy.py, the one policy evaluator (AWS's documented evaluation logic: explicit
  Deny, Allow, boundaries, resource policies across accounts, conditions), applied to the
  policies the templates define, after resolving their intrinsics with sample parameter values.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cfnlint

with warnings.catch_warnings():  # parliament imports pkg_resources, deprecated by setuptools
    warnings.simplefilter("ignore")
    import parliament

from . import iam_policy as policy

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"

# A value for every parameter the templates declare without a default.
SAMPLE_PARAMETERS: dict[str, Any] = {
    "SageMakerProjectName": "tumour",
    "SageMakerProjectId": "p-abc123def456",
    "RepositoryName": "tumour-repo",
    "RepositoryFullName": "example-org/tumour",
    "CodeConnectionArn": f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/0a1b2c3d",
    "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/tumour/1",
    "ChallengerPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/tumour/2",
    "ChampionVariant": "champion",
    "ChallengerVariant": "challenger",
    "ModelExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/tumour-sagemaker-execution",
    "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}",
    "DataCaptureUri": "s3://bucket/tumour/capture",
    "MonitoringOutputUri": "s3://bucket/tumour/monitoring",
    "GroundTruthUri": "s3://bucket/tumour/ground-truth",
    "QualityMetric": "f1",
    "QualityThreshold": 0.8,
    "QualityAlarmComparison": "LessThanThreshold",
    "StageName": "prod",
    # the batch stage stack (inference_mode=batch)
    "BatchDataUri": "s3://bucket/tumour/batch/prod",
    "BatchSchedule": "cron(0 2 * * ? *)",
    "BatchScheduleState": "ENABLED",
    "TransformInstanceCount": "2",
    "MaxPayloadInMB": "6",
    "MaxConcurrentTransforms": "2",
    "PipelineDefinitionBucket": "tumour-artifacts",
    "PipelineDefinitionKey": "tumour/batch/definitions/0123abcd.json",
    "MonitorPipelineDefinitionKey": "tumour/monitoring/definitions/4567cdef.json",
    "ModelDataUri": "s3://bucket/tumour/pipeline/run-1/model.tar.gz",
    # infrastructure/target-account.yaml, resolved (by tests/test_permissions.py) in this account
    "BuildAccountId": "210987654321",
    "ArtifactBucketName": "tumour-artifacts",
    "BuildKmsKeyArn": f"arn:aws:kms:{REGION}:210987654321:key/{KEY_ID}",
}

SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"


@functools.cache
def _schema_index(region: str = REGION) -> dict[str, str]:
    index: dict[str, str] = json.loads((SCHEMAS / "providers" / f"{region}.json").read_text())
    return index


@functools.cache
def handler_permissions(resource_type: str) -> dict[str, tuple[str, ...]]:
    """The schema's create/update/delete permissions of a resource type (AWS's own list)."""
    schema = json.loads(
        (SCHEMAS / "resources" / f"{_schema_index()[resource_type]}.json").read_text()
    )
    handlers = schema.get("handlers", {})
    return {
        name: tuple(handlers[name].get("permissions", []))
        for name in ("create", "update", "delete")
        if name in handlers
    }


@functools.cache
def _privilege(action: str) -> dict[str, Any] | None:
    prefix, name = action.split(":", 1)
    for service in parliament.iam_definition:
        if service["prefix"] == prefix.lower():
            for privilege in service["privileges"]:
                if privilege["privilege"].lower() == name.lower():
                    return dict(privilege)
    return None


def resource_types_of(action: str) -> list[str]:
    """Resource types an action can be scoped to (Service Authorization Reference), '' dropped."""
    privilege = _privilege(action)
    if privilege is None:
        raise KeyError(f"{action} is not in the IAM Service Authorization data")
    return [
        r["resource_type"].rstrip("*") for r in privilege["resource_types"] if r["resource_type"]
    ]


def required_resource_types(action: str) -> set[str]:
    """Resource types the Service Authorization Reference marks required (``*``) for an action:
    the request is authorized on a resource of each of them."""
    privilege = _privilege(action) or {"resource_types": []}
    return {
        r["resource_type"].rstrip("*")
        for r in privilege["resource_types"]
        if r["resource_type"].endswith("*")
    }


def dependent_actions(action: str) -> set[str]:
    """Actions the Service Authorization Reference says the action also needs (its dependent
    actions column), e.g. sagemaker:AddTags for a Create call that carries Tags."""
    privilege = _privilege(action) or {"resource_types": []}
    return {d for r in privilege["resource_types"] for d in r.get("dependent_actions") or []}


@functools.cache
def resource_type_of(arn: str, service: str) -> str | None:
    for match in parliament.get_resource_type_matches_from_arn(arn):
        if match["service"]["prefix"] == service:
            return str(match["resource"]["resource"])
    return None


@functools.cache
def supports_resource_level(action: str) -> bool:
    return bool(resource_types_of(action))


def expand(action_glob: str) -> list[str]:
    """All actions an Action entry (possibly with wildcards) names, per the authorization data."""
    return [f"{a['service']}:{a['action']}" for a in parliament.expand_action(action_glob)]


@functools.cache
def action_can_target(action: str, arn: str) -> bool:
    """Whether ``arn`` is of a resource type the action can be scoped to."""
    wanted = set(resource_types_of(action))
    for match in parliament.get_resource_type_matches_from_arn(arn):
        if (
            match["resource"]["resource"] in wanted
            and match["service"]["prefix"] == action.split(":")[0]
        ):
            return True
    return False


# --- resolving a template ---------------------------------------------------------------------


def _arn_of(resource_type: str, name: str, account: str = ACCOUNT) -> str:
    """The ARN CloudFormation's GetAtt ...Arn returns for a resource of this type and name."""
    formats = {
        "AWS::IAM::Role": f"arn:aws:iam::{account}:role/{name}",
        "AWS::IAM::OIDCProvider": f"arn:aws:iam::{account}:oidc-provider/{name}",
        "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{account}:key/{KEY_ID}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{account}:log-group:{name}:*",
        "AWS::CodeBuild::Project": f"arn:aws:codebuild:{REGION}:{account}:project/{name}",
        "AWS::CodeCommit::Repository": f"arn:aws:codecommit:{REGION}:{account}:{name}",
        "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}",
        "AWS::CloudWatch::CompositeAlarm": f"arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}",
        "AWS::Events::Rule": f"arn:aws:events:{REGION}:{account}:rule/{name}",
        "AWS::SageMaker::Model": f"arn:aws:sagemaker:{REGION}:{account}:model/{name}",
        "AWS::SageMaker::EndpointConfig": (
            f"arn:aws:sagemaker:{REGION}:{account}:endpoint-config/{name}"
        ),
        "AWS::SageMaker::Endpoint": f"arn:aws:sagemaker:{REGION}:{account}:endpoint/{name}",
        "AWS::SageMaker::MonitoringSchedule": (
            f"arn:aws:sagemaker:{REGION}:{account}:monitoring-schedule/{name}"
        ),
        "AWS::SageMaker::DataQualityJobDefinition": (
            f"arn:aws:sagemaker:{REGION}:{account}:data-quality-job-definition/{name}"
        ),
        "AWS::SageMaker::ModelQualityJobDefinition": (
            f"arn:aws:sagemaker:{REGION}:{account}:model-quality-job-definition/{name}"
        ),
        "AWS::SageMaker::ModelPackageGroup": (
            f"arn:aws:sagemaker:{REGION}:{account}:model-package-group/{name}"
        ),
        "AWS::ApplicationAutoScaling::ScalableTarget": (
            f"arn:aws:application-autoscaling:{REGION}:{account}:scalable-target/0a1b2c3d4e5f"
        ),
        # Scaling policies are authorized on the scalable target they belong to.
        "AWS::ApplicationAutoScaling::ScalingPolicy": (
            f"arn:aws:application-autoscaling:{REGION}:{account}:scalable-target/0a1b2c3d4e5f"
        ),
        "AWS::CodePipeline::Pipeline": f"arn:aws:codepipeline:{REGION}:{account}:{name}",
        "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{account}:{name}",
        "AWS::SageMaker::Pipeline": f"arn:aws:sagemaker:{REGION}:{account}:pipeline/{name}",
        "AWS::Scheduler::Schedule": f"arn:aws:scheduler:{REGION}:{account}:schedule/default/{name}",
        "AWS::SageMaker::MlflowTrackingServer": (
            f"arn:aws:sagemaker:{REGION}:{account}:mlflow-tracking-server/{name}"
        ),
    }
    if resource_type not in formats:
        raise KeyError(f"no ARN format modelled for {resource_type}; add it to _arn_of")
    return formats[resource_type]


# The property holding the physical name of each type; without it CloudFormation generates
# "<stack>-<LogicalId>-<random>".
NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CodeBuild::Project": "Name",
    "AWS::CodeCommit::Repository": "RepositoryName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::Events::Rule": "Name",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::Pipeline": "PipelineName",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::SageMaker::MonitoringSchedule": "MonitoringScheduleName",
    "AWS::SageMaker::DataQualityJobDefinition": "JobDefinitionName",
    "AWS::SageMaker::ModelQualityJobDefinition": "JobDefinitionName",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::CodePipeline::Pipeline": "Name",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SageMaker::MlflowTrackingServer": "TrackingServerName",
}

NO_VALUE = object()


@dataclass
class Stack:
    """A template with its intrinsics resolved for one set of parameter values."""

    template: Mapping[str, Any]
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    imports: Mapping[str, Any] = field(default_factory=dict)
    account: str = ACCOUNT  # the account the stack is deployed in
    # Buckets of other stacks this stack's resources read from, by name, with the KMS key of
    # their default encryption (S3 decrypts an SSE-KMS object with the reader's credentials).
    bucket_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = {  # a template's own default wins; samples fill what has none
            key: spec["Default"]
            for key, spec in self.template.get("Parameters", {}).items()
            if "Default" in spec
        }
        for key, sample in SAMPLE_PARAMETERS.items():
            values.setdefault(key, sample)
        declared = set(self.template.get("Parameters", {}))
        self.values = {k: v for k, v in values.items() if k in declared} | self.parameters
        for key, spec in self.template.get("Parameters", {}).items():
            # CloudFormation's Ref of a CommaDelimitedList given as text is its list of items
            if spec.get("Type") == "CommaDelimitedList" and isinstance(self.values.get(key), str):
                self.values[key] = self.values[key].split(",")
        missing = declared - set(self.values)
        if missing:
            raise KeyError(f"no sample value for parameters {sorted(missing)}")

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template.get("Resources", {}))

    def active(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Resources whose Condition holds for these parameters."""
        for logical, resource in self.resources.items():
            condition = resource.get("Condition")
            if condition is None or self.condition(condition):
                yield logical, resource

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def physical_name(self, logical: str) -> str:
        resource = self.resources[logical]
        if resource["Type"] == "AWS::IAM::OIDCProvider":  # named after its issuer
            return str(self.resolve(resource["Properties"]["Url"])).removeprefix("https://")
        prop = NAME_PROPERTY.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            name = self.resolve(resource["Properties"][prop])
            if name is not NO_VALUE:  # an !If that leaves the name to CloudFormation
                return str(name)
        return f"{self.name}-{logical}-ABCDEF123456"

    def arn(self, logical: str) -> str:
        return _arn_of(self.resources[logical]["Type"], self.physical_name(logical), self.account)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": REGION,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.values:
            return self.values[name]
        resource = self.resources[name]
        kind = resource["Type"]
        if kind == "AWS::KMS::Key":
            return KEY_ID
        if kind in ("AWS::Events::Rule", "AWS::CodeConnections::Connection", "AWS::SNS::Topic"):
            return self.arn(name) if kind != "AWS::Events::Rule" else self.physical_name(name)
        if kind == "AWS::IAM::OIDCProvider":
            return self.getatt(name, "Arn")
        return self.physical_name(name)

    def getatt(self, logical: str, attribute: str) -> Any:
        kind = self.resources[logical]["Type"]
        if attribute == "Arn" or attribute.endswith("Arn"):
            return self.arn(logical)
        if attribute in (
            "ModelName",
            "EndpointConfigName",
            "EndpointName",
            "JobDefinitionName",
            "MonitoringScheduleName",
            "Name",
        ):
            return self.physical_name(logical)
        if kind == "AWS::IAM::Role" and attribute == "RoleId":
            return "AROAEXAMPLE"
        raise KeyError(f"GetAtt {logical}.{attribute} is not modelled")

    def _sub(self, text: str, local: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in local:
                return str(local[token])
            if "." in token:
                logical, attribute = token.split(".", 1)
                return str(self.getatt(logical, attribute))
            return str(self.ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            name = key.removeprefix("Fn::")
            if key == "Ref":
                return self.ref(value)
            if name == "GetAtt":
                logical, attribute = value.split(".", 1) if isinstance(value, str) else value
                return self.getatt(logical, attribute)
            if name == "Sub":
                if isinstance(value, str):
                    return self._sub(value, {})
                text, local = value
                return self._sub(text, {k: self.resolve(v) for k, v in local.items()})
            if name == "ImportValue":
                return self.imports[self.resolve(value)]
            if name == "If":
                condition, then, otherwise = value
                return self.resolve(then if self.condition(condition) else otherwise)
            if name == "Join":
                separator, items = value
                return separator.join(str(i) for i in self.resolve(items))
            if name == "Equals":
                left, right = self.resolve(value)
                return left == right
            if name == "Not":
                return not self.resolve(value[0])
            if name == "And":
                return all(self.resolve(value))
            if name == "Or":
                return any(self.resolve(value))
            if key == "Condition":
                return self.condition(value)
            if name == "Select":
                index, items = value
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Split":
                separator, text = value
                return str(self.resolve(text)).split(separator)
            if name == "FindInMap":
                mapping, first, second = (self.resolve(v) for v in value)
                return self.template["Mappings"][mapping][first][second]
            if name == "GetAZs":
                return [f"{REGION}a", f"{REGION}b"]
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def outputs(self) -> dict[str, Any]:
        """Export name -> value, for the stacks that import them."""
        exported = {}
        for output in self.template.get("Outputs", {}).values():
            if "Export" in output:
                exported[self.resolve(output["Export"]["Name"])] = self.resolve(output["Value"])
        return exported


@dataclass(frozen=True)
class PolicyDocument:
    where: str  # "<file>:<LogicalId>[:<policy name>]"
    kind: str  # identity | resource | trust
    document: dict[str, Any]


def policy_documents(stack: Stack, label: str) -> Iterator[PolicyDocument]:
    """Every policy document a stack defines, resolved."""
    for logical, resource in stack.active():
        kind = resource["Type"]
        properties = resource.get("Properties", {})
        where = f"{label}:{logical}"
        if kind == "AWS::IAM::Role":
            yield PolicyDocument(
                where + ":trust", "trust", stack.resolve(properties["AssumeRolePolicyDocument"])
            )
            for policy in properties.get("Policies", []):
                yield PolicyDocument(
                    f"{where}:{policy['PolicyName']}",
                    "identity",
                    stack.resolve(policy["PolicyDocument"]),
                )
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield PolicyDocument(where, "identity", stack.resolve(properties["PolicyDocument"]))
        elif kind == "AWS::S3::BucketPolicy":
            yield PolicyDocument(where, "resource", stack.resolve(properties["PolicyDocument"]))
        elif kind == "AWS::KMS::Key":
            yield PolicyDocument(where, "resource", stack.resolve(properties["KeyPolicy"]))
        elif kind == "AWS::SageMaker::ModelPackageGroup":
            policy = stack.resolve(properties).get("ModelPackageGroupPolicy")
            if policy:
                yield PolicyDocument(where, "resource", policy)
        elif kind == "AWS::Events::EventBusPolicy":
            document = {"Version": "2012-10-17", "Statement": [properties["Statement"]]}
            yield PolicyDocument(where, "resource", stack.resolve(document))


def _as_list(value: Any) -> list[Any]:
    return policy.as_list(value)


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return policy.statements(document)


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    return policy.glob(pattern, value, case=case)


def _caller_owning(arn: str) -> str:
    """A role of the account that owns ``arn``: the identity side of a request decided alone
    (the resource policy's side of a cross-account request is checked by its own tests)."""
    return f"arn:aws:iam::{policy.account_of(arn) or ACCOUNT}:role/caller"


def allows(
    documents: list[dict[str, Any]], action: str, arn: str, context: Mapping[str, Any] | None = None
) -> bool:
    """Whether identity policies allow ``action`` on ``arn`` (tests/iam_policy.py decides;
    conditions against ``context``, by default the request carries no condition keys beyond
    the caller's)."""
    request = policy.Request(_caller_owning(arn), action, arn, dict(context or {}))
    return policy.decide(request, documents) is policy.Decision.ALLOW


def allows_on_some_resource(documents: list[dict[str, Any]], action: str) -> bool:
    return any(
        statement.get("Effect") == "Allow"
        and any(policy.action_matches(a, action) for a in _as_list(statement.get("Action", [])))
        for document in documents
        for statement in statements(document)
    )


def role_documents(stack: Stack, logical: str) -> list[dict[str, Any]]:
    properties = stack.resources[logical]["Properties"]
    return [stack.resolve(p["PolicyDocument"]) for p in properties.get("Policies", [])]


def arns_in(value: Any, service: str) -> set[str]:
    """ARNs of a service mentioned anywhere in a resolved property tree."""
    found: set[str] = set()
    if isinstance(value, str):
        if value.startswith(f"arn:aws:{service}:"):
            found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            found |= arns_in(item, service)
    elif isinstance(value, list):
        for item in value:
            found |= arns_in(item, service)
    return found


def s3_objects_in(value: Any) -> set[str]:
    """ARNs of the S3 objects a resolved property tree names by ``{Bucket, Key}``."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("Bucket"), str) and isinstance(value.get("Key"), str):
            found.add(f"arn:aws:s3:::{value['Bucket']}/{value['Key']}")
        for item in value.values():
            found |= s3_objects_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= s3_objects_in(item)
    return found


def encrypted_buckets(stack: Stack) -> dict[str, str]:
    """Name -> KMS key ARN of each bucket of a stack whose default encryption is SSE-KMS."""
    found = {}
    for logical, resource in stack.active():
        if resource["Type"] != "AWS::S3::Bucket":
            continue
        encryption = stack.resolve(resource["Properties"]).get("BucketEncryption", {})
        for rule in encryption.get("ServerSideEncryptionConfiguration", []):
            default = rule.get("ServerSideEncryptionByDefault", {})
            if default.get("SSEAlgorithm") == "aws:kms" and "KMSMasterKeyID" in default:
                found[stack.physical_name(logical)] = str(default["KMSMasterKeyID"])
    return found


def conditions_hold(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """A Condition block against a request context (tests/iam_policy.py's operators)."""
    return policy.conditions_hold(condition, policy.context_keys(context))


def allows_in_context(
    documents: list[dict[str, Any]], action: str, arn: str, context: Mapping[str, Any]
) -> bool:
    """:func:`allows` with each statement's conditions evaluated against the request's keys."""
    return allows(documents, action, arn, context)


def trust_admits(document: Mapping[str, Any], action: str, context: Mapping[str, Any]) -> bool:
    """Whether a trust policy (the role's resource policy) lets a caller with these request keys
    perform ``action``: the caller is ``aws:PrincipalArn``, or for a web identity the OIDC
    provider of the token's issuer (the prefix of its claim keys)."""
    caller = context.get("aws:PrincipalArn")
    if caller is None:
        issuers = {key.split(":", 1)[0] for key in context if not key.startswith("aws:")}
        (issuer,) = issuers
        caller = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"
    # Decided as a request from another account whose own policies allow it: the trust policy
    # alone then decides (a statement naming the caller's account admits it, as AWS does).
    elsewhere = "000000000000" if policy.account_of(str(caller)) != "000000000000" else ACCOUNT
    request = policy.Request(
        str(caller), action, f"arn:aws:iam::{elsewhere}:role/trusting", context
    )
    anything = {"Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
    return policy.decide(request, [anything], document) is policy.Decision.ALLOW
