"""``runctx.runs`` is summed here and read through an observable counter: it must export what
an SDK ``Counter`` with the same adds exports, under cumulative and delta temporality."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Counter, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from otel_runctx.outcomes.run_counter import SummedCounter

SUCCESS = {"runctx.workflow": "checkout", "runctx.outcome.status": "success"}
FAILURE = {"runctx.workflow": "checkout", "runctx.outcome.status": "failure"}


def points(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[Any], Any]]:
    """metric name -> {attribute set: data point}"""
    data = reader.get_metrics_data()
    found: dict[str, dict[frozenset[Any], Any]] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = {
                    frozenset((point.attributes or {}).items()): (metric.data, point)
                    for point in metric.data.data_points
                }
    return found


def summary(found: dict[frozenset[Any], Any]) -> dict[frozenset[Any], tuple[Any, ...]]:
    return {
        key: (point.value, data.is_monotonic, data.aggregation_temporality)
        for key, (data, point) in found.items()
    }


@pytest.mark.parametrize(
    "temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]
)
def test_exports_what_an_sdk_counter_with_the_same_adds_exports(
    temporality: AggregationTemporality,
) -> None:
    reader = InMemoryMetricReader(
        preferred_temporality={Counter: temporality, ObservableCounter: temporality}
    )
    meter = MeterProvider(metric_readers=[reader]).get_meter("otel_runctx")
    ours = SummedCounter(meter, "ours", unit="{run}")
    stock = meter.create_counter("stock", unit="{run}")
    for batch in ([SUCCESS, SUCCESS, FAILURE], [SUCCESS], []):
        for attributes in batch:
            ours.add(1, attributes)
            stock.add(1, attributes)
        found = points(reader)
        ours_now, stock_now = summary(found.get("ours", {})), summary(found.get("stock", {}))
        if temporality is AggregationTemporality.DELTA:
            # A fact of the SDK: an observable counter reports a 0 delta for a series that did
            # not change; a synchronous one leaves that series out of the interval.
            assert all(ours_now[key][0] == 0 for key in ours_now.keys() - stock_now.keys())
            ours_now = {key: ours_now[key] for key in stock_now}
        assert ours_now == stock_now
    # The last round added nothing: cumulative repeats the totals, delta reports zeros.
    final = {key: value for key, (value, _, _) in summary(points(reader)["ours"]).items()}
    expected_success = 3 if temporality is AggregationTemporality.CUMULATIVE else 0
    assert final[frozenset(SUCCESS.items())] == expected_success


def test_attribute_order_does_not_split_a_series() -> None:
    reader = InMemoryMetricReader()
    counter = SummedCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "runs")
    counter.add(1, {"a": "1", "b": "2"})
    counter.add(2, {"b": "2", "a": "1"})
    assert [value for value, _, _ in summary(points(reader)["runs"]).values()] == [3]


def test_adds_from_many_threads_are_all_counted() -> None:
    reader = InMemoryMetricReader()
    counter = SummedCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "runs")

    def add_many() -> None:
        for _ in range(5_000):
            counter.add(1, SUCCESS)

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert summary(points(reader)["runs"])[frozenset(SUCCESS.items())][0] == 40_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_counts_only_its_own_runs() -> None:
    reader = InMemoryMetricReader()
    counter = SummedCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "runs")
    counter.add(5, SUCCESS)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            counter.add(1, FAILURE)
            found = summary(points(reader).get("runs", {}))
            os.write(write_end, repr(sorted(v for v, _, _ in found.values())).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_view = pipe.read()
    os.waitpid(pid, 0)
    assert child_view == "[1]", child_view  # not the parent's 5
    assert summary(points(reader)["runs"])[frozenset(SUCCESS.items())][0] == 5


def test_the_same_series_is_one_total_whether_its_mapping_object_is_reused_or_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key of a mapping given again is remembered per object (a bounded table): reusing
    the object, passing an equal new one, and overflowing the table all add to one series."""
    monkeypatch.setattr("otel_runctx.outcomes.run_counter._MAX_REMEMBERED_KEYS", 4)
    reader = InMemoryMetricReader()
    counter = SummedCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "runctx.runs")
    reused = dict(SUCCESS)
    for _ in range(3):
        counter.add(1, reused)
    for _ in range(10):  # equal mappings, new objects: more than the table keeps
        counter.add(1, dict(SUCCESS))
    counter.add(2, reused)
    counter.add(1, FAILURE)
    totals = {key: point.value for key, (_, point) in points(reader)["runctx.runs"].items()}
    assert totals == {frozenset(SUCCESS.items()): 15, frozenset(FAILURE.items()): 1}
    assert len(counter._keys) <= 4
