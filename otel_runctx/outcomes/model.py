"""The outcome of a run: its fields, their rules, and the attributes it is exported as.

Every check here runs on the caller's thread when ``emit_outcome`` is called, so a bad argument
is a ``ValueError`` at the call that made it, never a silent drop later in an exporter.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_runctx.context import RunContext, RunStatus
from otel_runctx.validation import check_text

__all__ = [
    "MAX_METADATA_ENTRIES",
    "OUTCOME_EVENT_NAME",
    "Outcome",
    "make_outcome",
    "outcome_id_for",
]

#: The ``event_name`` of the LogRecord every outcome is exported as.
OUTCOME_EVENT_NAME = "runctx.outcome"
PREFIX = "runctx.outcome."
METADATA_PREFIX = "runctx.outcome.metadata."

#: Caps on ``metadata`` (after flattening nested mappings into dotted keys).
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_LENGTH = 128
MAX_METADATA_DEPTH = 4
MAX_METADATA_STRING_LENGTH = 1024
MAX_METADATA_SEQUENCE_LENGTH = 64
#: Longest ``reason``; automatic outcomes truncate an exception message to this.
MAX_REASON_LENGTH = 1024

_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
# Outcome ids are uuid5(run_id:attempt) in this namespace: stable, so a re-sent outcome
# (at-least-once delivery) carries the same id and a backend can keep one.
_OUTCOME_NAMESPACE = uuid.UUID("6f1d6a52-1c1e-4c55-9a43-4f2a4e0b7c11")
_NAMESPACE_BYTES = _OUTCOME_NAMESPACE.bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended, as recorded. Build it with :func:`make_outcome`."""

    status: RunStatus
    value_type: str | None = None
    value_amount: int | float | None = None
    confidence: float | None = None
    reason: str | None = None
    error_type: str | None = None
    metadata: Mapping[str, AttributeValue] = field(default_factory=dict)
    automatic: bool = False

    def to_attributes(self) -> dict[str, AttributeValue]:
        """``runctx.outcome.*`` attributes; unset fields are left out."""
        if self is AUTOMATIC_SUCCESS:  # the outcome of most runs: nothing else to look at
            return {"runctx.outcome.status": "success", "runctx.outcome.automatic": True}
        attributes: dict[str, AttributeValue] = {
            "runctx.outcome.status": self.status.value,
            "runctx.outcome.automatic": self.automatic,
        }
        # Written out rather than filtered from a dict: this runs at the end of every run.
        if self.value_type is not None:
            attributes["runctx.outcome.value_type"] = self.value_type
        if self.value_amount is not None:
            attributes["runctx.outcome.value_amount"] = self.value_amount
        if self.confidence is not None:
            attributes["runctx.outcome.confidence"] = self.confidence
        if self.reason is not None:
            attributes["runctx.outcome.reason"] = self.reason
        if self.error_type is not None:
            attributes["runctx.outcome.error_type"] = self.error_type
        if self.metadata:
            attributes.update(self.metadata)
        return attributes


#: The automatic outcome of a run that ended normally (most runs); one object serves them all.
AUTOMATIC_SUCCESS = Outcome(status=RunStatus.SUCCESS, automatic=True)


def outcome_id_for(run: RunContext) -> str:
    """The outcome id of ``run``: the same for every copy of the run and every re-send.

    A UUIDv5 (RFC 9562) of ``"<run_id>:<attempt>"``, formatted by hand: ``uuid.uuid5`` builds
    a UUID object and costs several times more on this hot path.
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{run.run_id}:{run.attempt}".encode()).hexdigest()
    variant = "89ab"[int(digest[16], 16) & 0x3]
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"


def make_outcome(
    status: RunStatus | str,
    *,
    value_type: str | None = None,
    value_amount: float | None = None,
    confidence: float | None = None,
    reason: str | None = None,
    error_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    automatic: bool = False,
) -> Outcome:
    """Validate the arguments of ``emit_outcome``; raise ValueError naming the bad one."""
    return Outcome(
        status=_status(status),
        value_type=None if value_type is None else check_text("value_type", value_type),
        value_amount=_finite_number("value_amount", value_amount),
        confidence=_confidence(confidence),
        reason=_reason(reason),
        error_type=None if error_type is None else check_text("error_type", error_type),
        metadata=flatten_metadata(metadata) if metadata else {},
        automatic=automatic,
    )


def _status(status: RunStatus | str) -> RunStatus:
    if isinstance(status, RunStatus):
        return status
    try:
        return RunStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"status must be a RunStatus ({allowed}), got {status!r}") from None


def _finite_number(name: str, value: object) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise ValueError(f"{name} must fit in a signed 64-bit integer")
    return value


def _confidence(value: object) -> float | None:
    number = _finite_number("confidence", value)
    if number is None:
        return None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {value!r}")
    return float(number)


def _reason(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"reason must be a string, got {type(value).__name__}")
    if len(value) > MAX_REASON_LENGTH:
        raise ValueError(
            f"reason is {len(value)} characters long; the limit is {MAX_REASON_LENGTH}"
        )
    return value


def flatten_metadata(metadata: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Flatten ``metadata`` into ``runctx.outcome.metadata.<dotted.key>`` attributes.

    Nested mappings become dotted keys (at most 4 levels). Values must be str, bool, int,
    finite float, or a list/tuple of one of those types; None values are skipped.
    """
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a mapping, got {type(metadata).__name__}")
    flat: dict[str, AttributeValue] = {}
    _flatten_into(flat, metadata, "", 1)
    return flat


def _flatten_into(
    flat: dict[str, AttributeValue], mapping: Mapping[Any, Any], path: str, depth: int
) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels at {path!r}")
    for key, value in mapping.items():
        if not isinstance(key, str) or not _KEY_SEGMENT.fullmatch(key):
            raise ValueError(
                f"metadata key {key!r} must be a non-empty string of letters, digits, '_', '-' "
                "and inner dots"
            )
        dotted = f"{path}.{key}" if path else key
        if len(dotted) > MAX_METADATA_KEY_LENGTH:
            raise ValueError(
                f"metadata key {dotted[:40]!r}... is longer than {MAX_METADATA_KEY_LENGTH}"
            )
        if value is None:
            continue
        if isinstance(value, Mapping):
            _flatten_into(flat, value, dotted, depth + 1)
            continue
        if len(flat) >= MAX_METADATA_ENTRIES:
            raise ValueError(f"metadata has more than {MAX_METADATA_ENTRIES} entries")
        flat[METADATA_PREFIX + dotted] = _metadata_value(dotted, value)


def _metadata_value(key: str, value: object) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return _scalar(key, value)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_METADATA_SEQUENCE_LENGTH:
            raise ValueError(f"metadata {key!r} has more than {MAX_METADATA_SEQUENCE_LENGTH} items")
        items = [_scalar(key, item) for item in value]
        kinds = {type(item) for item in items}
        if len(kinds) > 1:
            raise ValueError(f"metadata {key!r} mixes types {sorted(k.__name__ for k in kinds)}")
        return items
    raise ValueError(
        f"metadata {key!r} has a {type(value).__name__}; use str, bool, int, float or a list of one"
    )


def _scalar(key: str, value: object) -> str | bool | int | float:
    if isinstance(value, str):
        if len(value) > MAX_METADATA_STRING_LENGTH:
            raise ValueError(
                f"metadata {key!r} is longer than {MAX_METADATA_STRING_LENGTH} characters"
            )
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        number = _finite_number(f"metadata {key!r}", value)
        assert number is not None
        return number
    raise ValueError(
        f"metadata {key!r} holds a {type(value).__name__}; use str, bool, int or float"
    )
