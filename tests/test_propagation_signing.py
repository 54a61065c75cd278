"""Signed runs: OTEL_RUNCTX_INBOUND=verify accepts only runs signed with a key it holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest
from opentelemetry import baggage
from opentelemetry.context import Context

from otel_runctx import keys, stats
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator, propagation_stats
from otel_runctx.propagation.signing import SIGNED_KEYS, canonical_bytes, sign, verify
from otel_runctx.settings import ConfigError, SigningKey, load_settings

OLD = "k2026a:old-secret-0123456789abcdef"
NEW = "k2026b:new-secret-fedcba9876543210"
OTHER = "k2026a:someone-elses-secret-000000"


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def propagator(**env: str) -> RunContextPropagator:
    return RunContextPropagator(load_settings(env))


def signed_header(run: RunContext, keys_env: str | None, **env: str) -> str:
    if keys_env is not None:
        env["OTEL_RUNCTX_SIGNING_KEYS"] = keys_env
    carrier: dict[str, str] = {}
    propagator(**env).inject(carrier, context=with_run_context(run))
    return carrier["baggage"]


def verified_run(text: str, keys_env: str = NEW) -> RunContext | None:
    receiver = propagator(OTEL_RUNCTX_INBOUND="verify", OTEL_RUNCTX_SIGNING_KEYS=keys_env)
    return get_run_context(receiver.extract({"baggage": text}, context=Context()))


def a_run() -> RunContext:
    return RunContext.create("checkout", event_id="evt-1", customer_id="acme", tenant_id="t1")


def test_a_correctly_signed_run_is_accepted() -> None:
    sent = a_run()
    received = verified_run(signed_header(sent, NEW))
    assert received is not None and received.run_id == sent.run_id
    assert propagation_stats() == {"propagation.accepted": 1}


def test_full_mode_runs_verify_too() -> None:
    sent = a_run().create_child("step", deadline_seconds=30)
    text = signed_header(sent, NEW, OTEL_RUNCTX_PROPAGATION_MODE="full")
    received = verified_run(text)
    assert received is not None and received.to_span_attributes() == sent.to_span_attributes()


def test_an_unsigned_run_is_dropped_and_counted() -> None:
    assert verified_run(signed_header(a_run(), None)) is None
    assert propagation_stats() == {
        "propagation.rejected_signature": 1,
        "propagation.rejected_signature.missing": 1,
    }


def test_a_run_signed_with_a_key_the_receiver_does_not_hold_is_dropped() -> None:
    assert verified_run(signed_header(a_run(), OLD), keys_env=NEW) is None
    assert propagation_stats() == {
        "propagation.rejected_signature": 1,
        "propagation.rejected_signature.unknown_key": 1,
    }


def test_a_wrong_secret_under_a_known_key_id_is_dropped() -> None:
    assert verified_run(signed_header(a_run(), OTHER), keys_env=OLD) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("runctx.customer_id=acme", "runctx.customer_id=evil"),
        ("runctx.tenant_id=t1", "runctx.tenant_id=t2"),
        ("runctx.workflow=checkout", "runctx.workflow=checkouT"),
    ],
)
def test_a_tampered_field_is_dropped(old: str, new: str) -> None:
    text = signed_header(a_run(), NEW)
    assert old in text
    assert verified_run(text.replace(old, new)) is None
    assert propagation_stats() == {
        "propagation.rejected_signature": 1,
        "propagation.rejected_signature.mismatch": 1,
    }


def test_a_field_added_in_transit_breaks_the_signature() -> None:
    run = RunContext.create("checkout", event_id="evt-1", customer_id="acme")  # no tenant
    text = signed_header(run, NEW) + ",runctx.tenant_id=other-tenant"
    assert verified_run(text) is None


def test_a_field_removed_in_transit_breaks_the_signature() -> None:
    text = signed_header(a_run(), NEW)
    stripped = ",".join(m for m in text.split(",") if not m.startswith("runctx.tenant_id="))
    assert verified_run(stripped) is None


def test_a_signature_copied_onto_another_run_is_dropped() -> None:
    first, second = signed_header(a_run(), NEW), signed_header(a_run(), NEW)
    stolen = next(m for m in first.split(",") if m.startswith("runctx.sig="))
    forged = ",".join(m if not m.startswith("runctx.sig=") else stolen for m in second.split(","))
    assert verified_run(forged) is None


def test_rotation_new_key_signs_and_old_key_still_verifies() -> None:
    # Step 1: receivers learn the new key while senders still sign with the old one.
    assert verified_run(signed_header(a_run(), OLD), keys_env=f"{OLD},{NEW}") is not None
    # Step 2: senders put the new key first; receivers holding both accept it.
    text = signed_header(a_run(), f"{NEW},{OLD}")
    assert f"runctx.sig=v2:{NEW.split(':')[0]}:" in text
    assert verified_run(text, keys_env=f"{OLD},{NEW}") is not None
    # Step 3: the old key is retired; runs it signed are no longer accepted.
    assert verified_run(signed_header(a_run(), OLD), keys_env=NEW) is None


def test_trust_mode_accepts_unsigned_and_even_badly_signed_runs() -> None:
    text = signed_header(a_run(), OTHER).replace("acme", "evil")
    run = get_run_context(propagator().extract({"baggage": text}, context=Context()))
    assert run is not None and run.customer_id == "evil"


def test_ignore_mode_drops_even_correctly_signed_runs() -> None:
    text = signed_header(a_run(), NEW)
    receiver = propagator(OTEL_RUNCTX_INBOUND="ignore", OTEL_RUNCTX_SIGNING_KEYS=NEW)
    assert get_run_context(receiver.extract({"baggage": text}, context=Context())) is None


def test_canonical_form_is_the_documented_one() -> None:
    entries = {keys.RUN_ID: "r", keys.CUSTOMER_ID: "a b/é", keys.WORKFLOW: "w"}
    expected = (
        "runctx-sig/v2\nkid\n1767225600\nrunctx.run_id=r\nrunctx.root_run_id\nrunctx.parent_run_id\n"
        "runctx.workflow=w\nrunctx.event_id\nrunctx.customer_id=a%20b/%C3%A9\n"
        "runctx.tenant_id\nrunctx.environment\nrunctx.attempt\nrunctx.retry_of_run_id\n"
        "runctx.deadline"
    )
    assert canonical_bytes("kid", entries, 1767225600) == expected.encode()
    assert len(SIGNED_KEYS) == 11


def test_signature_is_hmac_sha256_over_the_canonical_form() -> None:
    key = SigningKey("kid", b"0123456789abcdef")
    entries = {keys.RUN_ID: "r"}
    when = 1767225600
    mac = hmac.new(key.secret, canonical_bytes("kid", entries, when), hashlib.sha256).digest()
    expected = f"v2:kid:{when}:" + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert sign(key, entries, when) == expected
    assert verify(expected, entries, [key], now=when + 1) == "ok"


@pytest.mark.parametrize(
    ("signature", "verdict"),
    [
        (None, "missing"),
        ("v1:kid:" + "A" * 43, "malformed"),  # version 1 carries no issued-at
        ("v2:kid:" + "A" * 43, "malformed"),
        ("v2:kid:1000:" + "A" * 42, "malformed"),
        ("v2:kid:-5:" + "A" * 43, "malformed"),
        ("v2:kid:1e3:" + "A" * 43, "malformed"),
        ("v2:kid:" + "9" * 13 + ":" + "A" * 43, "malformed"),
        ("v2:kid:1000:" + "A" * 42 + "!", "mismatch"),
        ("v2:kid:1000:" + "A" * 42 + "é", "mismatch"),
        ("v2:nope:1000:" + "A" * 43, "unknown_key"),
        ("v2:kid:1000:" + "A" * 43, "mismatch"),
        ("v2:kid:699:" + "A" * 43, "expired"),
        ("v2:kid:1061:" + "A" * 43, "future"),
    ],
)
def test_verify_names_why_a_signature_failed(signature: str | None, verdict: str) -> None:
    key = SigningKey("kid", b"0123456789abcdef")
    assert verify(signature, {}, [key], max_age=300, now=1000) == verdict


def test_secrets_stay_out_of_settings_repr() -> None:
    settings = load_settings({"OTEL_RUNCTX_SIGNING_KEYS": NEW})
    assert "new-secret" not in repr(settings)
    assert settings.signing_keys[0].key_id == "k2026b"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_RUNCTX_INBOUND": "verify"}, "OTEL_RUNCTX_SIGNING_KEYS"),
        ({"OTEL_RUNCTX_INBOUND": "paranoid"}, "trust, verify, ignore"),
        ({"OTEL_RUNCTX_SIGNING_KEYS": "no-colon-here-0123456789"}, "key_id:secret"),
        ({"OTEL_RUNCTX_SIGNING_KEYS": "k1:short"}, "at least 16 bytes"),
        ({"OTEL_RUNCTX_SIGNING_KEYS": "bad id:0123456789abcdef"}, "key id"),
        ({"OTEL_RUNCTX_SIGNING_KEYS": f"{NEW},{NEW}"}, "appears twice"),
    ],
)
def test_bad_trust_settings_are_clear_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_verify_mode_without_keys_fails_when_the_propagator_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otel_runctx import settings as runctx_settings

    monkeypatch.setenv("OTEL_RUNCTX_INBOUND", "verify")
    monkeypatch.delenv("OTEL_RUNCTX_SIGNING_KEYS", raising=False)
    monkeypatch.setattr(runctx_settings, "_cached", None)  # as in a fresh process
    with pytest.raises(ConfigError, match="OTEL_RUNCTX_INBOUND=verify"):
        RunContextPropagator()


def _replayed(age_seconds: int, max_age: str | None = None) -> RunContext | None:
    """A header signed ``age_seconds`` ago with a valid key, received now."""
    sent = a_run()
    entries = sent.to_baggage_dict(lean_mode=True)
    key = load_settings({"OTEL_RUNCTX_SIGNING_KEYS": NEW}).signing_keys[0]
    entries["runctx.sig"] = sign(key, entries, int(time.time()) - age_seconds)
    text = ",".join(f"{k}={v}" for k, v in entries.items())
    env = {"OTEL_RUNCTX_INBOUND": "verify", "OTEL_RUNCTX_SIGNING_KEYS": NEW}
    if max_age is not None:
        env["OTEL_RUNCTX_SIGNATURE_MAX_AGE"] = max_age
    receiver = RunContextPropagator(load_settings(env))
    return get_run_context(receiver.extract({"baggage": text}, context=Context()))


def test_a_replayed_header_is_accepted_within_max_age_and_rejected_after_it() -> None:
    assert _replayed(10) is not None
    assert _replayed(290) is not None
    stats.reset()
    assert _replayed(301) is None  # default max age: 300 s
    assert propagation_stats()["propagation.rejected_signature.expired"] == 1
    assert propagation_stats()["propagation.rejected_signature"] == 1


def test_max_age_is_configurable() -> None:
    assert _replayed(40, max_age="30") is None
    assert _replayed(20, max_age="30") is not None


def test_a_signature_from_a_clock_a_little_ahead_is_accepted() -> None:
    assert _replayed(-30) is not None  # within the 60 s skew allowance
    assert _replayed(-120) is None


def test_the_same_run_is_re_signed_as_time_passes() -> None:
    sent, sender = a_run(), propagator(OTEL_RUNCTX_SIGNING_KEYS=NEW)
    first: dict[str, str] = {}
    sender.inject(first, context=with_run_context(sent))
    issued = int(first["baggage"].split("runctx.sig=v2:")[1].split(":")[1])
    assert abs(issued - time.time()) < 5


@pytest.mark.parametrize("key", ["RunCtx.customer_id", "RUNCTX.run_id", "Runctx.sig"])
def test_verify_mode_drops_app_entries_that_look_like_run_fields(key: str) -> None:
    text = signed_header(a_run(), NEW) + f",{key}=evil,app.ok=1"
    receiver = propagator(OTEL_RUNCTX_INBOUND="verify", OTEL_RUNCTX_SIGNING_KEYS=NEW)
    context = receiver.extract({"baggage": text}, context=Context())
    entries = baggage.get_all(context)
    assert key not in entries
    assert entries["app.ok"] == "1"
    assert get_run_context(context) is not None


def test_trust_mode_keeps_such_app_entries() -> None:
    text = signed_header(a_run(), None) + ",RunCtx.note=x"
    context = propagator().extract({"baggage": text}, context=Context())
    assert baggage.get_all(context)["RunCtx.note"] == "x"
