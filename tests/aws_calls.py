"""The AWS calls the running system makes, per caller, as data in one place, from AWS's pages.

Each :class:`Call` is an IAM action, the ARN it is authorized on and the condition keys AWS sets
on it, with ``{placeholders}`` a test fills from the resolved stacks (``{partition}``,
``{region}``, ``{account}``, ``{project}``, ``{bucket}``, ``{data_bucket}``, ``{key}``,
``{role}``, ``{server}``, ``{group}``). tests/test_aws_calls.py decides each with
tests/iam_policy.py against the caller's rendered policies and the key's and bucket's policies.

Pages (AWS documentation):

* PIPELINES: SageMaker developer guide, "IAM Access Management" for Pipelines
  (sagemaker/latest/dg/build-and-manage-access.html): the pipeline execution role needs
  iam:PassRole for the role each job gets, Create and Describe for each job type of its steps,
  and s3:GetObject for ``JsonGet``.
* API_PERMISSIONS: SageMaker developer guide, "SageMaker AI API Permissions: Actions,
  Permissions, and Resources Reference" (api-permissions-reference.html) with the Service
  Authorization Reference (parliament's copy): the resource each call is authorized on, and
  sagemaker:AddTags as the dependent action of a Create call that carries Tags.
* ROLES: SageMaker developer guide, "How to use SageMaker AI execution roles"
  (sagemaker-roles.html), "CreateProcessingJob/CreateTrainingJob/CreateTransformJob API:
  Execution Role Permissions": the job's role reads its S3 inputs, writes its outputs, writes
  its logs to /aws/sagemaker/<JobType>, and uses the KMS keys named in the request.
* SSE_KMS: Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)":
  writing an object to a bucket whose default encryption is SSE-KMS calls
  kms:GenerateDataKey, reading one kms:Decrypt, with the caller's credentials, through S3
  (``kms:ViaService`` = ``s3.<region>.amazonaws.com``).
* LOGS_KMS: Amazon CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS
  Key Management Service" (encrypt-log-data-kms.html): the key policy must allow the service
  principal ``logs.<region>.amazonaws.com`` kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*,
  kms:GenerateDataKey* (and kms:Describe*, which the statement's condition never admits: no
  Describe request carries an encryption context), with ``kms:EncryptionContext:aws:logs:arn``
  the log group's ARN.
* ENDPOINT_KMS: SageMaker API reference, CreateEndpointConfig ``KmsKeyId``: the caller needs
  kms:CreateGrant (and kms:DescribeKey) on the key; SageMaker creates the grant for the
  instances' storage volumes through SageMaker (``kms:ViaService``), for an AWS resource
  (``kms:GrantIsForAWSResource``).
* CODEBUILD_KMS: AWS CodeBuild User Guide, "Data encryption" / project EncryptionKey: CodeBuild
  encrypts the build output artifacts with the key as the build's service role, through S3.
* CODEPIPELINE_KMS: AWS CodePipeline User Guide, "Configure server-side encryption for
  artifacts stored in Amazon S3 for CodePipeline": the pipeline's service role encrypts and
  decrypts artifacts with the artifact store's key, through S3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PIPELINES = "https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-access.html"
API_PERMISSIONS = "https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html"
ROLES = "https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html"
SSE_KMS = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html"
LOGS_KMS = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html"
CODEBUILD_KMS = "https://docs.aws.amazon.com/codebuild/latest/userguide/security-encryption.html"
CODEPIPELINE_KMS = (
    "https://docs.aws.amazon.com/codepipeline/latest/userguide/S3-artifact-encryption.html"
)
ENDPOINT_KMS = (
    "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html"
)
ACCESS_LOGS = (
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html"
)

SAGEMAKER = "arn:{partition}:sagemaker:{region}:{account}"
VIA_S3 = {"kms:ViaService": "s3.{region}.amazonaws.com"}
TO_SAGEMAKER = {"iam:PassedToService": "sagemaker.amazonaws.com"}
PENDING_APPROVAL = {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
# The project's tags on every job and pipeline (pipelines/settings.py load_settings, with the
# SAGEMAKER_PROJECT_NAME the build and deploy builds set).
PROJECT_TAG = {"aws:RequestTag/sagemaker:project-name": "{project}"}
PROJECT_RESOURCE = {"aws:ResourceTag/sagemaker:project-name": "{project}"}


@dataclass(frozen=True)
class Call:
    action: str
    resource: str  # ARN pattern
    source: str  # the AWS page that says the caller makes it
    context: Mapping[str, str] = field(default_factory=dict)

    def concrete(self, values: Mapping[str, str]) -> tuple[str, str, dict[str, str]]:
        return (
            self.action,
            self.resource.format(**values),
            {key: value.format(**values) for key, value in self.context.items()},
        )


def _job(kind: str, name: str, tagged: bool = True) -> list[Call]:
    """Create (with its tags), Describe and Stop of one job type, as a pipeline step does."""
    arn = f"{SAGEMAKER}:{kind}/{name}"
    calls = [
        Call(f"sagemaker:Create{_TITLE[kind]}", arn, PIPELINES, PROJECT_TAG if tagged else {}),
        Call(f"sagemaker:Describe{_TITLE[kind]}", arn, PIPELINES, PROJECT_RESOURCE),
        Call(f"sagemaker:Stop{_TITLE[kind]}", arn, API_PERMISSIONS, PROJECT_RESOURCE),
    ]
    if tagged:
        calls.append(Call("sagemaker:AddTags", arn, API_PERMISSIONS, PROJECT_TAG))
    return calls


_TITLE = {
    "processing-job": "ProcessingJob",
    "training-job": "TrainingJob",
    "transform-job": "TransformJob",
}

# What SageMaker Pipelines calls as the pipeline's role for each step type of the definitions
# (pipelines/pipeline.py: Processing, Training, RegisterModel; pipelines/batch.py: Transform
# with a JsonGet of the input pointer). Job names are SageMaker's (pipelines-<execution>-...).
PIPELINE_STEPS: dict[str, list[Call]] = {
    "Processing": [
        *_job("processing-job", "pipelines-0a1b2c3d4e5f-prepare-x1y2z3"),
        Call("iam:PassRole", "{role}", PIPELINES, TO_SAGEMAKER),
    ],
    "Training": [
        *_job("training-job", "pipelines-0a1b2c3d4e5f-train-x1y2z3"),
        Call("iam:PassRole", "{role}", PIPELINES, TO_SAGEMAKER),
    ],
    # The step registers with the definition's ModelApprovalStatus parameter, whose default (and
    # the only value the role's condition admits) is PendingManualApproval.
    "RegisterModel": [
        Call(
            "sagemaker:CreateModelPackage",
            f"{SAGEMAKER}:model-package/{{group}}/3",
            PIPELINES,
            PENDING_APPROVAL,
        ),
        Call(
            "sagemaker:CreateModelPackage",
            f"{SAGEMAKER}:model-package-group/{{group}}",
            PIPELINES,
            PENDING_APPROVAL,
        ),
        Call("sagemaker:AddTags", f"{SAGEMAKER}:model-package/{{group}}/3", API_PERMISSIONS),
    ],
    "Transform": _job("transform-job", "pipelines-0a1b2c3d4e5f-batchtransform-x1y2z3"),
    "JsonGet": [
        Call(
            "s3:GetObject",
            "arn:{partition}:s3:::{data_bucket}/{data_prefix}/input/newest.json",
            PIPELINES,
        ),
        Call("kms:Decrypt", "{data_key}", SSE_KMS, VIA_S3),
    ],
}

# Where a training job of the pipeline writes its model: the step's output path
# (pipelines/pipeline.py: <project>/pipeline/<execution id>/model), then SageMaker's
# <job name>/output/model.tar.gz under it (CreateTrainingJob, OutputDataConfig.S3OutputPath).
MODEL_ARTIFACT = (
    "arn:{partition}:s3:::{bucket}/{project}/pipeline/0a1b2c3d4e5f/model"
    "/pipelines-0a1b2c3d4e5f-Train-x1y2z3/output/model.tar.gz"
)

# What each job does as its execution role (the same role in this project): its inputs and
# outputs under the project's prefix of the artifact bucket, their key through S3, its logs.
# The object a DVC 3 remote (.dvc/config: s3://<bucket>/<project>/dvc) keeps a file under: its
# MD5, split after two hex digits (dvc_data's HashFileDB.oid_to_path under files/md5).
DVC_OBJECT = (
    "arn:{partition}:s3:::{bucket}/{project}/dvc/files/md5/de/971c087c3c1ca0d4d74f726d4c5b81"
)

JOB_CALLS: list[Call] = [
    Call("s3:GetObject", "arn:{partition}:s3:::{bucket}/{project}/data/processed/train.csv", ROLES),
    Call("s3:GetObject", DVC_OBJECT, ROLES),  # the prepare step's input: the tracked data
    Call("s3:PutObject", MODEL_ARTIFACT, ROLES),
    Call("s3:ListBucket", "arn:{partition}:s3:::{bucket}", ROLES),
    Call("kms:Decrypt", "{key}", SSE_KMS, VIA_S3),
    Call("kms:GenerateDataKey", "{key}", SSE_KMS, VIA_S3),
    Call(
        "logs:CreateLogStream",
        "arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:log-stream:x",
        ROLES,
    ),
    Call(
        "logs:PutLogEvents",
        "arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/TrainingJobs:log-stream:x",
        ROLES,
    ),
]

# The batch transform job, as the model's role: reads the input prefix, writes predictions and
# captured data in the stage's data bucket, with its key; logs to /aws/sagemaker/TransformJobs.
# What no job may do: change or remove a data version in the DVC remote (only `make push` writes).
JOB_REFUSED_CALLS: list[Call] = [
    Call("s3:PutObject", DVC_OBJECT, ROLES),
    Call("s3:DeleteObject", DVC_OBJECT, ROLES),
]

TRANSFORM_JOB_CALLS: list[Call] = [
    Call(
        "s3:GetObject",
        "arn:{partition}:s3:::{data_bucket}/{data_prefix}/input/2026-01-01/a.csv",
        ROLES,
    ),
    Call("s3:ListBucket", "arn:{partition}:s3:::{data_bucket}", ROLES),
    Call(
        "s3:PutObject",
        "arn:{partition}:s3:::{data_bucket}/{data_prefix}/predictions/x/a.csv.out",
        ROLES,
    ),
    Call("s3:PutObject", "arn:{partition}:s3:::{data_bucket}/{data_prefix}/capture/x.jsonl", ROLES),
    Call("kms:Decrypt", "{data_key}", SSE_KMS, VIA_S3),
    Call("kms:GenerateDataKey", "{data_key}", SSE_KMS, VIA_S3),
    Call(
        "logs:PutLogEvents",
        "arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/TransformJobs:log-stream:x",
        ROLES,
    ),
]

# The model's role reading the approved package's artifact (build account's bucket and key).
MODEL_CALLS: list[Call] = [
    Call("s3:GetObject", MODEL_ARTIFACT, ROLES),
    Call("kms:Decrypt", "{key}", SSE_KMS, VIA_S3),
]

# CloudWatch Logs' calls on the key of an encrypted log group ({log_group}: its ARN without ":*").
LOGS_KEY_CALLS: list[Call] = [
    Call(action, "{key}", LOGS_KMS, {"kms:EncryptionContext:aws:logs:arn": "{log_group}"})
    for action in (
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
    )
]

# A service role's calls on a key that encrypts what it writes and reads through S3.
S3_KEY_CALLS: list[Call] = [
    Call("kms:GenerateDataKey", "{key}", SSE_KMS, VIA_S3),
    Call("kms:Decrypt", "{key}", SSE_KMS, VIA_S3),
]

# What creating an endpoint configuration with a KmsKeyId does with the creator's credentials.
ENDPOINT_KEY_CALLS: list[Call] = [
    Call(
        "kms:DescribeKey",
        "{key}",
        ENDPOINT_KMS,
        {"kms:ViaService": "sagemaker.{region}.amazonaws.com"},
    ),
    Call(
        "kms:CreateGrant",
        "{key}",
        ENDPOINT_KMS,
        {
            "kms:ViaService": "sagemaker.{region}.amazonaws.com",
            "kms:GrantIsForAWSResource": "true",
        },
    ),
]

# CloudWatch User Guide, "Using condition keys to limit access to CloudWatch namespaces": a
# PutMetricData request carries the namespace as ``cloudwatch:namespace``; the action has no
# resource-level permission.
CLOUDWATCH_NAMESPACE = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html"

# Prod's monitoring job (templates/monitoring.j2, pipelines/monitoring.py), a processing job as
# the model's role: reads its code (a processing input SageMaker lists first), the model
# artifact's baseline, the stage's captured requests and ground truth under the stage's data
# prefix, writes its report there, and publishes its metrics into the project's namespace.
MONITORING_JOB_CALLS: list[Call] = [
    Call("s3:ListBucket", "arn:{partition}:s3:::{bucket}", ROLES),
    Call(
        "s3:GetObject",
        "arn:{partition}:s3:::{bucket}/{project}/code/0a1b2c3d/monitor.tar.gz",
        ROLES,
    ),
    Call("s3:GetObject", MODEL_ARTIFACT, ROLES),
    Call(
        "s3:GetObject",
        "arn:{partition}:s3:::{data_bucket}/{data_prefix}/data-capture/prod/x/AllTraffic/2026/01/01/00/a.jsonl",
        ROLES,
    ),
    Call(
        "s3:GetObject",
        "arn:{partition}:s3:::{data_bucket}/{data_prefix}/ground-truth/prod/a.jsonl",
        ROLES,
    ),
    Call(
        "s3:PutObject",
        "arn:{partition}:s3:::{data_bucket}/{data_prefix}/monitoring/prod/report.json",
        ROLES,
    ),
    Call("kms:Decrypt", "{key}", SSE_KMS, VIA_S3),
    Call("kms:Decrypt", "{data_key}", SSE_KMS, VIA_S3),
    Call("kms:GenerateDataKey", "{data_key}", SSE_KMS, VIA_S3),
    Call(
        "cloudwatch:PutMetricData",
        "*",
        CLOUDWATCH_NAMESPACE,
        {"cloudwatch:namespace": "{project}/monitoring"},
    ),
    Call(
        "logs:PutLogEvents",
        "arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:log-stream:x",
        ROLES,
    ),
]

# EventBridge Scheduler User Guide, "Encryption at rest" (encryption-rest.html): a schedule
# encrypted with a customer managed key is decrypted, when it runs, with the credentials of its
# execution role (the target's RoleArn), the schedule's ARN as encryption context; AWS CDK's
# Schedule construct grants exactly that (aws-scheduler/lib/schedule.ts: key.grantDecrypt(
# target role)). Creating the schedule needs no key permission (the CloudFormation resource
# schema's create handler lists none).
SCHEDULER_KMS = "https://docs.aws.amazon.com/scheduler/latest/UserGuide/encryption-rest.html"
SCHEDULE_KEY_CALLS: list[Call] = [
    Call(
        "kms:Decrypt",
        "{key}",
        SCHEDULER_KMS,
        {"kms:EncryptionContext:aws:scheduler:schedule-arn": "{schedule}"},
    )
]

# SageMaker API reference: DataCaptureConfig ``KmsKeyId`` is the key "SageMaker AI uses to encrypt
# the captured data at rest using Amazon S3 server-side encryption"; for a model's S3 output
# (TransformOutput ``KmsKeyId``) "the KMS key policy must grant permission to the IAM role that
# you specify in your CreateModel request", and OutputDataConfig ``KmsKeyId``: "the SageMaker
# execution role must include permissions to call kms:Encrypt". So the model's role encrypts
# the captured requests: kms:Encrypt, and kms:GenerateDataKey through S3 (SSE_KMS).
CAPTURE_KMS = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataCaptureConfig.html"
TRANSFORM_OUTPUT_KMS = (
    "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformOutput.html"
)
CAPTURE_KEY_CALLS: list[Call] = [
    Call("kms:Encrypt", "{key}", TRANSFORM_OUTPUT_KMS),
    Call("kms:GenerateDataKey", "{key}", CAPTURE_KMS, VIA_S3),
]

# The organisation's key (standards ``kms_key_arn``), which the pipeline definitions name as the
# jobs' VolumeKmsKeyId and output KmsKeyId and the deploy build as the endpoint's KmsKeyId:
# SageMaker API reference, ResourceConfig/ProcessingClusterConfig ``VolumeKmsKeyId`` and
# OutputDataConfig ``KmsKeyId`` ("the SageMaker execution role must include permissions to call
# kms:Encrypt"; "the KMS key policy must grant permission to the IAM role that you specify in
# your CreateTrainingJob ... requests"). The job's role encrypts and reads its S3 output, and
# the caller of the Create request lets SageMaker grant the volumes the key (ENDPOINT_KEY_CALLS).
VOLUME_KMS = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html"
OUTPUT_KMS = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_OutputDataConfig.html"
JOB_KEY_CALLS: list[Call] = [
    Call("kms:Encrypt", "{key}", OUTPUT_KMS),
    Call("kms:GenerateDataKey", "{key}", OUTPUT_KMS, VIA_S3),
    Call("kms:Decrypt", "{key}", OUTPUT_KMS, VIA_S3),
    *[Call(c.action, c.resource, VOLUME_KMS, c.context) for c in ENDPOINT_KEY_CALLS],
]

# The verify build (buildspec-verify.yml, pipelines/deployed.py --verify) after a stage deploy,
# in the stage's account: the stage stack and its resources, then the live endpoint and the
# configuration it serves. The Service Authorization Reference (parliament's copy) authorizes
# DescribeStacks and DescribeStackResources on the stack, DescribeEndpoint on the endpoint and
# DescribeEndpointConfig on the endpoint configuration (named by CloudFormation).
AUTHORIZATION_REFERENCE = (
    "https://docs.aws.amazon.com/service-authorization/latest/reference/"
    "reference_policies_actions-resources-contextkeys.html"
)
_STAGE_STACK = (
    "arn:{partition}:cloudformation:{region}:{account}:stack/{project}-endpoint-{stage}/0a1b2c3d"
)
VERIFY_STAGE_CALLS: list[Call] = [
    Call("cloudformation:DescribeStacks", _STAGE_STACK, AUTHORIZATION_REFERENCE),
    Call("cloudformation:DescribeStackResources", _STAGE_STACK, AUTHORIZATION_REFERENCE),
    Call(
        "sagemaker:DescribeEndpoint", f"{SAGEMAKER}:endpoint/{{project}}-{{stage}}", API_PERMISSIONS
    ),
    Call(
        "sagemaker:DescribeEndpointConfig",
        f"{SAGEMAKER}:endpoint-config/endpointconfig-0a1b2c3d",
        API_PERMISSIONS,
    ),
]


# Where SageMaker reads each condition key of a Create call in its request (Service
# Authorization Reference, SageMaker's condition keys: "Filters access by ..." the request's
# network isolation, volume and output KMS keys, VPC subnets and security groups), by action.
_REQUEST_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "sagemaker:CreateTrainingJob": {
        "sagemaker:NetworkIsolation": ("EnableNetworkIsolation",),
        "sagemaker:InterContainerTrafficEncryption": ("EnableInterContainerTrafficEncryption",),
        "sagemaker:VolumeKmsKey": ("ResourceConfig", "VolumeKmsKeyId"),
        "sagemaker:OutputKmsKey": ("OutputDataConfig", "KmsKeyId"),
        "sagemaker:VpcSubnets": ("VpcConfig", "Subnets"),
        "sagemaker:VpcSecurityGroupIds": ("VpcConfig", "SecurityGroupIds"),
    },
    "sagemaker:CreateProcessingJob": {
        "sagemaker:NetworkIsolation": ("NetworkConfig", "EnableNetworkIsolation"),
        "sagemaker:InterContainerTrafficEncryption": (
            "NetworkConfig",
            "EnableInterContainerTrafficEncryption",
        ),
        "sagemaker:VolumeKmsKey": ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId"),
        "sagemaker:OutputKmsKey": ("ProcessingOutputConfig", "KmsKeyId"),
        "sagemaker:VpcSubnets": ("NetworkConfig", "VpcConfig", "Subnets"),
        "sagemaker:VpcSecurityGroupIds": ("NetworkConfig", "VpcConfig", "SecurityGroupIds"),
    },
    "sagemaker:CreateModel": {
        "sagemaker:NetworkIsolation": ("EnableNetworkIsolation",),
        "sagemaker:VpcSubnets": ("VpcConfig", "Subnets"),
        "sagemaker:VpcSecurityGroupIds": ("VpcConfig", "SecurityGroupIds"),
    },
    "sagemaker:CreateTransformJob": {
        "sagemaker:VolumeKmsKey": ("TransformResources", "VolumeKmsKeyId"),
        "sagemaker:OutputKmsKey": ("TransformOutput", "KmsKeyId"),
    },
}


def request_condition_keys(action: str, request: Mapping[str, object]) -> dict[str, object]:
    """The condition keys AWS sets on a SageMaker Create call from its request (e.g. a pipeline
    step's Arguments): the fields above, booleans as IAM's "true"/"false", and each tag as
    ``aws:RequestTag/<key>``. A field the request leaves out sets no key."""
    context: dict[str, object] = {}
    for key, path in _REQUEST_KEYS[action].items():
        value: object = request
        for field_name in path:
            value = value.get(field_name) if isinstance(value, Mapping) else None
        if isinstance(value, bool):
            context[key] = "true" if value else "false"
        elif value is not None:
            context[key] = value
    tags = request.get("Tags", [])
    if isinstance(tags, list):
        for tag in tags:
            context[f"aws:RequestTag/{tag['Key']}"] = tag["Value"]
    return context
