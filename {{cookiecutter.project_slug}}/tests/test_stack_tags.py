"""Every taggable resource of every stack carries the project's whole tag set, whichever way the
stack is deployed: the deploy pipeline's CloudFormation actions (stage configurations), or by hand
(``make stack``). The Service Catalog product's nested stacks are checked by the template's suite.

The tags a resource ends up with are computed as CloudFormation applies them (``tag_propagation``:
stack-level tags where the resource type's schema says they propagate, plus its own ``Tags``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from deploy_setup import ENV, KMS, project_settings, register, write
from moto import mock_aws
from tag_propagation import effective_tags, missing

from pipelines import deploy_config, stacks
from pipelines.settings import Network, Standards, load_settings

pytestmark = pytest.mark.usefixtures("fake_aws")
# The organisation's tag set as the template rendered it: the one definition under test.
ORGANISATION_TAGS = json.loads((stacks.INFRASTRUCTURE / "tags.json").read_text())


def expected(stage: str | None = None) -> dict[str, str]:
    """The SageMaker Projects contract's tags, the organisation's, and the stage of an endpoint."""
    project = {
        "sagemaker:project-name": ENV["SAGEMAKER_PROJECT_NAME"],
        "sagemaker:project-id": ENV["SAGEMAKER_PROJECT_ID"],
    }
    return ORGANISATION_TAGS | project | ({"stage": stage} if stage else {})


def test_the_organisation_tag_set_is_not_empty() -> None:
    assert {"organisation", "cost-centre", "project"} <= set(ORGANISATION_TAGS)


def test_endpoint_stacks_of_the_deploy_pipeline_tag_every_resource(
    tmp_path: Path,
    registry: Any,
) -> None:
    write(tmp_path, registry, register(registry, "Approved"))
    template = deploy_config.load_template(tmp_path / "endpoint.yaml")
    for stage in deploy_config.STAGES:
        # What the CloudFormation action's TemplateConfiguration gives the stack.
        configuration = json.loads((tmp_path / f"{stage}-config.json").read_text())
        effective = effective_tags(template, configuration["Tags"], configuration["Parameters"])
        assert effective, "no taggable resource found"
        assert missing(effective, expected(stage)) == {}, stage


def _stubbed_deploy(request: dict[str, Any]) -> dict[str, Any]:
    """Run ``stacks.deploy`` for a new stack; return the CreateStack request it sent.

    The Stubber validates each request against CloudFormation's service model.
    """
    client = boto3.client("cloudformation", region_name="us-east-1")
    name = request["StackName"]
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_stacks", "ValidationError", f"Stack with id {name} does not exist"
        )
        stub.add_response("create_stack", {"StackId": f"stack/{name}/1"}, request)
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": name,
                        "StackStatus": "CREATE_COMPLETE",
                        "CreationTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
        )
        assert stacks.deploy(client, request) == f"created {name}"
        stub.assert_no_pending_responses()
    return request


# Parameters without a default, whichever options the project was rendered for.
REQUIRED_PARAMETERS = {
    "RepositoryName": "churn",
    "RepositoryFullName": "example-org/churn",
    "CodeConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
    "StageName": "prod",
    "BuildAccountId": "123456789012",
    "ArtifactBucketName": "artifacts",
    "BuildKmsKeyArn": KMS,
}
RENDERED_STACKS = sorted(
    name for name, file in stacks.TEMPLATES.items() if (stacks.INFRASTRUCTURE / file).exists()
)


@pytest.mark.parametrize("stack", RENDERED_STACKS)
def test_stacks_deployed_by_hand_tag_every_resource(stack: str) -> None:
    settings = project_settings()
    template = deploy_config.load_template(stacks.INFRASTRUCTURE / stacks.TEMPLATES[stack])
    given = {k: v for k, v in REQUIRED_PARAMETERS.items() if k in template["Parameters"]}
    sent = _stubbed_deploy(stacks.stack_request(settings, stack, given))
    stack_tags = {tag["Key"]: tag["Value"] for tag in sent["Tags"]}
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in sent["Parameters"]}
    effective = effective_tags(template, stack_tags, parameters)
    assert effective, "no taggable resource found"
    assert missing(effective, expected(given.get("StageName"))) == {}


@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # types moto cannot create
def test_the_foundation_stack_is_created_with_the_stack_tags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Executed: ``python -m pipelines.stacks foundation`` creates the stack in moto's
    CloudFormation, which keeps the tags it was created with."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        assert stacks.main(["foundation"]) == 0
        described = boto3.client("cloudformation", region_name="us-east-1").describe_stacks(
            StackName="churn-foundation"
        )["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    assert {tag["Key"]: tag["Value"] for tag in described["Tags"]} == expected()


@pytest.mark.parametrize("stack", RENDERED_STACKS)
def test_the_build_accounts_stacks_get_the_accounts_of_the_standards(stack: str) -> None:
    """The foundation and deploy stacks are deployed for org-standards.json's accounts."""
    accounts = {"staging": "111111111111", "prod": "222222222222"}
    settings = project_settings(Standards(accounts=accounts))
    template = deploy_config.load_template(stacks.INFRASTRUCTURE / stacks.TEMPLATES[stack])
    given = {k: v for k, v in REQUIRED_PARAMETERS.items() if k in template["Parameters"]}
    sent = _stubbed_deploy(stacks.stack_request(settings, stack, given))
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in sent["Parameters"]}
    declared = set(template["Parameters"])
    assert set(parameters) <= declared
    if {"StagingAccountId", "ProdAccountId"} <= declared:
        assert (parameters["StagingAccountId"], parameters["ProdAccountId"]) == (
            accounts["staging"],
            accounts["prod"],
        )
    else:
        assert not {"StagingAccountId", "ProdAccountId"} & set(parameters)


def test_a_bad_parameter_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert stacks.main(["foundation", "ExecutionRoleArn"]) == 1
    assert capsys.readouterr().err == "error: parameter 'ExecutionRoleArn' is not Name=value\n"
    assert stacks.main(["endpoint"]) == 1
    assert "unknown stack 'endpoint'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # types moto cannot create
def test_the_foundation_hands_the_build_the_organisations_tracking_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Executed: with org-standards.json naming the organisation's MLflow server, ``make stack
    STACK=foundation`` exports it as the build's MLFLOW_TRACKING_ARN, and the pipeline settings
    read from that export track to it (the export is final: "none" would track nothing)."""
    server = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/acme-shared"
    standards = Standards(mlflow_tracking_server_arn=server)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(stacks, "load_settings", lambda: load_settings(standards=standards))
    with mock_aws():
        assert stacks.main(["foundation"]) == 0
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        exports = {item["Name"]: item["Value"] for item in cloudformation.list_exports()["Exports"]}
    exported = exports[f"{ENV['SAGEMAKER_PROJECT_NAME']}-mlflow-tracking-server-arn"]
    assert exported == server
    build = load_settings(ENV | {"MLFLOW_TRACKING_ARN": exported}, standards=standards)
    assert build.mlflow_tracking_arn == server


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_each_accounts_stack_gets_its_own_network_from_the_standards(stage: str) -> None:
    """``make stack`` gives each account's SageMaker role its network: the foundation (build
    account) the standards' vpc, ``STACK=target-account PARAMS="StageName=<stage> ..."`` that
    account's stage_vpc.<stage>, the one the deploy build gives its stage stack."""
    networks = {
        "staging": Network(subnets=("subnet-1a", "subnet-1b"), security_groups=("sg-1c",)),
        "prod": Network(subnets=("subnet-2a",), security_groups=("sg-2c", "sg-2d")),
    }
    standards = Standards(
        subnets=("subnet-0a", "subnet-0b"),
        security_groups=("sg-0c",),
        accounts={"staging": "111111111111", "prod": "222222222222"},
        stage_networks=networks,
    )

    def sent(stack: str, standards: Standards) -> dict[str, str]:
        given = {k: v for k, v in REQUIRED_PARAMETERS.items() if k != "StageName"}
        settings = project_settings(standards)
        request = stacks.stack_request(settings, stack, given | {"StageName": stage})
        return {p["ParameterKey"]: p["ParameterValue"] for p in request["Parameters"]}

    target = sent("target-account", standards)
    assert target["SubnetIds"] == ",".join(networks[stage].subnets)
    assert target["SecurityGroupIds"] == ",".join(networks[stage].security_groups)
    foundation = sent("foundation", standards)
    assert (foundation["SubnetIds"], foundation["SecurityGroupIds"]) == (
        "subnet-0a,subnet-0b",
        "sg-0c",
    )
    for stack in ("target-account", "foundation", "deploy"):
        assert not {"SubnetIds", "SecurityGroupIds"} & set(sent(stack, Standards())), stack
    # With separate accounts each target account's stack role enforces its own network; in one
    # account the deploy stack's role creates the stage models, in the build account's.
    assert not {"SubnetIds", "SecurityGroupIds"} & set(sent("deploy", standards))
    one_account = sent("deploy", replace(standards, accounts={}, stage_networks={}))
    assert (one_account["SubnetIds"], one_account["SecurityGroupIds"]) == (
        "subnet-0a,subnet-0b",
        "sg-0c",
    )


def test_the_isolation_and_key_standards_reach_the_roles_that_enforce_them() -> None:
    """``make stack`` gives the roles creating jobs and models the network_isolation and
    kms_key_arn standards (the foundation's execution role, the deploy pipeline's stack role, a
    target account's roles), and each stack only parameters its template declares (CloudFormation
    refuses any other)."""
    key = "arn:aws:kms:us-east-1:123456789012:key/org"
    strict = Standards(network_isolation=True, kms_key_arn=key)
    expected = {
        "foundation": {"NetworkIsolation": "true", "OrganisationKmsKeyArn": key},
        "deploy": {"NetworkIsolation": "true"},
        "target-account": {"NetworkIsolation": "true", "OrganisationKmsKeyArn": key},
        "build": {},
    }
    for stack, wanted in expected.items():
        for standards, want in ((strict, wanted), (Standards(), {})):
            request = stacks.stack_request(
                project_settings(standards), stack, dict(REQUIRED_PARAMETERS)
            )
            sent = {p["ParameterKey"]: p["ParameterValue"] for p in request["Parameters"]}
            given = {k: sent[k] for k in ("NetworkIsolation", "OrganisationKmsKeyArn") if k in sent}
            assert given == want, stack
            declared = json.loads(request["TemplateBody"])["Parameters"]
            assert all(k in declared for k in given), stack
