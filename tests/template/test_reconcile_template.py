"""template.yaml's reconciliation block: a schedule, least privilege, its settings, logs kept, errors alarmed."""

from __future__ import annotations

import pytest

from consent.settings import ENVIRONMENT, Settings
from consent_dev.template import load_template, parameter_defaults

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
