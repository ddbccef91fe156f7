"""template.yaml as data: its resources, functions and HTTP routes — the one source of truth for both."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
# CloudFormation's pseudo parameters, as the local stack stands in for them (the refs given to `resolve` win).
PSEUDO_PARAMETERS = {
    "AWS::Region": "eu-west-2",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !GetAtt, !Sub, …) as `{"Fn::…": value}`."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@lru_cache(maxsize=4)
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    assert isinstance(document, dict)
    return document


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the template: /companies/{companyId}
    function: str  # logical id
    code_uri: Path
    handler: str
    authorized: bool  # behind the JWT authorizer

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() != self.method:
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]
    policies: list[Any]
    routes: tuple[Route, ...]


def functions(template: dict[str, Any] | None = None) -> list[Function]:
    template = template or load_template()
    globals_ = template.get("Globals", {}).get("Function", {})
    default_handler = globals_.get("Handler", "app.lambda_handler")
    global_env = globals_.get("Environment", {}).get("Variables", {})
    result = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        code_uri = REPO_ROOT / props["CodeUri"]
        handler = props.get("Handler", default_handler)
        routes = []
        for event in props.get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            event_props = event["Properties"]
            auth = event_props.get("Auth", {}).get("Authorizer")
            routes.append(
                Route(
                    method=event_props["Method"].upper(),
                    path=event_props["Path"],
                    function=logical_id,
                    code_uri=code_uri,
                    handler=handler,
                    authorized=auth != "NONE",
                )
            )
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        result.append(Function(logical_id, code_uri, handler, env, props.get("Policies", []), tuple(routes)))
    return result


def routes(template: dict[str, Any] | None = None) -> list[Route]:
    return [route for function in functions(template) for route in function.routes]


# SAM's scheduled event sources: an EventBridge rule on a schedule, and an EventBridge Scheduler schedule.
SCHEDULE_EVENT_TYPES = ("Schedule", "ScheduleV2")


@dataclass(frozen=True)
class Schedule:
    """A function's scheduled event in the template (`Type: Schedule` or `ScheduleV2`), its properties as written
    (intrinsics unresolved: `resolve` them against the stack's refs)."""

    function: str  # the function's logical id
    event: str  # the event's name under the function's Events
    type: str  # one of SCHEDULE_EVENT_TYPES
    properties: dict[str, Any]


def schedules(template: dict[str, Any] | None = None) -> list[Schedule]:
    """Every scheduled event of every function, in template order: whatever runs on a timer once deployed."""
    template = template or load_template()
    return [
        Schedule(logical_id, name, event["Type"], dict(event.get("Properties", {})))
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for name, event in resource["Properties"].get("Events", {}).items()
        if event["Type"] in SCHEDULE_EVENT_TYPES
    ]


def resources_of_type(resource_type: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def parameter_defaults(template: dict[str, Any] | None = None) -> dict[str, Any]:
    template = template or load_template()
    return {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}


def condition(name: str, parameters: Mapping[str, Any], template: dict[str, Any] | None = None) -> bool:
    """A template condition's value for these parameter values (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
    conditions = (template or load_template()).get("Conditions", {})

    def evaluate(spec: Any) -> Any:
        ((kind, argument),) = spec.items()
        if kind == "Ref":
            return parameters[argument]
        if kind in ("Condition", "Fn::Condition"):  # `!Condition X` reads as Fn::Condition
            return evaluate(conditions[argument])
        if kind == "Fn::Equals":
            left, right = (evaluate(v) if isinstance(v, dict) else v for v in argument)
            return str(left) == str(right)
        if kind == "Fn::Not":
            return not evaluate(argument[0])
        if kind == "Fn::And":
            return all(evaluate(a) for a in argument)
        if kind == "Fn::Or":
            return any(evaluate(a) for a in argument)
        raise ValueError(f"condition {kind} is not emulated")

    return bool(evaluate(conditions[name]))


def deployed_with(
    resource: Mapping[str, Any], parameters: Mapping[str, Any], template: dict[str, Any] | None = None
) -> bool:
    """Whether CloudFormation creates `resource` with these parameter values (its `Condition`, if any)."""
    name = resource.get("Condition")
    return name is None or condition(name, parameters, template)


def resolve(value: Any, refs: dict[str, Any]) -> Any:
    """A template value with its intrinsics (Ref, GetAtt, Sub) replaced from `refs` (logical id or
    parameter → value; GetAtt as "Id.Attribute"; pseudo parameters default to `PSEUDO_PARAMETERS`)."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return _ref(argument, refs)
        if name == "Fn::GetAtt":
            return refs[".".join(argument)]
        if name == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(_ref(m.group(1), refs)), argument)
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


def _ref(name: str, refs: dict[str, Any]) -> Any:
    return refs[name] if name in refs or name not in PSEUDO_PARAMETERS else PSEUDO_PARAMETERS[name]


def function_environment(function: Function, refs: dict[str, Any]) -> dict[str, str]:
    """The environment Lambda would give `function` once deployed, with `refs` standing in for AWS."""
    return {name: str(resolve(value, refs)) for name, value in function.environment.items()}


def powertools_environment(template: dict[str, Any] | None = None) -> dict[str, str]:
    """The Globals' POWERTOOLS_* settings (service name, metrics namespace, log level) with the parameters'
    defaults. Powertools reads them from the process environment once, when the product's modules are imported:
    whatever runs the handlers in one process (tests, `make dev`, the bench) sets these first, so that its logs and
    metrics are named as the deployed functions' are."""
    template = template or load_template()
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    refs = parameter_defaults(template)
    return {name: str(resolve(value, refs)) for name, value in variables.items() if name.startswith("POWERTOOLS_")}
