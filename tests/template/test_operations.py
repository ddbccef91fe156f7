"""Operating the stack: every alarm reaches someone, every alarm and dashboard metric of ours is one the code emits,
and what the issue of alarms named is watched."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from consent.usecases.webhooks import Outcome as WebhookOutcome
from consent_dev.template import REPO_ROOT, load_template, resources_of_type

pytestmark = pytest.mark.template

NAMESPACE = "ConsentJourney"
TO_THE_ALARM_TOPIC = [{"Fn::If": ["OwnAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]


def emitted_metrics() -> set[str]:
    """The metric names the package emits (Powertools' `add_metric(name=...)`)."""
    names: set[str] = set()
    for path in (REPO_ROOT / "shared" / "consent").rglob("*.py"):
        names |= set(re.findall(r'add_metric\(\s*name="([A-Za-z]+)"', path.read_text(encoding="utf-8")))
    # The webhook receiver's one metric per outcome: Webhooks{Applied,Noted,…} (consent.webhooks.receiver)
    names |= {f"Webhooks{outcome.value.capitalize()}" for outcome in WebhookOutcome}
    return names


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str]]:
    properties = alarm["Properties"]
    if "MetricName" in properties:
        return [(properties["Namespace"], properties["MetricName"])]
    return [
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        for m in properties["Metrics"]
        if "MetricStat" in m
    ]


def test_every_alarm_notifies_the_alarm_topic_and_says_what_to_do() -> None:
    alarms = resources_of_type("AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == TO_THE_ALARM_TOPIC, name
        assert properties["OKActions"] == TO_THE_ALARM_TOPIC, name
        assert len(properties["AlarmDescription"]) > 40, name


def test_the_watched_failures_each_have_an_alarm() -> None:
    watched = {
        metric for alarm in resources_of_type("AWS::CloudWatch::Alarm").values() for metric in _alarm_metrics(alarm)
    }
    for metric in [
        ("AWS/ApiGateway", "5xx"),  # API 5xx
        (NAMESPACE, "WebhooksNotApplied"),  # webhook 5xx
        (NAMESPACE, "WebhooksFailed"),
        (NAMESPACE, "WebhooksRefused"),  # a rotated secret, or an attack
        (NAMESPACE, "CodatUnavailable"),
        (NAMESPACE, "CodatKeyRefused"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),  # the relay's failure queue
        (NAMESPACE, "WebhookConsumerUnhealthy"),
    ]:
        assert metric in watched, metric
    reconcile_errors = resources_of_type("AWS::CloudWatch::Alarm")["ReconcileErrorsAlarm"]["Properties"]
    assert reconcile_errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ReconcileFunction"}}]


def test_every_metric_of_ours_that_an_alarm_or_the_dashboard_watches_is_emitted_by_the_code() -> None:
    ours = {
        name
        for alarm in resources_of_type("AWS::CloudWatch::Alarm").values()
        for ns, name in _alarm_metrics(alarm)
        if ns == NAMESPACE
    }
    [dashboard] = resources_of_type("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(body)["widgets"]  # valid JSON before substitution: ${…} sits inside strings
    namespace = None
    for widget in widgets:
        for row in widget["properties"]["metrics"]:
            namespace = row[0] if row[0] != "." else namespace
            if namespace == NAMESPACE:
                ours.add(row[1])
    missing = ours - emitted_metrics()
    assert not missing, f"watched but never emitted: {sorted(missing)}"
    assert "WebhookConsumerUnhealthy" in ours


def test_the_api_logs_each_request_without_who_made_it() -> None:
    api = load_template()["Resources"]["ConsentApi"]["Properties"]
    log_format = api["AccessLogSettings"]["Format"]
    fields = json.loads(log_format)
    assert {"requestId", "routeKey", "status"} <= set(fields)
    for personal in ("sourceIp", "userAgent", "identity", "path", "claims"):
        assert personal not in log_format, personal


def test_reconciliation_runs_one_at_a_time() -> None:
    reconcile = load_template()["Resources"]["ReconcileFunction"]["Properties"]
    assert reconcile["ReservedConcurrentExecutions"] == 1


def test_the_readme_deploy_section_names_every_parameter_with_its_default_and_every_output() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Deploy to AWS", 1)[1].split("\n## ", 1)[0]
    template = load_template()
    for name, spec in template["Parameters"].items():
        [row] = [line for line in section.splitlines() if line.startswith(f"| `{name}` |")]
        default = spec.get("Default")
        if default is None:
            assert "required" in row, name
        elif default == "":
            assert "| empty |" in row, name
        else:
            assert f"`{default}`" in row, (name, default)
    for name in template["Outputs"]:
        assert f"`{name}`" in section, name


def test_the_alarm_topic_is_under_a_key_cloudwatch_may_use() -> None:
    # CloudWatch cannot publish to a topic under AWS's managed SNS key: the alarms would never arrive.
    resources = load_template()["Resources"]
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["ConsentKey", "Arn"]}
    statements = resources["ConsentKey"]["Properties"]["KeyPolicy"]["Statement"]
    [cloudwatch] = [s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"]
    assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(cloudwatch["Action"])
