"""config: the one place OTEL_RUNCTX_* is read; invalid values are clear errors."""

from __future__ import annotations

import pytest

from otel_runctx.settings import ConfigError, load_settings, parse_resource_attributes


def test_defaults_without_any_variable() -> None:
    settings = load_settings({})
    assert settings.environment == "production"
    assert settings.propagation_mode == "lean"


def test_environment_variable_wins_over_resource_attributes() -> None:
    env = {
        "OTEL_RUNCTX_ENVIRONMENT": "staging",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod-eu",
    }
    assert load_settings(env).environment == "staging"


def test_environment_falls_back_to_deployment_environment_name() -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=api, deployment.environment.name=prod%2Deu"}
    assert load_settings(env).environment == "prod-eu"


def test_legacy_deployment_environment_key_is_read_too() -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=qa"}
    assert load_settings(env).environment == "qa"


def test_propagation_mode_is_case_insensitive() -> None:
    assert load_settings({"OTEL_RUNCTX_PROPAGATION_MODE": " FULL "}).propagation_mode == "full"


def test_invalid_propagation_mode_names_the_variable_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"OTEL_RUNCTX_PROPAGATION_MODE": "fat"})
    message = str(error.value)
    assert "OTEL_RUNCTX_PROPAGATION_MODE" in message
    assert "'fat'" in message
    assert "lean, full" in message


def test_resource_attribute_parser_ignores_malformed_items() -> None:
    assert parse_resource_attributes("a=1,,=x,novalue,b = two ") == {"a": "1", "b": "two"}
