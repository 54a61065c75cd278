"""The gateway derives tokens and cost per tenant and workflow from outcome events (issue 10)."""

from __future__ import annotations

from tests.test_collector_config import CONFIG_DIR, load, section


def test_usage_metrics_come_from_outcome_events_per_tenant_and_workflow() -> None:
    gateway = load(CONFIG_DIR / "gateway.yaml")
    metrics = {
        m["name"]: m for m in section(gateway, "connectors")["signaltometrics/outcomes"]["logs"]
    }
    for name, value in (
        ("runctx.usage.input_tokens", 'Int(attributes["runctx.usage.input_tokens"])'),
        ("runctx.usage.output_tokens", 'Int(attributes["runctx.usage.output_tokens"])'),
        ("runctx.usage.cost", 'Double(attributes["runctx.usage.cost"])'),
        ("runctx.usage.incomplete", "1"),
    ):
        metric = metrics[name]
        assert metric["sum"]["value"] == value
        assert all('event_name == "runctx.outcome"' in c for c in metric["conditions"])
        keys = [a["key"] for a in metric["attributes"]]
        assert keys[:2] == ["runctx.workflow", "runctx.tenant_id"]
        assert "runctx.customer_id" not in keys  # one series per customer would not scale
