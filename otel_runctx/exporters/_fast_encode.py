"""OTLP encoding of run attributes without rebuilding the same protobuf messages for every span.

The stock OTLP exporters encode each attribute of each span into a fresh ``KeyValue`` message in
Python (``_encode_attributes``: about a microsecond per attribute, plus the copy into the span
message). A run's attributes are the same on every span of the run, so after lean export
(``OTEL_RUNCTX_SPAN_ATTRIBUTES``) encoding them was most of what a stamped span added to the
batch thread's CPU. :func:`install` wraps the trace and log encoders' ``_encode_attributes`` so
that ``runctx.*`` keys with string values reuse one encoded ``KeyValue`` per (key, value); protobuf
copies a message when it is put into a repeated field, so the cached message is never shared.
Every other attribute goes through the stock encoder unchanged.

This touches private exporter structure (the module-level ``_encode_attributes`` name that
``trace_encoder`` and ``_log_encoder`` call). :func:`install` first probes: it encodes a span
with both the stock and the caching function and installs only if the bytes are identical. If the
exporter package is missing or looks different, nothing is patched (:data:`installed` stays
False) and export works exactly as without otel-runctx. :func:`uninstall` puts the stock function
back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["CACHE_SIZE", "install", "installed", "uninstall"]

#: Most distinct (key, value) pairs kept; the cache is emptied when it is full (runs churn).
CACHE_SIZE = 4096

Encoder = Callable[[Any], list[Any]]

_lock = threading.Lock()
_cache: dict[tuple[str, str], Any] = {}
_originals: dict[str, tuple[ModuleType, Encoder]] = {}
installed = False


def _modules() -> list[ModuleType]:
    from opentelemetry.exporter.otlp.proto.common._internal import (
        _log_encoder,
        trace_encoder,
    )

    return [trace_encoder, _log_encoder]


def _caching(stock: Encoder, encode_key_value: Callable[[str, Any], Any]) -> Encoder:
    cache = _cache

    def _encode_attributes(attributes: Mapping[str, Any] | None) -> list[Any]:
        if not attributes:
            return []
        if not any(key.startswith("runctx.") for key in attributes):
            return stock(attributes)
        encoded: list[Any] = []
        rest: dict[str, Any] = {}
        for key, value in attributes.items():
            if type(value) is str and key.startswith("runctx."):
                message = cache.get((key, value))
                if message is None:
                    message = encode_key_value(key, value)
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    cache[(key, value)] = message
                if rest:  # keep the attributes' order exactly as the stock encoder does
                    encoded.extend(stock(rest))
                    rest = {}
                encoded.append(message)
            else:
                rest[key] = value
        if rest:
            encoded.extend(stock(rest))
        return encoded

    _encode_attributes.__wrapped__ = stock  # type: ignore[attr-defined]
    return _encode_attributes


def _same_bytes(stock: Encoder, caching: Encoder) -> bool:
    """Encode one probe span with each function; True if the serialized bytes are identical."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as PB2Span

    attributes = {
        "user.a": "x",
        "runctx.run_id": "probe-run",
        "user.b": 3,
        "runctx.attempt": 1,
        "runctx.workflow": "probe",
    }
    first = PB2Span(name="p", attributes=caching(attributes)).SerializeToString()
    again = PB2Span(name="p", attributes=caching(attributes)).SerializeToString()  # cached path
    expected = PB2Span(name="p", attributes=stock(attributes)).SerializeToString()
    return first == again == expected and caching(None) == stock(None) == []


def install() -> bool:
    """Wrap the OTLP trace and log encoders (once per process); True if active. Never raises."""
    global installed
    with _lock:
        if installed:
            return True
        try:
            from opentelemetry.exporter.otlp.proto.common._internal import _encode_key_value

            modules = _modules()
            patches = []
            for module in modules:
                stock = module._encode_attributes
                caching = _caching(stock, _encode_key_value)
                if not _same_bytes(stock, caching):
                    return False
                patches.append((module, stock, caching))
            for module, stock, caching in patches:
                _originals[module.__name__] = (module, stock)
                module._encode_attributes = caching  # type: ignore[attr-defined]
            installed = True
        except Exception:
            _originals.clear()
            return False
        finally:
            _cache.clear()
        return True


def uninstall() -> None:
    """Put the stock encoders back (tests; the cached messages are dropped)."""
    global installed
    with _lock:
        for module, stock in _originals.values():
            module._encode_attributes = stock  # type: ignore[attr-defined]
        _originals.clear()
        _cache.clear()
        installed = False
