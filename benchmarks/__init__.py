"""Benchmarks for otel-runctx; ``make bench`` runs ``python -m benchmarks``."""
