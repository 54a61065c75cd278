"""The price table behind the usage roll-up's cost estimate (``OTEL_RUNCTX_PRICES``).

The file is JSON (any Python) or TOML (Python 3.11+, which ships ``tomllib``)::

    currency = "USD"          # optional, default "USD"; copied to runctx.usage.cost_currency
    per = "1M"                # optional, "1M" (default) or "1K": prices are per this many tokens

    [models."gpt-4o"]         # the reported model name (see usage/pricing.py for matching)
    input = 2.50
    output = 10.00
    cache_read = 1.25         # optional: cached input tokens; default: the input price

    [models."claude-3-5-haiku"]
    per = "1K"                # a model may override the unit
    input = 0.0008
    output = 0.004

The same table in JSON is ``{"currency": "USD", "per": "1M", "models": {"gpt-4o": {"input":
2.5, "output": 10.0}}}``. A broken file is a :class:`~otel_runctx.settings.ConfigError` naming the
file and the problem, raised when the table is loaded.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from otel_runctx.settings import ConfigError, get_settings

__all__ = ["ModelPrice", "PriceTable", "get_price_table", "load_price_table"]

_UNITS = {"1M": 1_000_000, "1K": 1_000}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Price of one model, per single token."""

    input_per_token: float
    output_per_token: float
    #: Exact per-token prices (input, output, cache read) as written in the table, per token.
    exact: tuple[Decimal, Decimal, Decimal | None] | None = field(default=None, compare=False)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token

    def exact_cost(self, input_tokens: int, output_tokens: int, cache_read: int = 0) -> Decimal:
        """The cost in Decimal; cached input tokens at the cache-read price when one is given."""
        exact = self.exact or (
            Decimal(repr(self.input_per_token)),
            Decimal(repr(self.output_per_token)),
            None,
        )
        price_in, price_out, price_cached = exact
        if price_cached is None or not cache_read:
            return input_tokens * price_in + output_tokens * price_out
        uncached = max(input_tokens - cache_read, 0)
        return (
            uncached * price_in
            + min(cache_read, input_tokens) * price_cached
            + (output_tokens * price_out)
        )


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Per-model token prices and the currency they are in."""

    currency: str
    models: Mapping[str, ModelPrice]

    def price_of(self, model: str) -> ModelPrice | None:
        return self.models.get(model)


def load_price_table(path: Path) -> PriceTable:
    """Read and validate the price table at ``path`` (``.json``, or ``.toml`` on 3.11+)."""
    try:
        raw_text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"OTEL_RUNCTX_PRICES: cannot read {path}: {error}") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib  # type: ignore[import-not-found,unused-ignore]
        except ModuleNotFoundError:
            raise ConfigError(
                f"OTEL_RUNCTX_PRICES: {path} is TOML, which needs Python 3.11+; "
                "use the same table as JSON on this Python"
            ) from None
        try:
            document: Any = tomllib.loads(raw_text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"OTEL_RUNCTX_PRICES: {path} is not valid TOML: {error}") from None
    else:
        try:
            document = json.loads(raw_text)
        except ValueError as error:
            raise ConfigError(f"OTEL_RUNCTX_PRICES: {path} is not valid JSON: {error}") from None
    return parse_price_table(document, source=str(path))


def parse_price_table(document: Any, *, source: str = "price table") -> PriceTable:
    """Validate a decoded price table document (see the module docstring for its shape)."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"OTEL_RUNCTX_PRICES: {source}: {problem}")

    if not isinstance(document, dict):
        raise fail("the top level must be a table/object")
    currency = document.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        raise fail("currency must be a non-empty string")
    default_unit = _unit(document.get("per", "1M"), fail, "per")
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        raise fail("models must be a non-empty table of model name -> {input, output}")
    table: dict[str, ModelPrice] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise fail(f"models.{name} must be a table with input and output prices")
        unit = _unit(entry.get("per", None), fail, f"models.{name}.per") or default_unit
        prices = []
        exact: list[Decimal | None] = []
        for side in ("input", "output", "cache_read"):
            value = entry.get(side)
            if value is None and side == "cache_read":
                exact.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(f"models.{name}.{side} must be a number")
            if not math.isfinite(value) or value < 0:
                raise fail(f"models.{name}.{side} must be finite and not negative")
            prices.append(float(value) / unit)
            exact.append(Decimal(repr(value)) / unit)
        assert exact[0] is not None and exact[1] is not None
        table[str(name)] = ModelPrice(prices[0], prices[1], (exact[0], exact[1], exact[2]))
    return PriceTable(currency=currency, models=table)


def _unit(value: object, fail: Any, where: str) -> int:
    if value is None:
        return 0
    if value not in _UNITS:
        raise fail(f"{where} must be one of {', '.join(_UNITS)}, got {value!r}")
    return _UNITS[str(value)]


_lock = threading.Lock()
_loaded: tuple[Path | None, PriceTable | None] | None = None
_broken: Path | None = None


def price_table_is_broken() -> bool:
    """True while ``OTEL_RUNCTX_PRICES`` names a file that failed to load: no cost is reported
    then, not even from genai-prices (the local overrides it would skip are unknown)."""
    path = get_settings().prices_path
    return path is not None and path == _broken


def get_price_table() -> PriceTable | None:
    """The price table named by ``OTEL_RUNCTX_PRICES`` (loaded once per path), or None.

    Raises ConfigError the first time if the file is broken; None after that.
    """
    global _loaded, _broken
    path = get_settings().prices_path
    loaded = _loaded
    if loaded is not None and loaded[0] == path:
        return loaded[1]
    with _lock:
        try:
            table = load_price_table(path) if path is not None else None
        finally:
            # A broken file is reported once (the ConfigError propagates this time), not
            # re-read for every outcome: until the setting changes there is no price table.
            _loaded = (path, None)
            _broken = path
        _loaded = (path, table)
        _broken = None
    return table
