"""Bridge from :mod:`otel_runctx.stats` to OpenTelemetry metrics.

:func:`register_stats_instruments` adds one observable counter, ``otel_runctx.events``, whose
callback reports every counter in :func:`otel_runctx.stats.snapshot` as a data point with the
attribute ``otel_runctx.counter`` (``propagation.accepted``, ``errors.span_processor.on_start``,
...). New counters need no new instrument. With no ``meter_provider`` the global one is used;
registering there before the SDK provider is set is fine, because the API's proxy meter binds
the instrument once a real provider arrives.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from otel_runctx import stats

__all__ = [
    "COUNTER_ATTRIBUTE",
    "INSTRUMENT_NAME",
    "OVERFLOW_ATTRIBUTES",
    "SeriesCap",
    "register_stats_instruments",
]

#: The one attribute set every data point beyond an instrument's cap is recorded under (the
#: name OpenTelemetry's metrics SDK specification uses for its cardinality limit).
OVERFLOW_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({"otel.metric.overflow": True})

INSTRUMENT_NAME = "otel_runctx.events"
COUNTER_ATTRIBUTE = "otel_runctx.counter"

_lock = threading.Lock()
_registered: weakref.WeakSet[MeterProvider] = weakref.WeakSet()


def register_stats_instruments(meter_provider: MeterProvider | None = None) -> bool:
    """Register the stats counter on ``meter_provider`` (default: global) once.

    Returns True if it registered now, False if that provider already had it.
    """
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _lock:
        if provider in _registered:
            return False
        _registered.add(provider)
    meter = provider.get_meter("otel_runctx")
    meter.create_observable_counter(
        INSTRUMENT_NAME,
        callbacks=[_observe],
        unit="{event}",
        description="otel-runctx internal counters (propagation decisions, dropped entries, "
        "errors), one data point per counter name",
    )
    return True


def _observe(options: CallbackOptions) -> Iterable[Observation]:
    try:
        return [
            Observation(value, {COUNTER_ATTRIBUTE: name})
            for name, value in sorted(stats.snapshot().items())
        ]
    except Exception:
        return []


class SeriesCap:
    """At most ``cap`` distinct attribute sets for one instrument; the rest share the overflow.

    Dimension values can come from inbound data (a customer id, a workflow name from another
    service), and every distinct set is a series the SDK keeps forever: without a cap, hostile
    or merely diverse traffic grows memory without bound. Remembered sets are the only state,
    so memory is bounded by ``cap``. Each overflowed data point counts
    ``metrics.series_overflow``.
    """

    __slots__ = ("_cap", "_lock", "_seen")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._lock = threading.Lock()
        self._seen: set[tuple[tuple[str, AttributeValue], ...]] = set()

    def admit(self, attributes: Mapping[str, AttributeValue]) -> Mapping[str, AttributeValue]:
        """``attributes`` if its series exists or fits under the cap, else the overflow set."""
        key = tuple(sorted(attributes.items()))
        with self._lock:
            if key in self._seen:
                return attributes
            if len(self._seen) < self._cap:
                self._seen.add(key)
                return attributes
        stats.count("metrics.series_overflow")
        return OVERFLOW_ATTRIBUTES
