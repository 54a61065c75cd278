"""``otel-runctx report --html FILE``: the report as one self-contained page.

Charts are plain HTML bars sized on the server (no chart library, no fetch of any kind: the page
opens from a file, offline, and e-mails whole). A little inline script makes each table sortable
by clicking its header; without script the tables are still ordered (customers and workflows by
name, events by cost). Every value from the telemetry is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from otel_runctx.cli.report import Report

__all__ = ["render_html", "write_html"]

_STATUS_COLOURS = {
    "success": "#2e7d32",
    "ok": "#66bb6a",
    "partial": "#f9a825",
    "canceled": "#8d6e63",
    "timeout": "#ef6c00",
    "failure": "#c62828",
    "error": "#e53935",
}
_OTHER_COLOUR = "#9e9e9e"
_TOP_EVENTS = 25

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.note{color:#555}.chart{margin:8px 0 16px}
.row{display:flex;align-items:center;margin:3px 0}
.label{width:180px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{flex:1;background:#f1f1f1;height:18px;position:relative;display:flex}
.bar{height:18px;background:#1976d2}.bar.in{background:#64b5f6}.bar.out{background:#0d47a1}
.bar.p95{background:#ffb74d}.bar.p50{background:#e65100}
.value{width:200px;text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 8px;border-bottom:1px solid #ddd}
th{cursor:pointer;background:#fafafa;text-align:left}td.n{text-align:right}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = th.dataset.dir !== 'desc';
      th.dataset.dir = down ? 'desc' : 'asc';
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return down ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float, top: float) -> str:
    return f"{100.0 * value / top:.2f}%" if top > 0 else "0%"


def _money(value: float) -> str:
    return f"{value:.4f}"


def _bars(
    title: str,
    rows: Sequence[dict[str, Any]],
    label: str,
    segments: Sequence[tuple[str, str]],
    text: Callable[[dict[str, Any]], str],
    chart: str,
) -> str:
    """One chart: a row per item, its segments laid end to end on a shared scale."""
    top = max((sum(float(r[k] or 0) for k, _ in segments) for r in rows), default=0.0)
    out = [f'<h2>{_e(title)}</h2><div class="chart" id="{chart}">']
    for row in rows:
        parts = "".join(
            f'<div class="bar {css}" data-chart="{chart}" data-{label.replace("_", "-")}'
            f'="{_e(row[label])}" data-value="{float(row[key] or 0)}" '
            f'style="width:{_pct(float(row[key] or 0), top)}"></div>'
            for key, css in segments
        )
        out.append(
            f'<div class="row"><div class="label">{_e(row[label])}</div>'
            f'<div class="track">{parts}</div><div class="value">{_e(text(row))}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


def _outcome_mix(workflows: Sequence[dict[str, Any]]) -> str:
    statuses = sorted({s for w in workflows for s in w["outcomes"]})
    out = ['<h2>Outcome mix per workflow</h2><div class="legend">']
    for status in statuses:
        colour = _STATUS_COLOURS.get(status, _OTHER_COLOUR)
        out.append(f'<span><i style="background:{colour}"></i>{_e(status)}</span>')
    out.append('</div><div class="chart" id="outcomes">')
    for workflow in workflows:
        total = sum(workflow["outcomes"].values())
        parts = "".join(
            f'<div class="bar" data-chart="outcomes" data-workflow="{_e(workflow["workflow"])}" '
            f'data-status="{_e(status)}" title="{_e(status)} {n}" '
            f'style="width:{_pct(n, total)};background:'
            f'{_STATUS_COLOURS.get(status, _OTHER_COLOUR)}"></div>'
            for status, n in workflow["outcomes"].items()
        )
        mix = ", ".join(f"{s} {n}" for s, n in workflow["outcomes"].items())
        out.append(
            f'<div class="row"><div class="label">{_e(workflow["workflow"])}</div>'
            f'<div class="track">{parts}</div><div class="value">{_e(mix)}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


def _table(
    title: str, table_id: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]
) -> str:
    """A sortable table; ``columns`` are (header, key); numbers are right-aligned."""
    head = "".join(f"<th>{_e(name)}</th>" for name, _ in columns)
    body = []
    for row in rows:
        cells = []
        for _, key in columns:
            value = row[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            shown: object = _money(value) if key.endswith("cost") and numeric else value
            if key in ("spans", "errors") and row.get("spans_estimated"):
                shown = f"~{value:g}"  # an estimate: sampled runs weighted by 1/probability
            if key == "cost" and row.get("unpriced_runs"):
                shown = f"{shown}*"  # leaves out models the price table does not know
            shown = "-" if value is None else shown
            sort_key = value if numeric else ("" if value is None else value)
            cls = ' class="n"' if numeric else ""
            cells.append(f'<td{cls} data-v="{_e(sort_key)}">{_e(shown)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<h2>{_e(title)}</h2><table class="sortable" id="{table_id}"><thead><tr>{head}'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def render_html(report: Report) -> str:
    """The whole page as one string."""
    notes = [
        f"{report.records} records from {len(report.files)} file(s)",
        f"{report.run_count} runs, {len(report.events)} events",
        f"{report.spans_outside_runs} spans outside any run",
        f"{report.unparsable_lines} unparsable lines",
    ]
    if report.spans_estimated:
        notes.append("span counts of sampled runs are estimates (weighted by 1/probability)")
    if report.unpriced_models:
        notes.append("cost leaves out unpriced models: " + ", ".join(report.unpriced_models))
    customers, workflows = report.customers, report.workflows
    sections = [
        _bars("Cost per customer", customers, "customer_id", [("cost", "cost")],
              lambda r: _money(r["cost"]), "cost"),
        _bars("Tokens per customer (input, output)", customers, "customer_id",
              [("input_tokens", "in"), ("output_tokens", "out")],
              lambda r: f"{r['input_tokens']} / {r['output_tokens']}", "tokens"),
        _outcome_mix(workflows),
        _bars("Duration per workflow (p50, then p95 - p50), ms",
              [{**w, "p95_extra": max(0.0, (w["p95_ms"] or 0) - (w["p50_ms"] or 0))}
               for w in workflows],
              "workflow", [("p50_ms", "p50"), ("p95_extra", "p95")],
              lambda r: f"p50 {r['p50_ms'] or 0:.1f} / p95 {r['p95_ms'] or 0:.1f}", "durations"),
        _table("Top events by cost", "events",
               [("event", "event_id"), ("customer", "customer_id"), ("status", "status"),
                ("runs", "runs"), ("attempts", "attempts"), ("spans", "spans"),
                ("tokens", "tokens"), ("cost", "cost"), ("services", "services")],
               report.events[:_TOP_EVENTS]),
        _table("Customers", "customers",
               [("customer", "customer_id"), ("runs", "runs"), ("child runs", "child_runs"),
                ("events", "events"), ("outcomes", "outcomes"), ("spans", "spans"),
                ("errors", "errors"), ("tokens", "tokens"), ("cost", "cost"),
                ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms")], customers),
        _table("Workflows", "workflows",
               [("workflow", "workflow"), ("runs", "runs"), ("outcomes", "outcomes"),
                ("spans", "spans"), ("errors", "errors"), ("tokens", "tokens"),
                ("cost", "cost"), ("inclusive cost", "inclusive_cost"),
                ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms")], workflows),
    ]  # fmt: skip
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>otel-runctx report</title><style>{_STYLE}</style></head><body>"
        f'<h1>otel-runctx report</h1><p class="note">{_e("; ".join(notes))}</p>'
        f"{''.join(sections)}<script>{_SCRIPT}</script></body></html>\n"
    )


def write_html(report: Report, path: str | Path) -> Path:
    """Write the page to ``path`` (creating its folder); returns the path written."""
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report), encoding="utf-8")
    return target
