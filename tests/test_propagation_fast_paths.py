"""The signed hop's fast paths give the general paths' answers, and fall back when they must.

Each fast path below skips per-entry work when one check over all the entries proves it
unnecessary. For each: a hypothesis test that it agrees with the general path on inputs that
hit both, a test that the common input takes the fast path (the general path is made to fail,
so the test fails if the fast path stops being taken), and a test of the fallback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import baggage
from opentelemetry.context import Context

from otel_runctx import context as context_module
from otel_runctx import stats, validation
from otel_runctx.context import (
    RunContext,
    get_run_context,
    run_from_checked_baggage,
    with_run_context,
)
from otel_runctx.propagation import (
    RunContextPropagator,
    _fast_baggage,
    budget,
    codec,
    propagation_stats,
    propagator,
    signing,
)
from otel_runctx.settings import load_settings
from otel_runctx.validation import MAX_VALUE_LENGTH, are_texts, check_text

_SIGNING = {"OTEL_RUNCTX_SIGNING_KEYS": "k1:fast-path-secret-0123456789"}
_VERIFY = {**_SIGNING, "OTEL_RUNCTX_INBOUND": "verify"}

# Pieces of keys and values: plain text, characters that need escaping in a value or only in
# a key, "%" and "+" (always escaped), non-ASCII, a control character and a lone surrogate.
_PIECES = ["runctx.", "run_id", "a", "Z9", "-", "=", "(", " ", ",", ";", "%", "+", "é", "\x01"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=5).map("".join)
_ENTRIES = st.dictionaries(_TEXT, _TEXT, max_size=8)


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def a_run() -> RunContext:
    return RunContext.create("checkout", event_id="evt-1", customer_id="acme", tenant_id="t1")


def _per_member(entries: dict[str, str]) -> dict[str, str]:
    """Each member encoded the long way: key and value each through codec.encode."""
    return {
        key: f"{codec.encode(key, key=True)}={codec.encode(value)}"
        for key, value in entries.items()
    }


# -- codec.encode_member: one match over a member with nothing to escape ------------------------


@settings(max_examples=400, deadline=None)
@given(_TEXT, _TEXT)
def test_encode_member_agrees_with_encoding_each_side(key: str, value: str) -> None:
    try:
        expected = f"{codec.encode(key, key=True)}={codec.encode(value)}"
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            codec.encode_member(key, value)
        return
    assert codec.encode_member(key, value) == expected


@pytest.mark.parametrize(
    ("key", "value", "member"),
    [
        ("a=b", "c", "a%3Db=c"),  # "=" in the key: the first "=" is not the separator
        ("a", "b=c", "a=b=c"),
        ("a b", "c", "a%20b=c"),
        ("a", "c d", "a=c%20d"),
        ("a", "", "a="),
    ],
)
def test_encode_member_escapes_what_it_must(key: str, value: str, member: str) -> None:
    assert codec.encode_member(key, value) == member


def test_a_plain_member_is_not_encoded_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "encode", _must_not_be_called)
    assert codec.encode_member("request.origin", "eu-west-1") == "request.origin=eu-west-1"


def test_encode_member_still_refuses_a_value_that_is_not_text() -> None:
    with pytest.raises(TypeError):
        codec.encode_member("a", 1)  # type: ignore[arg-type]


# -- codec.encode_members: one check over all keys and one over all values ---------------------


@settings(max_examples=300, deadline=None)
@given(_ENTRIES)
def test_encode_members_agrees_with_encoding_each_member(entries: dict[str, str]) -> None:
    assert codec.encode_members(entries) == _per_member(entries)
    assert list(codec.encode_members(entries)) == list(entries)


def test_encode_members_skips_the_per_member_checks_when_all_is_plain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = a_run().to_baggage_dict(lean_mode=False)
    expected = _per_member(entries)
    monkeypatch.setattr(codec, "encode_member", _must_not_be_called)
    assert codec.encode_members(entries) == expected


@pytest.mark.parametrize(
    "entries",
    [
        {"runctx.workflow": "charge card", "runctx.run_id": "x"},  # a value to escape
        {"runctx.a": "1", "a(b": "2"},  # a key that is no token
        {"a": "100%"},
        {"a": "é"},
    ],
)
def test_encode_members_escapes_through_the_per_member_path(entries: dict[str, str]) -> None:
    unescaped = {key: f"{key}={value}" for key, value in entries.items()}
    assert codec.encode_members(entries) == _per_member(entries)
    assert codec.encode_members(entries) != unescaped


def test_encode_members_raises_like_encode_member_on_a_lone_surrogate() -> None:
    with pytest.raises(UnicodeEncodeError):
        codec.encode_members({"a": "ok", "b": "\ud800"})


def test_encode_members_sends_a_non_text_value_to_the_per_member_path() -> None:
    with pytest.raises(TypeError):
        codec.encode_members({"a": 1})  # type: ignore[dict-item]


def _must_not_be_called(*args: object, **kwargs: object) -> str:
    raise AssertionError("the general path was taken")


# -- budget.fits: lengths in C, same limits -----------------------------------------------------


def _fits_reference(members: list[str]) -> bool:
    return (
        len(members) <= codec.MAX_MEMBERS
        and all(len(member) <= codec.MAX_MEMBER_BYTES for member in members)
        and sum(map(len, members)) + max(0, len(members) - 1) <= codec.MAX_HEADER_BYTES
    )


@pytest.mark.parametrize(
    "members",
    [
        [],
        ["a=1"],
        ["a=" + "x" * (codec.MAX_MEMBER_BYTES - 2)],
        ["a=" + "x" * (codec.MAX_MEMBER_BYTES - 1)],
        ["a=" + "x" * 4000, "b=" + "x" * 4000, "c=" + "x" * 189],
        ["a=" + "x" * 4000, "b=" + "x" * 4000, "c=" + "x" * 190],
        ["a=1"] * codec.MAX_MEMBERS,
        ["a=1"] * (codec.MAX_MEMBERS + 1),
    ],
)
def test_fits_applies_every_limit(members: list[str]) -> None:
    assert budget.fits(members) is _fits_reference(members)


# -- the sender: encoded members and the signature member ----------------------------------------


def _sent(run: RunContext, env: dict[str, str]) -> str:
    carrier: dict[str, str] = {}
    RunContextPropagator(load_settings(env)).inject(carrier, context=with_run_context(run))
    return carrier["baggage"]


def test_a_plain_signed_run_is_sent_without_per_member_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = a_run()
    expected = _sent(run, _SIGNING)
    monkeypatch.setattr(codec, "encode_member", _must_not_be_called)
    monkeypatch.setattr(propagator, "encode_member", _must_not_be_called)
    assert _sent(run, _SIGNING) == expected


def test_a_signature_that_needed_escaping_would_be_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Key ids are limited to plain characters (settings), so a real signature never needs
    # escaping; the fallback is exercised with a signer that returns one that does.
    monkeypatch.setattr(propagator, "sign_members", lambda *args: "v2:k 1:1:mac")
    header = _sent(a_run(), _SIGNING)
    assert "runctx.sig=v2:k%201:1:mac" in header.split(",")


def test_a_run_with_values_to_escape_still_round_trips() -> None:
    run = RunContext.create("charge card", event_id="evt 1/é+%", customer_id="acme,inc")
    header = _sent(run, _SIGNING)
    assert "runctx.workflow=charge%20card" in header.split(",")
    receiver = RunContextPropagator(load_settings(_VERIFY))
    received = get_run_context(receiver.extract({"baggage": header}, context=Context()))
    assert received is not None
    assert (received.workflow, received.event_id, received.customer_id) == (
        "charge card",
        "evt 1/é+%",
        "acme,inc",
    )


# -- signing: canonical lines, the MAC text and the signature's fields ------------------------

_SIGNED_VALUES = st.one_of(st.none(), _TEXT)


def _canonical_reference(key_id: str, entries: dict[str, str], issued_at: int) -> bytes:
    """The documented canonical form, built the long way (signing.py's module docstring)."""
    lines = [
        key if entries.get(key) is None else f"{key}={codec.encode(entries[key])}"
        for key in signing.SIGNED_KEYS
    ]
    return "\n".join(["runctx-sig/v2", key_id, str(issued_at), *lines]).encode("ascii")


@settings(max_examples=300, deadline=None)
@given(st.lists(_SIGNED_VALUES, min_size=11, max_size=11), _TEXT)
def test_canonical_bytes_agree_with_the_documented_form(
    values: list[str | None], unsigned_value: str
) -> None:
    pairs = zip(signing.SIGNED_KEYS, values, strict=True)
    entries = {key: value for key, value in pairs if value is not None}
    entries["runctx.unknown"] = unsigned_value  # not signed, and must not change the bytes
    try:
        expected = _canonical_reference("kid", entries, 1767225600)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            signing.canonical_bytes("kid", entries, 1767225600)
        return
    assert signing.canonical_bytes("kid", entries, 1767225600) == expected


def test_canonical_bytes_of_plain_entries_escape_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = a_run().to_baggage_dict(lean_mode=False)
    expected = _canonical_reference("kid", entries, 1767225600)
    monkeypatch.setattr(signing, "encode", _must_not_be_called)
    assert signing.canonical_bytes("kid", entries, 1767225600) == expected


def test_canonical_bytes_escape_through_the_general_path() -> None:
    entries = {"runctx.run_id": "r", "runctx.workflow": "charge card+", "runctx.attempt": "2"}
    assert signing.canonical_bytes("kid", entries, 1) == _canonical_reference("kid", entries, 1)
    assert b"\nrunctx.workflow=charge card" not in signing.canonical_bytes("kid", entries, 1)


def test_canonical_bytes_of_a_non_text_value_take_the_general_path() -> None:
    with pytest.raises(TypeError):
        signing.canonical_bytes("kid", {"runctx.run_id": 1}, 1)  # type: ignore[dict-item]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=80), st.binary(max_size=600))
def test_the_mac_text_is_unpadded_base64url_of_hmac_sha256(secret: bytes, message: bytes) -> None:
    mac = hmac.new(secret, message, hashlib.sha256).digest()
    assert signing._mac_text(secret, message) == base64.urlsafe_b64encode(mac).rstrip(b"=")


def test_a_verified_header_has_its_signature_read_once() -> None:
    header = _sent(a_run(), _SIGNING)
    receiver = RunContextPropagator(load_settings(_VERIFY))
    before = signing._fields.cache_info()
    assert get_run_context(receiver.extract({"baggage": header}, context=Context())) is not None
    after = signing._fields.cache_info()
    # verify() parses it; the inbound cache's expiry (issued_at) reuses the answer.
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


@pytest.mark.parametrize(
    "signature",
    [
        "v2:k1:1767225600:" + "A" * 43,
        "v2:k1:1767225600:" + "A" * 42,
        "v1:k1:" + "A" * 43,
        "v2:k1:-1:" + "A" * 43,
        "v2:k1:1e3:" + "A" * 43,
        "v2:k1:" + "9" * 13 + ":" + "A" * 43,
        "v2:ké:1:" + "A" * 43,
        "",
    ],
)
def test_remembered_signature_fields_are_the_fields(signature: str) -> None:
    first = signing._fields(signature)
    signing._fields.cache_clear()
    assert signing._fields(signature) == first
    assert signing._fields.__wrapped__(signature) == first
    assert signing.issued_at(signature) == (None if first is None else first[1])


# -- the receiver: every entry's text rules in one scan, and the run's own checks ---------------

_FIELD_TEXT = st.one_of(
    _TEXT,
    st.text(max_size=3),
    st.sampled_from(["", "x" * MAX_VALUE_LENGTH, "x" * (MAX_VALUE_LENGTH + 1), "a\x7f", "\x9f"]),
)


def _passes_check_text(value: object) -> bool:
    try:
        check_text("field", value)
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_FIELD_TEXT, st.none(), st.integers()), max_size=6))
def test_are_texts_agrees_with_check_text_on_each(values: list[object]) -> None:
    assert are_texts(values) is all(map(_passes_check_text, values))  # type: ignore[arg-type]


def test_the_inbound_text_rule_is_one_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    header = _sent(a_run(), _SIGNING)
    receiver = RunContextPropagator(load_settings(_VERIFY))
    monkeypatch.setattr(validation, "check_text", _must_not_be_called)
    monkeypatch.setattr(context_module, "check_text", _must_not_be_called)
    monkeypatch.setattr(context_module, "check_run_id", _must_not_be_called)
    assert get_run_context(receiver.extract({"baggage": header}, context=Context())) is not None
    assert propagation_stats() == {"propagation.accepted": 1}


@pytest.mark.parametrize(
    "entry",
    [
        ("runctx.workflow", "w\x01"),
        ("runctx.sig", ""),
        ("runctx.future_field", "x" * (MAX_VALUE_LENGTH + 1)),
        ("runctx.tenant_id", "t\x85"),
    ],
)
def test_an_inbound_entry_that_breaks_a_text_rule_rejects_the_run(entry: tuple[str, str]) -> None:
    run = a_run()
    entries = {**run.to_baggage_dict(lean_mode=True), entry[0]: entry[1]}
    header = ",".join(codec.encode_members(entries).values())
    receiver = RunContextPropagator(load_settings({}))
    assert get_run_context(receiver.extract({"baggage": header}, context=Context())) is None
    assert propagation_stats() == {"propagation.rejected_invalid": 1}


_PARENT = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"


def test_a_run_with_minted_ids_is_checked_without_parsing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(context_module, "check_text", _must_not_be_called)
    monkeypatch.setattr(context_module, "check_run_id", _must_not_be_called)
    run = RunContext(
        run_id=_PARENT[:-1] + "c",
        workflow="w",
        event_id="e",
        customer_id="c",
        environment="prod",
        tenant_id="t",
        parent_run_id=_PARENT,
        root_run_id=_PARENT,
        retry_of_run_id=_PARENT[:-1] + "d",
    )
    assert run.parent_run_id == _PARENT


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("workflow", "", "workflow must not be empty"),
        ("event_id", "e\x00", "event_id must not contain control characters"),
        ("customer_id", 7, "customer_id must be a string"),
        ("environment", "x" * (MAX_VALUE_LENGTH + 1), "environment is 257 characters"),
        ("tenant_id", "", "tenant_id must not be empty"),
        ("parent_run_id", _PARENT.upper() + "0", "parent_run_id must be a UUID"),
        ("parent_run_id", 5, "parent_run_id must be a string"),
        ("retry_of_run_id", "not-a-uuid", "retry_of_run_id must be a UUID"),
    ],
)
def test_a_field_that_breaks_a_rule_is_named(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {
        "run_id": _PARENT,
        "workflow": "w",
        "event_id": "e",
        "customer_id": "c",
        "environment": "prod",
        field: value,
    }
    with pytest.raises(ValueError, match=message):
        RunContext(**fields)  # type: ignore[arg-type]


def test_an_upper_case_parent_id_is_still_accepted_as_before() -> None:
    run = RunContext(
        run_id=_PARENT,
        workflow="w",
        event_id="e",
        customer_id="c",
        environment="prod",
        parent_run_id=_PARENT.upper(),
        retry_of_run_id=_PARENT.upper(),
    )
    assert run.parent_run_id == _PARENT.upper()


# -- the inbound run is built without RunContext.__init__ ---------------------------------------

_IDS = [_PARENT, _PARENT.upper(), _PARENT[:-1] + "c", "0190A5B2-7C3D-7E4F-8A9B-0C1D2E3F4A5B"]
# Valid values most of the time, so that most generated runs are built and compared.


def _mostly(valid: st.SearchStrategy[str], other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.integers(0, 7).flatmap(lambda pick: other if pick == 7 else valid)


_ID_VALUES = _mostly(
    st.sampled_from(_IDS),
    st.sampled_from(["x", "{" + _PARENT + "}", _PARENT.replace("-", ""), _PARENT + " ", ""]),
)
_NAMES = _mostly(
    st.sampled_from(["w", "evt 1/é", "acme", "prod", "a" * MAX_VALUE_LENGTH]), _FIELD_TEXT
)
_FIELD_VALUES = {
    "runctx.root_run_id": _ID_VALUES,
    "runctx.parent_run_id": _ID_VALUES,
    "runctx.retry_of_run_id": _ID_VALUES,
    "runctx.tenant_id": _NAMES,
    "runctx.environment": _NAMES,
    "runctx.attempt": st.sampled_from(["1", "2", "7", "0", "-1", "01", "1000000000", "x", "²"]),
    "runctx.deadline": st.sampled_from(["1.5", "0", "17e8", "-1", "1e3", "inf", "nan", "1_0", "x"]),
}
_REQUIRED = {
    "runctx.run_id": _ID_VALUES,
    "runctx.workflow": _NAMES,
    "runctx.event_id": _NAMES,
    "runctx.customer_id": _NAMES,
}


@st.composite
def _inbound_entries(draw: st.DrawFn) -> dict[str, str]:
    entries = {key: draw(values) for key, values in _REQUIRED.items()}
    for key in draw(st.lists(st.sampled_from(list(_FIELD_VALUES)), unique=True)):
        entries[key] = draw(_FIELD_VALUES[key])
    for key in draw(st.lists(st.sampled_from(list(_REQUIRED)), max_size=1)):
        del entries[key]  # now and then a required field is missing
    return entries


def _same_run(left: RunContext | None, right: RunContext | None) -> bool:
    if left is None or right is None:
        return left is right
    return left == right and (type(left.attempt), type(left.deadline)) == (
        type(right.attempt),
        type(right.deadline),
    )


@settings(max_examples=500, deadline=None)
@given(_inbound_entries())
def test_the_checked_build_gives_from_baggage_s_run(entries: dict[str, str]) -> None:
    if not are_texts(entries.values()):
        return  # not its input: the policy rejects these before building
    assert _same_run(run_from_checked_baggage(entries), RunContext.from_baggage(entries))


def test_the_inbound_policy_builds_without_from_baggage(monkeypatch: pytest.MonkeyPatch) -> None:
    header = _sent(a_run(), _SIGNING)
    monkeypatch.setattr(RunContext, "from_baggage", _must_not_be_called)
    receiver = RunContextPropagator(load_settings(_VERIFY))
    assert get_run_context(receiver.extract({"baggage": header}, context=Context())) is not None


def test_a_full_run_arrives_whole() -> None:
    run = RunContext.create_retry(
        a_run().create_child("refund", deadline_seconds=60)  # parent, root, deadline
    )
    header = _sent(run, {**_SIGNING, "OTEL_RUNCTX_PROPAGATION_MODE": "full"})
    receiver = RunContextPropagator(
        load_settings({**_VERIFY, "OTEL_RUNCTX_PROPAGATION_MODE": "full"})
    )
    received = get_run_context(receiver.extract({"baggage": header}, context=Context()))
    assert received == run
    assert received is not None and received.attempt == 2 and received.deadline == run.deadline


# -- the app entries go into the Context in one step (propagation/_fast_baggage.py) -------------

_BAGGAGE = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "région"]), _TEXT, max_size=4)


def _with_baggage(entries: dict[str, str]) -> Context:
    return _fast_baggage.with_entries_public(Context(), entries)


@settings(max_examples=200, deadline=None)
@given(_BAGGAGE, _BAGGAGE)
def test_app_entries_in_one_step_give_what_set_baggage_gives(
    before: dict[str, str], entries: dict[str, str]
) -> None:
    start = _with_baggage(before)
    public = _fast_baggage.with_entries_public(start, entries)
    fast = _fast_baggage.with_entries_fast(start, entries)
    assert fast == public
    assert list(baggage.get_all(fast).items()) == list(baggage.get_all(public).items())
    assert baggage.get_all(start) == before


def test_the_one_step_path_is_taken_with_this_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenTelemetry keeps baggage as a plain dict under baggage._BAGGAGE_KEY (a private name),
    # and set_baggage copies that dict and the Context once per entry.
    assert _fast_baggage.FAST_PATH_AVAILABLE
    monkeypatch.setattr(baggage, "set_baggage", _must_not_be_called)
    context = _fast_baggage.with_entries(Context(), {"a": "1", "b": "2"})
    assert dict(baggage.get_all(context)) == {"a": "1", "b": "2"}


@pytest.mark.parametrize("key", [None, 7, "not-the-baggage-key"])
def test_the_probe_refuses_a_key_that_is_not_the_baggage_one(key: object) -> None:
    assert not _fast_baggage.probe(key)


def test_without_the_fast_path_set_baggage_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fast_baggage, "FAST_PATH_AVAILABLE", False)
    calls: list[str] = []
    real = baggage.set_baggage

    def counting(key: str, value: object, context: Context | None = None) -> Context:
        calls.append(key)
        return real(key, value, context)

    monkeypatch.setattr(baggage, "set_baggage", counting)
    header = _sent(a_run(), _SIGNING)
    carrier = {"baggage": header + ",feature=beta,region=eu-west-1"}
    received = RunContextPropagator(load_settings(_VERIFY)).extract(carrier, context=Context())
    assert calls == ["feature", "region"]
    assert dict(baggage.get_all(received)) == {"feature": "beta", "region": "eu-west-1"}
    assert get_run_context(received) is not None


# -- the MAC from OpenSSL's HMAC object (signing.RAW_HMAC) --------------------------------------


def test_macs_come_from_openssl_s_hmac_object_on_this_python() -> None:
    # CPython's hmac.HMAC wraps an OpenSSL HMAC object in its private "_hmac" attribute.
    assert signing.RAW_HMAC
    assert not isinstance(signing._keyed_hmac(b"some-secret"), hmac.HMAC)


@pytest.mark.parametrize("raw", [True, False])
def test_both_mac_paths_give_hmac_sha256(monkeypatch: pytest.MonkeyPatch, raw: bool) -> None:
    monkeypatch.setattr(signing, "RAW_HMAC", raw)
    signing._keyed_hmac.cache_clear()
    try:
        assert isinstance(signing._keyed_hmac(b"some-secret"), hmac.HMAC) is not raw
        for message in (b"", b"m", b"x" * 300):
            mac = hmac.new(b"some-secret", message, hashlib.sha256).digest()
            expected = base64.urlsafe_b64encode(mac).rstrip(b"=")
            assert signing._mac_text(b"some-secret", message) == expected
    finally:
        signing._keyed_hmac.cache_clear()


def test_the_raw_hmac_probe_says_no_without_the_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    class Wrapper:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self._hmac = None

    monkeypatch.setattr(signing.hmac, "new", Wrapper)
    assert not signing._raw_hmac_matches()
