"""JSON for journal records: orjson when it is installed and works, the stdlib otherwise.

Encoding the outcome record is the largest single cost of a durable outcome on the caller's
thread (the write must be on disk before ``emit_outcome`` returns, so it cannot move to the
worker): the stdlib's C encoder takes about six times as long as orjson for the ~1 KB record of
a run. orjson is optional (``pip install 'otel-runctx[fast]'``): it is compiled, and a platform
without a wheel must not make the package uninstallable. For what records hold (text, bools,
64-bit ints, finite floats, lists; non-finite floats never reach a record, see outcomes/model.py)
both write JSON that reads back as the same values (orjson writes non-ASCII text as UTF-8, the
stdlib escapes it), so a journal written with one is read with the other.

orjson is used only after a probe: it must be importable and encode a sample record into JSON
the stdlib reads as the value it started from. A record it refuses (an int beyond 64 bits, a
lone surrogate in a text) is encoded by the stdlib instead, so no outcome is lost to the choice
of encoder. What orjson wrote, orjson reads (see :data:`FAST_MARK`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["FAST", "dumps", "loads", "stdlib_dumps"]


def _stdlib_dumps() -> Callable[[object], bytes]:
    """Compact, ASCII-only JSON; ``ValueError`` for NaN or infinity, ``TypeError`` for values
    JSON has no form for. Built once: ``JSONEncoder.encode`` makes a new C encoder (and a
    circular-reference check) per call, a tenth of the cost of a record, and records are built
    from plain values, never circular. The pure-Python encoder where the C one is absent."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        return lambda value: encode(value).encode()
    refuse = json.JSONEncoder().default  # the TypeError a stock encoder raises
    encoder = make(
        None, refuse, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    return lambda value: "".join(encoder(value, 0)).encode()


stdlib_dumps = _stdlib_dumps()

_PROBE = {
    "t": 1_796_301_149_100_146_973,
    "sp": 18_101_067_627_456_061_350,  # above 2**63: span ids are unsigned
    "a": {"k": "v", "n": -3, "f": 0.05167700146557763, "b": True, "l": ["x", "y"], "é": "ü"},
    "sc": ("otel_runctx", None),
}


def _fast_dumps() -> Callable[[object], bytes] | None:
    """orjson's ``dumps`` if it is installed and passes the probe; None otherwise."""
    try:
        import orjson  # optional: the fast extra
    except ImportError:
        return None
    try:
        encoded = orjson.dumps(_PROBE)
        if json.loads(encoded) != json.loads(stdlib_dumps(_PROBE)):
            return None
    except Exception:  # a broken build: the stdlib is always there
        return None
    fast: Callable[[object], bytes] = orjson.dumps
    return fast


_fast = _fast_dumps()
_fast_loads: Callable[[bytes], Any] | None = None
if _fast is not None:
    import orjson

    _fast_loads = orjson.loads

#: How a JSON object written by orjson begins. Only what orjson wrote is read with orjson:
#: it refuses to write an int outside -2**63..2**64-1, the one thing ``orjson.loads`` would not
#: read back exactly (it turns it into a float). Readers ignore the extra key.
FAST_MARK = b'{"orjson":1,'

#: True when records are encoded with orjson.
FAST = _fast is not None


def dumps(value: dict[str, Any]) -> bytes:
    """``value`` as compact JSON bytes (a journal line holds no raw tab or newline either way);
    with orjson, the object starts with :data:`FAST_MARK`.

    Raises ``TypeError`` for a value JSON has no form for (the caller counts it). A non-finite
    float, which no record holds (outcomes/model.py refuses it), is null with orjson and a
    ``ValueError`` with the stdlib.
    """
    if _fast is not None and value:
        try:
            return FAST_MARK + _fast(value)[1:]
        except TypeError:  # orjson.JSONEncodeError: a big int or a lone surrogate
            pass
    return stdlib_dumps(value)


def loads(data: bytes) -> Any:
    """Parse JSON written by :func:`dumps` (by either encoder, in any release) into the value
    it was written from. ``ValueError`` if it is none. orjson reads what orjson wrote, the
    stdlib the rest (and all of it where orjson is not installed)."""
    if not data.startswith(FAST_MARK):
        return json.loads(data)
    value: dict[str, Any] | None = None
    if _fast_loads is not None:
        try:
            value = _fast_loads(data)
        except ValueError:  # orjson.JSONDecodeError: the stdlib says what is wrong
            value = None
    if value is None:
        value = json.loads(data)
    value.pop("orjson", None)
    return value
