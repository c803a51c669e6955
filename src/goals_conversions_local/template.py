"""Reads template.yaml so the local server and the tests use the deployed routes and tables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Turns CloudFormation short tags (!Ref, !GetAtt, ...) into their long form."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the template, e.g. /api/goals-conversions/{conversion_id}

    def pattern(self) -> re.Pattern[str]:
        """The paths the route takes, as an HTTP API matches them: exactly, a trailing slash
        included or not as declared, a {parameter} being one segment."""
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")

    @property
    def parameters(self) -> int:
        return self.path.count("{")


@dataclass(frozen=True)
class StreamSource:
    """A function's DynamoDB stream event: which table, how many records a batch, which pass."""

    table: str  # the table's logical id (its local name)
    batch_size: int
    patterns: list[dict[str, Any]]  # FilterCriteria patterns, parsed
    maximum_retries: int  # MaximumRetryAttempts: a record's attempts are 1 + these

    def accepts(self, record: dict[str, Any]) -> bool:
        return not self.patterns or any(_matches(pattern, record) for pattern in self.patterns)


def _matches(pattern: Any, value: Any) -> bool:
    """Lambda's event filtering, for the rules the template uses: nested objects, lists of
    exact values, and {"prefix": ...}."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and _matches(p, value[k]) for k, p in pattern.items())
    return any(
        (isinstance(rule, dict) and isinstance(value, str) and value.startswith(rule["prefix"])) or rule == value
        for rule in pattern
    )


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # logical id, e.g. ListConversionsFunction
    code_dir: Path
    handler: str  # module.function
    routes: list[Route]
    environment: dict[str, str] = field(default_factory=dict)
    stream: StreamSource | None = None

    @property
    def short_name(self) -> str:
        return self.code_dir.name


class Template:
    def __init__(self, path: Path = TEMPLATE_PATH):
        self.path = path
        self.document = yaml.load(path.read_text(), Loader=_CfnLoader)
        self.resources: dict[str, Any] = self.document["Resources"]
        self.parameters: dict[str, Any] = self.document.get("Parameters", {})

    def tables(self) -> dict[str, dict[str, Any]]:
        """CreateTable arguments per table logical id (the local table name)."""
        tables = {}
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::DynamoDB::Table":
                continue
            props = resource["Properties"]
            arguments = {
                "TableName": logical_id,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                arguments["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            if props.get("StreamSpecification"):
                arguments["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            tables[logical_id] = arguments
        return tables

    def queues(self) -> list[str]:
        """The SQS queues' logical ids (their local names)."""
        return [logical_id for logical_id, resource in self.resources.items() if resource["Type"] == "AWS::SQS::Queue"]

    def event_buses(self) -> list[str]:
        """The EventBridge buses' logical ids (their local names)."""
        return [name for name, resource in self.resources.items() if resource["Type"] == "AWS::Events::EventBus"]

    def ttl_attributes(self) -> dict[str, str]:
        return {
            logical_id: resource["Properties"]["TimeToLiveSpecification"]["AttributeName"]
            for logical_id, resource in self.resources.items()
            if resource["Type"] == "AWS::DynamoDB::Table" and "TimeToLiveSpecification" in resource["Properties"]
        }

    def functions(self) -> list[FunctionSpec]:
        global_env = self.document.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        specs = []
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource["Properties"]
            env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
            routes = [
                Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"])
                for event in props.get("Events", {}).values()
                if event["Type"] == "HttpApi"
            ]
            resolved = {name: self._resolve(value) for name, value in env.items()}
            streams = [
                _stream_source(e["Properties"]) for e in props.get("Events", {}).values() if e["Type"] == "DynamoDB"
            ]
            specs.append(
                FunctionSpec(
                    name=logical_id,
                    code_dir=self.path.parent / props["CodeUri"],
                    handler=props["Handler"],
                    routes=routes,
                    environment={k: str(v) for k, v in resolved.items() if v is not None},
                    stream=streams[0] if streams else None,
                )
            )
        return specs

    def cors_configuration(self) -> dict[str, Any]:
        """The HTTP API's CorsConfiguration as the template writes it when origins are given (its
        AllowOrigins aside, a deploy parameter); empty when it has none."""
        apis = [r for r in self.resources.values() if r["Type"] == "AWS::Serverless::HttpApi"]
        config = apis[0].get("Properties", {}).get("CorsConfiguration") if apis else None
        if isinstance(config, dict) and "Fn::If" in config:
            config = config["Fn::If"][1]
        return config if isinstance(config, dict) else {}

    def stream_functions(self) -> list[FunctionSpec]:
        return [spec for spec in self.functions() if spec.stream is not None]

    def function(self, name: str) -> FunctionSpec:
        """A function by logical id (ListConversionsFunction) or folder name (list_conversions)."""
        for spec in self.functions():
            if name in (spec.name, spec.short_name):
                return spec
        known = ", ".join(f"{s.name} ({s.short_name})" for s in self.functions())
        raise KeyError(f"no function {name!r} in {self.path.name}; known: {known}")

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        """Enough of CloudFormation's intrinsics for the environment: Ref, If, Not, Equals."""
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            name = value["Ref"]
            if name == "AWS::NoValue":
                return None
            if name in self.parameters:
                return self.parameters[name].get("Default")
            return name  # a table's local name is its logical id
        if "Fn::If" in value:
            condition, then, otherwise = value["Fn::If"]
            chosen = then if self._condition(self.document["Conditions"][condition]) else otherwise
            return self._resolve(chosen)
        raise ValueError(f"unsupported intrinsic in environment: {value}")

    def _condition(self, expression: dict[str, Any]) -> bool:
        if "Fn::Not" in expression:
            return not self._condition(expression["Fn::Not"][0])
        if "Fn::Equals" in expression:
            left, right = (self._resolve(v) for v in expression["Fn::Equals"])
            return left == right
        raise ValueError(f"unsupported condition: {expression}")


def _stream_source(properties: dict[str, Any]) -> StreamSource:
    filters = (properties.get("FilterCriteria") or {}).get("Filters", [])
    return StreamSource(
        table=properties["Stream"]["Fn::GetAtt"][0],
        batch_size=int(properties.get("BatchSize", 100)),
        patterns=[json.loads(f["Pattern"]) for f in filters],
        maximum_retries=int(properties.get("MaximumRetryAttempts", -1)) % 10_001,  # -1: Lambda's "forever"
    )
