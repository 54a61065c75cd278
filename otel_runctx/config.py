"""Former name of :mod:`otel_runctx.settings`, kept so ``from otel_runctx.config import
ConfigError`` (documented before the layout change) keeps working."""

from otel_runctx.settings import ConfigError, Settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]
