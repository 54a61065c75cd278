"""Integrations with third-party libraries that drive runs: each lives in its own module and
imports its library only there, so ``import otel_runctx`` never needs them.

* :mod:`otel_runctx.integrations.tenacity`: every attempt of a ``@retry`` call is a retry run.
* :mod:`otel_runctx.integrations.celery`: Celery task retries carry the attempt.
"""
