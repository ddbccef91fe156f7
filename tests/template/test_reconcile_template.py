"""template.yaml's reconciliation block: a schedule, least privilege, its settings, logs kept, errors alarmed."""

from __future__ import annotations

import pytest

from consent.settings import ENVIRONMENT, Settings
from consent_dev.template import load_template, parameter_defaults, resolve, routes

pytestmark = pytest.mark.template

RESOURCES = load_template()["Resources"]
RECONCILE = RESOURCES["ReconcileFunction"]["Properties"]


def test_it_runs_on_a_parameterised_schedule_and_is_not_retried_at_once() -> None:
    [event] = RECONCILE["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}
    assert parameter_defaults()["ReconcileSchedule"] == "rate(15 minutes)"
    assert RECONCILE["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    # long enough for a budget's worth of Codat calls, short enough never to overlap the next run
    assert 60 <= RECONCILE["Timeout"] <= 900


def test_its_settings_come_from_parameters_whose_defaults_are_the_packages() -> None:
    variables = RECONCILE["Environment"]["Variables"]
    defaults = parameter_defaults()
    for field, parameter in (
        ("reconcile_codat_budget", "ReconcileCodatBudget"),
        ("pending_auth_max_age_hours", "PendingAuthMaxAgeHours"),
    ):
        assert variables[ENVIRONMENT[field]] == {"Ref": parameter}
        assert defaults[parameter] == Settings.model_fields[field].default
    assert variables["CODAT_API_KEY_SECRET_NAME"] == {"Ref": "CodatApiKeySecret"}


def test_its_logs_are_kept_like_the_others_and_its_errors_alarmed() -> None:
    log_group = RESOURCES["ReconcileLogGroup"]["Properties"]
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${ReconcileFunction}"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    alarm = RESOURCES["ReconcileErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ReconcileFunction"}}]


def test_it_checks_codats_webhook_consumer_for_the_stacks_own_webhook_route() -> None:
    # The URL Codat must call: the webhook handler's route on the stack's HTTP API
    [webhook] = [route for route in routes() if route.function == "WebhookHandlerFunction"]
    [event] = RESOURCES["WebhookHandlerFunction"]["Properties"]["Events"].values()
    api = event["Properties"]["ApiId"]["Ref"]
    assert RESOURCES[api]["Type"] == "AWS::Serverless::HttpApi"

    configured = RECONCILE["Environment"]["Variables"][ENVIRONMENT["webhook_url"]]

    url = resolve(configured, {api: "a1b2c3d4e5", "AWS::Region": "eu-west-1", "AWS::URLSuffix": "amazonaws.com"})
    assert url == f"https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com{webhook.path}"
    assert Settings(table_name="consent", webhook_url=url).webhook_url == url
