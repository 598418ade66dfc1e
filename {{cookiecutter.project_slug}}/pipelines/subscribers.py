"""The project's own notification subscribers, from its deploy settings, as a stack of their own.

The organisation standards' subscribers (``org-standards.json`` ``notifications``) are rendered
into the stack that owns the notification topic (foundation, target-account). A team adds its own
in ``pipelines/defaults.json``::

    "notifications": {"emails": ["team@example.com"],
                      "chatbot_slack": {"workspace_id": "T0123ABCD", "channel_id": "C0456EFGH"}}

``make stack STACK=subscribers`` deploys them as ``<project>-subscribers`` in the account it runs
in (the build account, or a staging or prod account of its own): one e-mail subscription per
address the standards do not already subscribe, and the team's Slack channel through AWS Chatbot
(a role without permissions and the ``AWSDenyAll`` guardrail: the channel only reads), each on
that account's ``<project>-notifications`` topic. Bad input is refused before any AWS call, in one
line naming the setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import DEFAULTS_FILE, STANDARDS_FILE

# The deploy settings' field, and the standards' key of the same shape.
FIELD = "notifications"
# The patterns the organisation standards' schema checks at render (hooks/org_standards.py); the
# Slack ones are AWS::Chatbot::SlackChannelConfiguration's.
EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+$")
SLACK_WORKSPACE = re.compile(r"^[0-9A-Z]{1,255}$")
SLACK_CHANNEL = re.compile(r"^[A-Za-z0-9]+$")
# The topic of the account the stack is deployed in, by its fixed name (templates/notifications.j2).
TOPIC_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:"
    "${SageMakerProjectName}-notifications"
}


class SubscriberError(ValueError):
    """A subscriber setting that cannot be used; the message is one line naming it."""


@dataclass(frozen=True)
class Subscribers:
    emails: tuple[str, ...] = ()
    # (workspace id, channel id) of a Slack channel reached through AWS Chatbot
    slack: tuple[str, str] | None = None


def parse(raw: Any, where: str) -> Subscribers:
    """The subscribers of a ``notifications`` mapping; ``where`` names it in an error."""
    if raw is None:
        return Subscribers()
    if not isinstance(raw, Mapping):
        raise SubscriberError(f"{where}: must be a mapping with emails and/or chatbot_slack")
    unknown = sorted(set(raw) - {"emails", "chatbot_slack"})
    if unknown:
        raise SubscriberError(f"{where}: unknown key {unknown[0]!r} (emails, chatbot_slack)")
    emails = raw.get("emails") or []
    if not isinstance(emails, list):
        raise SubscriberError(f"{where}.emails: must be a list of e-mail addresses")
    for address in emails:
        if not isinstance(address, str) or not EMAIL.match(address):
            raise SubscriberError(f"{where}.emails: {address!r} is not an e-mail address")
    if len(set(emails)) != len(emails):
        raise SubscriberError(f"{where}.emails: an address is listed twice")
    slack = raw.get("chatbot_slack")
    channel: tuple[str, str] | None = None
    if slack is not None:
        if not isinstance(slack, Mapping) or set(slack) != {"workspace_id", "channel_id"}:
            raise SubscriberError(
                f"{where}.chatbot_slack: must give exactly workspace_id and channel_id"
            )
        workspace, channel_id = slack["workspace_id"], slack["channel_id"]
        if not isinstance(workspace, str) or not SLACK_WORKSPACE.match(workspace):
            raise SubscriberError(
                f"{where}.chatbot_slack.workspace_id: {workspace!r} is not a Slack workspace id "
                "(upper-case letters and digits, as AWS Chatbot shows it)"
            )
        if not isinstance(channel_id, str) or not SLACK_CHANNEL.match(channel_id):
            raise SubscriberError(
                f"{where}.chatbot_slack.channel_id: {channel_id!r} is not a Slack channel id"
            )
        channel = (workspace, channel_id)
    return Subscribers(tuple(emails), channel)


def project_subscribers(defaults_file: Path = DEFAULTS_FILE) -> Subscribers:
    defaults = json.loads(defaults_file.read_text())
    return parse(defaults.get(FIELD), f"{defaults_file.name} {FIELD}")


def organisation_subscribers(standards_file: Path = STANDARDS_FILE) -> Subscribers:
    standards = json.loads(standards_file.read_text()) if standards_file.exists() else {}
    return parse(standards.get(FIELD), f"{standards_file.name} {FIELD}")


def template(project: Subscribers, organisation: Subscribers) -> dict[str, Any]:
    """The subscribers stack: the project's subscribers the organisation's stacks do not
    already subscribe (an address subscribed twice to one topic would be one subscription that
    either stack's deletion removes)."""
    resources: dict[str, Any] = {}
    added = [address for address in project.emails if address not in organisation.emails]
    for number, address in enumerate(added, start=1):
        resources[f"ProjectEmailSubscription{number}"] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": TOPIC_ARN, "Protocol": "email", "Endpoint": address},
        }
    if project.slack and project.slack != organisation.slack:
        workspace, channel = project.slack
        resources["ProjectSlackChannelRole"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": {
                    "Fn::Sub": "The AWS Chatbot channel of ${SageMakerProjectName}'s own "
                    "subscribers; no permissions."
                },
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "chatbot.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                            },
                        }
                    ],
                },
            },
        }
        resources["ProjectSlackChannel"] = {
            "Type": "AWS::Chatbot::SlackChannelConfiguration",
            "Properties": {
                "ConfigurationName": {"Fn::Sub": "${SageMakerProjectName}-team-notifications"},
                "IamRoleArn": {"Fn::GetAtt": ["ProjectSlackChannelRole", "Arn"]},
                "SlackWorkspaceId": workspace,
                "SlackChannelId": channel,
                "SnsTopicArns": [TOPIC_ARN],
                "GuardrailPolicies": [
                    {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSDenyAll"}
                ],
                "UserRoleRequired": False,
                "LoggingLevel": "ERROR",
            },
        }
    if not resources:
        raise SubscriberError(
            f"{DEFAULTS_FILE.name} {FIELD}: no subscriber of the project's own to add (give "
            "emails or chatbot_slack that org-standards.json does not already subscribe)"
        )
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "The project's own notification subscribers (pipelines/defaults.json notifications) "
            "on the notification topic of this account."
        ),
        "Parameters": {
            "SageMakerProjectName": {
                "Type": "String",
                "AllowedPattern": "^[a-zA-Z](-*[a-zA-Z0-9]){0,31}$",
                "Description": "SageMaker project name, as the topic's stack has it.",
            }
        },
        "Resources": resources,
    }
