"""HMAC-SHA256 signatures over a run's baggage entries, so a service can refuse forged runs.

Canonical form (version 2), the exact bytes that are signed::

    runctx-sig/v2 LF <key id> LF <issued-at> LF <a line per key in SIGNED_KEYS order, LF-joined>

where a present field's line is ``<key>=<value percent-encoded as in the baggage header>`` and
an absent field's line is the bare ``<key>``. Every signed key has a line whether or not it was
sent, so a field added in transit (say a ``runctx.tenant_id`` that lean mode left out) breaks
the signature, and a percent-encoded value cannot contain LF, so lines cannot be forged. The
whole text is ASCII.

The signature travels as the baggage entry ``runctx.sig`` with the value
``v2:<key id>:<issued-at>:<base64url HMAC, no padding>``, where issued-at is the signer's clock
in whole unix seconds (ASCII digits). The key id lets a verifier pick the one key to try, so
rotation costs one HMAC no matter how many keys are configured.

A signature proves which deployment minted the run fields, and when. A verifier refuses one
older than ``OTEL_RUNCTX_SIGNATURE_MAX_AGE`` seconds (``expired``), or issued more than
:data:`CLOCK_SKEW_SECONDS` in its future (``future``), so a captured header can be replayed only
within that window. Version 1 signatures (no issued-at) are ``malformed``. App baggage is
never signed.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

from otel_runctx import keys
from otel_runctx.propagation.codec import encode, is_plain_value
from otel_runctx.settings import SigningKey

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "SIGNATURE_KEY",
    "SIGNED_KEYS",
    "canonical_bytes",
    "canonical_bytes_of_members",
    "issued_at",
    "sign",
    "sign_members",
    "verify",
]

SIGNATURE_KEY = "runctx.sig"
_VERSION = "v2"
_DOMAIN = "runctx-sig/v2"
#: A signature issued up to this many seconds in the verifier's future is accepted (the
#: signer's clock runs ahead). A signer's clock running behind shortens the max age instead.
CLOCK_SKEW_SECONDS = 60
_MAX_ISSUED_AT_DIGITS = 12

#: Every run field, in the order the canonical form lists them.
SIGNED_KEYS = (
    keys.RUN_ID,
    keys.ROOT_RUN_ID,
    keys.PARENT_RUN_ID,
    keys.WORKFLOW,
    keys.EVENT_ID,
    keys.CUSTOMER_ID,
    keys.TENANT_ID,
    keys.ENVIRONMENT,
    keys.ATTEMPT,
    keys.RETRY_OF_RUN_ID,
    keys.DEADLINE,
)

_MAC_TEXT_LENGTH = 43  # base64url of 32 bytes, unpadded


def canonical_bytes(key_id: str, entries: Mapping[str, str], issued_at: int) -> bytes:
    """The bytes signed for ``entries`` (decoded run baggage values) under ``key_id``."""
    try:
        # The usual case: no value needs escaping (one check for all of them), so a present
        # field's line is "key=value". Keys that are not signed get a line nobody reads.
        plain = is_plain_value("".join(entries.values()))
    except TypeError:  # a None or non-text value somewhere: take the general path
        plain = False
    get = entries.get
    if plain:
        return _canonical_text(
            key_id,
            issued_at,
            [key if (value := get(key)) is None else f"{key}={value}" for key in SIGNED_KEYS],
        )
    values = [get(key) for key in SIGNED_KEYS]
    return _canonical_text(
        key_id,
        issued_at,
        [
            key if value is None else f"{key}={encode(value)}"
            for key, value in zip(SIGNED_KEYS, values, strict=True)
        ],
    )


def canonical_bytes_of_members(key_id: str, members: Mapping[str, str], issued_at: int) -> bytes:
    """:func:`canonical_bytes` from the run's encoded members (signed key -> the exact
    ``key=value`` member sent): a present field's line *is* its member, as signed keys need
    no escaping, so a sender that encoded its members already need not encode them again."""
    get = members.get
    return _canonical_text(key_id, issued_at, [get(key, key) for key in SIGNED_KEYS])


def _canonical_text(key_id: str, issued_at: int, lines: list[str]) -> bytes:
    return "\n".join([_DOMAIN, key_id, str(issued_at), *lines]).encode("ascii")


def _raw_hmac_matches() -> bool:
    """True if the OpenSSL HMAC object inside ``hmac.HMAC`` (``_hmac``, a private attribute)
    is there and, copied and fed a message, gives the standard library's MAC."""
    try:
        raw: Any = getattr(hmac.new(b"probe-key", digestmod=hashlib.sha256), "_hmac", None)
        if raw is None:
            return False
        mac = raw.copy()
        mac.update(b"probe message")
        return bool(mac.digest() == hmac.digest(b"probe-key", b"probe message", "sha256"))
    except Exception:
        return False


#: Whether MACs are taken from OpenSSL's HMAC object directly (decided once, at import).
RAW_HMAC = _raw_hmac_matches()


@functools.lru_cache(maxsize=64)
def _keyed_hmac(secret: bytes) -> Any:
    # The key schedule is done once per secret; each MAC starts from a copy of it. The copy is
    # taken of OpenSSL's object inside hmac.HMAC when the probe above found it working: three C
    # calls per MAC instead of hmac.HMAC's three Python methods around them.
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    return getattr(mac, "_hmac", mac) if RAW_HMAC else mac


# base64 -> base64url: the two characters that differ.
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _mac_text(secret: bytes, canonical: bytes) -> bytes:
    mac = _keyed_hmac(secret).copy()
    mac.update(canonical)
    # base64.urlsafe_b64encode(...).rstrip(b"="), without its two Python-level calls: 32 bytes
    # make 44 characters, the last one padding.
    return binascii.b2a_base64(mac.digest(), newline=False).translate(_URLSAFE)[:_MAC_TEXT_LENGTH]


def sign(key: SigningKey, entries: Mapping[str, str], issued_at: int | None = None) -> str:
    """The ``runctx.sig`` value for ``entries`` signed with ``key`` at ``issued_at`` (now)."""
    when = int(time.time()) if issued_at is None else issued_at
    return _signature(key, when, canonical_bytes(key.key_id, entries, when))


def sign_members(key: SigningKey, members: Mapping[str, str], issued_at: int) -> str:
    """:func:`sign` for a sender holding its encoded members (see
    :func:`canonical_bytes_of_members`); the same value for the same run."""
    return _signature(key, issued_at, canonical_bytes_of_members(key.key_id, members, issued_at))


def _signature(key: SigningKey, when: int, canonical: bytes) -> str:
    mac = _mac_text(key.secret, canonical).decode("ascii")
    return f"{_VERSION}:{key.key_id}:{when}:{mac}"


def verify(
    signature: str | None,
    entries: Mapping[str, str],
    keys: Sequence[SigningKey],
    *,
    max_age: float = 300,
    now: float | None = None,
) -> str:
    """Check ``signature`` over ``entries``; return ``"ok"`` or why it failed.

    Failure reasons: ``"missing"``, ``"malformed"`` (including a version 1 signature, which has
    no issued-at), ``"expired"`` (issued more than ``max_age`` seconds ago), ``"future"``
    (issued more than :data:`CLOCK_SKEW_SECONDS` ahead of ``now``), ``"unknown_key"`` (signed
    with a key this service does not hold: retired, or never shared), ``"mismatch"``
    (tampered, or a wrong secret under a known id). The time is checked before the HMAC, so a
    stale header costs no HMAC.
    """
    if signature is None:
        return "missing"
    fields = _fields(signature)
    if fields is None:
        return "malformed"
    key_id, issued_at, mac_text = fields
    current = time.time() if now is None else now
    if issued_at > current + CLOCK_SKEW_SECONDS:
        return "future"
    if current - issued_at > max_age:
        return "expired"
    for key in keys:
        if key.key_id == key_id:
            # Compared as text: any character outside base64url simply fails to match.
            received = mac_text.encode("utf-8", "replace")
            expected = _mac_text(key.secret, canonical_bytes(key_id, entries, issued_at))
            return "ok" if hmac.compare_digest(expected, received) else "mismatch"
    return "unknown_key"


def issued_at(signature: str | None) -> int | None:
    """The issued-at of a well-formed version 2 ``signature``, else None."""
    fields = None if signature is None else _fields(signature)
    return None if fields is None else fields[1]


@functools.lru_cache(maxsize=16)
def _fields(signature: str) -> tuple[str, int, str] | None:
    """(key id, issued-at, MAC text) of a well-formed version 2 signature, else None.

    Remembered for the last few signatures: a receiver asks twice per header (verify, then
    the inbound cache for its expiry), and the answer depends on the text alone."""
    version, _, rest = signature.partition(":")
    key_id, _, rest = rest.partition(":")
    issued_text, _, mac_text = rest.partition(":")
    if (
        version != _VERSION
        or len(mac_text) != _MAC_TEXT_LENGTH
        or not key_id.isascii()
        or not (issued_text.isascii() and issued_text.isdigit())
        or len(issued_text) > _MAX_ISSUED_AT_DIGITS
    ):
        return None
    return key_id, int(issued_text), mac_text
