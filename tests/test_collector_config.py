"""The otelcol-contrib configs in collector-config/ are valid for the pinned release.

otelcol-contrib is not on PyPI, so ``otelcol-contrib validate`` cannot run in our
tests (the e2e tests run rotel with collector-config/rotel/ instead). These checks
cover what a typo or a stale component name would break: every component type exists
in the release, pipelines wire only defined components of the right signal, nothing
is defined and left unused, connectors join two pipelines, routing tables name real
pipelines, env references use the ``${env:NAME:-default}`` form, and OTTL that claims
to touch runctx.* touches nothing else.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

Config = dict[str, Any]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
EXPECTED_FILES = frozenset({"gateway.yaml", "agent.yaml"})

TRACES, METRICS, LOGS = "traces", "metrics", "logs"
SIGNALS = frozenset({TRACES, METRICS, LOGS})
SAME_SIGNAL = frozenset((s, s) for s in SIGNALS)
ANY_TO_METRICS = frozenset((s, METRICS) for s in SIGNALS)

# The release these lists were taken from. Component types come from each
# component's metadata.yaml (`type:`), membership from the release's
# distributions/otelcol-contrib/manifest.yaml in opentelemetry-collector-releases.
# Add a component only after checking both. Releases from 2026 on add snake_case
# types (span_metrics, otlp_http, ...) and keep these as deprecated aliases.
OTELCOL_CONTRIB_VERSION = "0.136.0"

RECEIVERS: dict[str, frozenset[str]] = {"otlp": SIGNALS}
PROCESSORS: dict[str, frozenset[str]] = {
    "memory_limiter": SIGNALS,
    "batch": SIGNALS,
    "transform": SIGNALS,
    "filter": SIGNALS,
}
EXPORTERS: dict[str, frozenset[str]] = {
    "otlp": SIGNALS,
    "otlphttp": SIGNALS,
    "debug": SIGNALS,
    "loadbalancing": SIGNALS,
}
# Connector type -> the (exporter-side, receiver-side) signal pairs it supports.
CONNECTORS: dict[str, frozenset[tuple[str, str]]] = {
    "spanmetrics": frozenset({(TRACES, METRICS)}),
    "signaltometrics": ANY_TO_METRICS,
    "count": ANY_TO_METRICS,
    "routing": SAME_SIGNAL,
}
EXTENSIONS: frozenset[str] = frozenset({"health_check"})

# OTTL functions checked in pkg/ottl/ottlfuncs of the same release.
OTTL_FUNCTIONS = frozenset(
    {
        "set",
        "delete_key",
        "delete_matching_keys",
        "keep_keys",
        "limit",
        "truncate_all",
        "replace_pattern",
        "Concat",
        "Double",
        "Int",
        "IsString",
        "Len",
        "String",
        "Substring",
        "ToLowerCase",
        "Trim",
    }
)
OTTL_KEYWORDS = frozenset({"where", "and", "or", "not"})
# Editors that act on a whole map: a statement that claims to touch only runctx.*
# keys must not use them.
MAP_WIDE_EDITORS = frozenset(
    {
        "delete_matching_keys",
        "keep_keys",
        "keep_matching_keys",
        "limit",
        "truncate_all",
        "replace_all_patterns",
        "replace_all_matches",
        "merge_maps",
        "flatten",
    }
)

# Attribute keys that are a contract (DESIGN.md).
RUNCTX_KEYS = frozenset(
    {
        "runctx.run_id",
        "runctx.root_run_id",
        "runctx.parent_run_id",
        "runctx.event_id",
        "runctx.customer_id",
        "runctx.tenant_id",
        "runctx.workflow",
        "runctx.environment",
        "runctx.attempt",
        "runctx.retry_of_run_id",
        "runctx.deadline",
        "runctx.outcome.status",
        "runctx.outcome.value_type",
        "runctx.outcome.value_amount",
        "runctx.outcome.confidence",
        "runctx.outcome.reason",
        "runctx.outcome.error_type",
    }
)
RUNCTX_USAGE_PREFIX = "runctx.usage."
# One value per run or per customer: never a metric dimension by default.
HIGH_CARDINALITY_KEYS = frozenset(
    {
        "runctx.run_id",
        "runctx.root_run_id",
        "runctx.parent_run_id",
        "runctx.event_id",
        "runctx.customer_id",
        "runctx.retry_of_run_id",
        "runctx.outcome.reason",
    }
)

SECTIONS: dict[str, frozenset[str]] = {
    "receivers": frozenset(RECEIVERS),
    "processors": frozenset(PROCESSORS),
    "exporters": frozenset(EXPORTERS),
    "connectors": frozenset(CONNECTORS),
    "extensions": EXTENSIONS,
}
COMPONENT_ID = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+)?$")
ENV_REF = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*(:-[^}\"'$]*)?\}|\$\$")
ATTRIBUTE_KEY = re.compile(r'attributes\["([^"]*)"\]')
DELETE_KEY = re.compile(r'delete_key\(\s*attributes\s*,\s*"([^"]*)"\s*\)')
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def config_files() -> list[Path]:
    """Top-level YAML files only: collector-config/rotel/ is not otelcol config."""
    return sorted([*CONFIG_DIR.glob("*.yaml"), *CONFIG_DIR.glob("*.yml")])


def load(path: Path) -> Config:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path.name}: top level is not a mapping"
    return loaded


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def section(cfg: Config, name: str) -> dict[str, Any]:
    value = cfg.get(name)
    return value if isinstance(value, dict) else {}


def pipelines(cfg: Config) -> dict[str, dict[str, list[str]]]:
    raw = section(section(cfg, "service"), "pipelines")
    return {
        pid: {
            role: list((body or {}).get(role) or [])
            for role in ("receivers", "processors", "exporters")
        }
        for pid, body in raw.items()
    }


def strings_in(node: object) -> Iterator[str]:
    """Every string in a loaded YAML tree, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def check_component_types(cfg: Config) -> list[str]:
    problems = []
    for name, known in SECTIONS.items():
        for cid in section(cfg, name):
            if not COMPONENT_ID.match(cid):
                problems.append(f"{name}: malformed component id {cid!r}")
            elif component_type(cid) not in known:
                problems.append(
                    f"{name}: {cid!r} has type {component_type(cid)!r}, not in "
                    f"otelcol-contrib {OTELCOL_CONTRIB_VERSION} list"
                )
    for ext in section(cfg, "service").get("extensions") or []:
        if ext not in section(cfg, "extensions"):
            problems.append(f"service.extensions: {ext!r} is not defined")
    return problems


def check_pipeline_references(cfg: Config) -> list[str]:
    problems: list[str] = []
    defined = {name: section(cfg, name) for name in SECTIONS}
    connectors = defined["connectors"]
    if not pipelines(cfg):
        problems.append("service.pipelines: none defined")
    for pid, body in pipelines(cfg).items():
        signal = component_type(pid)
        if signal not in SIGNALS:
            problems.append(f"pipeline {pid!r}: unknown signal {signal!r}")
            continue
        if not body["receivers"] or not body["exporters"]:
            problems.append(f"pipeline {pid!r}: needs receivers and exporters")
        for role, kinds in (("receivers", RECEIVERS), ("exporters", EXPORTERS)):
            for cid in body[role]:
                if cid in connectors:
                    continue
                if cid not in defined[role]:
                    problems.append(f"pipeline {pid!r}: {role} {cid!r} not defined")
                elif signal not in kinds.get(component_type(cid), frozenset()):
                    problems.append(f"pipeline {pid!r}: {cid!r} has no {signal}")
        for cid in body["processors"]:
            if cid not in defined["processors"]:
                problems.append(f"pipeline {pid!r}: processor {cid!r} not defined")
            elif signal not in PROCESSORS.get(component_type(cid), frozenset()):
                problems.append(f"pipeline {pid!r}: {cid!r} has no {signal}")
            if body["processors"].count(cid) > 1:
                problems.append(f"pipeline {pid!r}: processor {cid!r} listed twice")
    return problems


def check_everything_used(cfg: Config) -> list[str]:
    used: set[str] = set()
    for body in pipelines(cfg).values():
        for ids in body.values():
            used.update(ids)
    problems = [
        f"{name}: {cid!r} is defined but in no pipeline"
        for name in ("receivers", "processors", "exporters", "connectors")
        for cid in section(cfg, name)
        if cid not in used
    ]
    enabled = set(section(cfg, "service").get("extensions") or [])
    problems += [
        f"extensions: {cid!r} is defined but not in service.extensions"
        for cid in section(cfg, "extensions")
        if cid not in enabled
    ]
    return problems


def check_connectors(cfg: Config) -> list[str]:
    problems = []
    flows = pipelines(cfg)
    for cid in section(cfg, "connectors"):
        supported = CONNECTORS.get(component_type(cid), frozenset())
        sources = [p for p, b in flows.items() if cid in b["exporters"]]
        sinks = [p for p, b in flows.items() if cid in b["receivers"]]
        if not sources or not sinks:
            problems.append(
                f"connector {cid!r}: must be an exporter in one pipeline and a "
                f"receiver in another (exporter in {sources}, receiver in {sinks})"
            )
            continue
        for src in sources:
            if not any((component_type(src), component_type(d)) in supported for d in sinks):
                problems.append(f"connector {cid!r}: nothing it can feed from {src!r}")
        for dst in sinks:
            if not any((component_type(s), component_type(dst)) in supported for s in sources):
                problems.append(f"connector {cid!r}: nothing it can feed {dst!r} from")
    return problems


def check_routing_tables(cfg: Config) -> list[str]:
    problems = []
    flows = pipelines(cfg)
    for cid, body in section(cfg, "connectors").items():
        if component_type(cid) != "routing":
            continue
        body = body or {}
        table = body.get("table") or []
        if not table:
            problems.append(f"connector {cid!r}: empty routing table")
        named = list(body.get("default_pipelines") or [])
        for route in table:
            if not (route.get("condition") or route.get("statement")):
                problems.append(f"connector {cid!r}: a route has no condition")
            named += route.get("pipelines") or []
        for pid in named:
            if pid not in flows:
                problems.append(f"connector {cid!r}: routes to undefined pipeline {pid!r}")
            elif cid not in flows[pid]["receivers"]:
                problems.append(f"connector {cid!r}: {pid!r} does not receive from it")
        for pid, flow in flows.items():
            if cid in flow["receivers"] and pid not in named:
                problems.append(f"connector {cid!r}: no route leads to {pid!r}")
    return problems


def check_processor_order(cfg: Config) -> list[str]:
    """memory_limiter first where a receiver feeds the pipeline; batch last."""
    problems = []
    connectors = section(cfg, "connectors")
    for pid, body in pipelines(cfg).items():
        procs = [component_type(p) for p in body["processors"]]
        fed_by_receiver = any(r not in connectors for r in body["receivers"])
        if fed_by_receiver and (not procs or procs[0] != "memory_limiter"):
            problems.append(f"pipeline {pid!r}: memory_limiter must come first")
        if "batch" in procs and procs[-1] != "batch":
            problems.append(f"pipeline {pid!r}: batch must come last")
    return problems


def check_env_references(cfg: Config) -> list[str]:
    problems = []
    for text in strings_in(cfg):
        leftover = ENV_REF.sub("", text)
        if "$" in leftover:
            problems.append(f"bad env reference or unescaped '$' in {text!r}")
    return problems


def check_loadbalancing(cfg: Config) -> list[str]:
    """A load balancer in a traces pipeline must keep each trace on one backend."""
    problems = []
    exporters = section(cfg, "exporters")
    for pid, body in pipelines(cfg).items():
        for cid in body["exporters"]:
            if component_type(cid) != "loadbalancing" or component_type(pid) != TRACES:
                continue
            settings = exporters.get(cid) or {}
            if settings.get("routing_key") != "traceID":
                problems.append(f"exporter {cid!r}: routing_key must be traceID")
            resolver = settings.get("resolver") or {}
            if not any(resolver.get(kind) for kind in ("dns", "static", "k8s")):
                problems.append(f"exporter {cid!r}: needs a dns, static or k8s resolver")
    return problems


def ottl_texts(cfg: Config) -> Iterator[tuple[str, str]]:
    """(component id, OTTL text) for every statement, condition and value expression."""
    for cid, body in section(cfg, "processors").items():
        if component_type(cid) != "transform":
            continue
        for group_key in ("trace_statements", "log_statements", "metric_statements"):
            for group in (body or {}).get(group_key) or []:
                if isinstance(group, str):
                    yield cid, group
                    continue
                for key in ("statements", "conditions"):
                    for text in group.get(key) or []:
                        yield cid, text
    for cid, body in section(cfg, "connectors").items():
        kind = component_type(cid)
        if kind == "routing":
            for route in (body or {}).get("table") or []:
                for key in ("condition", "statement"):
                    if route.get(key):
                        yield cid, route[key]
        elif kind == "signaltometrics":
            for signal_key in ("spans", "logs", "datapoints"):
                for metric in (body or {}).get(signal_key) or []:
                    for text in metric.get("conditions") or []:
                        yield cid, text
                    for shape in ("sum", "gauge", "histogram", "exponential_histogram"):
                        for key in ("value", "count"):
                            text = (metric.get(shape) or {}).get(key)
                            if isinstance(text, str):
                                yield cid, text


def ottl_syntax_problems(text: str) -> list[str]:
    problems = []
    if len(re.findall(r'(?<!\\)"', text)) % 2:
        problems.append(f"unbalanced quotes in {text!r}")
    code = STRING_LITERAL.sub('""', text)
    depth = {"(": 0, "[": 0}
    closing = {")": "(", "]": "["}
    for char in code:
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                break
    if any(depth.values()):
        problems.append(f"unbalanced brackets in {text!r}")
    for name in CALL.findall(code):
        if name not in OTTL_FUNCTIONS and name not in OTTL_KEYWORDS:
            problems.append(f"OTTL function {name!r} not in the checked list: {text!r}")
    return problems


def is_runctx_key(key: str) -> bool:
    return key in RUNCTX_KEYS or key.startswith(RUNCTX_USAGE_PREFIX)


def check_ottl(cfg: Config) -> list[str]:
    problems = []
    for cid, text in ottl_texts(cfg):
        problems += [f"{cid}: {p}" for p in ottl_syntax_problems(text)]
        keys = ATTRIBUTE_KEY.findall(text) + DELETE_KEY.findall(text)
        for key in keys:
            if key.startswith("runctx.") and not is_runctx_key(key):
                problems.append(f"{cid}: {key!r} is not a runctx contract key")
        if "runctx" in cid:  # the component claims to touch runctx.* only
            if not keys:
                problems.append(f"{cid}: statement names no runctx.* key: {text!r}")
            problems += [
                f"{cid}: {key!r} is not a runctx.* key: {text!r}"
                for key in keys
                if not key.startswith("runctx.")
            ]
            for name in CALL.findall(STRING_LITERAL.sub('""', text)):
                if name in MAP_WIDE_EDITORS:
                    problems.append(f"{cid}: {name} touches more than runctx.*: {text!r}")
    return problems


def check_metric_dimensions(cfg: Config) -> list[str]:
    """Derived metrics use runctx contract keys and no per-run/per-customer ids."""
    problems = []
    for cid, body in section(cfg, "connectors").items():
        kind = component_type(cid)
        keys: list[str] = []
        if kind == "spanmetrics":
            keys = [d.get("name", "") for d in (body or {}).get("dimensions") or []]
        elif kind == "signaltometrics":
            keys = [
                attr.get("key", "")
                for signal_key in ("spans", "logs", "datapoints")
                for metric in (body or {}).get(signal_key) or []
                for attr in metric.get("attributes") or []
            ]
        for key in keys:
            if key.startswith("runctx.") and not is_runctx_key(key):
                problems.append(f"{cid}: dimension {key!r} is not a runctx contract key")
            if key in HIGH_CARDINALITY_KEYS:
                problems.append(f"{cid}: {key!r} would make one series per run/customer")
    return problems


CHECKS: tuple[Callable[[Config], list[str]], ...] = (
    check_component_types,
    check_pipeline_references,
    check_everything_used,
    check_connectors,
    check_routing_tables,
    check_processor_order,
    check_env_references,
    check_loadbalancing,
    check_ottl,
    check_metric_dimensions,
)


def all_problems(cfg: Config) -> list[str]:
    return [problem for check in CHECKS for problem in check(cfg)]


@pytest.fixture(params=config_files(), ids=lambda path: path.name)
def config(request: pytest.FixtureRequest) -> Config:
    path: Path = request.param
    return load(path)


def test_the_expected_configs_are_there() -> None:
    names = {path.name for path in config_files()}
    assert EXPECTED_FILES.issubset(names), f"missing: {sorted(EXPECTED_FILES - names)}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_config_passes_check(config: Config, check: Callable[[Config], list[str]]) -> None:
    assert check(config) == []


def test_gateway_splits_outcomes_and_routes_tenants() -> None:
    gateway = load(CONFIG_DIR / "gateway.yaml")
    flows = pipelines(gateway)
    routing_logs = section(gateway, "connectors")["routing/logs"]
    first = routing_logs["table"][0]
    assert first["condition"] == 'event_name == "runctx.outcome"'
    assert first["pipelines"] == ["logs/outcomes"]
    assert any("runctx.tenant_id" in r["condition"] for r in routing_logs["table"][1:])
    assert "signaltometrics/outcomes" in flows["logs/outcomes"]["exporters"]
    assert "spanmetrics" in flows["traces/in"]["exporters"]


def test_agent_balances_traces_by_trace_id() -> None:
    agent = load(CONFIG_DIR / "agent.yaml")
    assert pipelines(agent)["traces"]["exporters"] == ["loadbalancing"]
    assert section(agent, "exporters")["loadbalancing"]["routing_key"] == "traceID"


def _rename_in_pipeline(cfg: Config) -> None:
    procs = cfg["service"]["pipelines"]["traces/in"]["processors"]
    procs[0] = "memory_limter"


def _rename_component(cfg: Config) -> None:
    cfg["processors"]["memory_limter"] = cfg["processors"].pop("memory_limiter")


def _unknown_connector_type(cfg: Config) -> None:
    cfg["connectors"]["spanmetric"] = cfg["connectors"].pop("spanmetrics")


def _drop_routed_pipeline(cfg: Config) -> None:
    del cfg["service"]["pipelines"]["traces/tenant_b"]


def _bare_env_reference(cfg: Config) -> None:
    cfg["exporters"]["otlp/default"]["endpoint"] = "${RUNCTX_DEFAULT_OTLP_ENDPOINT}"


def _non_runctx_key_in_runctx_transform(cfg: Config) -> None:
    group = cfg["processors"]["transform/runctx"]["trace_statements"][0]
    group["statements"] = [*group["statements"], 'delete_key(attributes, "http.url")']


def _misspelled_ottl_function(cfg: Config) -> None:
    group = cfg["processors"]["transform/runctx"]["trace_statements"][0]
    group["statements"] = [s.replace("Substring(", "SubString(") for s in group["statements"]]


def _customer_id_as_dimension(cfg: Config) -> None:
    cfg["connectors"]["spanmetrics"]["dimensions"].append({"name": "runctx.customer_id"})


def _unused_exporter(cfg: Config) -> None:
    cfg["exporters"]["otlp/forgotten"] = {"endpoint": "backend:4317"}


def _batch_before_memory_limiter(cfg: Config) -> None:
    cfg["service"]["pipelines"]["metrics/in"]["processors"] = [
        "batch",
        "memory_limiter",
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        _rename_in_pipeline,
        _rename_component,
        _unknown_connector_type,
        _drop_routed_pipeline,
        _bare_env_reference,
        _non_runctx_key_in_runctx_transform,
        _misspelled_ottl_function,
        _customer_id_as_dimension,
        _unused_exporter,
        _batch_before_memory_limiter,
    ],
    ids=lambda mutate: mutate.__name__.lstrip("_"),
)
def test_checks_catch_a_broken_gateway(mutate: Callable[[Config], None]) -> None:
    broken = copy.deepcopy(load(CONFIG_DIR / "gateway.yaml"))
    mutate(broken)
    assert all_problems(broken), f"{mutate.__name__} went unnoticed"
