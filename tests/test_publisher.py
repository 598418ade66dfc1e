"""The Service Catalog / S3 publisher: loopback S3 (moto server) and Stubbers where moto lacks APIs.

moto implements S3 and STS fully, but not the Service Catalog calls the publisher needs
(search_products_as_admin, create_provisioning_artifact, associate_*, create_constraint,
list_principals_for_portfolio) nor SageMaker domain tagging, so those are asserted call by call
with botocore Stubbers.
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from service_catalog import publish, seed

from .conftest import load_yaml

BUCKET = "org-templates"
KMS = "arn:aws:kms:us-east-1:123456789012:key/abcd"
PRINCIPAL = "arn:aws:iam::123456789012:role/StudioExecution"
VERSION = {"version": "v1.0.0", "commit": "a" * 40}


def options(**overrides: Any) -> publish.Options:
    values: dict[str, Any] = {
        "bucket": BUCKET,
        "prefix": "templates/mlops",
        "answers": {"organisation": "acme", "cost_centre": "cc-42"},
        "kms_key_arn": KMS,
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


def test_seed_zip_is_reproducible() -> None:
    first, slug = seed.build_seed_zip({"organisation": "acme"}, VERSION)
    second, _ = seed.build_seed_zip({"organisation": "acme"}, VERSION)
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert slug == "tumour-classifier"
    assert "Makefile" in names and "data/raw/dataset.csv" in names
    assert not any(name.startswith(".git/") for name in names)
    recorded = json.loads(zipfile.ZipFile(io.BytesIO(first)).read(seed.VERSION_FILE))
    assert recorded == VERSION


def test_product_template_gets_the_seed_location() -> None:
    text = publish.product_template(options(), "templates/mlops/v1/seed.zip")
    parameters = load_yaml_text(text)["Parameters"]
    assert parameters["SeedCodeBucket"]["Default"] == BUCKET
    assert parameters["SeedCodeKey"]["Default"] == "templates/mlops/v1/seed.zip"
    assert parameters["KmsKeyArn"]["Default"] == KMS
    assert parameters["RoleArn"]["Default"] == ""
    assert publish.lint_errors(text) == []


def load_yaml_text(text: str) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    try:
        return load_yaml(Path(handle.name))
    finally:
        Path(handle.name).unlink()


def test_broken_template_is_refused(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, tmp_path: Path
) -> None:
    broken = tmp_path / "product.yaml"
    broken.write_text(
        publish.PRODUCT_TEMPLATE.read_text().replace(
            "Type: AWS::S3::Bucket", "Type: AWS::S3::Buckett", 1
        )
    )
    monkeypatch.setattr(publish, "PRODUCT_TEMPLATE", broken)
    with pytest.raises(publish.PublishError, match="fails cfn-lint"):
        publish.publish(options(), clients(moto_endpoint), VERSION, log=lambda _: None)
    assert (
        "Contents" not in clients(moto_endpoint).s3.list_objects_v2(Bucket=BUCKET)
        if _bucket_exists(moto_endpoint)
        else True
    )


def _bucket_exists(endpoint: str) -> bool:
    return BUCKET in {b["Name"] for b in clients(endpoint).s3.list_buckets()["Buckets"]}


def test_missing_bucket_is_a_clear_error(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(publish.PublishError, match="bucket does not exist"):
        publish.publish(options(), clients(moto_endpoint), VERSION, log=lambda _: None)


def test_access_denied_is_a_clear_error() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        denied = publish.Clients(s3=s3, servicecatalog=None, sagemaker=None, sts=None)
        with pytest.raises(publish.PublishError, match="access denied"):
            publish.check_bucket(denied, BUCKET)


def test_dry_run_calls_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        publish.main(
            ["--bucket", BUCKET, "--kms-key-arn", KMS, "--dry-run", "--principal-arn", PRINCIPAL],
            clients=None,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "plan (dry run" in out and "find or create portfolio" in out and PRINCIPAL in out


def _stub_first_publish(stub: Stubber) -> None:
    stub.add_response("list_portfolios", {"PortfolioDetails": []}, {})
    stub.add_response(
        "create_portfolio",
        {"PortfolioDetail": {"Id": "port-1"}},
        {
            "DisplayName": "MLOps project templates",
            "ProviderName": "Platform team",
            "Description": ANY,
            "IdempotencyToken": ANY,
        },
    )
    stub.add_response(
        "search_products_as_admin",
        {"ProductViewDetails": []},
        {"PortfolioId": "port-1", "Filters": ANY},
    )
    stub.add_response(
        "create_product",
        {"ProductViewDetail": {"ProductViewSummary": {"ProductId": "prod-1"}}},
        {
            "Name": "MLOps model building, training and deployment",
            "Owner": "Platform team",
            "ProductType": "CLOUD_FORMATION_TEMPLATE",
            "Tags": [{"Key": "sagemaker:studio-visibility", "Value": "true"}],
            "Description": ANY,
            "ProvisioningArtifactParameters": ANY,
            "IdempotencyToken": ANY,
        },
    )
    stub.add_response(
        "associate_product_with_portfolio", {}, {"ProductId": "prod-1", "PortfolioId": "port-1"}
    )
    stub.add_response(
        "create_constraint",
        {},
        {
            "PortfolioId": "port-1",
            "ProductId": "prod-1",
            "Type": "LAUNCH",
            "Parameters": json.dumps(
                {"LocalRoleName": "AmazonSageMakerServiceCatalogProductsLaunchRole"}
            ),
            "IdempotencyToken": ANY,
        },
    )
    stub.add_response(
        "list_principals_for_portfolio", {"Principals": []}, {"PortfolioId": "port-1"}
    )
    stub.add_response(
        "associate_principal_with_portfolio",
        {},
        {"PortfolioId": "port-1", "PrincipalARN": PRINCIPAL, "PrincipalType": "IAM"},
    )


def _stub_later_publish(stub: Stubber, known_versions: list[str], new_version: str) -> None:
    stub.add_response(
        "list_portfolios",
        {"PortfolioDetails": [{"Id": "port-1", "DisplayName": "MLOps project templates"}]},
        {},
    )
    stub.add_response(
        "search_products_as_admin",
        {
            "ProductViewDetails": [
                {
                    "ProductViewSummary": {
                        "ProductId": "prod-1",
                        "Name": "MLOps model building, training and deployment",
                    }
                }
            ]
        },
        {"PortfolioId": "port-1", "Filters": ANY},
    )
    stub.add_response(
        "list_provisioning_artifacts",
        {"ProvisioningArtifactDetails": [{"Id": f"pa-{v}", "Name": v} for v in known_versions]},
        {"ProductId": "prod-1"},
    )
    if new_version not in known_versions:
        stub.add_response(
            "create_provisioning_artifact",
            {},
            {"ProductId": "prod-1", "Parameters": ANY, "IdempotencyToken": ANY},
        )
    stub.add_response(
        "list_principals_for_portfolio",
        {"Principals": [{"PrincipalARN": PRINCIPAL, "PrincipalType": "IAM"}]},
        {"PortfolioId": "port-1"},
    )


def test_service_catalog_first_then_new_version_then_noop(moto_endpoint: str) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    logs: list[str] = []
    with Stubber(aws.servicecatalog) as stub:
        _stub_first_publish(stub)
        result = publish.publish(options(), aws, VERSION, log=logs.append)
        stub.assert_no_pending_responses()
        _stub_later_publish(stub, ["v1.0.0"], "v1.1.0")
        publish.publish(options(), aws, VERSION | {"version": "v1.1.0"}, log=logs.append)
        stub.assert_no_pending_responses()
        _stub_later_publish(stub, ["v1.0.0", "v1.1.0"], "v1.1.0")
        publish.publish(options(), aws, VERSION | {"version": "v1.1.0"}, log=logs.append)
        stub.assert_no_pending_responses()
    assert result["product_id"] == "prod-1"
    assert any("created product" in line for line in logs)
    assert any("added version v1.1.0" in line for line in logs)
    assert logs[-2].endswith("nothing to do")
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {
        f"templates/mlops/{v}/{f}"
        for v in ("v1.0.0", "v1.1.0")
        for f in ("seed.zip", "product.yaml")
    }
    # Unchanged input, unchanged bytes: republishing v1.1.0 uploaded the identical zip.
    body = aws.s3.get_object(Bucket=BUCKET, Key="templates/mlops/v1.1.0/seed.zip")["Body"].read()
    assert body == seed.build_seed_zip(options().answers, VERSION | {"version": "v1.1.0"})[0]


def test_s3_target(moto_endpoint: str) -> None:
    aws = clients(moto_endpoint)
    aws.s3.create_bucket(Bucket=BUCKET)
    account = aws.sts.get_caller_identity()["Account"]
    with Stubber(aws.sagemaker) as stub:
        stub.add_response(
            "add_tags",
            {},
            {
                "ResourceArn": f"arn:aws:sagemaker:us-east-1:{account}:domain/d-abc123",
                "Tags": [
                    {
                        "Key": "sagemaker:projectS3TemplatesLocation",
                        "Value": f"s3://{BUCKET}/templates/mlops/",
                    }
                ],
            },
        )
        result = publish.publish(
            options(target="s3", domain_id="d-abc123"), aws, VERSION, log=lambda _: None
        )
        stub.assert_no_pending_responses()
    tags = aws.s3.get_object_tagging(Bucket=BUCKET, Key=result["template_key"])["TagSet"]
    assert {"Key": "sagemaker:studio-visibility", "Value": "true"} in tags
    cors = aws.s3.get_bucket_cors(Bucket=BUCKET)["CORSRules"][0]
    assert cors["AllowedOrigins"] == ["https://*.sagemaker.aws"]


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
