"""The process's outcome delivery: where ``emit_outcome`` hands each outcome, if anywhere.

When otel-runctx delivers outcomes (the default under the runctx configurator and
``configure()`` whenever outcomes go to an OTLP collector, and whenever ``runctx_outcome`` is
configured), one :class:`OutcomeDelivery` is active. It writes each outcome to the spool before
``emit_outcome`` returns, or, when the spool could not start or could not write this one, sends
it directly (best effort; counted and said on stderr). Either way the record is *marked*: the
OTLP log exporters in the SDK pipeline skip marked records (see
``otel_runctx.distro.outcome_wiring``), so each outcome is sent once.

The slot lives in ``outcomes/`` so delivery can find it without importing exporters or distro.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_runctx.outcomes.direct import DirectSender
from otel_runctx.outcomes.location import SpoolUnavailable
from otel_runctx.outcomes.spool import OutcomeSpool
from otel_runctx.stats import count, say

__all__ = [
    "DELIVERED_MARK",
    "OutcomeDelivery",
    "activate_spool",
    "get_active_delivery",
    "get_active_spool",
    "is_delivered",
    "start_delivery",
    "stop_delivery",
]

#: Attribute set on a LogRecord object that otel-runctx delivers itself (the SDK passes the same
#: object through its processors to the exporters, so the OTLP exporters can skip it).
DELIVERED_MARK = "_otel_runctx_delivered"

_lock = threading.Lock()


@dataclass
class OutcomeDelivery:
    """The spool (None when it could not start) and the direct path behind it."""

    spool: OutcomeSpool | None
    direct: DirectSender
    #: Why the spool is not used (None while it is): shown by ``otel-runctx doctor``.
    degraded_reason: str | None = None
    path: Path | None = None

    def deliver(
        self,
        record: LogRecord,
        outcome_id: str,
        resource: Resource,
        scope: tuple[str, str | None],
        *,
        replaces: bool = False,
        sole_owner: bool = False,
    ) -> None:
        """Spool ``record`` now, or queue it for direct sending. Never raises.

        ``replaces``: a pending record of this outcome is in the spool (issue 10).
        ``sole_owner``: the caller will not hand ``record`` to anything else (the SDK pipeline
        included), so the spool's worker may send the object itself."""
        setattr(record, DELIVERED_MARK, True)
        spool = self.spool
        if spool is not None and spool.append(
            record, outcome_id, resource, scope, replaces=replaces, sole_owner=sole_owner
        ):
            return
        count("outcome.sent_directly")
        self.direct.submit(
            ReadableLogRecord(
                log_record=record,
                resource=resource,
                instrumentation_scope=InstrumentationScope(scope[0], scope[1]),
            )
        )

    def flush(self, timeout: float) -> bool:
        ok = self.direct.flush(timeout / 2 if self.spool is not None else timeout)
        if self.spool is not None:
            ok = self.spool.flush(timeout / 2) and ok
        return ok

    def shutdown(self, timeout: float = 5.0) -> None:
        self.direct.shutdown(timeout / 2)
        if self.spool is not None:
            self.spool.shutdown(timeout / 2)


_active: OutcomeDelivery | None = None


def get_active_delivery() -> OutcomeDelivery | None:
    """The delivery ``emit_outcome`` hands outcomes to, or None (the SDK pipeline alone)."""
    return _active


def get_active_spool() -> OutcomeSpool | None:
    """The spool ``emit_outcome`` writes to, or None while none is running."""
    delivery = _active
    return delivery.spool if delivery is not None else None


def is_delivered(record: LogRecord) -> bool:
    """True for a record otel-runctx delivered itself (the SDK's exporters must not resend it)."""
    return getattr(record, DELIVERED_MARK, False) is True


def activate_spool(
    spool: OutcomeSpool | OutcomeDelivery | None,
    exporter_factory: Callable[[], LogRecordExporter] | None = None,
) -> OutcomeDelivery | None:
    """Make ``spool`` the process's outcome spool (None switches delivery off, a delivery
    returned earlier is put back); return the previous delivery. The direct path uses
    ``exporter_factory`` (default: the spool's)."""
    global _active
    with _lock:
        previous = _active
        if spool is None or isinstance(spool, OutcomeDelivery):
            _active = spool
        else:
            factory = exporter_factory or spool.exporter_factory
            _active = OutcomeDelivery(spool, DirectSender(factory), path=spool.path)
    return previous


def start_delivery(
    path: Path,
    build_spool: Callable[[], OutcomeSpool],
    exporter_factory: Callable[[], LogRecordExporter],
) -> OutcomeDelivery:
    """The active delivery for ``path``, starting one if needed. Never raises.

    A spool that cannot start leaves the delivery degraded to direct sending, with one stderr
    line giving the reason and the fix (``otel-runctx doctor`` shows it too).
    """
    global _active
    with _lock:
        if _active is not None and _active.path == path:
            return _active
        reason = None
        spool: OutcomeSpool | None = None
        try:
            spool = build_spool()
        except SpoolUnavailable as error:
            reason = str(error)
        except Exception as error:
            reason = (
                f"{type(error).__name__}: {error}; set OTEL_RUNCTX_OUTCOME_SPOOL=off to skip it"
            )
        if reason is not None:
            count("outcome_spool.degraded")
            say(
                "outcome_spool.degraded",
                f"the outcome spool at {path} cannot start ({reason}); outcomes are sent "
                "directly, best effort, and are lost if the collector is unreachable when the "
                "process exits (counted as outcome_spool.degraded)",
            )
        _active = OutcomeDelivery(spool, DirectSender(exporter_factory), reason, path)
        return _active


def stop_delivery(delivery: OutcomeDelivery, timeout: float = 5.0) -> None:
    """Shut ``delivery`` down and, if it is the active one, switch delivery off."""
    global _active
    with _lock:
        if _active is delivery:
            _active = None
    delivery.shutdown(timeout)
