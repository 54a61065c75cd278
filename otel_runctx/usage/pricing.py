"""Which price applies to a model's usage, and from where: the local table, then genai-prices.

Precedence, per model (first match wins):

1. the local ``OTEL_RUNCTX_PRICES`` table, by the reported (response) model name;
2. the local table, by the request model name, then by either name without a date suffix
   (``gpt-4o-2024-08-06`` -> ``gpt-4o``);
3. ``genai-prices`` (the ``otel-runctx[prices]`` extra), matching the response model, then the
   request model, with the reported provider when genai-prices knows it;
4. unpriced: the model is listed in ``runctx.usage.cost_unpriced_models`` and costs 0.

genai-prices prices in USD; when the local table is in another currency it is not consulted
(a sum of two currencies would mean nothing), so models missing locally are unpriced.
Costs are computed with :class:`decimal.Decimal` by genai-prices itself (``calc_price``) on the
run's summed usage per model, so the outcome's cost is exactly what genai-prices says.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from decimal import Decimal
from typing import Any

from otel_runctx.usage.prices import PriceTable

__all__ = [
    "SOURCE_GENAI_PRICES",
    "SOURCE_LOCAL",
    "genai_prices_available",
    "genai_prices_installed",
    "price_model",
]

SOURCE_LOCAL = "local"
SOURCE_GENAI_PRICES = "genai-prices"
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")

_lock = threading.Lock()
_catalog: Any = None  # the genai_prices module, False when it is not installed


def _genai_prices() -> Any:
    global _catalog
    if _catalog is None:
        with _lock:
            if _catalog is None:
                try:
                    import genai_prices

                    _catalog = genai_prices
                except Exception:
                    _catalog = False
    return _catalog or None


def genai_prices_available() -> bool:
    """True when the ``genai-prices`` package can be imported (imports it)."""
    return _genai_prices() is not None


_installed: bool | None = None


def genai_prices_installed() -> bool:
    """True when ``genai-prices`` is installed, without importing it (``find_spec``).

    For runs that priced nothing: the import (with pydantic) takes a noticeable time, and a
    run without LLM calls must not pay it at its end.
    """
    global _installed
    if _catalog is not None:
        return _catalog is not False
    if _installed is None:
        try:
            _installed = importlib.util.find_spec("genai_prices") is not None
        except (ImportError, ValueError):
            _installed = False
    return _installed


def _undated(name: str | None) -> str | None:
    if name is None:
        return None
    stripped = _DATE_SUFFIX.sub("", name)
    return stripped if stripped != name else None


def price_model(
    model: str,
    request_model: str | None,
    provider: str | None,
    tokens: list[int],
    table: PriceTable | None,
    *,
    use_catalog: bool = True,
) -> tuple[Decimal, str] | None:
    """(cost, source) of ``tokens`` ([input, output, cache_read, cache_write, ...]) for a model,
    or None when no source has a price for it."""
    tokens_in, tokens_out, cache_read, cache_write = tokens[0], tokens[1], tokens[2], tokens[3]
    if table is not None:
        for name in (model, request_model, _undated(model), _undated(request_model)):
            price = table.price_of(name) if name else None
            if price is not None:
                return price.exact_cost(tokens_in, tokens_out, cache_read), SOURCE_LOCAL
        if table.currency != "USD":
            return None
    catalog = _genai_prices() if use_catalog else None
    if catalog is None:
        return None
    usage = catalog.Usage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cache_read_tokens=cache_read or None,
        cache_write_tokens=cache_write or None,
    )
    for name in dict.fromkeys(n for n in (model, request_model) if n):
        for provider_id in dict.fromkeys((provider, None)):
            try:
                result = catalog.calc_price(usage, name, provider_id=provider_id)
            except LookupError:
                continue
            return Decimal(result.total_price), SOURCE_GENAI_PRICES
    return None
