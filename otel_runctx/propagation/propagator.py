"""RunContextPropagator: the run and the app's baggage, in one W3C ``baggage`` header.

It replaces OpenTelemetry's ``baggage`` propagator (``OTEL_PROPAGATORS=tracecontext,runctx``):
both write the same header and the last writer wins, so running both would lose one side.

Inject writes the active run's entries (lean or full, signed when keys are configured) first,
then the app's baggage within the limits (see :mod:`.budget`). Extract puts the app's entries
into OTel baggage and, if the trust policy accepts it (see :mod:`.policy`), makes the inbound
run the active run of the returned context, so ``get_run_context()`` and span stamping work in
the receiving service with no code.

``runctx.*`` entries never become OTel baggage on the receiving side (and any that an earlier
propagator put there are removed): the active run is the one source of truth, inject re-sends
it from there, and a rejected or forged run cannot reach spans through a baggage-stamping
processor or be forwarded by another propagator.

Neither method raises: failures are counted and logged (rate-limited).
"""

from __future__ import annotations

import time

from opentelemetry import baggage
from opentelemetry.context import Context, get_current
from opentelemetry.propagators import textmap

from otel_runctx import stats
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.keys import PREFIX
from otel_runctx.propagation._fast_baggage import with_entries
from otel_runctx.propagation.budget import assemble, fits
from otel_runctx.propagation.codec import (
    MAX_HEADER_BYTES,
    ParsedBaggage,
    encode_member,
    encode_members,
    is_plain_value,
    parse_header,
)
from otel_runctx.propagation.inbound_cache import cached_inbound_run
from otel_runctx.propagation.policy import log_rejection
from otel_runctx.propagation.signing import SIGNATURE_KEY, sign_members
from otel_runctx.settings import Settings, get_settings

__all__ = ["BAGGAGE_HEADER", "RunContextPropagator"]

BAGGAGE_HEADER = "baggage"


class RunContextPropagator(textmap.TextMapPropagator):
    """W3C baggage propagator that also carries the active run, with validation and signing.

    ``settings`` pins the configuration (tests, ``configure()``); by default every call follows
    :func:`otel_runctx.settings.get_settings`, which is read once here so that a bad
    ``OTEL_RUNCTX_*`` value fails at startup rather than on the first request.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        if settings is None:
            get_settings()
        # (run, settings, signing second, encoded members): most calls re-send the run the
        # previous call did; a signed run is re-signed once a second, so its issued-at is fresh.
        self._last: tuple[RunContext, Settings, int, list[str]] | None = None
        try:
            from otel_runctx.metrics import register_stats_instruments

            register_stats_instruments()
        except Exception as error:
            stats.report_error("propagation.metrics", error)

    @property
    def fields(self) -> set[str]:
        """The one header this propagator reads and writes."""
        return {BAGGAGE_HEADER}

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        """Write the run's entries, then as much app baggage as fits."""
        try:
            run = get_run_context(context)
            run_members = self._run_members(run) if run is not None else []
            header, dropped = assemble(run_members, baggage.get_all(context))
            if dropped:
                stats.count("propagation.app_entries_dropped", dropped)
            if header:
                setter.set(carrier, BAGGAGE_HEADER, header)
        except Exception as error:
            stats.report_error("propagation.inject", error)

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        """Return ``context`` plus the header's app baggage and, if accepted, its run."""
        if context is None:
            context = get_current()
        original = context
        try:
            context = _without_run_baggage(context)
            header = _read_header(getter, carrier)
            if not header:
                return context
            parsed = parse_header(header)
            if parsed is None:
                stats.count("propagation.header_oversized")
                log_rejection(
                    "header_oversized",
                    f"an inbound baggage header is longer than {MAX_HEADER_BYTES} bytes "
                    "and was ignored, run and app entries alike",
                )
                return context
            if parsed.app_rejected:
                stats.count("propagation.app_entries_rejected", parsed.app_rejected)
            settings = self._settings or get_settings()
            if settings.inbound == "verify":
                _drop_lookalike_entries(parsed)
            context = with_entries(context, parsed.app_entries)
            run = cached_inbound_run(parsed, settings)
            if run is not None:
                context = with_run_context(run, context)
            return context
        except Exception as error:
            stats.report_error("propagation.extract", error)
            return original

    def _run_members(self, run: RunContext) -> list[str]:
        settings = self._settings or get_settings()
        second = int(time.time()) if settings.signing_keys else 0
        last = self._last
        if last is not None and last[0] is run and last[1] is settings and last[2] == second:
            return last[3]
        encoded = _encode_members(run.to_baggage_dict(settings.propagation_mode == "lean"))
        if encoded is not None and settings.signing_keys:
            signature = sign_members(settings.signing_keys[0], encoded, second)
            encoded[SIGNATURE_KEY] = (
                f"{SIGNATURE_KEY}={signature}"  # what it always is: nothing to escape
                if is_plain_value(signature)
                else encode_member(SIGNATURE_KEY, signature)
            )
        members = None if encoded is None else list(encoded.values())
        if members is None or not fits(members):
            stats.count("propagation.run_too_large")
            log_rejection(
                "run_too_large",
                "the active run's entries exceed the baggage limits or are not valid UTF-8 "
                "and were not sent (shorten ids or use OTEL_RUNCTX_PROPAGATION_MODE=lean)",
            )
            members = []
        self._last = (run, settings, second, members)
        return members


def _encode_members(entries: dict[str, str]) -> dict[str, str] | None:
    """Each run key's ``key=value`` member (what is sent, and what is signed), or None if a
    value has no UTF-8 form (a lone surrogate)."""
    try:
        return encode_members(entries)
    except UnicodeEncodeError:
        return None


def _drop_lookalike_entries(parsed: ParsedBaggage) -> None:
    """In verify mode, app entries named like ours in another case (``RunCtx.customer_id``)
    are dropped: downstream code or a case-insensitive backend could take them for the run."""
    lookalikes = [key for key in parsed.app_entries if key.lower().startswith(PREFIX)]
    for key in lookalikes:
        del parsed.app_entries[key]
    if lookalikes:
        stats.count("propagation.app_entries_rejected", len(lookalikes))


def _read_header(getter: textmap.Getter[textmap.CarrierT], carrier: textmap.CarrierT) -> str:
    """Every ``baggage`` header value joined by commas, cut short once past the size limit."""
    values = getter.get(carrier, BAGGAGE_HEADER)
    if not values:
        return ""
    if isinstance(values, str):  # a getter that breaks the contract and returns the value
        return values
    parts: list[str] = []
    length = 0
    for value in values:
        if not isinstance(value, str):
            continue
        parts.append(value)
        length += len(value) + 1
        if length > MAX_HEADER_BYTES + 1:
            break  # already too long: parse_header rejects it without reading the rest
    return ",".join(parts)


def _without_run_baggage(context: Context) -> Context:
    entries = baggage.get_all(context)
    for key in [key for key in entries if key.startswith(PREFIX)]:
        context = baggage.remove_baggage(key, context)
    return context
