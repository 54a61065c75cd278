"""Putting an inbound header's app entries into the Context in one step: the one place in
propagation that touches an OpenTelemetry internal.

The public way, ``baggage.set_baggage`` once per entry, copies the baggage dict and the Context
for every entry. The fast path copies the baggage once, adds every entry, and stores it under
the baggage module's own context key (``opentelemetry.baggage._BAGGAGE_KEY``) with the public
``context.set_value``: what the last ``set_baggage`` call would have stored. It relies on that
private name and on ``set_baggage`` storing a plain dict under it; both are probed once at import
by building the same Context both ways and comparing them, and if anything differs (or the name
is gone) :data:`FAST_PATH_AVAILABLE` is False and :func:`with_entries` takes the public way.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import baggage
from opentelemetry.context import Context, set_value

__all__ = ["FAST_PATH_AVAILABLE", "with_entries", "with_entries_fast", "with_entries_public"]


def with_entries_public(context: Context, entries: Mapping[str, str]) -> Context:
    """``context`` with ``entries`` added to its baggage, one ``set_baggage`` call each."""
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    return context


def with_entries_fast(context: Context, entries: Mapping[str, str], key: object = None) -> Context:
    """:func:`with_entries_public` with one copy of the baggage and of the Context."""
    if not entries:
        return context
    merged = dict(baggage.get_all(context))
    merged.update(entries)
    return set_value(_KEY if key is None else key, merged, context)  # type: ignore[arg-type]


def probe(key: object) -> bool:
    """True if storing under ``key`` gives exactly what ``set_baggage`` gives."""
    if not isinstance(key, str):
        return False
    try:
        start = baggage.set_baggage("b", "0", baggage.set_baggage("c", "3", Context()))
        entries = {"a": "1", "b": "2"}
        public = with_entries_public(start, entries)
        fast = with_entries_fast(start, entries, key)
        return (
            type(fast) is type(public)
            and fast == public
            and list(baggage.get_all(fast).items()) == list(baggage.get_all(public).items())
            and baggage.get_all(start) == {"c": "3", "b": "0"}  # the start is left as it was
        )
    except Exception:
        return False


_KEY: object = getattr(baggage, "_BAGGAGE_KEY", None)
#: Whether :func:`with_entries` takes the fast path (decided once, at import).
FAST_PATH_AVAILABLE = probe(_KEY)


def with_entries(context: Context, entries: Mapping[str, str]) -> Context:
    """``context`` with ``entries`` added to its baggage (later values win, order kept)."""
    if FAST_PATH_AVAILABLE:
        return with_entries_fast(context, entries)
    return with_entries_public(context, entries)
