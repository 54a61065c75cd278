"""Rules every run field obeys, whether it comes from code or from an inbound header.

One set of rules serves :meth:`RunContext.create` (which raises) and
:meth:`RunContext.from_baggage` (which rejects quietly), so a value that code may not create can
never arrive from another service either. Every check is linear in the value's length and the
length is capped first, so hostile input costs bounded time.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import uuid
from collections.abc import Collection
from typing import cast

from otel_runctx import stats

#: Longest accepted id, workflow name, environment or tenant, in characters.
MAX_VALUE_LENGTH = 256

# C0 controls, DEL and C1 controls: never legitimate in an identifier, and NUL in particular
# truncates values in some backends.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_text(name: str, value: object) -> str:
    """Return ``value`` if it is a usable identifier, else raise ValueError naming ``name``."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"{name} is {len(value)} characters long; the limit is {MAX_VALUE_LENGTH}")
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError(f"{name} must not contain control characters")
    return value


def are_texts(values: Collection[object]) -> bool:
    """True if every one of ``values`` passes :func:`check_text`.

    For the hot paths that check several fields at once (an inbound run, a new RunContext):
    the type and length of each value, then one scan for control characters over all of them
    joined (joining neither adds nor removes a character), where an ASCII text is scanned by
    ``str.isprintable`` (on ASCII it rejects exactly the C0 controls and DEL) instead of the
    regular expression. A caller that needs the error message runs :func:`check_text` on each
    value when this says False.
    """
    for value in values:
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE_LENGTH:
            return False
    joined = "".join(cast("Collection[str]", values))  # each one is a string, as just checked
    if joined.isascii():
        return joined.isprintable()
    return _CONTROL_CHARACTERS.search(joined) is None


#: What an unusable id from data becomes in lenient mode (the default; see :func:`safe_text`).
INVALID_MARKER = "invalid"


def safe_text(name: str, value: object) -> str:
    """``value`` made usable as field ``name``: an int becomes its decimal string, anything
    else that fails :func:`check_text` becomes :data:`INVALID_MARKER`.

    For ids that come from data (an extractor's return value, a request field): such a value
    must not stop the business code it describes. ``None`` is not data but a missing argument
    and still raises.
    """
    if value is None:
        raise ValueError(f"{name} is required")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    try:
        return check_text(name, value)
    except ValueError:
        return INVALID_MARKER


_logger = logging.getLogger("otel_runctx")
_logged_fields: set[str] = set()
_logged_lock = threading.Lock()


def lenient_text(name: str, value: object, *, strict: bool) -> str:
    """An id from the caller (often from data): checked, and made safe unless ``strict``.

    Lenient (the default): an invalid value starts the run anyway with :func:`safe_text`'s
    replacement, counted as ``validation.invalid_<name>`` and logged once per field. Strict
    (``OTEL_RUNCTX_STRICT=true``, for tests and development): the ValueError reaches the
    caller. ``None`` (a missing id) always raises.
    """
    try:
        return check_text(name, value)
    except ValueError as error:
        if value is None or strict:
            raise
        problem = str(error)
    safe = safe_text(name, value)
    stats.count(f"validation.invalid_{name}")
    with _logged_lock:
        first = name not in _logged_fields
        _logged_fields.add(name)
    if first:
        _logger.warning(
            "otel-runctx: a run was started with an invalid %s (%s); it runs with %s=%r "
            "instead (counted as validation.invalid_%s; logged once per field; "
            "OTEL_RUNCTX_STRICT=true raises instead)",
            name,
            problem,
            name,
            safe,
            name,
        )
    return safe


def check_run_id(name: str, value: object) -> str:
    """Return ``value`` if it is a canonical UUID string, else raise ValueError."""
    text = check_text(name, value)
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise ValueError(f"{name} must be a UUID, got {text!r}") from None
    if str(parsed) != text.lower():
        raise ValueError(f"{name} must be a UUID in canonical form, got {text!r}")
    return text


def check_attempt(value: object) -> int:
    """Return ``value`` if it is a positive int (not a bool), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"attempt must be a positive integer, got {value!r}")
    return value


def parse_attempt(text: str) -> int:
    """Parse an inbound ``attempt``: plain ASCII digits, at most 9 of them, value >= 1."""
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 9):
        raise ValueError(f"attempt must be a positive integer, got {str(text)[:20]!r}")
    return check_attempt(int(text))


def check_deadline(value: object) -> float:
    """Return ``value`` as a finite, non-negative unix timestamp in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"deadline must be a number of unix seconds, got {value!r}")
    deadline = float(value)
    if not math.isfinite(deadline) or deadline < 0:
        raise ValueError(f"deadline must be a finite, non-negative timestamp, got {value!r}")
    return deadline


def parse_deadline(text: str) -> float:
    """Parse an inbound ``deadline`` (a decimal number of unix seconds)."""
    if not isinstance(text, str) or len(text) > 32:
        raise ValueError("deadline must be a short decimal string")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"deadline must be a number, got {text!r}") from None
    return check_deadline(value)
