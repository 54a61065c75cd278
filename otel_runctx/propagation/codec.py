"""The W3C ``baggage`` header: percent-encoding and a parser whose cost is bounded by design.

Encoding follows the W3C Baggage spec, not ``quote_plus``: a value is UTF-8, and every octet
outside ``baggage-octet`` is written as ``%XX``. ``+`` and ``%`` are escaped too, so a value
survives both a spec-following receiver and OpenTelemetry Python's stock propagator (which
decodes with ``unquote_plus`` and would turn a bare ``+`` into a space).

The parser never raises and never backtracks: the header length is checked before anything
else, members are found with ``str.split``, and the only regular expressions are single
character classes matched with ``fullmatch``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from otel_runctx.keys import PREFIX

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "ParsedBaggage",
    "decode",
    "encode",
    "encode_member",
    "encode_members",
    "is_plain_value",
    "parse_header",
]

#: OpenTelemetry Python's limits (W3CBaggagePropagator._MAX_*): members, bytes per member,
#: bytes per header. Staying inside them means a stock receiver drops nothing we send.
MAX_MEMBERS = 180
MAX_MEMBER_BYTES = 4096
MAX_HEADER_BYTES = 8192

# W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E; we also escape "%" and "+".
_SAFE_VALUE_CHARACTERS = "".join(
    chr(c)
    for c in [0x21, *range(0x23, 0x2C), *range(0x2D, 0x3B), *range(0x3C, 0x5C), *range(0x5D, 0x7F)]
    if chr(c) not in "%+"
)
# W3C key: an RFC 7230 token.
_TOKEN_CHARACTERS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SAFE_KEY_CHARACTERS = _TOKEN_CHARACTERS.replace("%", "").replace("+", "")

_PLAIN_VALUE = re.compile(f"[{re.escape(_SAFE_VALUE_CHARACTERS)}]*")
_PLAIN_KEY = re.compile(f"[{re.escape(_SAFE_KEY_CHARACTERS)}]*")
_is_plain_member = re.compile(
    f"[{re.escape(_SAFE_KEY_CHARACTERS)}]*=[{re.escape(_SAFE_VALUE_CHARACTERS)}]*"
).fullmatch
_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OWS = " \t"
_is_key = _KEY.fullmatch
_is_value = _VALUE.fullmatch
# Every character a compact header may hold: baggage-octets (which include "=" and every
# token character) and the comma between members.
_is_compact = re.compile(r"[\x21\x23-\x2b\x2c\x2d-\x3a\x3c-\x5b\x5d-\x7e]*").fullmatch


def encode(text: str, *, key: bool = False) -> str:
    """Percent-encode ``text`` (UTF-8) for a baggage key or value."""
    if (_PLAIN_KEY if key else _PLAIN_VALUE).fullmatch(text):
        return text  # the common case: nothing to escape
    return quote(text, safe=_SAFE_KEY_CHARACTERS if key else _SAFE_VALUE_CHARACTERS)


def is_plain_value(text: str) -> bool:
    """True if ``text`` needs no escaping as a baggage value."""
    return _PLAIN_VALUE.fullmatch(text) is not None


def encode_member(key: str, value: str) -> str:
    """One ``key=value`` list-member, both sides encoded.

    The common case, nothing to escape on either side, is one match over the member: a plain
    key holds no ``=``, so with none in ``key`` the member's first ``=`` is the separator.
    """
    member = f"{key}={value}"
    if type(value) is str and "=" not in key and _is_plain_member(member) is not None:
        return member
    return f"{encode(key, key=True)}={encode(value)}"


def encode_members(entries: Mapping[str, str]) -> dict[str, str]:
    """:func:`encode_member` for every entry: key -> ``key=value`` member, in entry order.

    The run's keys are constants and its values are nearly always plain, so one check over
    all the keys and one over all the values (a string is plain exactly when each of its
    characters is, so joining changes no answer) replace two checks per member; anything to
    escape sends every member through :func:`encode_member`. Raises UnicodeEncodeError as it
    does (a lone surrogate).
    """
    try:
        plain = (
            _PLAIN_KEY.fullmatch("".join(entries)) is not None
            and _PLAIN_VALUE.fullmatch("".join(entries.values())) is not None
        )
    except TypeError:  # a key or value that is not text: the per-member path says what fails
        plain = False
    if plain:
        return {key: f"{key}={value}" for key, value in entries.items()}
    return {key: encode_member(key, value) for key, value in entries.items()}


def decode(raw: str) -> str | None:
    """Decode a percent-encoded key or value; None if an escape is broken or not UTF-8."""
    if "%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw):
        return None
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None


@dataclass(slots=True)
class ParsedBaggage:
    """What one inbound header holds, split into the run's entries and the app's.

    ``run_entries`` keeps the decoded ``runctx.*`` members; ``run_malformed`` is set when any
    member that claims the ``runctx.`` namespace is broken or repeated, so the caller can
    reject the whole run instead of using part of it. App members keep header order; a
    repeated app key keeps its first position and its last value, as the stock
    propagator does.
    """

    run_entries: dict[str, str] = field(default_factory=dict)
    run_malformed: bool = False
    app_entries: dict[str, str] = field(default_factory=dict)
    app_rejected: int = 0


def parse_header(header: str) -> ParsedBaggage | None:
    """Parse a ``baggage`` header; None if it is longer than :data:`MAX_HEADER_BYTES`.

    Every ``runctx.*`` member is read wherever it sits, so a run is judged on all of its
    entries; app members past :data:`MAX_MEMBERS` (counting the run's) are rejected. Member
    properties (``;key=value`` after a value) carry nothing we use and are dropped.
    """
    # A valid header is ASCII, so characters == bytes; non-ASCII members are rejected below.
    if len(header) > MAX_HEADER_BYTES:
        return None
    compact = _parse_compact(header)
    return compact if compact is not None else _parse_general(header)


def _parse_general(header: str) -> ParsedBaggage:
    """Any header of at most :data:`MAX_HEADER_BYTES`: whitespace, properties, empty members,
    escaped keys and bad members included."""
    parsed = ParsedBaggage()
    run_entries = parsed.run_entries
    app_entries = parsed.app_entries
    members = 0
    # One loop with the member checks written out: a header has a dozen members and is read
    # on every request, so per-member function calls were most of the parsing cost.
    for member in header.split(","):
        member = member.strip(_OWS)
        if not member:
            continue
        members += 1
        raw_key, equals, raw_value = member.split(";", 1)[0].partition("=")
        raw_key = raw_key.strip(_OWS)
        is_run_key = raw_key.startswith(PREFIX)
        if not is_run_key and members > MAX_MEMBERS:
            parsed.app_rejected += 1
            continue
        key = value = None
        if equals and len(member) <= MAX_MEMBER_BYTES and _is_key(raw_key) is not None:
            raw_value = raw_value.strip(_OWS)
            if _is_value(raw_value) is not None:
                key = raw_key if "%" not in raw_key else decode(raw_key)
                value = raw_value if "%" not in raw_value else decode(raw_value)
        if key is None or value is None:
            if is_run_key:
                parsed.run_malformed = True
            else:
                parsed.app_rejected += 1
        elif is_run_key:
            if key in run_entries:
                parsed.run_malformed = True
            else:
                run_entries[key] = value
        elif key.startswith(PREFIX):  # an escaped key that decodes into our namespace
            parsed.app_rejected += 1
        else:
            app_entries[key] = value
    return parsed


def _parse_compact(header: str) -> ParsedBaggage | None:
    """:func:`parse_header` for the form senders write (ours and OpenTelemetry's): members
    ``key=value`` joined by bare commas, no whitespace, no properties, at most
    :data:`MAX_MEMBER_BYTES` in all. None for any other header, which the general loop then
    reads; the answer is the same either way (``tests/test_propagation_codec.py``).

    One character-class match over the whole header proves every value is made of
    baggage-octets, and one over the joined keys proves every key is a token, so a member
    costs a split and a dictionary write instead of a dozen checks.
    """
    if len(header) > MAX_MEMBER_BYTES or _is_compact(header) is None:
        return None
    members = header.split(",")
    if len(members) > MAX_MEMBERS:
        return None
    parsed = ParsedBaggage()
    run_entries = parsed.run_entries
    app_entries = parsed.app_entries
    for member in members:
        key, equals, raw_value = member.partition("=")
        if not key or not equals or "%" in key:
            return None  # an empty member, a bare key or an escaped key: the general loop
        value = raw_value if "%" not in raw_value else decode(raw_value)
        if key.startswith(PREFIX):
            if value is None or key in run_entries:
                parsed.run_malformed = True
            else:
                run_entries[key] = value
        elif value is None:
            parsed.app_rejected += 1
        else:
            app_entries[key] = value
    if _is_key("".join(run_entries) + "".join(app_entries)) is None:
        return None  # some key is not a token: the general loop says which
    return parsed
