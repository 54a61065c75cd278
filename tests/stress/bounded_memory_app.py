"""250,000 inbound requests with distinct hostile run values; prints RSS growth and series.

Run by tests/stress/test_bounded_memory.py in a fresh interpreter. Each request is what an
instrumented server does: extract the inbound headers with our propagator (trust mode, so the
inbound run is accepted), attach, start a run under it (which records an outcome and its
metrics), a span, detach. Every request carries a different environment, customer, tenant and
workflow; OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER=true adds customer ids as a metric dimension.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import uuid

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_runctx import configure, run
from otel_runctx.propagation import RunContextPropagator


class NullSpans(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


class NullLogs(LogRecordExporter):
    def export(self, batch):  # type: ignore[no-untyped-def]
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(requests: int) -> None:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NullSpans()))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(NullLogs()))
    set_logger_provider(logger_provider)
    configure()
    propagator = RunContextPropagator()

    def request(index: int) -> None:
        hostile = f"{index:x}-" + "%C3%A9" * 40  # "é" x 40, percent-encoded
        header = (
            f"runctx.run_id={uuid.uuid4()},runctx.workflow=wf-{hostile},"
            f"runctx.event_id=evt-{index},runctx.customer_id=cust-{hostile},"
            f"runctx.tenant_id=ten-{hostile},runctx.environment=env-{hostile}"
        )
        context = propagator.extract({"baggage": header})
        token = otel_context.attach(context)
        try:
            with run("handle"):
                pass
        finally:
            otel_context.detach(token)

    for index in range(5_000):  # warm up: caches, pools, the SDK's batch queues
        request(index)
    reader.collect()
    gc.collect()
    before = rss_mib()
    for index in range(5_000, 5_000 + requests):
        request(index)
    data = reader.get_metrics_data()
    gc.collect()
    after = rss_mib()
    series = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                series[metric.name] = len(list(metric.data.data_points))
    print(json.dumps({"rss_before_mib": before, "rss_after_mib": after, "series": series}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
