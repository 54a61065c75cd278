"""``runctx_jsonl`` for metrics: the local recipe's third signal.

``OTEL_METRICS_EXPORTER=runctx_jsonl`` (set for you by ``OTEL_RUNCTX_LOCAL=true``) appends each
collected data point as one JSON line with ``"signal": "metric"`` to the same file as the span
and log exporters (``OTEL_RUNCTX_JSONL_PATH``), through the same shared writer. Without it a
no-collector setup keeps metrics on OTLP, which logs ``UNAVAILABLE`` and stalls every exit.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from otel_runctx.exporters.jsonl import _JsonlFile
from otel_runctx.stats import report_error

__all__ = ["JsonlMetricExporter", "metrics_to_dicts"]


class JsonlMetricExporter(_JsonlFile, MetricExporter):
    """Writes every data point of each collection as one JSON line. Built with no arguments."""

    def __init__(self, path: str | None = None, **kwargs: Any) -> None:
        MetricExporter.__init__(
            self,
            preferred_temporality=kwargs.get("preferred_temporality"),
            preferred_aggregation=kwargs.get("preferred_aggregation"),
        )
        _JsonlFile.__init__(self, path)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            records = metrics_to_dicts(metrics_data)
        except Exception as error:
            report_error("jsonl.export_metrics", error)
            return MetricExportResult.FAILURE
        ok = self._append(records, "metrics")
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        _JsonlFile.shutdown(self)


def metrics_to_dicts(metrics_data: MetricsData) -> list[dict[str, Any]]:
    """One JSON-ready dict per data point: metric name, unit, kind, the point's fields."""
    records: list[dict[str, Any]] = []
    for resource_metrics in metrics_data.resource_metrics:
        resource = dict(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    records.append(
                        {
                            "signal": "metric",
                            "name": metric.name,
                            "unit": metric.unit,
                            "kind": type(metric.data).__name__,
                            **json.loads(point.to_json(indent=None)),
                            "resource": resource,
                            "scope": scope_metrics.scope.name,
                        }
                    )
    return records
