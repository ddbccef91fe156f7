"""What the template offers for cold starts. Tracing: Lambda's active tracing on for every function; X-Ray SDK
subsegments only when the TracingSubsegments parameter asks for them, and otherwise no tracing SDK on the cold path
at all. SnapStart: off by default, and when on, applied to the published version that every trigger calls."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from consent.observability import NoSubsegments, make_tracer, subsegments_enabled
from consent_dev.template import function_environment, functions, load_template, parameter_defaults

pytestmark = pytest.mark.template

# Imports one function's module in a fresh interpreter, as Lambda's runtime does, and says which tracing SDKs
# came with it and what `tracer` is.
_IMPORT_FUNCTION = """
import importlib.util, json, sys
code_uri, module_name = sys.argv[1], sys.argv[2]
sys.path.insert(0, code_uri)
spec = importlib.util.spec_from_file_location(module_name, f"{code_uri}/{module_name}.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import consent.observability as observability
SDKS = ("aws_xray_sdk", "opentelemetry")
print(json.dumps({
    "sdks": sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in SDKS}),
    "tracer": type(observability.tracer).__module__ + "." + type(observability.tracer).__name__,
}))
"""


def _refs() -> dict[str, Any]:
    """Stand-ins for what the template's environment refers to (importing a handler reads no AWS resource)."""
    template = load_template()
    refs: dict[str, Any] = {**parameter_defaults()}
    for name in template["Resources"]:
        refs.setdefault(name, f"{name}-ref")
        refs[f"{name}.Arn"] = f"arn:aws:test:eu-west-2:123456789012:{name}"
        refs[f"{name}.StreamArn"] = f"arn:aws:test:eu-west-2:123456789012:{name}/stream"
    return refs


def _import_in_fresh_interpreter(environment: dict[str, str], code_uri: str, module: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_FUNCTION, code_uri, module],
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-2", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_every_function_has_active_tracing_and_the_subsegment_switch_defaulting_off() -> None:
    template = load_template()
    globals_ = template["Globals"]["Function"]
    assert globals_["Tracing"] == "Active"
    parameter = template["Parameters"]["TracingSubsegments"]
    assert parameter["Default"] == "false"
    assert parameter["AllowedValues"] == ["false", "true"]
    for function in functions():
        assert function.environment["CONSENT_TRACING_SUBSEGMENTS"] == {"Ref": "TracingSubsegments"}, function


@pytest.mark.parametrize("function", functions(), ids=lambda f: f.logical_id)
def test_with_subsegments_off_a_function_imports_no_tracing_sdk(function: Any) -> None:
    environment = function_environment(function, _refs())
    module = function.handler.rsplit(".", 1)[0]

    imported = _import_in_fresh_interpreter(environment, str(function.code_uri), module)

    assert imported == {"sdks": [], "tracer": "consent.observability.NoSubsegments"}


def test_with_subsegments_on_the_function_traces_with_powertools_and_the_xray_sdk() -> None:
    function = next(f for f in functions() if f.logical_id == "WebhookHandlerFunction")
    environment = function_environment(function, {**_refs(), "TracingSubsegments": "true"})

    imported = _import_in_fresh_interpreter(environment, str(function.code_uri), "app")

    assert imported == {"sdks": ["aws_xray_sdk"], "tracer": "aws_lambda_powertools.tracing.tracer.Tracer"}


def test_the_tracer_without_subsegments_hands_every_handler_back_unchanged() -> None:
    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        return {"event": event}

    tracer = make_tracer({})

    assert isinstance(tracer, NoSubsegments)
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler


@pytest.mark.parametrize(
    ("value", "enabled"), [("true", True), ("TRUE", True), (" true ", True), ("false", False), ("", False)]
)
def test_the_switch_reads_true_or_false(value: str, enabled: bool) -> None:
    assert subsegments_enabled({"CONSENT_TRACING_SUBSEGMENTS": value}) is enabled


@pytest.mark.parametrize("value", ["yes", "1", "on", "maybe"])
def test_any_other_value_of_the_switch_is_a_deployment_error(value: str) -> None:
    with pytest.raises(ValueError, match="CONSENT_TRACING_SUBSEGMENTS"):
        subsegments_enabled({"CONSENT_TRACING_SUBSEGMENTS": value})


def test_snapstart_is_off_by_default_and_applies_to_the_alias_every_trigger_calls() -> None:
    template = load_template()
    parameter = template["Parameters"]["SnapStart"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["false", "true"])
    assert template["Conditions"]["SnapStartOn"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}
    globals_ = template["Globals"]["Function"]
    assert globals_["SnapStart"] == {"ApplyOn": {"Fn::If": ["SnapStartOn", "PublishedVersions", "None"]}}
    # SnapStart applies to published versions only: SAM then points API Gateway, the stream and the schedule at
    # the alias. Python's SnapStart needs python3.12 or later.
    assert globals_["AutoPublishAlias"] == "live"
    assert globals_["Runtime"] in ("python3.12", "python3.13", "python3.14")
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            assert "AutoPublishAlias" not in properties, name
            assert "SnapStart" not in properties, name
            # SnapStart refuses ephemeral storage over 512 MB and EFS.
            assert properties.get("EphemeralStorage", {"Size": 512})["Size"] <= 512, name
            assert "FileSystemConfigs" not in properties, name
