"""The optional monitoring of developer-access.yaml (issue 20): the alert topic and EventBridge
rules behind AlertEmail, the AWS Config rules behind EnableConfigRules. moto deploys the topic
and the rules (not the topic policy or Config rules, which it skips with a warning: those are
read from the template); cfn-lint and checkov cover the whole template in test_lint.py."""

from __future__ import annotations

import json
from typing import Any

from support.cfn import DEVELOPER_ACCESS, deploy_in_moto, load_template, moto_client

OFF = "313131313131"
ALERTS = "323232323232"
CONFIG = "333333333333"
RULES = {"DeveloperCredentialAlertRule", "OnboardingTagAlertRule", "GateRoleAlertRule", "GatePolicyAlertRule"}
CONFIG_RULES = {
    "AccessKeysRotatedRule": ("ACCESS_KEYS_ROTATED", {"maxAccessKeyAge": "${MaxAccessKeyAgeDays}"}),
    "UnusedCredentialsRule": (
        "IAM_USER_UNUSED_CREDENTIALS_CHECK",
        {"maxCredentialUsageAge": "${MaxUnusedCredentialDays}"},
    ),
    "UserMfaEnabledRule": ("IAM_USER_MFA_ENABLED", None),
}


def rules(url: str, account: str) -> dict[str, dict[str, Any]]:
    events = moto_client(url, "events", account)
    found = {}
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        found[rule["Name"]] = {
            "pattern": json.loads(rule["EventPattern"]),
            "targets": [t["Arn"] for t in targets],
        }
    return found


def test_monitoring_is_absent_by_default(cfn_moto: str) -> None:
    outputs = deploy_in_moto(cfn_moto, OFF, DEVELOPER_ACCESS, "developer-access")
    assert "AlertTopicArn" not in outputs
    assert moto_client(cfn_moto, "sns", OFF).list_topics()["Topics"] == []
    assert rules(cfn_moto, OFF) == {}
    template = load_template(DEVELOPER_ACCESS)
    assert template["Parameters"]["AlertEmail"]["Default"] == ""
    assert template["Parameters"]["EnableConfigRules"]["Default"] == "false"
    resources = template["Resources"]
    for name in RULES | {"AlertTopic", "AlertTopicPolicy"}:
        assert resources[name]["Condition"] == "HasAlerts", name
    for name in CONFIG_RULES:
        assert resources[name]["Condition"] == "HasConfigRules", name


def test_alerts_reach_the_topic(cfn_moto: str) -> None:
    outputs = deploy_in_moto(
        cfn_moto, ALERTS, DEVELOPER_ACCESS, "developer-access", AlertEmail="admin@example.com"
    )
    topic = outputs["AlertTopicArn"]
    sns = moto_client(cfn_moto, "sns", ALERTS)
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "admin@example.com")]
    found = rules(cfn_moto, ALERTS)
    assert len(found) == len(RULES)
    for rule in found.values():
        assert rule["targets"] == [topic]
        assert rule["pattern"]["source"] == ["aws.iam"]
        assert rule["pattern"]["detail"]["eventSource"] == ["iam.amazonaws.com"]
    names = {
        n for r in found.values() for n in r["pattern"]["detail"].get("eventName", []) if isinstance(n, str)
    }
    assert {
        "CreateAccessKey",
        "UpdateAccessKey",
        "EnableMFADevice",
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",
    } <= names
    assert {"TagUser", "UntagUser"} <= names
    patterns = json.dumps([r["pattern"] for r in found.values()])
    assert "elevate-onboarding" in patterns and "DeveloperElevated" in patterns
    assert f"arn:aws:iam::{ALERTS}:policy/DeveloperElevated-gate-boundary" in patterns
    assert f"arn:aws:iam::{ALERTS}:policy/Developers-self-service-and-elevate" in patterns


def test_config_rules_carry_the_audits_thresholds(cfn_moto: str) -> None:
    template = load_template(DEVELOPER_ACCESS)
    assert template["Parameters"]["MaxAccessKeyAgeDays"]["Default"] == 90
    assert template["Parameters"]["MaxUnusedCredentialDays"]["Default"] == 45
    for name, (identifier, parameters) in CONFIG_RULES.items():
        properties = template["Resources"][name]["Properties"]
        assert properties["Source"] == {"Owner": "AWS", "SourceIdentifier": identifier}
        if parameters:
            assert {k: v["Fn::Sub"] for k, v in properties["InputParameters"].items()} == parameters
    # moto skips AWS::Config::ConfigRule but the stack with them turned on still deploys.
    deploy_in_moto(cfn_moto, CONFIG, DEVELOPER_ACCESS, "developer-access", EnableConfigRules="true")
