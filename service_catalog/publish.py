"""Publish the template as an organisation SageMaker Project template.

    python -m service_catalog.publish --bucket ORG-BUCKET --answers org-answers.yaml \
        --principal-arn arn:aws:iam::...:role/StudioRole [--dry-run]
    python -m service_catalog.publish --target s3 --domain-id d-xxxx ...

Renders the seed code with the organisation's answers and zips exactly what the rendered
repository tracks (``git ls-files``); uploads the seed, the rendered infrastructure templates the
product provisions as nested stacks (byte for byte) and the product template with the seed's
values written into its ``Seed`` mapping; then either creates or versions the Service Catalog
product (``--target service-catalog``, the default) or tags the template object and the Studio
domain for S3-hosted project templates (``--target s3``).

Every argument and precondition (bucket, domain, a lint-clean product) is checked before the first
write; a failing AWS call is reported as one line (service, operation, error code); the bucket's
CORS rules are merged, never replaced; every step is idempotent, so re-running after a failure
completes what is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from . import seed

PRODUCT_TEMPLATE = Path(__file__).with_name("product.yaml")
VISIBILITY_TAG = {"Key": "sagemaker:studio-visibility", "Value": "true"}
S3_TEMPLATES_TAG = "sagemaker:projectS3TemplatesLocation"
STUDIO_ORIGIN = "https://*.sagemaker.aws"
STUDIO_CORS_RULE: dict[str, Any] = {
    "AllowedOrigins": [STUDIO_ORIGIN],
    "AllowedMethods": ["GET"],
    "AllowedHeaders": ["*"],
    "ExposeHeaders": ["ETag"],
    "MaxAgeSeconds": 3000,
}


class PublishError(RuntimeError):
    """A publish that must not go ahead; the message (one line) says why and what to do."""


@dataclass
class Options:
    bucket: str
    prefix: str
    answers: dict[str, Any]
    target: str = "service-catalog"
    portfolio_name: str = "MLOps project templates"
    product_name: str = "MLOps model building, training and deployment"
    provider: str = "Platform team"
    principal_arns: list[str] = field(default_factory=list)
    # service_catalog/launch-role.yaml's role (AWS's SageMaker launch role cannot create the
    # product's resources).
    launch_role: str = "MLOpsProjectLaunchRole"
    domain_id: str = ""
    region: str = "us-east-1"
    # The organisation's SageMaker execution role every project uses; "": each creates its own.
    execution_role_arn: str = ""


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


PERMISSIONS_HINT = "the caller needs the permissions listed in docs/admin/publishing.md"
HINTS = {
    "AccessDenied": PERMISSIONS_HINT,
    "AccessDeniedException": PERMISSIONS_HINT,
    "403": PERMISSIONS_HINT,
    "NoSuchBucket": "create the bucket first",
    "404": "create the bucket first",
}


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """One AWS call; a failure becomes one line naming the service, the operation and the code."""
    service = client.meta.service_model.service_id
    api = client.meta.method_to_api_mapping.get(operation, operation)
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code") or "Unknown")
        hint = HINTS.get(code)
        raise PublishError(
            f"{service} {api} failed: {code}" + (f" ({hint})" if hint else "")
        ) from None
    except BotoCoreError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PublishError(f"{service} {api} failed: {type(error).__name__}: {reason}") from None


# product.yaml's Seed mapping value for "no separate account" (a mapping value is never empty).
# A mapping value cannot be empty: "none" stands for a standard the seed does not set.
NO_ACCOUNT = "none"


# foundation.yaml's ExecutionRoleArn pattern.
EXECUTION_ROLE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+")


def nested_templates_url(options: Options, base: str) -> str:
    return f"https://{options.bucket}.s3.{options.region}.amazonaws.com/{base}/templates"


def product_template(options: Options, built: seed.Seed, base: str) -> str:
    """product.yaml with the seed's values in its Seed mapping, as CloudFormation JSON.

    Changed through the CloudFormation YAML loader cfn-lint ships (intrinsics become their JSON
    form), so no text substitution can corrupt it.
    """
    from cfnlint.decode import cfn_yaml  # heavy import, only when publishing

    template = cfn_yaml.loads(PRODUCT_TEMPLATE.read_text())
    template["Mappings"]["Seed"]["Answers"].update(
        {
            "SourceControl": built.answers["source_control"],
            "CiSystem": built.answers["ci_system"],
            "ArtifactBucket": built.answers["s3_bucket"],
            "TemplatesUrl": nested_templates_url(options, base),
            "SeedCodeBucket": options.bucket,
            "SeedCodeKey": f"{base}/seed.zip",
            # the seed's org-standards.json accounts; "none": staging and prod in this account
            "StagingAccountId": built.accounts.get("staging", NO_ACCOUNT),
            "ProdAccountId": built.accounts.get("prod", NO_ACCOUNT),
            # the seed's org-standards.json MLflow server; "none": the launch parameter decides
            "MlflowTrackingServerArn": built.mlflow_tracking_server_arn or NO_ACCOUNT,
            # the seed's org-standards.json vpc (comma-separated); "none": no network named
            "SubnetIds": ",".join(built.vpc.get("subnets", [])) or NO_ACCOUNT,
            "SecurityGroupIds": ",".join(built.vpc.get("security_groups", [])) or NO_ACCOUNT,
            # the seed's org-standards.json network_isolation and kms_key_arn, which the stacks'
            # roles enforce; "none": no key standard
            "NetworkIsolation": "true" if built.network_isolation else "false",
            "OrganisationKmsKeyArn": built.kms_key_arn or NO_ACCOUNT,
            # the publisher's --execution-role-arn; "none": each project creates its own
            "ExecutionRoleArn": options.execution_role_arn or NO_ACCOUNT,
        }
    )
    # The organisation's tags join the SageMaker Projects tags product.yaml gives each nested
    # stack (and the repository): CloudFormation propagates a nested stack's tags to its resources.
    organisation_tags = [{"Key": k, "Value": v} for k, v in sorted(built.tags.items())]
    for resource in template["Resources"].values():
        tags = resource.get("Properties", {}).get("Tags")
        if tags is not None:
            given = {tag["Key"] for tag in tags}
            tags.extend(tag for tag in organisation_tags if tag["Key"] not in given)
    return json.dumps(template, indent=2, sort_keys=False) + "\n"


@functools.lru_cache(maxsize=64)  # a re-run publishes the same rendered templates again
def lint_errors(template_text: str, region: str = "us-east-1") -> tuple[str, ...]:
    """cfn-lint errors (not warnings) of a template; a template with errors is not published."""
    from cfnlint.api import lint  # heavy import, only when publishing

    return tuple(
        f"{match.rule.id} line {match.linenumber}: {match.message}"
        for match in lint(template_text, regions=[region])
        if match.rule.id.startswith("E")
    )


def check_arguments(options: Options) -> None:
    """Refuse bad arguments before anything is rendered, read or written."""
    if not options.bucket:
        raise PublishError("--bucket is required")
    if options.target == "s3" and not options.domain_id:
        raise PublishError("--target s3 needs --domain-id (the SageMaker domain to tag)")
    if options.target not in ("s3", "service-catalog"):
        raise PublishError(f"unknown --target {options.target}")
    if options.execution_role_arn and not EXECUTION_ROLE.fullmatch(options.execution_role_arn):
        raise PublishError(
            f"--execution-role-arn {options.execution_role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::<account>:role/<name>)"
        )


def check_version(version: Mapping[str, str]) -> None:
    """A published version never changes, so it must name one commit of the template."""
    name = version["version"]
    if name == "unknown" or name.endswith("-dirty"):
        raise PublishError(
            f"template version {name!r} is not one commit: publish from a clean git checkout "
            "(commit or stash the changes)"
        )


def check_preconditions(clients: Clients, options: Options) -> tuple[str, str]:
    """Read-only checks of everything the writes need; returns this account (the bucket's
    expected owner) and the SageMaker domain ARN (s3 target; "" otherwise)."""
    account = str(call(clients.sts, "get_caller_identity")["Account"])
    # Every S3 call names the owner it expects: a bucket of that name in another account (a
    # deleted and re-created name) is refused by S3 instead of receiving the seed.
    call(clients.s3, "head_bucket", Bucket=options.bucket, ExpectedBucketOwner=account)
    if options.target != "s3":
        return account, ""
    call(clients.sagemaker, "describe_domain", DomainId=options.domain_id)
    return account, f"arn:aws:sagemaker:{options.region}:{account}:domain/{options.domain_id}"


def published_body(clients: Clients, bucket: str, owner: str, key: str) -> bytes | None:
    """The object's bytes, or None when there is none."""
    try:
        response = clients.s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        code = error.response.get("Error", {}).get("Code")
        raise PublishError(f"S3 GetObject failed: {code} ({PERMISSIONS_HINT})") from None
    return bytes(response["Body"].read())


def check_unpublished(
    clients: Clients, bucket: str, owner: str, objects: Mapping[str, bytes]
) -> dict[str, bytes]:
    """The objects still to upload. A version's objects never change: one that exists with
    other bytes refuses the whole publish before anything is written; one with the same bytes
    (a re-run after a partial publish) is left as it is."""
    todo = {}
    for key, body in objects.items():
        existing = published_body(clients, bucket, owner, key)
        if existing is None:
            todo[key] = body
        elif existing != body:
            raise PublishError(
                f"s3://{bucket}/{key} is already published with other content: a published "
                "version never changes; tag a new version of the template and publish that"
            )
    return todo


def upload(
    clients: Clients, bucket: str, key: str, body: bytes, tags: str = "", *, owner: str
) -> None:
    extra = {"Tagging": tags} if tags else {}
    call(
        clients.s3,
        "put_object",
        Bucket=bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        ExpectedBucketOwner=owner,
        **extra,
    )


def merge_cors(clients: Clients, bucket: str, owner: str, log: Callable[[str], None]) -> None:
    """Add Studio's rule to the bucket's CORS configuration, keeping every existing rule."""
    try:
        rules = list(
            clients.s3.get_bucket_cors(Bucket=bucket, ExpectedBucketOwner=owner)["CORSRules"]
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
            raise PublishError(
                f"S3 GetBucketCors failed: {error.response.get('Error', {}).get('Code')}"
            ) from None
        rules = []
    if any(_same_rule(rule, STUDIO_CORS_RULE) for rule in rules):
        log(f"bucket CORS already allows {STUDIO_ORIGIN}")
        return
    call(
        clients.s3,
        "put_bucket_cors",
        Bucket=bucket,
        ExpectedBucketOwner=owner,
        CORSConfiguration={"CORSRules": [*rules, STUDIO_CORS_RULE]},
    )
    log(f"bucket CORS allows {STUDIO_ORIGIN} (kept {len(rules)} existing rule(s))")


def _same_rule(rule: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(rule.get(key) == value for key, value in wanted.items())


def _find(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((item for item in items if item.get(key) == value), None)


def ensure_portfolio(sc: Any, options: Options, log: Callable[[str], None]) -> str:
    portfolios: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = call(sc, "list_portfolios", **({"PageToken": token} if token else {}))
        portfolios += page["PortfolioDetails"]
        token = page.get("NextPageToken")
        if not token:
            break
    found = _find(portfolios, "DisplayName", options.portfolio_name)
    if found:
        log(f"portfolio '{options.portfolio_name}' exists: {found['Id']}")
        return str(found["Id"])
    created = call(
        sc,
        "create_portfolio",
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
    """Find or create the product, then add what is missing: association, launch role, version."""
    artifact = {
        "Name": version["version"],
        "Type": "CLOUD_FORMATION_TEMPLATE",
        "Description": f"template commit {version['commit']}",
        "Info": {"LoadTemplateFromURL": template_url},
        "DisableTemplateValidation": False,
    }
    # Searched across all products, not the portfolio: a run that failed before associating the
    # product must find it again rather than create a second one.
    found = call(sc, "search_products_as_admin", Filters={"FullTextSearch": [options.product_name]})
    views = [view["ProductViewSummary"] for view in found.get("ProductViewDetails", [])]
    product = _find(views, "Name", options.product_name)
    if product is None:
        created = call(
            sc,
            "create_product",
            Name=options.product_name,
            Owner=options.provider,
            ProductType="CLOUD_FORMATION_TEMPLATE",
            Tags=[VISIBILITY_TAG],
            Description="Standardized ML repository: DVC, SageMaker pipeline, CI/CD, monitoring",
            ProvisioningArtifactParameters=artifact,
            IdempotencyToken=f"product-{options.product_name}-{version['version']}"[:128],
        )
        product_id = str(created["ProductViewDetail"]["ProductViewSummary"]["ProductId"])
        log(f"created product '{options.product_name}' ({product_id}) version {version['version']}")
    else:
        product_id = str(product["ProductId"])
        artifacts = call(sc, "list_provisioning_artifacts", ProductId=product_id)
        if _find(artifacts["ProvisioningArtifactDetails"], "Name", version["version"]):
            log(f"product '{options.product_name}' already has version {version['version']}")
        else:
            call(
                sc,
                "create_provisioning_artifact",
                ProductId=product_id,
                Parameters=artifact,
                IdempotencyToken=f"artifact-{product_id}-{version['version']}"[:128],
            )
            log(f"added version {version['version']} to '{options.product_name}' ({product_id})")
    portfolios = call(sc, "list_portfolios_for_product", ProductId=product_id)["PortfolioDetails"]
    if not _find(portfolios, "Id", portfolio_id):
        call(sc, "associate_product_with_portfolio", ProductId=product_id, PortfolioId=portfolio_id)
        log(f"associated product {product_id} with portfolio {portfolio_id}")
    constraints = call(
        sc, "list_constraints_for_portfolio", PortfolioId=portfolio_id, ProductId=product_id
    )["ConstraintDetails"]
    if not _find(constraints, "Type", "LAUNCH"):
        call(
            sc,
            "create_constraint",
            PortfolioId=portfolio_id,
            ProductId=product_id,
            Type="LAUNCH",
            Parameters=json.dumps({"LocalRoleName": options.launch_role}),
            IdempotencyToken=f"launch-{product_id}"[:128],
        )
        log(f"launch role {options.launch_role} set for product {product_id}")
    return product_id


def ensure_principals(
    sc: Any, portfolio_id: str, principals: list[str], log: Callable[[str], None]
) -> None:
    existing = {
        p["PrincipalARN"]
        for p in call(sc, "list_principals_for_portfolio", PortfolioId=portfolio_id)["Principals"]
    }
    for principal in principals:
        if principal in existing:
            log(f"principal {principal} already associated")
            continue
        call(
            sc,
            "associate_principal_with_portfolio",
            PortfolioId=portfolio_id,
            PrincipalARN=principal,
            PrincipalType="IAM",
        )
        log(f"associated principal {principal}")


def publish_s3_target(
    clients: Clients, options: Options, owner: str, domain_arn: str, log: Callable[[str], None]
) -> None:
    merge_cors(clients, options.bucket, owner, log)
    location = f"s3://{options.bucket}/{options.prefix}/"
    call(
        clients.sagemaker,
        "add_tags",
        ResourceArn=domain_arn,
        Tags=[{"Key": S3_TEMPLATES_TAG, "Value": location}],
    )
    log(f"tagged {domain_arn} with {S3_TEMPLATES_TAG}={location}")


def plan(options: Options, version: Mapping[str, str]) -> list[str]:
    base = f"s3://{options.bucket}/{options.prefix}/{version['version']}"
    steps = [
        f"render the template with {len(options.answers)} organisation answer(s)",
        "zip the rendered repository's tracked files (git ls-files; reproducible bytes)",
        "cfn-lint product.yaml with the seed's values; refuse on errors",
        "check the bucket" + (" and the SageMaker domain" if options.target == "s3" else ""),
        f"upload {base}/seed.zip, {base}/templates/*.yaml (the rendered infrastructure, "
        f"byte for byte) and {base}/product.json",
    ]
    if options.target == "s3":
        steps += [
            "tag the template object sagemaker:studio-visibility=true",
            f"add {STUDIO_ORIGIN} to the bucket's CORS rules (existing rules kept)",
            f"tag SageMaker domain {options.domain_id or '(missing --domain-id)'} with "
            f"{S3_TEMPLATES_TAG}",
        ]
    else:
        steps += [
            f"find or create portfolio '{options.portfolio_name}'",
            f"find or create product '{options.product_name}' (tag "
            "sagemaker:studio-visibility=true); add version "
            f"{version['version']} if new; associate it and set launch role "
            f"{options.launch_role} if missing",
            f"associate principals: {', '.join(options.principal_arns) or '(none)'}",
        ]
    return steps


def publish(
    options: Options,
    clients: Clients,
    version: Mapping[str, str],
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    check_arguments(options)
    check_version(version)
    built = seed.build_seed(options.answers)
    base = f"{options.prefix}/{version['version']}"
    template = product_template(options, built, base)
    errors = list(lint_errors(template, options.region))
    for name, body in built.templates.items():
        errors += [f"{name}: {error}" for error in lint_errors(body.decode(), options.region)]
    if errors:
        raise PublishError("product template fails cfn-lint; not publishing: " + "; ".join(errors))
    owner, domain_arn = check_preconditions(clients, options)
    seed_key = f"{base}/seed.zip"
    template_key = f"{base}/product.json"
    objects = {
        seed_key: built.zip,
        **{f"{base}/templates/{name}": body for name, body in built.templates.items()},
        template_key: template.encode(),
    }
    # Writes from here on: only objects the version does not have yet.
    todo = check_unpublished(clients, options.bucket, owner, objects)
    visibility = "sagemaker:studio-visibility=true" if options.target == "s3" else ""
    for key, body in todo.items():
        tags = visibility if key == template_key else ""
        upload(clients, options.bucket, key, body, tags, owner=owner)
    log(
        f"{built.slug} seed ({len(built.zip)} bytes) at s3://{options.bucket}/{seed_key}"
        + ("" if todo else " (already published, unchanged)")
    )
    result = {"seed_key": seed_key, "template_key": template_key}
    if options.target == "s3":
        publish_s3_target(clients, options, owner, domain_arn, log)
        return result
    url = f"https://{options.bucket}.s3.{options.region}.amazonaws.com/{template_key}"
    sc = clients.servicecatalog
    portfolio_id = ensure_portfolio(sc, options, log)
    result["portfolio_id"] = portfolio_id
    result["product_id"] = ensure_product(sc, options, portfolio_id, url, version, log)
    ensure_principals(sc, portfolio_id, options.principal_arns, log)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bucket", required=True, help="bucket for the seed zip and templates")
    parser.add_argument("--prefix", default="sagemaker-project-templates/mlops")
    parser.add_argument(
        "--answers",
        type=Path,
        help="YAML of organisation answers (cookiecutter's default_context format is accepted)",
    )
    parser.add_argument("--target", choices=["service-catalog", "s3"], default="service-catalog")
    parser.add_argument("--portfolio-name", default=Options.portfolio_name)
    parser.add_argument("--product-name", default=Options.product_name)
    parser.add_argument("--provider", default=Options.provider)
    parser.add_argument("--principal-arn", action="append", default=[], dest="principal_arns")
    parser.add_argument("--launch-role", default=Options.launch_role)
    parser.add_argument("--domain-id", default="", help="SageMaker domain (with --target s3)")
    parser.add_argument("--region", default=boto3.session.Session().region_name or "us-east-1")
    parser.add_argument(
        "--execution-role-arn",
        default="",
        help=(
            "the organisation's role every project's SageMaker jobs, models and monitoring run "
            "as (fixed in the product; launchers cannot choose one); default: each project "
            "creates its own"
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan; call no AWS API")
    return parser.parse_args(argv)


def load_answers(path: Path | None) -> dict[str, Any]:
    """The answers file's mapping; a file that cannot be one is a one-line PublishError."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PublishError(f"--answers {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise PublishError(f"--answers {path}{line}: not YAML ({problem})") from None
    data = data if data is not None else {}
    answers = data.get("default_context", data) if isinstance(data, dict) else data
    if not isinstance(answers, dict):
        raise PublishError(
            f"--answers {path}: must be a mapping of cookiecutter answers (or default_context:)"
        )
    return dict(answers)


def main(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    args = parse_args(argv)
    version = seed.template_version()
    try:
        # Bad input (arguments, the answers file, answers the template refuses): one line and
        # exit 2, before anything is rendered or any AWS API called; --dry-run checks the same.
        options = Options(
            bucket=args.bucket,
            prefix=args.prefix.strip("/"),
            answers=load_answers(args.answers),
            target=args.target,
            portfolio_name=args.portfolio_name,
            product_name=args.product_name,
            provider=args.provider,
            principal_arns=args.principal_arns,
            launch_role=args.launch_role,
            domain_id=args.domain_id,
            region=args.region,
            execution_role_arn=args.execution_role_arn,
        )
        check_arguments(options)
        seed.validate_answers(options.answers)
        check_version(version)
    except (PublishError, seed.AnswersError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            print(f"plan (dry run, template version {version['version']}):")
            for number, step in enumerate(plan(options, version), start=1):
                print(f"  {number}. {step}")
            return 0
        publish(options, clients or Clients.from_session(options.region), version)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
