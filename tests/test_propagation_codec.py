"""The header parser's compact fast path answers exactly as the general loop does.

``parse_header`` first tries ``_parse_compact`` (bare ``key=value`` members joined by commas, the
form every sender we know writes) and falls back to ``_parse_general`` for anything else. Both
are checked here on the same inputs: the fast path must either decline or give the general
loop's answer, field for field.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_runctx.propagation import codec
from otel_runctx.propagation.codec import MAX_MEMBER_BYTES, MAX_MEMBERS, parse_header

# Pieces that hit every branch: our prefix, separators, whitespace, properties, good and broken
# escapes, characters outside baggage-octet, non-ASCII, a key character that is no token.
_PIECES = [
    "runctx.",
    "run_id",
    "a",
    "Z9",
    "=",
    ",",
    ";",
    " ",
    "\t",
    "%",
    "%2",
    "%41",
    "%e9",
    "%C3%A9",
    "%ff",
    "+",
    "(",
    "/",
    ":",
    '"',
    "\\",
    "é",
    "\x00",
]

COMPACT_HEADERS = [
    "a=1",
    "runctx.run_id=x,runctx.workflow=wf,app=v",
    "a=1,a=2",  # a repeated app key: first position, last value
    "runctx.a=1,runctx.a=1",  # a repeated run key: malformed
    "runctx.a=%zz,b=%zz,c=ok",  # broken escapes: run malformed, app member rejected
    "region=eu-west-1,request.origin=mobile%20app/2.3",
    "k=v=w,empty=",
]
GENERAL_HEADERS = [
    "a=1, b=2",  # whitespace
    "a=1;prop=x",  # a property
    "a=1,,b=2",  # an empty member
    "a%41=1",  # an escaped key
    "a(b=1",  # a key that is no token
    "=1",
    "bare",
    "a=é",  # non-ASCII
    ",".join(f"k{i}=v" for i in range(MAX_MEMBERS + 1)),  # too many members
    "a=" + "x" * MAX_MEMBER_BYTES,  # longer than one member may be
]


@pytest.mark.parametrize("header", COMPACT_HEADERS)
def test_the_fast_path_reads_compact_headers_as_the_general_loop_does(header: str) -> None:
    compact = codec._parse_compact(header)
    assert compact is not None
    assert compact == codec._parse_general(header)
    assert parse_header(header) == compact


@pytest.mark.parametrize("header", GENERAL_HEADERS)
def test_other_headers_take_the_general_loop(header: str) -> None:
    assert codec._parse_compact(header) is None
    assert parse_header(header) == codec._parse_general(header)


def test_the_general_loop_still_strips_whitespace_and_properties() -> None:
    parsed = parse_header(" runctx.a = 1 ;p=q , b=2\t")
    assert parsed is not None
    assert parsed.run_entries == {"runctx.a": "1"}
    assert parsed.app_entries == {"b": "2"}


_KEYS = ["runctx.run_id", "runctx.a", "a", "b", "RunCtx.a", "a(b", "a%41", "", " a", "a;"]
_VALUES = st.lists(st.sampled_from([*_PIECES, "v", "1"]), max_size=6).map("".join)
_MEMBERS = st.one_of(
    st.tuples(st.sampled_from(_KEYS), _VALUES).map("=".join),
    st.sampled_from(_KEYS),  # no "=" at all
)
_HEADERS = st.one_of(
    st.lists(_MEMBERS, max_size=12).map(",".join),
    st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
)


@settings(max_examples=500, deadline=None)
@given(_HEADERS)
def test_the_fast_path_never_disagrees(header: str) -> None:
    compact = codec._parse_compact(header)
    if compact is not None:
        assert compact == codec._parse_general(header)
