"""Publish the template as an organisation SageMaker Project template.

    python -m service_catalog.publish --bucket ORG-BUCKET --answers org-answers.yaml \
        --kms-key-arn arn:aws:kms:... --principal-arn arn:aws:iam::...:role/StudioRole [--dry-run]
    python -m service_catalog.publish --target s3 --domain-id d-xxxx ...

Renders the seed code with the organisation's answers, zips it reproducibly, refuses a product
template that fails cfn-lint, uploads both, then either creates or versions the Service Catalog
product (``--target service-catalog``, the default) or tags the template object and the Studio
domain for S3-hosted project templates (``--target s3``). Every step is idempotent: a second run
with the same template version changes nothing, a new version adds a provisioning artifact.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

from . import seed

PRODUCT_TEMPLATE = Path(__file__).with_name("product.yaml")
VISIBILITY_TAG = {"Key": "sagemaker:studio-visibility", "Value": "true"}
S3_TEMPLATES_TAG = "sagemaker:projectS3TemplatesLocation"
STUDIO_ORIGIN = "https://*.sagemaker.aws"


class PublishError(RuntimeError):
    """A publish that must not go ahead; the message says why and what to do."""


@dataclass
class Options:
    bucket: str
    prefix: str
    answers: dict[str, Any]
    kms_key_arn: str
    target: str = "service-catalog"
    portfolio_name: str = "MLOps project templates"
    product_name: str = "MLOps model building, training and deployment"
    provider: str = "Platform team"
    principal_arns: list[str] = field(default_factory=list)
    launch_role: str = "AmazonSageMakerServiceCatalogProductsLaunchRole"
    role_arn: str = ""
    domain_id: str = ""
    region: str = "us-east-1"


@dataclass
class Clients:
    s3: Any
    servicecatalog: Any
    sagemaker: Any
    sts: Any

    @classmethod
    def from_session(cls, region: str) -> Clients:
        session = boto3.session.Session(region_name=region)
        return cls(*(session.client(name) for name in ("s3", "servicecatalog", "sagemaker", "sts")))


def product_template(options: Options, seed_key: str) -> str:
    """product.yaml with the seed location, key and role as parameter defaults."""
    text = PRODUCT_TEMPLATE.read_text()
    defaults = {
        "SeedCodeBucket": options.bucket,
        "SeedCodeKey": seed_key,
        "KmsKeyArn": options.kms_key_arn,
        "RoleArn": options.role_arn,
    }
    for name, value in defaults.items():
        pattern = re.compile(rf"(\n  {name}:\n(?:    .*\n)*?    Default: ).*\n")
        replacement = json.dumps(value).replace("\\", "\\\\")
        text, count = pattern.subn(rf"\g<1>{replacement}\n", text)
        if count != 1:
            raise PublishError(f"product.yaml has no default for parameter {name}")
    return text


def lint_errors(template_text: str, region: str = "us-east-1") -> list[str]:
    """cfn-lint errors (not warnings) of a template; a template with errors is not published."""
    from cfnlint.api import lint  # heavy import, only when publishing

    return [
        f"{match.rule.id} line {match.linenumber}: {match.message}"
        for match in lint(template_text, regions=[region])
        if match.rule.id.startswith("E")
    ]


def _client_error(error: ClientError, what: str) -> PublishError:
    code = error.response.get("Error", {}).get("Code", "")
    if code in ("AccessDenied", "AccessDeniedException", "403", "Forbidden"):
        return PublishError(
            f"access denied while {what}: the caller needs the permissions listed "
            "in the README's admin section"
        )
    if code in ("NoSuchBucket", "404", "NotFound"):
        return PublishError(f"bucket does not exist while {what}; create it first")
    return PublishError(f"{what} failed: {code} {error.response.get('Error', {}).get('Message')}")


def check_bucket(clients: Clients, bucket: str) -> None:
    try:
        clients.s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        raise _client_error(error, f"checking bucket {bucket}") from None


def upload(clients: Clients, bucket: str, key: str, body: bytes, tags: str = "") -> None:
    extra = {"Tagging": tags} if tags else {}
    try:
        clients.s3.put_object(
            Bucket=bucket, Key=key, Body=body, ServerSideEncryption="aws:kms", **extra
        )
    except ClientError as error:
        raise _client_error(error, f"uploading s3://{bucket}/{key}") from None


def _find(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((item for item in items if item.get(key) == value), None)


def ensure_portfolio(sc: Any, options: Options, log: Callable[[str], None]) -> str:
    portfolios: list[dict[str, Any]] = []
    for page in sc.get_paginator("list_portfolios").paginate():
        portfolios += page["PortfolioDetails"]
    found = _find(portfolios, "DisplayName", options.portfolio_name)
    if found:
        log(f"portfolio '{options.portfolio_name}' exists: {found['Id']}")
        return str(found["Id"])
    created = sc.create_portfolio(
        DisplayName=options.portfolio_name,
        ProviderName=options.provider,
        Description="Organisation project templates for SageMaker Studio",
        IdempotencyToken=f"portfolio-{options.portfolio_name}"[:128],
    )
    portfolio_id = str(created["PortfolioDetail"]["Id"])
    log(f"created portfolio '{options.portfolio_name}': {portfolio_id}")
    return portfolio_id


def ensure_product(
    sc: Any,
    options: Options,
    portfolio_id: str,
    template_url: str,
    version: Mapping[str, str],
    log: Callable[[str], None],
) -> str:
    artifact = {
        "Name": version["version"],
        "Type": "CLOUD_FORMATION_TEMPLATE",
        "Description": f"template commit {version['commit']}",
        "Info": {"LoadTemplateFromURL": template_url},
        "DisableTemplateValidation": False,
    }
    found = sc.search_products_as_admin(
        PortfolioId=portfolio_id, Filters={"FullTextSearch": [options.product_name]}
    )
    views = [view["ProductViewSummary"] for view in found.get("ProductViewDetails", [])]
    product = _find(views, "Name", options.product_name)
    if product is None:
        created = sc.create_product(
            Name=options.product_name,
            Owner=options.provider,
            ProductType="CLOUD_FORMATION_TEMPLATE",
            Tags=[VISIBILITY_TAG],
            Description="Standardized ML repository: DVC, SageMaker pipeline, CI/CD, monitoring",
            ProvisioningArtifactParameters=artifact,
            IdempotencyToken=f"product-{version['version']}"[:128],
        )
        product_id = str(created["ProductViewDetail"]["ProductViewSummary"]["ProductId"])
        sc.associate_product_with_portfolio(ProductId=product_id, PortfolioId=portfolio_id)
        sc.create_constraint(
            PortfolioId=portfolio_id,
            ProductId=product_id,
            Type="LAUNCH",
            Parameters=json.dumps({"LocalRoleName": options.launch_role}),
            IdempotencyToken=f"launch-{product_id}"[:128],
        )
        log(
            f"created product '{options.product_name}' ({product_id}) version {version['version']}"
            f", launch role {options.launch_role}"
        )
        return product_id
    product_id = str(product["ProductId"])
    artifacts = sc.list_provisioning_artifacts(ProductId=product_id)["ProvisioningArtifactDetails"]
    if _find(artifacts, "Name", version["version"]):
        log(
            f"product '{options.product_name}' already has version {version['version']}; "
            "nothing to do"
        )
        return product_id
    sc.create_provisioning_artifact(
        ProductId=product_id,
        Parameters=artifact,
        IdempotencyToken=f"artifact-{version['version']}"[:128],
    )
    log(f"added version {version['version']} to product '{options.product_name}' ({product_id})")
    return product_id


def ensure_principals(
    sc: Any, portfolio_id: str, principals: list[str], log: Callable[[str], None]
) -> None:
    existing = {
        p["PrincipalARN"]
        for p in sc.list_principals_for_portfolio(PortfolioId=portfolio_id)["Principals"]
    }
    for principal in principals:
        if principal in existing:
            log(f"principal {principal} already associated")
            continue
        sc.associate_principal_with_portfolio(
            PortfolioId=portfolio_id, PrincipalARN=principal, PrincipalType="IAM"
        )
        log(f"associated principal {principal}")


def publish_s3_target(
    clients: Clients, options: Options, template_key: str, log: Callable[[str], None]
) -> None:
    clients.s3.put_bucket_cors(
        Bucket=options.bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [STUDIO_ORIGIN],
                    "AllowedMethods": ["GET"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3000,
                }
            ]
        },
    )
    log(f"bucket CORS allows {STUDIO_ORIGIN}")
    if not options.domain_id:
        raise PublishError("--target s3 needs --domain-id (the SageMaker domain to tag)")
    account = clients.sts.get_caller_identity()["Account"]
    domain_arn = f"arn:aws:sagemaker:{options.region}:{account}:domain/{options.domain_id}"
    location = f"s3://{options.bucket}/{options.prefix}/"
    clients.sagemaker.add_tags(
        ResourceArn=domain_arn, Tags=[{"Key": S3_TEMPLATES_TAG, "Value": location}]
    )
    log(f"tagged {domain_arn} with {S3_TEMPLATES_TAG}={location} (template {template_key})")


def plan(options: Options, version: Mapping[str, str]) -> list[str]:
    base = f"s3://{options.bucket}/{options.prefix}/{version['version']}"
    steps = [
        f"render the template with {len(options.answers)} organisation answer(s)",
        "zip the seed code (reproducible bytes)",
        "cfn-lint product.yaml with the seed location; refuse on errors",
        f"upload {base}/seed.zip and {base}/product.yaml",
    ]
    if options.target == "s3":
        steps += [
            "tag the template object sagemaker:studio-visibility=true",
            f"allow {STUDIO_ORIGIN} in the bucket's CORS",
            f"tag SageMaker domain {options.domain_id or '(missing --domain-id)'} with "
            f"{S3_TEMPLATES_TAG}",
        ]
    else:
        steps += [
            f"find or create portfolio '{options.portfolio_name}'",
            f"find or create product '{options.product_name}' (tag "
            "sagemaker:studio-visibility=true, launch role "
            f"{options.launch_role}); add version {version['version']} if new",
            f"associate principals: {', '.join(options.principal_arns) or '(none)'}",
        ]
    return steps


def publish(
    options: Options,
    clients: Clients,
    version: Mapping[str, str],
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    seed_zip, slug = seed.build_seed_zip(options.answers, version)
    base = f"{options.prefix}/{version['version']}"
    seed_key = f"{base}/seed.zip"
    template = product_template(options, seed_key)
    errors = lint_errors(template, options.region)
    if errors:
        raise PublishError(
            "product template fails cfn-lint; not publishing:\n  " + "\n  ".join(errors)
        )
    check_bucket(clients, options.bucket)
    template_key = f"{base}/product.yaml"
    visibility = "sagemaker:studio-visibility=true"
    upload(clients, options.bucket, seed_key, seed_zip)
    upload(
        clients,
        options.bucket,
        template_key,
        template.encode(),
        tags=visibility if options.target == "s3" else "",
    )
    log(f"uploaded {slug} seed ({len(seed_zip)} bytes) to s3://{options.bucket}/{seed_key}")
    result = {"seed_key": seed_key, "template_key": template_key}
    try:
        if options.target == "s3":
            publish_s3_target(clients, options, template_key, log)
            return result
        url = f"https://{options.bucket}.s3.{options.region}.amazonaws.com/{template_key}"
        sc = clients.servicecatalog
        portfolio_id = ensure_portfolio(sc, options, log)
        result["portfolio_id"] = portfolio_id
        result["product_id"] = ensure_product(sc, options, portfolio_id, url, version, log)
        ensure_principals(sc, portfolio_id, options.principal_arns, log)
    except ClientError as error:
        raise _client_error(error, "publishing") from None
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bucket", required=True, help="bucket for the seed zip and template")
    parser.add_argument("--prefix", default="sagemaker-project-templates/mlops")
    parser.add_argument(
        "--answers",
        type=Path,
        help="YAML of organisation answers (cookiecutter's default_context format is accepted)",
    )
    parser.add_argument("--kms-key-arn", required=True, help="organisation KMS key")
    parser.add_argument("--target", choices=["service-catalog", "s3"], default="service-catalog")
    parser.add_argument("--portfolio-name", default=Options.portfolio_name)
    parser.add_argument("--product-name", default=Options.product_name)
    parser.add_argument("--provider", default=Options.provider)
    parser.add_argument("--principal-arn", action="append", default=[], dest="principal_arns")
    parser.add_argument("--launch-role", default=Options.launch_role)
    parser.add_argument(
        "--role-arn",
        default="",
        help="role provisioned resources run as "
        "(default: AmazonSageMakerServiceCatalogProductsUseRole)",
    )
    parser.add_argument("--domain-id", default="", help="SageMaker domain (with --target s3)")
    parser.add_argument("--region", default=boto3.session.Session().region_name or "us-east-1")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; call no AWS API")
    return parser.parse_args(argv)


def load_answers(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return dict(data.get("default_context", data))


def main(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        bucket=args.bucket,
        prefix=args.prefix.strip("/"),
        answers=load_answers(args.answers),
        kms_key_arn=args.kms_key_arn,
        target=args.target,
        portfolio_name=args.portfolio_name,
        product_name=args.product_name,
        provider=args.provider,
        principal_arns=args.principal_arns,
        launch_role=args.launch_role,
        role_arn=args.role_arn,
        domain_id=args.domain_id,
        region=args.region,
    )
    version = seed.template_version()
    if args.dry_run:
        print(f"plan (dry run, template version {version['version']}):")
        for number, step in enumerate(plan(options, version), start=1):
            print(f"  {number}. {step}")
        return 0
    try:
        publish(options, clients or Clients.from_session(options.region), version)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
