"""Writing a run's attributes onto a starting span: the one place that touches SDK internals.

The public way, ``span.set_attributes(mapping)``, re-validates every value on every span
(``_clean_attribute_value``, one dict insert at a time). A run's attributes were validated once,
when the RunContext was built, and the same read-only mapping is stamped onto every span of the
run, so re-validating them is pure cost: on this machine it made stamping dearer than passing the
attributes to ``start_span`` yourself. The fast path copies the run's dict into the span's
``BoundedAttributes`` storage under its lock in one C-level operation.

It relies on private SDK structure (``Span._attributes`` being a ``BoundedAttributes`` with
``_dict``, ``_lock``, ``maxlen``, ``max_value_len`` and ``_immutable``). That structure is probed
once at import by stamping a real SDK span and reading the result back through the public
``attributes`` property; if anything differs, :data:`FAST_PATH_AVAILABLE` is False and every span
goes through :func:`stamp_public`. Per span, anything the fast path cannot reproduce exactly
(a value-length limit that could truncate, a count limit that could evict, a non-SDK span) also
goes the public way. Log records get the same treatment (:func:`add_missing`), except that
attributes a record already has are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import Span, Tracer
from opentelemetry.util.types import AttributeValue

__all__ = [
    "FAST_PATH_AVAILABLE",
    "add_missing",
    "add_missing_fast",
    "add_missing_public",
    "stamp",
    "stamp_fast",
    "stamp_public",
    "stamp_scalars",
]

Stamper = Callable[[Span, Mapping[str, AttributeValue]], None]
MissingAdder = Callable[[MutableMapping[str, Any], Mapping[str, AttributeValue]], None]


def stamp_public(span: Span, attributes: Mapping[str, AttributeValue]) -> None:
    """Set ``attributes`` on ``span`` through the public API (validates every value)."""
    span.set_attributes(attributes)


def _writable_without_checks(bounded: Any) -> bool:
    """True for a plain, mutable SDK BoundedAttributes with no value-length limit: writing
    pre-validated values straight into its dict gives what the public API would."""
    return (
        type(bounded) is BoundedAttributes
        and bounded.max_value_len is None
        and not bounded._immutable
    )


def stamp_fast(span: Span, attributes: Mapping[str, AttributeValue]) -> None:
    """Set already-validated ``attributes`` on an SDK ``span`` without re-validating them.

    Falls back to :func:`stamp_public` whenever the result could differ from it.
    """
    bounded: Any = getattr(span, "_attributes", None)
    if not _writable_without_checks(bounded):
        stamp_public(span, attributes)
        return
    with bounded._lock:
        current = bounded._dict
        maxlen = bounded.maxlen
        if maxlen is not None and len(current) + len(attributes) > maxlen:
            fits = False
        elif current:
            current.update(attributes)
            fits = True
        else:
            # MappingProxyType.copy() is the underlying dict's copy(): one C call.
            bounded._dict = (
                attributes.copy() if type(attributes) is MappingProxyType else dict(attributes)
            )
            fits = True
    if not fits:
        stamp_public(span, attributes)


_SCALARS = frozenset((str, bool, int, float))


def all_scalars(values: Iterable[object]) -> bool:
    """True if every value is an exact ``str``/``bool``/``int``/``float``: valid as an
    attribute value as it is (one C loop over the types, no generator)."""
    return _SCALARS.issuperset(map(type, values))


def stamp_scalars(span: Span, attributes: Mapping[str, AttributeValue]) -> None:
    """:func:`stamp` for a mapping built in code (an outcome's attributes) rather than a run's.

    Only exact ``str``/``bool``/``int``/``float`` values are valid as they are, so the fast path
    is taken only when every value is one; anything else (a list, which the SDK would turn into a
    tuple, or a value it would reject) goes through the public API.
    """
    if all_scalars(attributes.values()):
        stamp(span, attributes)
    else:
        stamp_public(span, attributes)


def add_missing_public(
    target: MutableMapping[str, Any], attributes: Mapping[str, AttributeValue]
) -> None:
    """Add the ``attributes`` that ``target`` lacks, one validated insert at a time."""
    for key, value in attributes.items():
        if key not in target:
            target[key] = value


def add_missing_fast(
    target: MutableMapping[str, Any], attributes: Mapping[str, AttributeValue]
) -> None:
    """Like :func:`add_missing_public` for an SDK ``BoundedAttributes`` (a log record's), without
    re-validating values; falls back whenever the result could differ."""
    bounded: Any = target
    if not _writable_without_checks(bounded):
        add_missing_public(target, attributes)
        return
    with bounded._lock:
        current = bounded._dict
        maxlen = bounded.maxlen
        fits = maxlen is None or len(current) + len(attributes) <= maxlen
        if fits:
            for key, value in attributes.items():
                if key not in current:
                    current[key] = value
    if not fits:
        add_missing_public(target, attributes)


def _probe_tracer() -> Tracer:
    """A private tracer for the probe that touches no global state and runs no detectors."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    options: dict[str, Any] = {
        "sampler": ALWAYS_ON,
        "resource": Resource.get_empty(),
        "shutdown_on_exit": False,
    }
    try:  # without a meter provider, the SDK's own span metrics would use the global one
        provider = TracerProvider(**options, meter_provider=NoOpMeterProvider())
    except TypeError:  # an SDK without span metrics
        provider = TracerProvider(**options)
    return provider.get_tracer("otel_runctx.probe")


def _probe() -> bool:
    """True if :func:`stamp_fast` gives the same result as the public API on this SDK."""
    try:
        tracer = _probe_tracer()
        expected: dict[str, AttributeValue] = {"runctx.probe": "x", "runctx.attempt": 1}
        empty = tracer.start_span("runctx-probe")
        stamp_fast(empty, MappingProxyType(expected))
        prefilled = tracer.start_span("runctx-probe", attributes={"user.key": True})
        stamp_fast(prefilled, MappingProxyType(expected))
        bounded: Any = getattr(empty, "_attributes", None)
        return (
            type(bounded) is BoundedAttributes
            and isinstance(bounded._dict, dict)
            and dict(getattr(empty, "attributes", None) or {}) == expected
            and dict(getattr(prefilled, "attributes", None) or {}) == {"user.key": True, **expected}
        )
    except Exception:
        return False


#: Whether this SDK's span internals look the way :func:`stamp_fast` expects.
FAST_PATH_AVAILABLE: bool = _probe()

#: What the processors use: the fast paths when the probe passed, else the public API.
stamp: Stamper = stamp_fast if FAST_PATH_AVAILABLE else stamp_public
add_missing: MissingAdder = add_missing_fast if FAST_PATH_AVAILABLE else add_missing_public
