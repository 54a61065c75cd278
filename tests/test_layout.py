"""The package layout is a contract: documented import paths, entry points, and layer order."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pathlib

import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent / "otel_runctx"

#: Every ``module:attribute`` the README (or an earlier README) tells users to import.
DOCUMENTED_PATHS = [
    "otel_runctx:configure",
    "otel_runctx:run",
    "otel_runctx:workflow",
    "otel_runctx:emit_outcome",
    "otel_runctx:RunContext",
    "otel_runctx:Budget",
    "otel_runctx:BudgetExceeded",
    "otel_runctx:RunLocal",
    "otel_runctx.processors:RunContextSpanProcessor",
    "otel_runctx.processors:RunContextLogProcessor",
    "otel_runctx.processors:UsageRollupProcessor",
    "otel_runctx.propagation:RunContextPropagator",
    "otel_runctx.propagation:propagation_stats",
    "otel_runctx.sampling:RunConsistentSampler",
    "otel_runctx.metrics:register_stats_instruments",
    "otel_runctx.instrumentation:ExecutorContextInstrumentor",
    "otel_runctx.isolation:ContextPoolExecutor",
    "otel_runctx.isolation:run_isolated",
    "otel_runctx.settings:ConfigError",
    "otel_runctx.config:ConfigError",
    "otel_runctx.exporters:OutcomeExporter",
    "otel_runctx.exporters.jsonl:JsonlSpanExporter",
    "otel_runctx.exporters.jsonl:JsonlLogRecordExporter",
    "otel_runctx.cli:main",
]

#: Layers, lowest first. A module may import its own layer and any layer before it.
LAYERS: list[set[str]] = [
    {"keys", "ids", "validation", "settings", "config", "environment_variables", "stats"},
    # run_state: a run's Budget (RunContext.remaining_budget returns one) and its RunLocal
    # values, kept in the run's shared state next to its cancellation.
    {"context", "metrics", "run_state"},
    # sampling (issue 10) reads the run from the parent context like processors do.
    {"processors", "propagation", "sampling", "usage"},
    {"outcomes"},
    # instrumentation runs pool jobs as child runs (issue 12), so it sits with the run scopes.
    {"runs", "decorators", "isolation", "instrumentation"},
    # Integrations with third-party libraries (tenacity, celery) build on the run scopes.
    {"integrations"},
    {"exporters"},
    {"distro"},
    # The package's __init__ is the public facade: it re-exports names from every layer.
    {"cli", "__main__", "__init__"},
]


def _layer_of(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"otel_runctx.{unit} is in no layer: add it to LAYERS")


def _unit(module: str) -> str:
    """``otel_runctx.outcomes.spool`` -> ``outcomes``; ``otel_runctx`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: pathlib.Path) -> str:
    relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "otel_runctx":
                found.update(f"otel_runctx.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return {name for name in found if name.split(".")[0] == "otel_runctx"}


@pytest.mark.parametrize("path", DOCUMENTED_PATHS)
def test_every_documented_import_path_resolves(path: str) -> None:
    module_name, _, attribute = path.partition(":")
    assert getattr(importlib.import_module(module_name), attribute) is not None


def test_every_entry_point_in_pyproject_loads_through_importlib_metadata() -> None:
    ours = list(importlib.metadata.distribution("otel-runctx").entry_points)
    groups = {point.group for point in ours}
    assert {
        "opentelemetry_distro",
        "opentelemetry_configurator",
        "opentelemetry_pre_instrument",
        "opentelemetry_propagator",
        "opentelemetry_traces_exporter",
        "opentelemetry_logs_exporter",
        "opentelemetry_environment_variables",
        "opentelemetry_instrumentor",
        "opentelemetry_traces_sampler",
        "console_scripts",
    } <= groups
    for point in ours:
        assert point.value.startswith("otel_runctx"), point
        assert point.load() is not None, point


def test_lower_layers_never_import_higher_ones() -> None:
    violations = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = _module_name(path)
        own = _layer_of(_unit(module))
        for imported in _imports(path):
            if _layer_of(_unit(imported)) > own:
                violations.append(f"{module} imports {imported}")
    assert violations == []


def test_the_top_level_holds_only_the_run_model_and_run_scopes() -> None:
    modules = {p.stem for p in PACKAGE_ROOT.glob("*.py")}
    packages = {p.name for p in PACKAGE_ROOT.iterdir() if (p / "__init__.py").exists()}
    assert modules == {
        "__init__", "__main__", "config", "context", "environment_variables", "ids",
        "isolation", "keys", "metrics", "runs", "settings", "stats", "validation",
    }  # fmt: skip
    assert packages == {
        "cli", "decorators", "distro", "exporters", "instrumentation", "integrations",
        "outcomes", "processors", "propagation", "run_state", "sampling", "usage",
    }  # fmt: skip


def test_every_package_says_what_lives_there() -> None:
    for init in PACKAGE_ROOT.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring.split()) >= 15, init
