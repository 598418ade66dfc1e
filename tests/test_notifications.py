"""Who is told what: the notification topic, its rules, its publishers and its subscribers.

Every rule runs in moto's EventBridge against AWS's documented sample event of its source
(tests/aws_events, SOURCES.md names each page): the failure this project's resources emit
matches and reaches the target as a readable message; the sample's own event, and the same
event of another project, do not match.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import org_standards
import pytest
import yaml
from cookiecutter.main import cookiecutter
from moto.events.models import EventPattern
from moto.events.utils import EventTemplateParser

from . import iam_model as iam
from .conftest import MATRIX, TEMPLATE, matrix_id, rendered_pipelines, stage_template
from .iam_policy import Decision, Request, decide
from .test_accounts import ACCOUNTS, PROJECT, build_stacks, target_stacks
from .test_infrastructure import checkov_report, tool

EVENTS = Path(__file__).parent / "aws_events"
REGION = iam.REGION
ACCOUNT = iam.ACCOUNT
STANDARDS = {
    "notifications": {
        "emails": ["ml-oncall@example.com", "lead@example.org"],
        "chatbot_slack": {"workspace_id": "T0123ABCD", "channel_id": "C0456EFGH"},
    },
    "budget": {"monthly_usd": 250},
}
REALTIME = matrix_id(MATRIX[0])
BATCH = next(matrix_id(row) for row in MATRIX if row.get("inference_mode") == "batch")


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event | {"account": ACCOUNT, "region": REGION}


def _pipeline_failed(project: str, pipeline: str = "pipeline") -> dict[str, Any]:
    event = sample("sagemaker-pipeline-execution-status-change")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{project}-{pipeline}"
    event["resources"] = [arn, f"{arn}/execution/p4jn9xou8a8s"]
    event["detail"] |= {
        "pipelineArn": arn,
        "pipelineExecutionArn": f"{arn}/execution/p4jn9xou8a8s",
        "currentPipelineExecutionStatus": "Failed",
    }
    return event


def _package_pending(project: str) -> dict[str, Any]:
    event = sample("sagemaker-model-package-state-change")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{project}/2"
    event["resources"] = [arn]
    event["detail"] |= {
        "ModelPackageGroupName": project,
        "ModelPackageArn": arn,
        "ModelApprovalStatus": "PendingManualApproval",
    }
    return event


def _codepipeline_failed(project: str, pipeline: str = "deploy") -> dict[str, Any]:
    event = sample("codepipeline-pipeline-execution-state-change")
    name = f"{project}-{pipeline}"
    event["resources"] = [f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{name}"]
    event["detail"] |= {"pipeline": name, "state": "FAILED", "execution-id": "0a1b2c3d-4e5f"}
    return event


def _stack_id(project: str, stage: str) -> str:
    """A real stack id: arn:...:stack/<name>/<uuid> (the documented sample leaves out the uuid)."""
    name = f"{project}-endpoint-{stage}"
    uuid = "aaf549a0-a413-11df-adb3-5081b3858e83"
    return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/{uuid}"


def _endpoint_rolled_back(
    project: str, stage: str = "prod", status: str = "UPDATE_ROLLBACK_COMPLETE"
) -> dict[str, Any]:
    event = sample("cloudformation-stack-status-change")
    stack = _stack_id(project, stage)
    event["resources"] = [stack]
    event["detail"] |= {
        "stack-id": stack,
        "status-details": {
            "status": status,
            "status-reason": "Resource update cancelled: Endpoint rolled back (alarm fired)",
        },
    }
    return event


def _transform_failed(project: str) -> dict[str, Any]:
    event = sample("sagemaker-transform-job-state-change")
    event["detail"] |= {
        "TransformJobName": "pipelines-x1y2-BatchTransform-a1b2c3",
        "TransformJobStatus": "Failed",
        "FailureReason": "ClientError: no input under s3://bucket/tumour/batch/input/2026-12-01",
        "Tags": {"sagemaker:project-name": project, "project": "tumour-classifier"},
    }
    return event


# Rule -> (this project's failure event, the samples and variants that must not match, what the
# message must say besides the project's name).
Failure = Callable[[str], dict[str, Any]]
CASES: dict[str, tuple[Failure, list[Callable[[], dict[str, Any]]], list[str]]] = {
    "PipelineFailedRule": (
        _pipeline_failed,
        [lambda: sample("sagemaker-pipeline-execution-status-change")],
        ["FAILED", "/execution/p4jn9xou8a8s", "list-pipeline-execution-steps"],
    ),
    "PackagePendingRule": (
        _package_pending,
        [lambda: sample("sagemaker-model-package-state-change")],
        ["Model version 2", "waits for approval", "model-package/tumour/2"],
    ),
    "CodePipelineFailedRule": (
        _codepipeline_failed,
        [
            lambda: sample("codepipeline-pipeline-execution-state-change"),
            lambda: (
                _codepipeline_failed(PROJECT)
                | {
                    "detail": {
                        "pipeline": f"{PROJECT}-deploy",
                        "state": "SUCCEEDED",
                        "execution-id": "1",
                    }
                }
            ),
        ],
        [
            "tumour-deploy FAILED",
            "/codesuite/codepipeline/pipelines/tumour-deploy/executions/0a1b2c3d-4e5f/",
        ],
    ),
    "EndpointRollbackRule": (
        _endpoint_rolled_back,
        [
            lambda: sample("cloudformation-stack-status-change"),
            lambda: _endpoint_rolled_back(PROJECT, status="UPDATE_COMPLETE"),
            lambda: _endpoint_rolled_back(PROJECT, status="ROLLBACK_COMPLETE"),  # a first create
            # The stack of another project whose name starts with this one's.
            lambda: _endpoint_rolled_back(f"{PROJECT}-endpoint-prod"),
            lambda: sample("sagemaker-endpoint-state-change"),
            lambda: sample("sagemaker-endpoint-deployment-state-change"),
        ],
        [
            "is rolled back (UPDATE_ROLLBACK_COMPLETE)",
            "previous model keeps serving",
            "stack/tumour-endpoint-prod/",
            "Endpoint rolled back (alarm fired)",
            "/cloudformation/home?region=us-east-1#/stacks/events?stackId=arn:aws:cloudformation:",
        ],
    ),
    "TransformFailedRule": (
        _transform_failed,
        [lambda: sample("sagemaker-transform-job-state-change")],
        ["pipelines-x1y2-BatchTransform-a1b2c3", "FAILED", "no input under", "#/transform-jobs/"],
    ),
}


def rules(stack: iam.Stack) -> dict[str, dict[str, Any]]:
    return {
        logical: stack.resolve(resource["Properties"])
        for logical, resource in stack.active()
        if resource["Type"] == "AWS::Events::Rule" and logical in CASES
    }


def message(rule: dict[str, Any], event: dict[str, Any]) -> Any:
    """What the rule's target receives for the event: moto's implementation of EventBridge's
    input transformer (its PutEvents runs the same parser; its delivery to a queue mistakes a
    text containing "time" for an event, so the parser is called directly)."""
    (target,) = rule["Targets"]
    transformer = target["InputTransformer"]
    return EventTemplateParser.parse(
        input_template=transformer["InputTemplate"],
        input_paths_map=transformer["InputPathsMap"],
        event=event | {"ingestion-time": "0"},
    )


def matches(rule: dict[str, Any], event: dict[str, Any]) -> bool:
    """Moto's implementation of EventBridge's documented pattern matching (its server does not
    answer TestEventPattern; its PutEvents runs the same matcher)."""
    return bool(EventPattern.load(json.dumps(rule["EventPattern"])).matches_event(event))


def foundation(project: Path) -> iam.Stack:
    return build_stacks(project, separate=False)["foundation"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            REALTIME,
            {
                "PipelineFailedRule",
                "PackagePendingRule",
                "CodePipelineFailedRule",
                "EndpointRollbackRule",
            },
        ),
        (
            BATCH,
            {
                "PipelineFailedRule",
                "PackagePendingRule",
                "CodePipelineFailedRule",
                "TransformFailedRule",
            },
        ),
    ],
)
def test_each_failure_reaches_the_topic_as_a_readable_message(
    baked_matrix: dict[str, Path], row: str, expected: set[str]
) -> None:
    stack = foundation(baked_matrix[row])
    found = rules(stack)
    assert set(found) == expected
    topic = stack.arn("NotificationTopic")
    for logical, rule in found.items():
        failure, others, says = CASES[logical]
        assert [t["Arn"] for t in rule["Targets"]] == [topic], logical
        event = failure(PROJECT)
        assert matches(rule, event), logical
        for other in [*others, lambda failure=failure: failure("another-project")]:  # type: ignore[misc]
            assert not matches(rule, other()), logical
        told = message(rule, event)
        assert isinstance(told, str), logical
        assert f"project {PROJECT}" in told, told
        for text in says:
            assert text in told, (logical, text, told)
        assert "https://us-east-1.console.aws.amazon.com/" in told, told
        assert not re.search(r"<[a-z-]+>", told), told  # every placeholder was filled


def test_a_batch_pipeline_failure_is_told_and_the_model_pipeline_of_another_stage_name_is_not(
    baked_matrix: dict[str, Path],
) -> None:
    rule = rules(foundation(baked_matrix[BATCH]))["PipelineFailedRule"]
    assert matches(rule, _pipeline_failed(PROJECT, "prod-batch"))
    assert not matches(rule, _pipeline_failed(PROJECT, "dev-batch"))


def test_a_rolled_back_update_of_either_endpoint_stack_is_told_with_cloudformations_statuses(
    baked_matrix: dict[str, Path],
) -> None:
    """SageMaker's endpoint events document no rollback status, so the rule listens to the
    endpoint stacks' documented CloudFormation statuses (botocore's StackStatus values): an
    update rolled back, or one whose rollback failed too, of the staging or the prod stack."""
    rule = rules(foundation(baked_matrix[REALTIME]))["EndpointRollbackRule"]
    statuses = rule["EventPattern"]["detail"]["status-details"]["status"]
    documented = botocore.session.get_session().get_service_model("cloudformation")
    assert set(statuses) <= set(documented.shape_for("StackStatus").enum)
    for stage in ("staging", "prod"):
        for status in ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"):
            assert matches(rule, _endpoint_rolled_back(PROJECT, stage, status)), (stage, status)
        for status in ("UPDATE_COMPLETE", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_FAILED"):
            assert not matches(rule, _endpoint_rolled_back(PROJECT, stage, status)), status
    other_stack = _endpoint_rolled_back(PROJECT)
    other_stack["detail"]["stack-id"] = _stack_id(PROJECT, "prod").replace("endpoint-", "build-")
    assert not matches(rule, other_stack)


def _admits(
    document: dict[str, Any], caller: str, action: str, arn: str, context: dict[str, str]
) -> bool:
    """The resource policy alone lets the caller (a service principal, or a role that has no
    identity policy granting it) make the request (tests/iam_policy.py, AWS's evaluation logic)."""
    request = Request(caller, action, arn, context)
    return decide(request, [], document) is Decision.ALLOW


def _publishers(stack: iam.Stack) -> dict[str, str]:
    """Each publisher of the topic and the ARN of the project's resource that publishes."""
    where = f"{iam.REGION}:{stack.account}"
    account = stack.account
    return {
        "cloudwatch.amazonaws.com": f"arn:aws:cloudwatch:{where}:alarm:{PROJECT}-drifted-features",
        "events.amazonaws.com": f"arn:aws:events:{where}:rule/{PROJECT}-notify-pipeline-failed",
        "budgets.amazonaws.com": f"arn:aws:budgets::{account}:budget/{PROJECT}-monthly",
    }


@pytest.mark.parametrize("where", ["build", "staging", "prod"])
def test_only_the_projects_publishers_may_publish_and_use_the_key(
    baked_matrix: dict[str, Path], where: str
) -> None:
    """The topic policy and the key's publisher statement admit each publisher for the
    project's own alarms, rules and budget in the topic's account, and nothing else: another
    project's alarm, another account's rule, a service that is not a publisher."""
    project = baked_matrix[REALTIME]
    if where == "build":
        stack, key = foundation(project), "ProjectKey"
    else:
        stack, key = target_stacks(project, where)["target"], "StageKey"
    resources = dict(stack.active())
    topic = stack.arn("NotificationTopic")
    (policy,) = [
        stack.resolve(r["Properties"]["PolicyDocument"])
        for r in resources.values()
        if r["Type"] == "AWS::SNS::TopicPolicy"
    ]
    key_policy = stack.resolve(resources[key]["Properties"]["KeyPolicy"])
    key_arn = stack.arn(key)
    publishers = _publishers(stack)
    for service, source in publishers.items():
        context = {"aws:SourceAccount": stack.account, "aws:SourceArn": source}
        assert _admits(policy, service, "sns:Publish", topic, context), service
        data_key = context | {"kms:EncryptionContext:aws:sns:topicArn": topic}
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert _admits(key_policy, service, action, key_arn, data_key), (service, action)
        assert not _admits(
            key_policy,
            service,
            "kms:Decrypt",
            key_arn,
            context | {"kms:EncryptionContext:aws:sns:topicArn": topic.replace(PROJECT, "other")},
        ), "the key serves this topic only"
        other_project = source.replace(f"{PROJECT}-", "other-")
        other_account = source.replace(stack.account, "999999999999")
        for wrong in (
            {"aws:SourceAccount": stack.account, "aws:SourceArn": other_project},
            {"aws:SourceAccount": "999999999999", "aws:SourceArn": other_account},
        ):
            if "budgets" not in service or wrong["aws:SourceAccount"] != stack.account:
                assert not _admits(policy, service, "sns:Publish", topic, wrong), (service, wrong)
    strangers = [
        "sagemaker.amazonaws.com",
        "s3.amazonaws.com",
        f"arn:aws:iam::{stack.account}:role/{PROJECT}-sagemaker-execution",
        f"arn:aws:iam::999999999999:role/{PROJECT}-notifier",
    ]
    for stranger in strangers:
        context = {"aws:SourceAccount": stack.account, "aws:SourceArn": f"arn:aws:s3:::{PROJECT}-x"}
        for action in ("sns:Publish", "sns:Subscribe", "sns:SetTopicAttributes"):
            assert not _admits(policy, stranger, action, topic, context), (stranger, action)
    for service in publishers:  # a publisher may publish, nothing more
        context = {"aws:SourceAccount": stack.account, "aws:SourceArn": publishers[service]}
        for action in ("sns:Subscribe", "sns:SetTopicAttributes", "sns:DeleteTopic"):
            assert not _admits(policy, service, action, topic, context), (service, action)


TOLD_ALARMS = ("DriftedFeaturesAlarm", "DriftMonitoringSilentAlarm", "QualityAlarm")


def test_the_monitoring_alarms_tell_the_topic_of_their_account(
    baked_matrix: dict[str, Path],
) -> None:
    """The drift, silence and quality alarms (with the drift alarms the deploy build adds) name
    the topic their account's stack creates (the foundation in the build account,
    target-account.yaml in a stage's own), when they fire and when they clear; their names are
    the ones the topic policy admits."""
    project = baked_matrix[REALTIME]
    same_account = iam.Stack(
        stage_template(project), f"{PROJECT}-endpoint-prod", {"StageName": "prod"}
    )
    separate = target_stacks(project, "prod")
    for owner, endpoint in (
        (foundation(project), same_account),
        (separate["target"], separate["endpoint"]),
    ):
        topic = owner.arn("NotificationTopic")
        alarms = {
            logical: endpoint.resolve(r["Properties"])
            for logical, r in endpoint.active()
            if logical in TOLD_ALARMS
        }
        assert set(alarms) == set(TOLD_ALARMS)
        for logical, alarm in alarms.items():
            assert alarm["AlarmActions"] == [topic] == alarm["OKActions"], logical
            assert alarm["AlarmName"].startswith(f"{PROJECT}-"), logical


@pytest.fixture(scope="module")
def with_notifications(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default answers and batch, rendered under a notifications and budget standard."""
    root = tmp_path_factory.mktemp("notifications")
    path = root / "org-standards.yaml"
    path.write_text(yaml.safe_dump(STANDARDS))
    renders = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("MLOPS_ORG_STANDARDS", str(path))
        for mode in ("realtime", "batch"):
            renders[mode] = Path(
                cookiecutter(
                    str(TEMPLATE),
                    no_input=True,
                    output_dir=str(root / mode),
                    extra_context={"inference_mode": mode},
                )
            )
    return renders


def test_a_notifications_standard_subscribes_its_addresses_in_every_account(
    with_notifications: dict[str, Path],
) -> None:
    project = with_notifications["realtime"]
    stacks = [foundation(project), *(target_stacks(project, s)["target"] for s in ACCOUNTS)]
    for stack in stacks:
        topic = stack.arn("NotificationTopic")
        resolved = {logical: stack.resolve(r) for logical, r in stack.active()}
        emails = sorted(
            r["Properties"]["Endpoint"]
            for r in resolved.values()
            if r["Type"] == "AWS::SNS::Subscription"
            and r["Properties"] == r["Properties"] | {"Protocol": "email", "TopicArn": topic}
        )
        assert emails == sorted(STANDARDS["notifications"]["emails"]), stack.name
        slack = resolved["SlackChannel"]["Properties"]
        assert slack["SnsTopicArns"] == [topic]
        assert (slack["SlackWorkspaceId"], slack["SlackChannelId"]) == ("T0123ABCD", "C0456EFGH")
        assert slack["GuardrailPolicies"] == ["arn:aws:iam::aws:policy/AWSDenyAll"]
        role = resolved["SlackChannelRole"]["Properties"]
        assert "Policies" not in role and "ManagedPolicyArns" not in role  # relays, runs nothing
        assert (
            stack.resolve(stack.template["Resources"]["NotificationTopic"]["Properties"])[
                "KmsMasterKeyId"
            ]
            == iam.KEY_ID
        )


def test_the_budget_watches_the_projects_tag_and_tells_the_topic(
    with_notifications: dict[str, Path], baked_matrix: dict[str, Path]
) -> None:
    """One budget in each account the project uses (the build account's, and a staging or prod
    account of its own), each told to its own account's topic."""
    for project, amount in ((with_notifications["realtime"], 250), (baked_matrix[REALTIME], 1000)):
        budgets = {f"{PROJECT}-monthly": foundation(project)} | {
            f"{PROJECT}-{stage}-monthly": target_stacks(project, stage)["target"]
            for stage in ACCOUNTS
        }
        for name, stack in budgets.items():
            _check_budget(stack, name, amount)


def _check_budget(stack: iam.Stack, name: str, amount: int) -> None:
    budget = stack.resolve(stack.template["Resources"]["ProjectBudget"]["Properties"])
    assert budget["Budget"]["BudgetName"] == name
    assert budget["Budget"]["BudgetLimit"] == {"Amount": amount, "Unit": "USD"}
    assert budget["Budget"]["CostFilters"] == {
        "TagKeyValue": [f"user:sagemaker:project-name${PROJECT}"]
    }
    topic = stack.arn("NotificationTopic")
    told = {
        (n["Notification"]["NotificationType"], n["Notification"]["Threshold"])
        for n in budget["NotificationsWithSubscribers"]
        if n["Subscribers"] == [{"SubscriptionType": "SNS", "Address": topic}]
    }
    assert told == {("FORECASTED", 80), ("ACTUAL", 100)}


def test_renders_with_notifications_are_lint_and_checkov_clean(
    with_notifications: dict[str, Path],
) -> None:
    files = [
        f
        for p in with_notifications.values()
        for f in sorted((p / "infrastructure").glob("*.yaml"))
    ]
    lint = subprocess.run(
        [tool("cfn-lint"), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for project in with_notifications.values():
        report = checkov_report("-d", str(project / "infrastructure"))
        assert report["summary"]["failed"] == 0, report["results"]["failed_checks"]


def test_a_project_without_the_standard_has_a_topic_and_no_subscriber(
    baked_matrix: dict[str, Path],
) -> None:
    stack = foundation(baked_matrix[REALTIME])
    kinds = [r["Type"] for _, r in stack.active()]
    assert kinds.count("AWS::SNS::Topic") == 1
    assert "AWS::SNS::Subscription" not in kinds
    assert "AWS::Chatbot::SlackChannelConfiguration" not in kinds


def test_the_readme_says_who_is_told_what(baked_matrix: dict[str, Path]) -> None:
    """The project's README says who is told, in brief; the user guide's page has every event."""
    readme = (baked_matrix[REALTIME] / "README.md").read_text()
    section = readme.split("## Who is told what", 1)[1].split("\n## ", 1)[0]
    for said in ("notifications.emails", "chatbot_slack", "waits for approval", "budget"):
        assert said in section, said
    assert "`guide/notifications.md`" in section
    guide = (TEMPLATE / "docs" / "guide" / "notifications.md").read_text()
    for said in (
        "notifications.emails",
        "chatbot_slack",
        "waits for approval",
        "rolled back",
        "budget",
    ):
        assert said in guide, said


def _subscribers_request(project: Path, notifications: Any, tmp_path: Path) -> Any:
    """`make stack STACK=subscribers`'s request (or its one-line refusal) in a copy of the
    render whose deploy settings (pipelines/defaults.json) name ``notifications``."""
    copy = tmp_path / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".git", "data", ".dvc"))
    defaults = copy / "pipelines" / "defaults.json"
    settings = json.loads(defaults.read_text())
    assert settings["notifications"] == {
        "emails": [],
        "chatbot_slack": None,
    }  # the field a team edits
    defaults.write_text(json.dumps(settings | {"notifications": notifications}))
    with rendered_pipelines(copy):
        stacks = importlib.import_module("pipelines.stacks")
        loaded = importlib.import_module("pipelines.settings").load_settings(
            {"SAGEMAKER_PROJECT_NAME": PROJECT, "SAGEMAKER_PROJECT_ID": "p-1"}
        )
        try:
            return stacks.stack_request(loaded, "subscribers", {})
        except stacks.StackError as error:
            return error


def test_a_project_subscriber_from_the_deploy_settings_hears_the_topic_of_its_account(
    with_notifications: dict[str, Path], tmp_path: Path
) -> None:
    """The team's own addresses and Slack channel (pipelines/defaults.json notifications) are
    subscribed to the topic the foundation (or target-account) stack creates in the account, as
    a stack of their own; an address the standards already subscribe is left to theirs."""
    project = with_notifications["realtime"]
    team = {
        "emails": ["team@example.com", STANDARDS["notifications"]["emails"][0]],
        "chatbot_slack": {"workspace_id": "T0999ZZZZ", "channel_id": "C0999ZZZZ"},
    }
    request = _subscribers_request(project, team, tmp_path)
    assert request["StackName"] == f"{PROJECT}-subscribers"
    template = json.loads(request["TemplateBody"])
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in request["Parameters"]}
    for owner in (foundation(project), target_stacks(project, "prod")["target"]):
        stack = iam.Stack(template, request["StackName"], parameters, account=owner.account)
        resolved = {logical: stack.resolve(r) for logical, r in stack.active()}
        topic = owner.arn("NotificationTopic")
        emails = [
            r["Properties"]["Endpoint"]
            for r in resolved.values()
            if r["Type"] == "AWS::SNS::Subscription"
            and r["Properties"]["TopicArn"] == topic
            and r["Properties"]["Protocol"] == "email"
        ]
        assert emails == ["team@example.com"]
        slack = resolved["ProjectSlackChannel"]["Properties"]
        assert slack["SnsTopicArns"] == [topic]
        assert (slack["SlackWorkspaceId"], slack["SlackChannelId"]) == ("T0999ZZZZ", "C0999ZZZZ")
        assert slack["GuardrailPolicies"] == ["arn:aws:iam::aws:policy/AWSDenyAll"]
        role = resolved["ProjectSlackChannelRole"]["Properties"]
        assert "Policies" not in role and "ManagedPolicyArns" not in role
    body = tmp_path / "subscribers.json"
    body.write_text(request["TemplateBody"])
    lint = subprocess.run(
        [tool("cfn-lint"), str(body)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("notifications", "says"),
    [
        ({"emails": ["team-at-example.com"]}, "notifications.emails: 'team-at-example.com'"),
        ({"emails": "team@example.com"}, "notifications.emails: must be a list"),
        (
            {"chatbot_slack": {"workspace_id": "t0123", "channel_id": "C1"}},
            "notifications.chatbot_slack.workspace_id: 't0123'",
        ),
        ({"email": ["team@example.com"]}, "unknown key 'email'"),
        ({"emails": [], "chatbot_slack": None}, "no subscriber of the project's own"),
    ],
)
def test_a_bad_project_subscriber_is_refused_in_one_line(
    baked_matrix: dict[str, Path], tmp_path: Path, notifications: Any, says: str
) -> None:
    refusal = _subscribers_request(baked_matrix[REALTIME], notifications, tmp_path)
    assert isinstance(refusal, Exception), refusal
    message = str(refusal)
    assert "\n" not in message and message.startswith("defaults.json notifications"), message
    assert says in message, message


def test_the_deploy_settings_check_addresses_as_the_standards_schema_does(
    baked_matrix: dict[str, Path],
) -> None:
    """One pattern for an address and a Slack id: the rendered check's are the standards
    schema's (hooks/org_standards.py)."""
    schema = org_standards.SCHEMA["properties"]["notifications"]["properties"]
    with rendered_pipelines(baked_matrix[REALTIME]):
        rendered = importlib.import_module("pipelines.subscribers")
        assert rendered.EMAIL.pattern == schema["emails"]["items"]["pattern"]
        slack = schema["chatbot_slack"]["properties"]
        assert rendered.SLACK_WORKSPACE.pattern == slack["workspace_id"]["pattern"]
        assert rendered.SLACK_CHANNEL.pattern == slack["channel_id"]["pattern"]
