"""The ``otel-runctx`` command: argument parsing (``command``), ``doctor`` (is this process wired
up?), ``report`` (what did runs cost and how did they end?) and its ``tables``. The top layer: it
may import anything in otel_runctx, and nothing imports it."""

from otel_runctx.cli.command import main

__all__ = ["main"]
