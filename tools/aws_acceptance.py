"""The whole road in a sandbox AWS account: publish, provision, data, build, approve, staging.

    make aws-acceptance ACCEPTANCE_ARGS="--account-id 111122223333 --bucket sandbox-templates \
        --principal-arn arn:aws:iam::111122223333:role/AcceptanceRunner"

Each stage prints one line (``ok``, ``failed`` with the reason, or ``skipped`` after a failure);
teardown always runs and removes what the run created (the project's stacks, endpoints, model
packages and objects, the product, the portfolio and the published objects), so a failed run
leaves the account as it found it. Exit status: 0 when every stage passed, 1 when one failed, 2
when the run was refused before any AWS call.

Refused in one line, before anything reaches the network:
- no credentials (instance and container metadata are never asked: a laptop must not call them);
- no ``--account-id``: the run creates and deletes resources, so the account it may touch is
  named explicitly and checked against the credentials' own account (STS) before the first write.

The run renders a CodeCommit + CodePipeline seed (one the product can provision without a GitHub
connection) named ``acc-<run id>``; its artifact bucket is ``<account>-acc-<run id>-ml``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

TEMPLATE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE))  # run as a script: the publisher is the template's own package

from service_catalog import publish, seed  # noqa: E402 - after the path above

# Polling bounds: each is the longest a healthy stage takes, with margin (a SageMaker pipeline
# on ml.m5 instances runs for 15-25 minutes; an endpoint is InService within 10-15 minutes).
POLL_SECONDS = 30.0
WAIT_MINUTES = {"provision": 30, "build": 30, "pipeline": 60, "staging": 45, "teardown": 30}


class StageError(RuntimeError):
    """A stage that did not reach its goal; the message is the one line printed for it."""


@dataclass
class Run:
    """What the stages share: the clients, the names derived from the run id, what was created."""

    session: boto3.session.Session
    account_id: str
    bucket: str
    principal_arns: list[str]
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    poll_seconds: float = POLL_SECONDS
    created: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="acceptance-")))

    @property
    def project(self) -> str:
        return f"acc-{self.run_id}"

    @property
    def answers(self) -> dict[str, Any]:
        return {
            "project_name": f"Acceptance {self.run_id}",
            "project_slug": self.project,
            "s3_bucket": f"{self.account_id}-{self.project}-ml",
            "aws_region": self.session.region_name,
            "source_control": "codecommit",
            "ci_system": "codepipeline",
            "inference_mode": "realtime",
        }

    @functools.cached_property
    def rendered(self) -> Path:
        """The seed rendered locally with the run's answers (once): its data and contract."""
        return seed.render_seed(self.answers, self.workdir)

    def client(self, name: str) -> Any:
        return self.session.client(name)

    def wait(self, stage: str, check: Callable[[], bool], what: str) -> None:
        """Poll ``check`` until it returns True, or fail the stage after its time limit."""
        deadline = time.monotonic() + WAIT_MINUTES[stage] * 60
        while not check():
            if time.monotonic() > deadline:
                raise StageError(f"{what} not reached within {WAIT_MINUTES[stage]} minutes")
            time.sleep(self.poll_seconds)


def aws(client: Any, operation: str, **kwargs: Any) -> Any:
    """One AWS call; a failure becomes one line naming the service, the operation and the code."""
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code") or "Unknown"
        api = client.meta.method_to_api_mapping.get(operation, operation)
        raise StageError(f"{client.meta.service_model.service_id} {api} failed: {code}") from None
    except BotoCoreError as error:
        raise StageError(f"{type(error).__name__}: {str(error).splitlines()[0]}") from None


def identity(run: Run) -> str:
    account = aws(run.client("sts"), "get_caller_identity")["Account"]
    if account != run.account_id:
        raise StageError(f"the credentials are for account {account}, not {run.account_id}")
    return f"account {account}, region {run.session.region_name}"


def publish_product(run: Run) -> str:
    options = publish.Options(
        bucket=run.bucket,
        prefix=f"acceptance/{run.project}",
        answers=run.answers,
        portfolio_name=f"mlops-acceptance-{run.run_id}",
        product_name=f"mlops-acceptance-{run.run_id}",
        principal_arns=run.principal_arns,
        region=run.session.region_name,
    )
    clients = publish.Clients.from_session(run.session.region_name)
    # Recorded before the first write: teardown removes whatever part of the publish happened.
    run.created.update(prefix=options.prefix, catalog=options.portfolio_name)
    version = {"version": run.run_id, "commit": seed.template_version()["commit"]}
    try:
        result = publish.publish(options, clients, version, log=lambda _line: None)
    except publish.PublishError as error:
        raise StageError(str(error)) from None
    run.created["product"] = result["product_id"]
    return f"product {result['product_id']} in portfolio {result['portfolio_id']}"


def provision(run: Run) -> str:
    catalog, sagemaker = run.client("servicecatalog"), run.client("sagemaker")
    artifacts = aws(catalog, "list_provisioning_artifacts", ProductId=run.created["product"])
    artifact = next(
        a["Id"] for a in artifacts["ProvisioningArtifactDetails"] if a["Name"] == run.run_id
    )
    aws(
        sagemaker,
        "create_project",
        ProjectName=run.project,
        ServiceCatalogProvisioningDetails={
            "ProductId": run.created["product"],
            "ProvisioningArtifactId": artifact,
        },
    )
    run.created["project"] = run.project

    def status() -> str:
        return str(aws(sagemaker, "describe_project", ProjectName=run.project)["ProjectStatus"])

    run.wait("provision", lambda: status() in {"CreateCompleted", "CreateFailed"}, "project")
    if status() != "CreateCompleted":
        raise StageError(f"project {run.project} ended {status()} (see its CloudFormation events)")
    return f"project {run.project} created"


def push_data(run: Run) -> str:
    """The data version the build trains on, pushed to the project's DVC remote as a user would."""
    for target in ("setup", "push"):
        done = subprocess.run(  # noqa: S603 - the rendered project's own make targets
            ["make", target],  # noqa: S607 - make from PATH
            cwd=run.rendered,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise StageError(f"make {target} failed: {' '.join(last)}")
    return f"data pushed to s3://{run.answers['s3_bucket']}/{run.project}/dvc"


def build(run: Run) -> str:
    pipeline, sagemaker = run.client("codepipeline"), run.client("sagemaker")
    name = f"{run.project}-build"
    execution = aws(pipeline, "start_pipeline_execution", name=name)["pipelineExecutionId"]

    def build_status() -> str:
        got = aws(
            pipeline, "get_pipeline_execution", pipelineName=name, pipelineExecutionId=execution
        )
        return str(got["pipelineExecution"]["status"])

    run.wait("build", lambda: build_status() not in {"InProgress", "Stopping"}, f"{name} finished")
    if build_status() != "Succeeded":
        raise StageError(f"build pipeline {name} ended {build_status()}")
    executions = aws(
        sagemaker, "list_pipeline_executions", PipelineName=f"{run.project}-pipeline", MaxResults=1
    )["PipelineExecutionSummaries"]
    if not executions:
        raise StageError(f"the build started no execution of {run.project}-pipeline")
    arn = executions[0]["PipelineExecutionArn"]

    def pipeline_status() -> str:
        got = aws(sagemaker, "describe_pipeline_execution", PipelineExecutionArn=arn)
        return str(got["PipelineExecutionStatus"])

    run.wait("pipeline", lambda: pipeline_status() != "Executing", "SageMaker pipeline finished")
    if pipeline_status() != "Succeeded":
        raise StageError(f"SageMaker pipeline execution ended {pipeline_status()}: {arn}")
    return f"build {execution} and SageMaker pipeline succeeded"


def approve(run: Run) -> str:
    """What the approver does: the newest registered package of the project, approved."""
    sagemaker = run.client("sagemaker")
    packages = aws(
        sagemaker,
        "list_model_packages",
        ModelPackageGroupName=run.project,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not packages:
        raise StageError(f"no model package registered in group {run.project}")
    arn = packages[0]["ModelPackageArn"]
    if packages[0].get("ModelApprovalStatus") != "PendingManualApproval":
        raise StageError(f"{arn} is {packages[0].get('ModelApprovalStatus')}, not pending approval")
    aws(sagemaker, "update_model_package", ModelPackageArn=arn, ModelApprovalStatus="Approved")
    run.created["package"] = arn
    return f"approved {arn}"


def staging(run: Run) -> str:
    sagemaker = run.client("sagemaker")
    endpoint = f"{run.project}-staging"

    def status() -> str:
        try:
            return str(sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"])
        except ClientError:
            return "absent"  # the deploy pipeline has not created it yet

    run.wait("staging", lambda: status() in {"InService", "Failed"}, f"{endpoint} InService")
    if status() != "InService":
        raise StageError(f"endpoint {endpoint} is {status()}")
    return f"endpoint {endpoint} InService"


def invoke(run: Run) -> str:
    """Five rows of the sample data, features only, scored by the staging endpoint."""
    project = run.rendered
    with (project / "data" / "raw" / "dataset.csv").open() as sample:
        rows = list(csv.DictReader(sample))[:5]
    package = run.answers["project_slug"].replace("-", "_")
    schema = json.loads((project / "src" / package / "schema.json").read_text())
    features = list(schema["features"])
    body = io.StringIO()
    writer = csv.writer(body)
    writer.writerow(features)
    writer.writerows([[row[name] for name in features] for row in rows])
    answer = aws(
        run.client("sagemaker-runtime"),
        "invoke_endpoint",
        EndpointName=f"{run.project}-staging",
        ContentType="text/csv",
        Accept="application/json",
        Body=body.getvalue().encode(),
    )
    count = len(json.loads(answer["Body"].read())["predictions"])
    if count != len(rows):
        raise StageError(f"the endpoint answered {count} predictions for {len(rows)} rows")
    return f"{count} rows scored by {run.project}-staging"


def teardown(run: Run) -> list[str]:
    """Remove what the run created, newest first; each failure is reported, none stops the rest."""
    problems: list[str] = []

    def attempt(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except (StageError, ClientError, BotoCoreError) as error:
            problems.append(f"{what}: {str(error).splitlines()[0]}")

    if "project" in run.created:
        attempt("endpoint stacks", lambda: _delete_stage_stacks(run))
        attempt("model packages", lambda: _delete_packages(run))
        attempt("artifact bucket", lambda: _empty_bucket(run, run.answers["s3_bucket"], ""))
        attempt("project", lambda: _delete_project(run))
    if "prefix" in run.created:
        attempt("published objects", lambda: _empty_bucket(run, run.bucket, run.created["prefix"]))
    if "catalog" in run.created:
        attempt("portfolio and product", lambda: _delete_catalog(run))
    return problems


def _delete_stage_stacks(run: Run) -> None:
    cloudformation = run.client("cloudformation")
    for stage in ("prod", "staging"):
        name = f"{run.project}-endpoint-{stage}"
        aws(cloudformation, "delete_stack", StackName=name)
        cloudformation.get_waiter("stack_delete_complete").wait(
            StackName=name, WaiterConfig={"Delay": run.poll_seconds, "MaxAttempts": 120}
        )


def _delete_packages(run: Run) -> None:
    sagemaker = run.client("sagemaker")
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=run.project
    )
    for page in pages:
        for package in page["ModelPackageSummaryList"]:
            aws(sagemaker, "delete_model_package", ModelPackageName=package["ModelPackageArn"])


def _empty_bucket(run: Run, bucket: str, prefix: str) -> None:
    s3 = run.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
        if objects:
            aws(s3, "delete_objects", Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def _delete_project(run: Run) -> None:
    sagemaker = run.client("sagemaker")
    aws(sagemaker, "delete_project", ProjectName=run.project)

    def gone() -> bool:
        try:
            status = str(sagemaker.describe_project(ProjectName=run.project)["ProjectStatus"])
        except ClientError:
            return True
        if status == "DeleteFailed":
            raise StageError(f"project {run.project} DeleteFailed")
        return status == "DeleteCompleted"

    run.wait("teardown", gone, f"project {run.project} deleted")


def _delete_catalog(run: Run) -> None:
    """The run's portfolio and its products, found by name: a publish that failed half way
    leaves no ids behind, and the names carry the run id."""
    catalog = run.client("servicecatalog")
    name = run.created["catalog"]
    portfolios = aws(catalog, "list_portfolios")["PortfolioDetails"]
    for portfolio in (p["Id"] for p in portfolios if p["DisplayName"] == name):
        products = aws(catalog, "search_products_as_admin", PortfolioId=portfolio)
        for view in products.get("ProductViewDetails", []):
            product = view["ProductViewSummary"]["ProductId"]
            constraints = aws(
                catalog, "list_constraints_for_portfolio", PortfolioId=portfolio, ProductId=product
            )["ConstraintDetails"]
            for constraint in constraints:
                aws(catalog, "delete_constraint", Id=constraint["ConstraintId"])
            aws(
                catalog,
                "disassociate_product_from_portfolio",
                ProductId=product,
                PortfolioId=portfolio,
            )
            aws(catalog, "delete_product", Id=product)
        for principal in run.principal_arns:
            aws(
                catalog,
                "disassociate_principal_from_portfolio",
                PortfolioId=portfolio,
                PrincipalARN=principal,
            )
        aws(catalog, "delete_portfolio", Id=portfolio)


STAGES: list[tuple[str, Callable[[Run], str]]] = [
    ("identity", identity),
    ("publish", publish_product),
    ("provision", provision),
    ("push-data", push_data),
    ("build", build),
    ("approve", approve),
    ("staging", staging),
    ("invoke", invoke),
]


def has_credentials() -> bool:
    """Credentials from the environment, the shared files or a web identity: no metadata lookup."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    credentials: object = boto3.session.Session().get_credentials()
    return credentials is not None


def run_stages(run: Run, print_line: Callable[[str], None] = print) -> int:
    failed = False
    for name, stage in STAGES:
        if failed:
            print_line(f"skipped  {name}")
            continue
        try:
            print_line(f"ok       {name}: {stage(run)}")
        except StageError as error:
            failed = True
            print_line(f"failed   {name}: {error}")
    problems = teardown(run)
    shutil.rmtree(run.workdir, ignore_errors=True)
    for problem in problems:
        print_line(f"failed   teardown: {problem}")
    if not problems:
        print_line(f"ok       teardown: removed {', '.join(sorted(run.created)) or 'nothing'}")
    return 1 if failed or problems else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--account-id", default=os.environ.get("ACCEPTANCE_ACCOUNT_ID", ""))
    parser.add_argument(
        "--bucket",
        default=os.environ.get("ACCEPTANCE_BUCKET", ""),
        help="existing bucket the template is published to (under acceptance/)",
    )
    parser.add_argument(
        "--principal-arn",
        action="append",
        dest="principal_arns",
        default=[p for p in [os.environ.get("ACCEPTANCE_PRINCIPAL_ARN", "")] if p],
        help="principal given access to the portfolio (the runner's own role)",
    )
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not has_credentials():
        print(
            "refused: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or run in the "
            "scheduled workflow); nothing was called",
            file=sys.stderr,
        )
        return 2
    required = (("--account-id", args.account_id), ("--bucket", args.bucket))
    missing = [flag for flag, value in required if not value]
    if missing:
        print(
            f"refused: {' and '.join(missing)} required (the sandbox account and its bucket); "
            "nothing was called",
            file=sys.stderr,
        )
        return 2
    run = Run(
        session=boto3.session.Session(region_name=args.region),
        account_id=args.account_id,
        bucket=args.bucket,
        principal_arns=args.principal_arns,
    )
    return run_stages(run)


if __name__ == "__main__":
    sys.exit(main())
