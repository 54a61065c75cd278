"""Exporters: the local JSONL file exporter and the run outcome exporter."""
