"""Whether an inbound run is used: validation, then the ``OTEL_RUNCTX_INBOUND`` trust policy.

All or nothing: one broken, repeated, empty or invalid ``runctx.*`` entry, or (in ``verify``
mode) a missing, unknown-key or wrong signature, drops the whole inbound run. The request is
still served, just without that run. Each decision is counted in :mod:`otel_runctx.stats`
(``propagation.accepted``, ``.rejected_invalid``, ``.rejected_signature`` plus
``.rejected_signature.<why>`` such as ``.rejected_signature.expired``, ``.ignored``) and
rejections are logged at most once per interval per reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from otel_runctx import keys, stats
from otel_runctx.context import RunContext, run_from_checked_baggage
from otel_runctx.propagation.codec import ParsedBaggage
from otel_runctx.propagation.signing import SIGNATURE_KEY, SIGNED_KEYS, verify
from otel_runctx.settings import Settings
from otel_runctx.validation import are_texts

__all__ = ["inbound_run", "log_rejection"]

_logger = logging.getLogger("otel_runctx")
_DEADLINE_CHARACTERS = frozenset("0123456789.eE+-")

_log_lock = threading.Lock()
_last_logged: dict[str, float] = {}


def inbound_run(parsed: ParsedBaggage, settings: Settings) -> RunContext | None:
    """The run carried by ``parsed`` if policy and validation allow it, else None."""
    if not parsed.run_entries and not parsed.run_malformed:
        return None
    if settings.inbound == "ignore":
        stats.count("propagation.ignored")
        return None
    entries = {key: parsed.run_entries[key] for key in SIGNED_KEYS if key in parsed.run_entries}
    usable = not parsed.run_malformed and _all_entries_are_text(parsed.run_entries)
    run = _validated_run(entries) if usable else None
    if run is None:
        stats.count("propagation.rejected_invalid")
        log_rejection("rejected_invalid", "an inbound run had a missing or invalid field")
        return None
    if settings.inbound == "verify":
        verdict = verify(
            parsed.run_entries.get(SIGNATURE_KEY),
            entries,
            settings.signing_keys,
            max_age=settings.signature_max_age,
        )
        if verdict != "ok":
            stats.count("propagation.rejected_signature")
            stats.count(f"propagation.rejected_signature.{verdict}")
            log_rejection("rejected_signature", f"an inbound run's signature is {verdict}")
            return None
    stats.count("propagation.accepted")
    return run


def _all_entries_are_text(run_entries: Mapping[str, str]) -> bool:
    """Every ``runctx.*`` entry, the signature and unknown keys too, passes the text rules
    (so none is empty either: an empty value would silently fall back to a default)."""
    return are_texts(run_entries.values())


def _validated_run(entries: dict[str, str]) -> RunContext | None:
    """The run of ``entries``, which :func:`_all_entries_are_text` accepted."""
    deadline = entries.get(keys.DEADLINE)
    if deadline is not None and not _DEADLINE_CHARACTERS.issuperset(deadline):
        return None  # float() would also take " 1e3 ", "1_000" and "inf"
    return run_from_checked_baggage(entries)


def log_rejection(reason: str, message: str) -> None:
    """Log ``message`` at most once per :data:`stats.LOG_INTERVAL_SECONDS` per ``reason``.

    Counting is the caller's job; rejections are expected traffic at a public edge, so they
    are not reported as errors.
    """
    try:
        now = time.monotonic()
        with _log_lock:
            last = _last_logged.get(reason)
            if last is not None and now - last < stats.LOG_INTERVAL_SECONDS:
                return
            _last_logged[reason] = now
        _logger.warning(
            "otel-runctx: %s; the request is served without it (counted as propagation.%s; "
            "logged at most every %.0f s)",
            message,
            reason,
            stats.LOG_INTERVAL_SECONDS,
        )
    except Exception:
        pass
