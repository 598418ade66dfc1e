"""The Service Catalog / S3 publisher: loopback S3 (moto server) and Stubbers where moto lacks APIs.

moto implements S3 and STS fully, but not the Service Catalog calls the publisher needs
(search_products_as_admin, create_provisioning_artifact, associate_*, create_constraint,
list_principals_for_portfolio) nor SageMaker domain tagging, so those are asserted call by call
with botocore Stubbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber

from service_catalog import publish, seed

from . import iam_model as iam
from .conftest import load_yaml
from .iam_policy import Decision, Request, decide
from .rendered_tag_propagation import tag_propagation

BUCKET = "org-templates"
PRINCIPAL = "arn:aws:iam::123456789012:role/StudioExecution"
VERSION = {"version": "v1.0.0", "commit": "a" * 40}


_SEEDS: dict[str, seed.Seed] = {}
BUILD_SEED = seed.build_seed  # the real one, for the tests of the seed itself


@pytest.fixture(autouse=True)
def render_each_answer_set_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing renders the seed; the tests publish the same answers many times."""

    def cached(answers: dict[str, Any]) -> seed.Seed:
        key = json.dumps(answers, sort_keys=True)
        if key not in _SEEDS:
            _SEEDS[key] = BUILD_SEED(answers)
        return _SEEDS[key]

    monkeypatch.setattr(publish.seed, "build_seed", cached)


def options(**overrides: Any) -> publish.Options:
    values: dict[str, Any] = {
        "bucket": BUCKET,
        "prefix": "templates/mlops",
        "answers": {"organisation": "acme", "cost_centre": "cc-42"},
        "principal_arns": [PRINCIPAL],
    }
    return publish.Options(**(values | overrides))


def clients(endpoint: str) -> publish.Clients:
    def make(name: str, local: bool) -> Any:
        return boto3.client(name, region_name="us-east-1", endpoint_url=endpoint if local else None)

    return publish.Clients(
        s3=make("s3", True),
        servicecatalog=make("servicecatalog", False),
        sagemaker=make("sagemaker", False),
        sts=make("sts", True),
    )


def test_seed_zip_holds_exactly_the_tracked_files_of_a_fresh_render(tmp_path: Path) -> None:
    first = BUILD_SEED({"organisation": "acme"})
    second = BUILD_SEED({"organisation": "acme"})
    assert first.zip == second.zip  # same answers, same bytes
    project = seed.render_seed({"organisation": "acme"}, tmp_path)
    tracked = seed.tracked_files(project)
    names = zipfile.ZipFile(io.BytesIO(first.zip)).namelist()
    assert names == tracked
    assert "data/raw/dataset.csv.dvc" in names
    assert "data/raw/dataset.csv" not in names  # git-ignored: DVC keeps it, not the repository
    assert first.slug == "tumour-classifier"


ANSWER_SETS = [
    {"organisation": "acme"},
    {"organisation": "acme", "source_control": "codecommit"},
    {"organisation": "acme", "ci_system": "github-actions"},
]


@pytest.mark.parametrize("answers", ANSWER_SETS, ids=["github", "codecommit", "github-actions"])
def test_product_passes_each_nested_template_exactly_its_parameters(
    answers: dict[str, str],
) -> None:
    """CloudFormation refuses a nested stack given an undeclared parameter or missing one."""
    built = seed.build_seed(answers)
    text = publish.product_template(options(answers=answers), built, "templates/mlops/v1")
    assert publish.lint_errors(text) == ()
    product = json.loads(text)
    mapping = product["Mappings"]["Seed"]["Answers"]
    assert mapping["ArtifactBucket"] == "acme-tumour-classifier-ml"  # the seed's DVC remote
    assert mapping["SeedCodeKey"] == "templates/mlops/v1/seed.zip"
    parameters = {
        "SageMakerProjectName": "tumour",
        "RepositoryFullName": "acme/tumour",
        "CodeConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/x",
    }
    stack = iam.Stack(product, "sc-tumour", parameters)
    nested = {
        logical: resource
        for logical, resource in stack.active()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    }
    assert set(nested) == {"Foundation", "Build", "Deploy"}
    for resource in nested.values():
        url = stack.resolve(resource["Properties"]["TemplateURL"])
        name = url.rsplit("/", 1)[1]
        assert url == f"{mapping['TemplatesUrl']}/{name}"
        declared = load_yaml_text(built.templates[name].decode())["Parameters"]
        given = stack.resolve(resource["Properties"]["Parameters"])
        assert set(given) <= set(declared), (name, set(given) - set(declared))
        required = {key for key, spec in declared.items() if "Default" not in spec}
        assert required <= set(given), (name, required - set(given))


def _nested_parameters(built: seed.Seed, answers: dict[str, str]) -> dict[str, dict[str, Any]]:
    product = json.loads(
        publish.product_template(options(answers=answers), built, "templates/mlops/v1")
    )
    stack = iam.Stack(product, "sc-tumour", {"SageMakerProjectName": "tumour"})
    return {
        logical: stack.resolve(resource["Properties"]["Parameters"])
        for logical, resource in stack.active()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    }


def test_product_provisions_a_separate_accounts_seed_for_its_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's org-standards.json accounts reach the foundation and deploy stacks; a seed
    without them leaves the parameters to their (empty) defaults."""
    accounts = {"staging": "111111111111", "prod": "222222222222"}
    standards = tmp_path / "org-standards.yaml"
    standards.write_text(json.dumps({"accounts": accounts}))
    answers = {"organisation": "acme", "source_control": "codecommit"}
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(standards))
    separate = _nested_parameters(BUILD_SEED(answers), answers)
    monkeypatch.delenv("MLOPS_ORG_STANDARDS")
    single = _nested_parameters(seed.build_seed(answers), answers)
    for logical in ("Foundation", "Deploy"):
        given = separate[logical]
        assert (given["StagingAccountId"], given["ProdAccountId"]) == (
            accounts["staging"],
            accounts["prod"],
        )
        assert not {"StagingAccountId", "ProdAccountId"} & set(single[logical])
    assert not {"StagingAccountId", "ProdAccountId"} & set(separate["Build"])


ORGANISATION_SERVER = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/acme-shared"


@pytest.mark.parametrize(
    ("standards", "create", "server"),
    [
        ({}, "false", None),
        ({}, "true", "created"),
        ({"mlflow_tracking_server_arn": ORGANISATION_SERVER}, "false", ORGANISATION_SERVER),
        ({"mlflow_tracking_server_arn": ORGANISATION_SERVER}, "true", ORGANISATION_SERVER),
    ],
    ids=["none", "created-at-launch", "organisations", "organisations-wins-over-launch"],
)
def test_product_hands_the_build_the_tracking_server_of_the_standards_or_its_own(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    standards: dict[str, str],
    create: str,
    server: str | None,
) -> None:
    """Provisioned through the product, the foundation's export (the build's MLFLOW_TRACKING_ARN)
    names the organisation's server when the seed's standards do, else the one created when the
    launch asks for it, else "none"; the execution role may log to exactly that server."""
    answers = {"organisation": "acme"}
    standards_file = tmp_path / "org-standards.yaml"
    standards_file.write_text(json.dumps(standards))
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(standards_file))
    built = BUILD_SEED(answers)
    product = json.loads(publish.product_template(options(answers=answers), built, "t/v1"))
    launch = {"SageMakerProjectName": "tumour", "CreateMlflowTrackingServer": create}
    given = iam.Stack(product, "sc-tumour", launch).resolve(
        product["Resources"]["Foundation"]["Properties"]["Parameters"]
    )
    foundation = iam.Stack(
        load_yaml_text(built.templates["foundation.yaml"].decode()), "tumour-foundation", given
    )
    created = dict(foundation.active()).get("MlflowTrackingServer")
    assert (created is not None) == (server == "created")
    expected = foundation.getatt("MlflowTrackingServer", "TrackingServerArn") if created else server
    assert foundation.outputs()["tumour-mlflow-tracking-server-arn"] == (expected or "none")
    grants = [
        statement
        for document in iam.policy_documents(foundation, "foundation.yaml")
        for statement in document.document["Statement"]
        if any(str(action).startswith("sagemaker-mlflow:") for action in statement["Action"])
    ]
    assert [statement["Resource"] for statement in grants] == ([expected] if expected else [])


@pytest.mark.parametrize("vpc", [True, False], ids=["vpc", "no-vpc"])
def test_product_gives_the_execution_role_the_seeds_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vpc: bool
) -> None:
    """Provisioned through the product, the foundation gets the seed's vpc standard and its
    execution role may run the pipeline's jobs in exactly that network (none without it); the
    deploy stack's role (one account) may create the stage models only in it."""
    from .test_accounts import BUILD_NETWORK, STAGE_VPC, assert_uses_exactly_its_network

    answers = {"organisation": "acme"}
    standards_file = tmp_path / "org-standards.yaml"
    standards_file.write_text(json.dumps({"vpc": BUILD_NETWORK} if vpc else {}))
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(standards_file))
    built = BUILD_SEED(answers)
    product = json.loads(publish.product_template(options(answers=answers), built, "t/v1"))
    product_stack = iam.Stack(product, "sc-tumour", {"SageMakerProjectName": "tumour"})
    given = product_stack.resolve(product["Resources"]["Foundation"]["Properties"]["Parameters"])
    foundation = iam.Stack(
        load_yaml_text(built.templates["foundation.yaml"].decode()), "tumour-foundation", given
    )
    role = iam.role_documents(foundation, "SageMakerExecutionRole")
    deploy = iam.Stack(
        load_yaml_text(built.templates["deploy-pipeline.yaml"].decode()),
        "tumour-deploy",
        product_stack.resolve(product["Resources"]["Deploy"]["Properties"]["Parameters"]),
        foundation.outputs(),
    )
    stack_role = iam.role_documents(deploy, "CloudFormationRole")
    model = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:model/tumour-x"
    inside = {
        "sagemaker:VpcSubnets": BUILD_NETWORK["subnets"],
        "sagemaker:VpcSecurityGroupIds": BUILD_NETWORK["security_groups"],
    }
    assert iam.allows(stack_role, "sagemaker:CreateModel", model, inside)
    elsewhere = inside | {"sagemaker:VpcSubnets": STAGE_VPC["prod"]["subnets"]}
    assert iam.allows(stack_role, "sagemaker:CreateModel", model, elsewhere) is not vpc
    assert iam.allows(stack_role, "sagemaker:CreateModel", model, {}) is not vpc
    if vpc:
        assert given["SubnetIds"] == ",".join(BUILD_NETWORK["subnets"])
        assert_uses_exactly_its_network(role, iam.ACCOUNT, BUILD_NETWORK, list(STAGE_VPC.values()))
    else:
        assert not {"SubnetIds", "SecurityGroupIds"} & set(given)
        assert not any(
            str(action).startswith("ec2:")
            for document in role
            for statement in iam.statements(document)
            for action in iam._as_list(statement["Action"])
        )


@pytest.mark.parametrize("strict", [True, False], ids=["isolation-and-key", "none"])
def test_product_hands_the_isolation_and_key_standards_to_the_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    """Provisioned through the product, the foundation's execution role and the deploy
    pipeline's stack role enforce the seed's network_isolation and kms_key_arn standards: a
    training job that is not isolated, or uses another key, and a model that is not isolated,
    are denied (and allowed without the standards)."""
    key = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/org"
    standards_file = tmp_path / "org-standards.yaml"
    standards_file.write_text(
        json.dumps({"network_isolation": True, "kms_key_arn": key} if strict else {})
    )
    monkeypatch.setenv("MLOPS_ORG_STANDARDS", str(standards_file))
    answers = {"organisation": "acme"}
    built = BUILD_SEED(answers)
    product = json.loads(publish.product_template(options(answers=answers), built, "t/v1"))
    stack = iam.Stack(product, "sc-tumour", {"SageMakerProjectName": "tumour"})
    given = {
        name: stack.resolve(product["Resources"][name]["Properties"]["Parameters"])
        for name in ("Foundation", "Deploy")
    }
    foundation = iam.Stack(
        load_yaml_text(built.templates["foundation.yaml"].decode()),
        "tumour-foundation",
        given["Foundation"],
    )
    deploy = iam.Stack(
        load_yaml_text(built.templates["deploy-pipeline.yaml"].decode()),
        "tumour-deploy",
        given["Deploy"],
        foundation.outputs(),
    )
    execution = iam.role_documents(foundation, "SageMakerExecutionRole")
    stack_role = iam.role_documents(deploy, "CloudFormationRole")
    job = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:training-job/pipelines-x"
    model = f"arn:aws:sagemaker:{iam.REGION}:{iam.ACCOUNT}:model/tumour-x"
    compliant = {
        "sagemaker:NetworkIsolation": "true",
        "sagemaker:VolumeKmsKey": key,
        "sagemaker:OutputKmsKey": key,
    }
    another_key = compliant | {"sagemaker:VolumeKmsKey": key + "-other"}
    not_isolated = compliant | {"sagemaker:NetworkIsolation": "false"}
    assert iam.allows(execution, "sagemaker:CreateTrainingJob", job, compliant)
    assert iam.allows(execution, "sagemaker:CreateTrainingJob", job, another_key) is not strict
    assert iam.allows(execution, "sagemaker:CreateTrainingJob", job, not_isolated) is not strict
    isolated = {"sagemaker:NetworkIsolation": "true"}
    assert iam.allows(stack_role, "sagemaker:CreateModel", model, isolated)
    assert (
        iam.allows(
            stack_role, "sagemaker:CreateModel", model, {"sagemaker:NetworkIsolation": "false"}
        )
        is not strict
    )


@pytest.mark.parametrize("answers", ANSWER_SETS, ids=["github", "codecommit", "github-actions"])
def test_product_tags_every_resource_of_every_nested_stack(answers: dict[str, str]) -> None:
    """SageMaker Projects' tags and the organisation's reach every taggable resource the product
    creates: the nested stacks' tags propagate into them (where the resource type takes stack
    tags), the other resources carry their own."""
    built = seed.build_seed(answers)
    product = json.loads(
        publish.product_template(options(answers=answers), built, "templates/mlops/v1")
    )
    parameters = {"SageMakerProjectName": "tumour", "SageMakerProjectId": "p-abc123def456"}
    stack = iam.Stack(product, "sc-tumour", parameters | {"RepositoryFullName": "acme/tumour"})
    expected = built.tags | {
        "sagemaker:project-name": "tumour",
        "sagemaker:project-id": "p-abc123def456",
    }
    assert {"organisation", "cost-centre", "project"} <= set(expected)
    # The product's own stack gets no tags of ours: its resources carry them.
    product_resources = {
        logical: {
            "Type": resource["Type"],
            "Properties": {"Tags": stack.resolve(resource["Properties"].get("Tags", []))},
        }
        for logical, resource in stack.active()
    }
    own = tag_propagation.effective_tags({"Resources": product_resources}, {}, parameters)
    assert tag_propagation.missing(own, expected) == {}
    nested = [
        resource
        for _, resource in stack.active()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    ]
    assert len(nested) == 3
    for resource in nested:
        name = stack.resolve(resource["Properties"]["TemplateURL"]).rsplit("/", 1)[1]
        nested_tags = {
            tag["Key"]: tag["Value"] for tag in stack.resolve(resource["Properties"]["Tags"])
        }
        template = load_yaml_text(built.templates[name].decode())
        effective = tag_propagation.effective_tags(template, nested_tags, parameters)
        assert effective, name
        assert tag_propagation.missing(effective, expected) == {}, name


# What CodeCommit does with a repository's customer managed key, with the credentials of whoever
# creates, pushes to or pulls from it (CodeCommit User Guide, "AWS Key Management Service and
# encryption for AWS CodeCommit repositories").
CODECOMMIT_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)


def key_policy_grants(document: dict[str, Any], action: str, context: dict[str, str]) -> bool:
    """Whether the key policy itself lets a principal of the calling account
    (``kms:CallerAccount``) perform ``action``, decided by tests/iam_policy.py with no identity
    policy: a statement naming the account root only delegates to the caller's IAM policies
    (which the Service Catalog launch role's and a developer's are not ours to write), so it
    does not count; nor do statements for service principals.
    """
    caller = f"arn:aws:iam::{context['kms:CallerAccount']}:role/developer"
    key = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/{iam.KEY_ID}"
    request = Request(caller, action, key, context)
    return decide(request, [], document) is Decision.ALLOW


@pytest.mark.parametrize("answers", ANSWER_SETS, ids=["github", "codecommit", "github-actions"])
def test_codecommit_repository_is_encrypted_with_the_project_key(answers: dict[str, str]) -> None:
    """The product's repository names the foundation stack's key, whose policy lets CodeCommit
    use it for this account's principals, and for nothing else."""
    built = seed.build_seed(answers)
    product = json.loads(
        publish.product_template(options(answers=answers), built, "templates/mlops/v1")
    )
    foundation_template = load_yaml_text(built.templates["foundation.yaml"].decode())
    foundation = iam.Stack(foundation_template, "sc-tumour-Foundation")
    key_policy = foundation.resolve(foundation.resources["ProjectKey"]["Properties"]["KeyPolicy"])
    via = f"codecommit.{iam.REGION}.amazonaws.com"
    through_codecommit = {"kms:CallerAccount": iam.ACCOUNT, "kms:ViaService": via}
    if answers.get("source_control") != "codecommit":
        assert "Repository" not in product["Resources"] or product["Resources"]["Repository"].get(
            "Condition"
        )
        assert not any(
            key_policy_grants(key_policy, a, through_codecommit) for a in CODECOMMIT_KEY_ACTIONS
        )
        return
    repository = product["Resources"]["Repository"]["Properties"]
    assert repository["KmsKeyId"] == {"Fn::GetAtt": ["Foundation", "Outputs.KmsKeyArn"]}
    output = foundation.resolve(foundation_template["Outputs"]["KmsKeyArn"]["Value"])
    assert output == foundation.arn("ProjectKey")
    for action in CODECOMMIT_KEY_ACTIONS:
        assert key_policy_grants(key_policy, action, through_codecommit), action
        # Not to another account, and not outside CodeCommit.
        assert not key_policy_grants(
            key_policy, action, through_codecommit | {"kms:CallerAccount": "210987654321"}
        ), action
        assert not key_policy_grants(
            key_policy,
            action,
            through_codecommit | {"kms:ViaService": f"s3.{iam.REGION}.amazonaws.com"},
        ), action
    assert not key_policy_grants(key_policy, "kms:ScheduleKeyDeletion", through_codecommit)


def load_yaml_text(text: str) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    try:
        return load_yaml(Path(handle.name))
    finally:
        Path(handle.name).unlink()


def test_broken_template_is_refused_before_any_write(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, tmp_path: Path
) -> None:
    broken = tmp_path / "product.yaml"
    broken.write_text(
        publish.PRODUCT_TEMPLATE.read_text().replace(
            "Type: AWS::CloudFormation::Stack", "Type: AWS::CloudFormation::Stackk", 1
        )
    )
    monkeypatch.setattr(publish, "PRODUCT_TEMPLATE", broken)
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    with pytest.raises(publish.PublishError, match="fails cfn-lint"):
        publish.publish(options(), aws, VERSION, log=lambda _: None)
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET)


def test_missing_bucket_is_one_line_naming_service_operation_and_code(moto_endpoint: str) -> None:
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(options(), clients(moto_endpoint), VERSION, log=lambda _: None)
    assert str(caught.value) == "S3 HeadBucket failed: 404 (create the bucket first)"


def test_html_error_body_is_reduced_to_one_line() -> None:
    sc = boto3.client("servicecatalog", region_name="us-east-1")
    with Stubber(sc) as stub:
        stub.add_client_error(
            "list_portfolios",
            service_error_code="ServiceUnavailable",
            service_message="<html>\n<body>\n<h1>503</h1>\n</body>\n</html>",
            http_status_code=503,
        )
        with pytest.raises(publish.PublishError) as caught:
            publish.ensure_portfolio(sc, options(), log=lambda _: None)
    assert str(caught.value) == "Service Catalog ListPortfolios failed: ServiceUnavailable"


def test_missing_domain_id_is_refused_before_anything_is_written(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    status = publish.main(["--bucket", BUCKET, "--target", "s3"], clients=aws)
    assert status == 2
    assert capsys.readouterr().err == (
        "error: --target s3 needs --domain-id (the SageMaker domain to tag)\n"
    )
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET)
    with pytest.raises(aws.s3.exceptions.ClientError, match="NoSuchCORSConfiguration"):
        aws.s3.get_bucket_cors(Bucket=BUCKET)


@pytest.fixture()
def clean_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """The template as a clean checkout of one tagged commit (the working tree may be dirty)."""
    monkeypatch.setattr(publish.seed, "template_version", lambda: dict(VERSION))


@pytest.mark.usefixtures("clean_version")
def test_dry_run_calls_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        publish.main(
            ["--bucket", BUCKET, "--dry-run", "--principal-arn", PRINCIPAL],
            clients=None,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "plan (dry run" in out and "find or create portfolio" in out and PRINCIPAL in out


PRODUCT = "MLOps model building, training and deployment"
PORTFOLIO = "MLOps project templates"


def _stub_portfolio(stub: Stubber, exists: bool) -> None:
    if exists:
        stub.add_response(
            "list_portfolios",
            {"PortfolioDetails": [{"Id": "port-1", "DisplayName": PORTFOLIO}]},
            {},
        )
        return
    stub.add_response("list_portfolios", {"PortfolioDetails": []}, {})
    stub.add_response(
        "create_portfolio",
        {"PortfolioDetail": {"Id": "port-1"}},
        {
            "DisplayName": PORTFOLIO,
            "ProviderName": "Platform team",
            "Description": ANY,
            "IdempotencyToken": ANY,
        },
    )


def _stub_product(
    stub: Stubber,
    *,
    exists: bool,
    versions: list[str] = (),  # type: ignore[assignment]
    new_version: str = "",
    associated: bool = True,
    constrained: bool = True,
    constraint_error: bool = False,
) -> None:
    views = [{"ProductViewSummary": {"ProductId": "prod-1", "Name": PRODUCT}}] if exists else []
    stub.add_response("search_products_as_admin", {"ProductViewDetails": views}, {"Filters": ANY})
    if not exists:
        stub.add_response(
            "create_product",
            {"ProductViewDetail": {"ProductViewSummary": {"ProductId": "prod-1"}}},
            {
                "Name": PRODUCT,
                "Owner": "Platform team",
                "ProductType": "CLOUD_FORMATION_TEMPLATE",
                "Tags": [{"Key": "sagemaker:studio-visibility", "Value": "true"}],
                "Description": ANY,
                "ProvisioningArtifactParameters": ANY,
                "IdempotencyToken": ANY,
            },
        )
    else:
        stub.add_response(
            "list_provisioning_artifacts",
            {"ProvisioningArtifactDetails": [{"Id": f"pa-{v}", "Name": v} for v in versions]},
            {"ProductId": "prod-1"},
        )
        if new_version not in versions:
            stub.add_response(
                "create_provisioning_artifact",
                {},
                {"ProductId": "prod-1", "Parameters": ANY, "IdempotencyToken": ANY},
            )
    portfolios = [{"Id": "port-1"}] if associated else []
    stub.add_response(
        "list_portfolios_for_product", {"PortfolioDetails": portfolios}, {"ProductId": "prod-1"}
    )
    if not associated:
        stub.add_response(
            "associate_product_with_portfolio", {}, {"ProductId": "prod-1", "PortfolioId": "port-1"}
        )
    constraints = [{"ConstraintId": "c-1", "Type": "LAUNCH"}] if constrained else []
    stub.add_response(
        "list_constraints_for_portfolio",
        {"ConstraintDetails": constraints},
        {"PortfolioId": "port-1", "ProductId": "prod-1"},
    )
    if not constrained:
        expected = {
            "PortfolioId": "port-1",
            "ProductId": "prod-1",
            "Type": "LAUNCH",
            "Parameters": json.dumps({"LocalRoleName": "MLOpsProjectLaunchRole"}),
            "IdempotencyToken": ANY,
        }
        if constraint_error:
            stub.add_client_error(
                "create_constraint",
                service_error_code="ThrottlingException",
                http_status_code=400,
                expected_params=expected,
            )
        else:
            stub.add_response("create_constraint", {}, expected)


def _stub_principals(stub: Stubber, associated: bool) -> None:
    principals = [{"PrincipalARN": PRINCIPAL, "PrincipalType": "IAM"}] if associated else []
    stub.add_response(
        "list_principals_for_portfolio", {"Principals": principals}, {"PortfolioId": "port-1"}
    )
    if not associated:
        stub.add_response(
            "associate_principal_with_portfolio",
            {},
            {"PortfolioId": "port-1", "PrincipalARN": PRINCIPAL, "PrincipalType": "IAM"},
        )


def _stub_first_publish(stub: Stubber) -> None:
    _stub_portfolio(stub, exists=False)
    _stub_product(stub, exists=False, associated=False, constrained=False)
    _stub_principals(stub, associated=False)


def test_service_catalog_first_then_new_version_then_noop(moto_endpoint: str) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    logs: list[str] = []
    later = VERSION | {"version": "v1.1.0"}
    with Stubber(aws.servicecatalog) as stub:
        _stub_first_publish(stub)
        result = publish.publish(options(), aws, VERSION, log=logs.append)
        stub.assert_no_pending_responses()
        _stub_portfolio(stub, exists=True)
        _stub_product(stub, exists=True, versions=["v1.0.0"], new_version="v1.1.0")
        _stub_principals(stub, associated=True)
        publish.publish(options(), aws, later, log=logs.append)
        stub.assert_no_pending_responses()
        _stub_portfolio(stub, exists=True)
        _stub_product(stub, exists=True, versions=["v1.0.0", "v1.1.0"], new_version="v1.1.0")
        _stub_principals(stub, associated=True)
        publish.publish(options(), aws, later, log=logs.append)
        stub.assert_no_pending_responses()
    assert result["product_id"] == "prod-1"
    assert any("created product" in line for line in logs)
    assert any("added version v1.1.0" in line for line in logs)
    assert any("already has version v1.1.0" in line for line in logs)
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    files = ["seed.zip", "product.json"] + [f"templates/{n}" for n in seed.NESTED_TEMPLATES]
    assert keys == {f"templates/mlops/{v}/{f}" for v in ("v1.0.0", "v1.1.0") for f in files}


def test_nested_templates_uploaded_are_the_rendered_ones_byte_for_byte(
    moto_endpoint: str, tmp_path: Path
) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    with Stubber(aws.servicecatalog) as stub:
        _stub_first_publish(stub)
        publish.publish(options(), aws, VERSION, log=lambda _: None)
    project = seed.render_seed(options().answers, tmp_path)
    for name in seed.NESTED_TEMPLATES:
        key = f"templates/mlops/v1.0.0/templates/{name}"
        body = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == (project / "infrastructure" / name).read_bytes(), name
    product = json.loads(
        aws.s3.get_object(Bucket=BUCKET, Key="templates/mlops/v1.0.0/product.json")["Body"].read()
    )
    answers = product["Mappings"]["Seed"]["Answers"]
    assert answers["TemplatesUrl"] == (
        f"https://{BUCKET}.s3.us-east-1.amazonaws.com/templates/mlops/v1.0.0/templates"
    )
    dvc_config = (project / ".dvc" / "config").read_text()
    assert f"s3://{answers['ArtifactBucket']}/" in dvc_config  # the product's bucket is the remote


def test_service_catalog_failure_half_way_then_rerun_completes(moto_endpoint: str) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    with Stubber(aws.servicecatalog) as stub:
        _stub_portfolio(stub, exists=False)
        _stub_product(
            stub, exists=False, associated=False, constrained=False, constraint_error=True
        )
        with pytest.raises(publish.PublishError) as caught:
            publish.publish(options(), aws, VERSION, log=lambda _: None)
        assert str(caught.value) == "Service Catalog CreateConstraint failed: ThrottlingException"
        stub.assert_no_pending_responses()
        # The re-run finds the product (not in the portfolio's search), adds the launch role.
        _stub_portfolio(stub, exists=True)
        _stub_product(
            stub,
            exists=True,
            versions=["v1.0.0"],
            new_version="v1.0.0",
            associated=True,
            constrained=False,
        )
        _stub_principals(stub, associated=False)
        result = publish.publish(options(), aws, VERSION, log=lambda _: None)
        stub.assert_no_pending_responses()
    assert result["product_id"] == "prod-1"


OTHER_APP_RULE = {
    "AllowedOrigins": ["https://dashboard.example.com"],
    "AllowedMethods": ["GET", "PUT"],
    "AllowedHeaders": ["Authorization"],
    "MaxAgeSeconds": 600,
}


def _stub_domain(stub: Stubber, account: str, tag_error: bool = False) -> None:
    stub.add_response("describe_domain", {}, {"DomainId": "d-abc123"})
    expected = {
        "ResourceArn": f"arn:aws:sagemaker:us-east-1:{account}:domain/d-abc123",
        "Tags": [
            {
                "Key": "sagemaker:projectS3TemplatesLocation",
                "Value": f"s3://{BUCKET}/templates/mlops/",
            }
        ],
    }
    if tag_error:
        stub.add_client_error(
            "add_tags", service_error_code="AccessDeniedException", expected_params=expected
        )
    else:
        stub.add_response("add_tags", {}, expected)


def test_s3_target_keeps_other_cors_rules_and_completes_after_a_failure(
    moto_endpoint: str,
) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    aws.s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [OTHER_APP_RULE]})
    account = aws.sts.get_caller_identity()["Account"]
    s3_options = options(target="s3", domain_id="d-abc123")
    with Stubber(aws.sagemaker) as stub:
        _stub_domain(stub, account, tag_error=True)
        with pytest.raises(publish.PublishError) as caught:
            publish.publish(s3_options, aws, VERSION, log=lambda _: None)
        assert str(caught.value) == (
            "SageMaker AddTags failed: AccessDeniedException "
            "(the caller needs the permissions listed in docs/admin/publishing.md)"
        )
        _stub_domain(stub, account)
        result = publish.publish(s3_options, aws, VERSION, log=lambda _: None)
        stub.assert_no_pending_responses()
    tags = aws.s3.get_object_tagging(Bucket=BUCKET, Key=result["template_key"])["TagSet"]
    assert {"Key": "sagemaker:studio-visibility", "Value": "true"} in tags
    rules = aws.s3.get_bucket_cors(Bucket=BUCKET)["CORSRules"]
    origins = [rule["AllowedOrigins"] for rule in rules]
    assert origins == [["https://dashboard.example.com"], ["https://*.sagemaker.aws"]]
    assert {k: rules[0].get(k) for k in OTHER_APP_RULE} == OTHER_APP_RULE


@pytest.mark.slow
def test_uploaded_seed_unpacks_to_a_project_whose_tests_pass(
    moto_endpoint: str, tmp_path: Path
) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    with Stubber(aws.servicecatalog) as stub:
        _stub_first_publish(stub)
        result = publish.publish(options(), aws, VERSION, log=lambda _: None)
    body = aws.s3.get_object(Bucket=BUCKET, Key=result["seed_key"])["Body"].read()
    project = tmp_path / "seed"
    zipfile.ZipFile(io.BytesIO(body)).extractall(project)
    # The seed carries the data's DVC pointer only, and the project's bucket (its DVC remote,
    # here on the loopback S3) starts empty: the first `make setup` must fill it and pull.
    raw = "data/raw/dataset.csv"
    assert not (project / raw).exists()
    aws.s3.create_bucket(Bucket="acme-tumour-classifier-ml")  # the seed's s3_bucket
    (project / ".dvc" / "config.local").write_text(
        f"['remote \"s3\"']\n    endpointurl = {moto_endpoint}\n"
    )
    (project / "Makefile").chmod(0o644)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed"],
    ):
        subprocess.run(command, cwd=project, check=True)
    for target in ("setup", "test-fast"):
        run = subprocess.run(
            ["make", target], cwd=project, capture_output=True, text=True, check=False, timeout=900
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    pointer = yaml.safe_load((project / f"{raw}.dvc").read_text())["outs"][0]
    assert hashlib.md5((project / raw).read_bytes()).hexdigest() == pointer["md5"]  # noqa: S324
    listed = aws.s3.list_objects_v2(Bucket="acme-tumour-classifier-ml")
    assert listed["KeyCount"] >= 1  # the sample, pushed for every later clone


def test_product_honours_the_sagemaker_projects_contract() -> None:
    """Parameters SageMaker Projects sets, and its tags on everything the product creates."""
    product = load_yaml(publish.PRODUCT_TEMPLATE)
    assert {"SageMakerProjectName", "SageMakerProjectId"} <= set(product["Parameters"])
    for name, resource in product["Resources"].items():
        tags = {tag["Key"]: tag["Value"] for tag in resource["Properties"]["Tags"]}
        assert tags["sagemaker:project-name"] == {"Ref": "SageMakerProjectName"}, name
        assert tags["sagemaker:project-id"] == {"Ref": "SageMakerProjectId"}, name
        if resource["Type"] == "AWS::CloudFormation::Stack":
            given = resource["Properties"]["Parameters"]
            assert given["SageMakerProjectName"] == {"Ref": "SageMakerProjectName"}, name
            assert given["SageMakerProjectId"] == {"Ref": "SageMakerProjectId"}, name


def test_answers_file_may_be_cookiecutters_user_config(tmp_path: Path) -> None:
    """`--answers` takes the organisation's cookiecutter config as it is, or the bare answers."""
    answers = {"organisation": "acme", "cost_centre": "cc-42"}
    user_config = tmp_path / "cookiecutterrc.yaml"
    user_config.write_text(json.dumps({"default_context": answers, "abbreviations": {}}))
    bare = tmp_path / "answers.yaml"
    bare.write_text(json.dumps(answers))
    assert publish.load_answers(user_config) == answers
    assert publish.load_answers(bare) == answers
    assert publish.load_answers(None) == {}


# --- integrity: the bucket's owner, immutable versions, bad input -------------------------------


def test_every_s3_call_names_the_bucket_owner(moto_endpoint: str) -> None:
    """A bucket of that name in another account (deleted and re-created by someone else) is
    refused by S3 itself: every S3 request carries ExpectedBucketOwner, this account."""
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    account = aws.sts.get_caller_identity()["Account"]
    seen: list[tuple[str, str | None]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, params.get("ExpectedBucketOwner")))

    aws.s3.meta.events.register("provide-client-params.s3.*", record)
    with Stubber(aws.sagemaker) as stub:
        _stub_domain(stub, account)
        publish.publish(options(target="s3", domain_id="d-abc123"), aws, VERSION, log=print)
    operations = {name for name, _ in seen}
    assert {"HeadBucket", "GetObject", "PutObject", "GetBucketCors", "PutBucketCors"} <= operations
    assert [call for call in seen if call[1] != account] == []


def _objects(aws: publish.Clients) -> dict[str, bytes]:
    listing = aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        o["Key"]: aws.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing
    }


def test_a_published_version_never_changes(moto_endpoint: str) -> None:
    """Publishing other content under a version that exists is refused before any write; the
    same content again (a re-run) writes nothing."""
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    s3_only = options(target="s3", domain_id="d-abc123")
    account = aws.sts.get_caller_identity()["Account"]
    with Stubber(aws.sagemaker) as stub:
        _stub_domain(stub, account)
        publish.publish(s3_only, aws, VERSION, log=lambda _: None)
        first = _objects(aws)
        other = options(target="s3", domain_id="d-abc123", answers={"organisation": "other"})
        stub.add_response("describe_domain", {}, {"DomainId": "d-abc123"})  # read-only check
        with pytest.raises(publish.PublishError, match="already published with other content"):
            publish.publish(other, aws, VERSION, log=lambda _: None)
        assert _objects(aws) == first
        _stub_domain(stub, account)
        logs: list[str] = []
        publish.publish(s3_only, aws, VERSION, log=logs.append)
    assert _objects(aws) == first
    assert any("already published, unchanged" in line for line in logs)
    versions = aws.s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
    assert len(versions) == len(first)  # nothing was written twice


@pytest.mark.parametrize("name", ["v1.0.0-3-gabc1234-dirty", "unknown"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_version_that_is_not_one_commit_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, dry_run: bool
) -> None:
    monkeypatch.setattr(publish.seed, "template_version", lambda: {"version": name, "commit": ""})
    argv = ["--bucket", BUCKET, *(["--dry-run"] if dry_run else [])]
    assert publish.main(argv, clients=None) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: template version") and err.count("\n") == 1


BAD_ANSWERS = {
    "missing": (None, "No such file or directory"),
    "not-yaml": ("organisation: [acme\n", "not YAML"),
    "a-list": ("- organisation\n", "must be a mapping"),
    "bad-slug": ("project_slug: Not A Slug\n", "project_slug"),
    "bad-region": ("aws_region: mars-1\n", "aws_region"),
}


@pytest.mark.usefixtures("clean_version")
@pytest.mark.parametrize("case", list(BAD_ANSWERS))
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_bad_answers_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, dry_run: bool
) -> None:
    text, expected = BAD_ANSWERS[case]
    path = tmp_path / "answers.yaml"
    if text is not None:
        path.write_text(text)
    argv = ["--bucket", BUCKET, "--answers", str(path), *(["--dry-run"] if dry_run else [])]
    assert publish.main(argv, clients=None) == 2  # no client: nothing may be called
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert expected in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_the_execution_role_is_the_publishers_not_the_launchers() -> None:
    """Launchers cannot name a role (no ExecutionRoleArn launch parameter); the publisher may
    fix the organisation's, which the foundation then uses; without it each project has its own."""
    answers = {"organisation": "acme"}
    built = BUILD_SEED(answers)
    org_role = "arn:aws:iam::123456789012:role/org-sagemaker"
    for given, expected in ((org_role, org_role), ("", None)):
        product = json.loads(
            publish.product_template(
                options(answers=answers, execution_role_arn=given), built, "t/v1"
            )
        )
        assert "ExecutionRoleArn" not in product["Parameters"]
        parameters = iam.Stack(product, "sc-tumour", {"SageMakerProjectName": "tumour"}).resolve(
            product["Resources"]["Foundation"]["Properties"]["Parameters"]
        )
        assert parameters.get("ExecutionRoleArn") == expected
    with pytest.raises(publish.PublishError, match="not an IAM role ARN"):
        publish.check_arguments(options(execution_role_arn="arn:aws:iam::1:user/x"))
