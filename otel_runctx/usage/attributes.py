"""The ``runctx.usage.*`` attributes of one run's usage, priced (see usage/pricing.py).

Totals: ``span_count``, ``error_count``, ``llm_calls``, ``input_tokens``, ``output_tokens``,
``cache_read_tokens``, ``cache_write_tokens``, ``unsplit_tokens``, ``nested_skipped``, and in a
run the sampler dropped, ``sampled_out_spans``: spans counted in ``span_count`` that were never
recorded (the sampler ``DROP``ped them as unable to carry tokens), so ``error_count`` covers
only the other spans (and the run's own end).
Per model, as parallel lists sorted by model: ``models``, ``providers`` ("" if unknown),
``input_tokens_by_model``, ``output_tokens_by_model``, ``cache_read_tokens_by_model``.
Cost (when any source priced a model): ``cost`` (float), ``cost_decimal`` (the exact decimal
sum as a string, for exact totals downstream), ``cost_currency``, ``cost_by_model``,
``cost_source_by_model`` ("local", "genai-prices" or "unpriced"), and
``cost_unpriced_models`` (models with tokens that no source could price).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from opentelemetry.util.types import AttributeValue

from otel_runctx.usage.prices import PriceTable
from otel_runctx.usage.pricing import genai_prices_available, genai_prices_installed, price_model

if TYPE_CHECKING:
    from otel_runctx.usage.rollup import RunUsage

__all__ = ["usage_attributes"]

_UNPRICED = "unpriced"


def _counts(usage: RunUsage, model: str) -> list[int]:
    counts = usage.tokens[model]
    return counts + [0] * (5 - len(counts))


def usage_attributes(
    usage: RunUsage, prices: PriceTable | None = None, *, use_catalog: bool = True
) -> dict[str, AttributeValue]:
    """The attributes for ``usage``; cost ones when a local table or genai-prices is there."""
    if not usage.tokens:
        return _without_tokens(usage, prices, use_catalog)
    return _with_tokens(usage, prices, use_catalog)


def _with_tokens(
    usage: RunUsage, prices: PriceTable | None, use_catalog: bool
) -> dict[str, AttributeValue]:
    models = sorted(usage.tokens)
    counts = [_counts(usage, model) for model in models]
    # Column sums: input, output, cache read, cache write, unsplit (zeros for a run without).
    totals = [sum(column) for column in zip(*counts, strict=True)] if counts else [0] * 5
    attributes: dict[str, AttributeValue] = {
        "runctx.usage.span_count": usage.span_count,
        "runctx.usage.error_count": usage.error_count,
        "runctx.usage.llm_calls": usage.llm_calls,
        "runctx.usage.input_tokens": totals[0],
        "runctx.usage.output_tokens": totals[1],
        "runctx.usage.cache_read_tokens": totals[2],
        "runctx.usage.cache_write_tokens": totals[3],
    }
    unsplit = totals[4]
    if unsplit:
        attributes["runctx.usage.unsplit_tokens"] = unsplit
    if usage.nested_skipped:
        attributes["runctx.usage.nested_skipped"] = usage.nested_skipped
    if usage.sampled_out:
        attributes["runctx.usage.sampled_out_spans"] = usage.sampled_out
    if models:
        attributes["runctx.usage.models"] = models
        attributes["runctx.usage.providers"] = [usage.providers.get(m, "") for m in models]
        attributes["runctx.usage.input_tokens_by_model"] = [c[0] for c in counts]
        attributes["runctx.usage.output_tokens_by_model"] = [c[1] for c in counts]
        attributes["runctx.usage.cache_read_tokens_by_model"] = [c[2] for c in counts]
    # A run without tokens has nothing to price: it only asks whether genai-prices is there,
    # so its end does not pay the import (pydantic and all) on the caller's thread.
    catalog = use_catalog and (genai_prices_available() if models else genai_prices_installed())
    if prices is None and not catalog:
        return attributes
    total = Decimal(0)
    costs: list[float] = []
    sources: list[str] = []
    unpriced: list[str] = []
    for model, model_counts in zip(models, counts, strict=True):
        priced = price_model(
            model,
            usage.request_models.get(model),
            usage.providers.get(model),
            model_counts,
            prices,
            use_catalog=catalog,
        )
        if priced is None:
            costs.append(0.0)
            sources.append(_UNPRICED)
            if any(model_counts):
                unpriced.append(model)
            continue
        cost, source = priced
        total += cost
        costs.append(float(cost))
        sources.append(source)
    attributes["runctx.usage.cost"] = float(total)
    attributes["runctx.usage.cost_decimal"] = str(total)
    attributes["runctx.usage.cost_currency"] = prices.currency if prices is not None else "USD"
    if models:
        attributes["runctx.usage.cost_by_model"] = costs
        attributes["runctx.usage.cost_source_by_model"] = sources
    if unpriced:
        attributes["runctx.usage.cost_unpriced_models"] = unpriced
    return attributes


def _without_tokens(
    usage: RunUsage, prices: PriceTable | None, use_catalog: bool
) -> dict[str, AttributeValue]:
    """:func:`usage_attributes` of a run that saw no tokens (most runs): the same attributes,
    without the per-model columns and the Decimal sum of nothing."""
    attributes: dict[str, AttributeValue] = {
        "runctx.usage.span_count": usage.span_count,
        "runctx.usage.error_count": usage.error_count,
        "runctx.usage.llm_calls": usage.llm_calls,
        "runctx.usage.input_tokens": 0,
        "runctx.usage.output_tokens": 0,
        "runctx.usage.cache_read_tokens": 0,
        "runctx.usage.cache_write_tokens": 0,
    }
    if usage.nested_skipped:
        attributes["runctx.usage.nested_skipped"] = usage.nested_skipped
    if usage.sampled_out:
        attributes["runctx.usage.sampled_out_spans"] = usage.sampled_out
    # Only whether genai-prices is there: a run without tokens does not import it.
    if prices is not None or (use_catalog and genai_prices_installed()):
        attributes["runctx.usage.cost"] = 0.0
        attributes["runctx.usage.cost_decimal"] = "0"
        attributes["runctx.usage.cost_currency"] = prices.currency if prices is not None else "USD"
    return attributes
