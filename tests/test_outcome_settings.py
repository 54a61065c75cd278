"""The outcome settings in config.py: spool path, cap, metrics dimension, prices, protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_runctx.settings import ConfigError, load_settings


def test_defaults() -> None:
    settings = load_settings({"XDG_CACHE_HOME": "/tmp/cache"})
    assert settings.outcome_spool == Path("/tmp/cache/otel-runctx/outcomes.sqlite3")
    assert settings.outcome_spool_max_bytes == 100 * 1024 * 1024
    assert settings.outcome_metrics_customer is False
    assert settings.prices_path is None
    assert settings.otlp_logs_protocol == "grpc"


@pytest.mark.parametrize("value", ["off", "OFF", "none", "false", "0"])
def test_spool_can_be_switched_off(value: str) -> None:
    assert load_settings({"OTEL_RUNCTX_OUTCOME_SPOOL": value}).outcome_spool is None


def test_explicit_values() -> None:
    settings = load_settings(
        {
            "OTEL_RUNCTX_OUTCOME_SPOOL": "/var/spool/o.db",
            "OTEL_RUNCTX_OUTCOME_SPOOL_MAX_MB": "5",
            "OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER": "true",
            "OTEL_RUNCTX_PRICES": "/etc/prices.toml",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        }
    )
    assert settings.outcome_spool == Path("/var/spool/o.db")
    assert settings.outcome_spool_max_bytes == 5 * 1024 * 1024
    assert settings.outcome_metrics_customer is True
    assert settings.prices_path == Path("/etc/prices.toml")
    assert settings.otlp_logs_protocol == "http/protobuf"  # the logs-specific variable wins


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"OTEL_RUNCTX_OUTCOME_SPOOL_MAX_MB": "0"}, "OTEL_RUNCTX_OUTCOME_SPOOL_MAX_MB"),
        ({"OTEL_RUNCTX_OUTCOME_SPOOL_MAX_MB": "lots"}, "OTEL_RUNCTX_OUTCOME_SPOOL_MAX_MB"),
        ({"OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER": "yes"}, "OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env)
