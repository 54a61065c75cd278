"""Outcome log records as journal lines and back.

A line is ``o<TAB>outcome_id<TAB>resource_digest<TAB>json`` for a record, or
``r<TAB>digest<TAB>json`` for a resource. The worker splits a line on its first tabs to file it
without parsing the JSON (JSON text never holds a raw tab or newline), and the store keeps the
JSON part. A record refers to its resource by digest; the resource is written once per journal,
because its attributes are the same for every record of a process and would otherwise make each
line several times longer.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_runctx.outcomes import record_json

__all__ = [
    "decode_body",
    "decode_record",
    "decode_resource",
    "encode_record",
    "encode_resource",
    "instrumentation_scope",
    "resource_digest",
    "split_line",
]

_digest_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _digest_lock
    _digest_lock = threading.Lock()  # a parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
# Keyed by id(); the Resource is kept in the value so the id cannot be reused while cached.
_digests: dict[int, tuple[Resource, str]] = {}


def resource_digest(resource: Resource) -> str:
    """A short stable digest of ``resource`` (cached per Resource object)."""
    cached = _digests.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    body = record_json.stdlib_dumps([dict(resource.attributes), resource.schema_url or ""])
    digest = hashlib.sha256(body).hexdigest()[:32]
    with _digest_lock:
        if len(_digests) > 64:
            _digests.clear()
        _digests[id(resource)] = (resource, digest)
    return digest


def encode_resource(resource: Resource) -> bytes:
    """The journal line that defines ``resource`` for the record lines that refer to it."""
    digest = resource_digest(resource)
    line = _resource_lines.get(digest)
    if line is None:
        body = record_json.stdlib_dumps(
            {"a": dict(resource.attributes), "u": resource.schema_url or ""}
        )
        line = _resource_lines[digest] = b"".join((f"r\t{digest}\t".encode(), body, b"\n"))
    return line


_resource_lines: dict[str, bytes] = {}


def encode_record(
    record: LogRecord,
    outcome_id: str,
    resource: Resource,
    scope: tuple[str, str | None],
    *,
    replaces: bool = False,
) -> bytes:
    """The journal line for one outcome record (kind ``f`` when it replaces a pending one)."""
    body = {
        "t": record.timestamp,
        "ot": record.observed_timestamp,
        # Hex: a trace id has 128 bits, more than orjson (and many JSON readers) take as a
        # number; the span id is written the same way.
        "tr": f"{record.trace_id or 0:032x}",
        "sp": f"{record.span_id or 0:016x}",
        "fl": int(record.trace_flags or 0),
        "sn": record.severity_number.value if record.severity_number is not None else None,
        "st": record.severity_text,
        "b": record.body,
        "a": record.attributes or {},
        "e": record.event_name,
        "sc": scope,
    }
    kind = "f" if replaces else "o"
    head = f"{kind}\t{outcome_id}\t{resource_digest(resource)}\t".encode()
    return b"".join((head, record_json.dumps(body), b"\n"))


def split_line(line: bytes) -> tuple[str, str, str, bytes]:
    """(kind, outcome_id, digest, json) of a journal line; ``outcome_id`` is "" for a resource.

    Raises ValueError for a line this module did not write, or one damaged since: the check is
    cheap (no JSON parsing on the worker's hot path), a JSON object must at least be braced.
    """
    if line.endswith(b"\n"):  # as encode_record wrote it (journal readers split it off)
        line = line[:-1]
    parts = line.split(b"\t", 3)
    if parts[0] in (b"o", b"f") and len(parts) == 4:  # f: a final record (issue 10)
        _, outcome_id, digest, body = parts
    elif parts[0] == b"r" and len(parts) == 3:
        outcome_id, (_, digest, body) = b"", parts
    else:
        raise ValueError("not a journal line")
    if not (digest and body.startswith(b"{") and body.endswith(b"}")) or b"\0" in line:
        raise ValueError("a damaged journal line")
    if parts[0] != b"r" and not outcome_id:
        raise ValueError("a journal line without an outcome id")
    return parts[0].decode(), outcome_id.decode(), digest.decode(), body


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse the JSON part of a line."""
    value = record_json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("not a journal record")
    return value


def decode_resource(payload: Mapping[str, Any]) -> Resource:
    return Resource(dict(payload["a"]), payload.get("u") or None)


def decode_record(payload: Mapping[str, Any], resource: Resource) -> ReadableLogRecord:
    """Rebuild the ReadableLogRecord a stock exporter can send."""
    severity = payload.get("sn")
    trace_id, span_id = payload["tr"], payload["sp"]
    span_context = SpanContext(
        # Hex text; numbers in journals written by earlier releases (read after an upgrade).
        trace_id=int(trace_id, 16) if isinstance(trace_id, str) else trace_id,
        span_id=int(span_id, 16) if isinstance(span_id, str) else span_id,
        is_remote=False,
        trace_flags=TraceFlags(payload["fl"]),
    )
    record = LogRecord(
        timestamp=payload["t"],
        observed_timestamp=payload["ot"],
        # An explicit (empty) base context: the record must not pick up the worker's context.
        context=set_span_in_context(NonRecordingSpan(span_context), Context()),
        severity_text=payload.get("st"),
        severity_number=SeverityNumber(severity) if severity is not None else None,
        body=payload.get("b"),
        attributes=payload["a"],
        event_name=payload.get("e"),
    )
    name, version = payload["sc"]
    return ReadableLogRecord(
        log_record=record,
        resource=resource,
        instrumentation_scope=instrumentation_scope(name, version),
    )


@functools.lru_cache(maxsize=64)
def instrumentation_scope(name: str, version: str | None) -> InstrumentationScope:
    """The scope of outcome records: one object per (name, version), shared by every record."""
    return InstrumentationScope(name, version)
