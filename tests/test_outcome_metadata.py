"""Metadata flattening, fuzzed: valid input flattens losslessly; anything else is a ValueError."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from otel_runctx.outcomes.model import METADATA_PREFIX, flatten_metadata

keys = st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True)
scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars | st.lists(st.integers(min_value=0, max_value=9), max_size=5),
    lambda children: st.dictionaries(keys, children, max_size=3),
    max_leaves=20,
)


def leaves(mapping: dict[str, Any], path: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            found.update(leaves(value, dotted))
        else:
            found[METADATA_PREFIX + dotted] = value
    return found


@given(st.dictionaries(keys, values, max_size=4))
def test_valid_metadata_flattens_to_dotted_keys(metadata: dict[str, Any]) -> None:
    expected = leaves(metadata)
    try:
        flat = flatten_metadata(metadata)
    except ValueError as error:
        # Only the caps may reject valid-looking input: depth, entry count or key length.
        assert any(word in str(error) for word in ("deeper", "more than", "longer than"))
        return
    assert flat == expected


@given(st.dictionaries(keys, st.none() | st.binary() | st.sets(st.integers()), max_size=4))
def test_none_is_skipped_and_other_types_are_value_errors(metadata: dict[str, Any]) -> None:
    unusable = [v for v in metadata.values() if v is not None]
    try:
        flat = flatten_metadata(metadata)
    except ValueError as error:
        assert unusable, error
        assert "use str, bool, int, float" in str(error)
    else:
        assert not unusable
        assert flat == {}


@given(st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=4))
def test_keys_outside_the_allowed_alphabet_are_value_errors(metadata: dict[str, Any]) -> None:
    try:
        flat = flatten_metadata(metadata)
    except ValueError as error:
        assert "metadata key" in str(error)
    else:
        assert all(k.startswith(METADATA_PREFIX) for k in flat)
        assert len(flat) == len(metadata)
