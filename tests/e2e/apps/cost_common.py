"""Shared by the cost e2e apps: instrument the real ``openai`` SDK in code, make planned calls.

``COST_OPENAI_INSTRUMENTATION`` picks the instrumentation(s) for this process: ``v2``
(opentelemetry-instrumentation-openai-v2), ``oi`` (openinference-instrumentation-openai) or
``both`` (each call then makes two nested spans that report the same tokens). Both register
the same ``openai`` instrumentor entry point name, so ``opentelemetry-instrument`` cannot pick
one: the apps set ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=openai`` and instrument here.
``COST_OPENAI_URL`` is the fake server's base URL.
"""

from __future__ import annotations

import os
from typing import Any

import openai

_which = os.environ.get("COST_OPENAI_INSTRUMENTATION", "")
if _which in ("v2", "both"):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2Instrumentor

    V2Instrumentor().instrument()
if _which in ("oi", "both"):
    from openinference.instrumentation.openai import OpenAIInstrumentor as OiInstrumentor

    OiInstrumentor().instrument()

_client: openai.OpenAI | None = None


def client() -> openai.OpenAI:
    global _client
    if _client is None:
        _client = openai.OpenAI(
            base_url=os.environ["COST_OPENAI_URL"], api_key="e2e", max_retries=0
        )
    return _client


def call(spec: dict[str, Any]) -> None:
    """One chat completion: ``{"model", "prompt", "completion", "stream"}``."""
    messages = [{"role": "user", "content": f"tokens {spec['prompt']} {spec['completion']}"}]
    if spec["stream"]:
        stream = client().chat.completions.create(
            model=spec["model"],
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
    else:
        client().chat.completions.create(model=spec["model"], messages=messages)  # type: ignore[arg-type]
