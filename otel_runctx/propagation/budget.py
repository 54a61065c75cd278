"""Fitting the run's entries and the app's baggage into one header within the limits.

The run's members go first and are never evicted. App members follow in the order the app
first set them (OTel baggage keeps insertion order). The rule for dropping is:

1. a member that alone is longer than :data:`MAX_MEMBER_BYTES` encoded, has an empty key, or
   cannot be encoded as UTF-8 (a lone surrogate), is dropped and the next one is tried;
2. at the first member that would push the header past :data:`MAX_MEMBERS` members or
   :data:`MAX_HEADER_BYTES` bytes, it and every member after it are dropped.

So what arrives is always the app's oldest entries, the same on every hop. ``runctx.*`` keys
found in app baggage are skipped, not counted: the run's entries come only from the active run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from otel_runctx.keys import PREFIX
from otel_runctx.propagation.codec import (
    MAX_HEADER_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    encode_member,
)

__all__ = ["assemble", "fits"]


def fits(members: Sequence[str]) -> bool:
    """True if ``members`` alone make a header within every limit."""
    lengths = list(map(len, members))
    return (
        len(lengths) <= MAX_MEMBERS
        and max(lengths, default=0) <= MAX_MEMBER_BYTES
        and sum(lengths) + max(0, len(lengths) - 1) <= MAX_HEADER_BYTES
    )


def assemble(run_members: Sequence[str], app: Mapping[str, object]) -> tuple[str, int]:
    """The header text and how many app entries were dropped. ``run_members`` must :func:`fits`."""
    parts = list(run_members)
    length = sum(map(len, parts)) + max(0, len(parts) - 1)
    dropped = 0
    app_items = [(key, value) for key, value in app.items() if not str(key).startswith(PREFIX)]
    for index, (key, value) in enumerate(app_items):
        name = str(key)
        try:
            member = encode_member(name, str(value))
        except UnicodeEncodeError:
            member = ""
        if not name or not member or len(member) > MAX_MEMBER_BYTES:
            dropped += 1
            continue
        added = len(member) + (1 if parts else 0)
        if len(parts) >= MAX_MEMBERS or length + added > MAX_HEADER_BYTES:
            dropped += len(app_items) - index
            break
        parts.append(member)
        length += added
    return ",".join(parts), dropped
