"""Whether a span may carry LLM token usage, judged from what it has when it starts.

The run-consistent sampler asks this for each span of a dropped run: a span that may carry
tokens is recorded (the usage roll-up must see it, or the outcome's cost would be short), one
that cannot is ``DROP``ped (no span is built, no processor runs). Only the attributes passed to
``start_span`` are known then, so the rule is conservative:

- **LLM call** (recorded): any key that LLM instrumentations set at start. Checked in their
  sources: opentelemetry-python-contrib openai-v2 and opentelemetry-util-genai start every span
  with ``gen_ai.operation.name`` (plus ``gen_ai.system`` or ``gen_ai.provider.name`` and
  ``gen_ai.request.model``); OpenInference's OpenAI instrumentor with
  ``openinference.span.kind``, ``llm.system`` and ``llm.provider``; OpenLLMetry with
  ``gen_ai.operation.name``/``gen_ai.provider.name`` (newer) or ``llm.request.type`` (older and
  several providers), and ``traceloop.span.kind`` on its workflow/task spans.
- **Protocol span** (dropped): no LLM key, and a key the stock HTTP, database, RPC or messaging
  instrumentations set at start (``http.request.method``, ``db.system.name``, ``rpc.system``,
  ``messaging.system``, and the older ``http.method``/``db.system``). Those spans never report
  tokens.
- **Anything else** (recorded): a span that starts without attributes, or with attributes of
  neither kind, may still get tokens before it ends. OpenInference's LangChain tracer and
  OpenLLMetry's LangChain callback start their LLM spans with no attributes and set the kind and
  the token counts when the span ends; so does OpenLLMetry's OpenAI Responses wrapper, and so
  does hand-written code that sets ``gen_ai.usage.*`` after the call.

The cost is a few dict lookups on the start attributes (the mapping the SDK passes to the
sampler, possibly None).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LLM_START_KEYS", "PROTOCOL_START_KEYS", "may_carry_llm_usage"]

#: Keys LLM instrumentations set when an LLM (or GenAI framework) span starts.
LLM_START_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "openinference.span.kind",
    "llm.request.type",
    "traceloop.span.kind",
    "llm.system",
    "llm.provider",
)

#: Keys the stock protocol instrumentations set at start: spans that never report tokens.
PROTOCOL_START_KEYS = (
    "http.request.method",
    "db.system.name",
    "rpc.system",
    "messaging.system",
    "http.method",
    "db.system",
)


def may_carry_llm_usage(attributes: Mapping[str, object] | None) -> bool:
    """False only for a span that starts as a protocol span without any LLM key (see above)."""
    if not attributes:
        return True
    keys = attributes.keys()  # a dict's keys view: both checks run in C
    return not keys.isdisjoint(LLM_START_KEYS) or keys.isdisjoint(PROTOCOL_START_KEYS)
