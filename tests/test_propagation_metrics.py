"""The stats → OTel metrics bridge: every otel-runctx counter as an observable counter point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_runctx import stats
from otel_runctx.metrics import COUNTER_ATTRIBUTE, INSTRUMENT_NAME, register_stats_instruments
from otel_runctx.propagation import RunContextPropagator
from otel_runctx.settings import load_settings


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def observed(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, int] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == INSTRUMENT_NAME:
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        assert point.attributes is not None
                        points[str(point.attributes[COUNTER_ATTRIBUTE])] = int(point.value)  # type: ignore[union-attr]
    return points


def test_propagation_counters_show_up_as_metric_points() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert register_stats_instruments(provider) is True
    assert register_stats_instruments(provider) is False  # once per provider

    propagator = RunContextPropagator(load_settings({}))
    propagator.extract({"baggage": "runctx.run_id=nope"}, context=Context())
    propagator.extract({"baggage": "k=" + "v" * 9000}, context=Context())
    assert observed(reader) == {
        "propagation.rejected_invalid": 1,
        "propagation.header_oversized": 1,
    }
    provider.shutdown()


def test_registering_on_the_global_provider_before_the_sdk_sets_it_still_reports() -> None:
    # The propagator is built while `opentelemetry.propagate` is imported, long before an app
    # sets its MeterProvider; the API's proxy meter must bind the instrument later.
    code = textwrap.dedent(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from otel_runctx import stats
        from otel_runctx.metrics import register_stats_instruments

        assert register_stats_instruments() is True
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        stats.count("propagation.accepted", 3)
        data = reader.get_metrics_data()
        points = [
            (dict(p.attributes), p.value)
            for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == "otel_runctx.events" for p in m.data.data_points
        ]
        print(points)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[({'otel_runctx.counter': 'propagation.accepted'}, 3)]"
