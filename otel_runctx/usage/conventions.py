"""Token usage from every common LLM instrumentation's span attributes.

===================  =======================================================================
convention           attributes read (first present wins, top to bottom)
===================  =======================================================================
gen_ai (current)     ``gen_ai.usage.input_tokens`` / ``output_tokens``,
                     ``gen_ai.usage.cache_read.input_tokens`` / ``cache_creation.input_tokens``
gen_ai (older) and   ``gen_ai.usage.prompt_tokens`` / ``completion_tokens``,
Traceloop/OpenLLMetry ``gen_ai.usage.cache_read_input_tokens`` / ``cache_creation_input_tokens``,
                     ``llm.usage.prompt_tokens`` / ``completion_tokens`` / ``total_tokens``
OpenInference        ``llm.token_count.prompt`` / ``completion`` / ``total``,
                     ``llm.token_count.prompt_details.cache_read`` / ``cache_write``
===================  =======================================================================

Model: the response model (``gen_ai.response.model``, ``llm.response.model``, OpenInference's
``llm.model_name``, which is the response model) before the request model. Provider:
``gen_ai.provider.name``, ``gen_ai.system``, ``llm.provider``, ``llm.system``. Input tokens
include cached input tokens (as OpenAI reports them and the gen_ai conventions ask); the cache
counts say how many of them were read from / written to the cache. A span that reports only a
total has no input/output split: it is counted as ``unsplit`` tokens and not priced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BAD_COUNT", "LlmUsage", "read_llm_usage"]

_INPUT = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUTPUT = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_TOTAL = ("gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens")
_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model", "llm.model_name")
_REQUEST_MODEL = ("gen_ai.request.model", "llm.request.model")
_PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")

#: Marks a token attribute that is present but not a non-negative integer.
BAD_COUNT = -1


@dataclass(frozen=True, slots=True)
class LlmUsage:
    """What one span says about one LLM call. ``bad``: some count was present but invalid."""

    model: str | None
    request_model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    unsplit_tokens: int = 0
    bad: bool = False


def _count(attributes: Mapping[str, object], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            return BAD_COUNT
        if isinstance(value, int):
            return value if value >= 0 else BAD_COUNT
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        return BAD_COUNT
    return None


def _text(attributes: Mapping[str, object], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def read_llm_usage(attributes: Mapping[str, object]) -> LlmUsage | None:
    """The LLM usage a span's attributes report, or None if they report no token count."""
    tokens_in = _count(attributes, _INPUT)
    tokens_out = _count(attributes, _OUTPUT)
    total = _count(attributes, _TOTAL)
    if tokens_in is None and tokens_out is None and total is None:
        return None
    cache_read = _count(attributes, _CACHE_READ)
    cache_write = _count(attributes, _CACHE_WRITE)
    counts = (tokens_in, tokens_out, total, cache_read, cache_write)
    bad = any(value == BAD_COUNT for value in counts)
    tokens_in, tokens_out, total, cache_read, cache_write = (
        0 if value is None or value == BAD_COUNT else value for value in counts
    )
    unsplit = total if total and not tokens_in and not tokens_out else 0
    request_model = _text(attributes, _REQUEST_MODEL)
    return LlmUsage(
        model=_text(attributes, _RESPONSE_MODEL) or request_model,
        request_model=request_model,
        provider=_text(attributes, _PROVIDER),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        unsplit_tokens=unsplit,
        bad=bad,
    )
