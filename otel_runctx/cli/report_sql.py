"""The report's logic, in one place: SQL that turns normalized records into runs, events and groups.

``SETUP`` runs once per report over ``records`` (see ``report_sources``); the files are scanned
once, by the ``run_facts`` aggregate, and everything after it works on one row per run.

The rules (``tests/report_reference.py`` restates them in plain Python, and a test holds the
two to the same answers):

- A **run** is a ``runctx.run_id``; its spans may come from several services and processes.
  Its outcome is its ``runctx.outcome`` event; when there are several (an at-least-once
  delivery sent one twice) the latest counts, so a run is counted once. Lineage (workflow, event,
  customer, parent, attempt...) comes from the outcome, else from whichever span carries it.
- **Status**: the outcome's status; without an outcome, ``error`` or ``ok`` from the run's
  root span, taken as its earliest span (``status_source`` says which).
- **Tokens and cost** come from the outcome's usage roll-up (``runctx.usage.*``); without an
  outcome, from the same roll-up on the root span; without either, tokens are the sum of
  ``gen_ai.usage.*`` over the spans seen, and there is no cost. A run whose roll-up lists
  ``runctx.usage.cost_unpriced_models`` has a cost that leaves those models out.
- **Span counts are estimates** when sampling dropped spans: each span counts
  ``1 / runctx.sample.probability`` (its own, else its run's outcome's; 1 when neither says).
- **Duration**: the outcome's ``runctx.outcome.duration_ms``, else first span start to last
  span end. Percentiles are nearest-rank.
- **Inclusive** cost and tokens of a run: its own plus every descendant's (``parent_run_id``
  chains); a retry is a sibling of the attempt it retries, not a descendant.
- An **event** is every run with its ``runctx.event_id`` (root runs, child runs, retries);
  ``attempts`` counts its root runs (no parent), and its ``status`` is that of the root run
  with the highest attempt (then the latest start).
"""

from __future__ import annotations

__all__ = ["CUSTOMERS", "EVENTS", "RUNS", "SETUP", "TOTALS", "WORKFLOWS"]

_OUTCOME = "kind = 'log' AND o_status IS NOT NULL"

SETUP = f"""
CREATE OR REPLACE TEMP TABLE run_facts AS
SELECT
    run_id,
    count(*) FILTER (kind IN ('span', 'log')) AS records,
    count(*) FILTER (kind IS NULL) AS unparsable,
    count(*) FILTER (kind = 'span') AS spans_seen,
    coalesce(sum(1.0 / p) FILTER (kind = 'span' AND p > 0), 0) AS spans_own_weight,
    count(*) FILTER (kind = 'span' AND NOT coalesce(p > 0, false)) AS spans_unweighted,
    coalesce(sum(1.0 / p) FILTER (kind = 'span' AND p > 0 AND is_error), 0)
        AS errors_own_weight,
    count(*) FILTER (kind = 'span' AND NOT coalesce(p > 0, false) AND is_error)
        AS errors_unweighted,
    count(*) FILTER (kind = 'span' AND is_error) AS errors_seen,
    min(start_ns) FILTER (kind = 'span') AS start_ns,
    max(end_ns) FILTER (kind = 'span') AS end_ns,
    arg_min(coalesce(is_error, false), (start_ns, span_id)) FILTER (kind = 'span')
        AS root_error,
    sum(in_tokens) FILTER (kind = 'span') AS span_in,
    sum(out_tokens) FILTER (kind = 'span') AS span_out,
    max(u_in) FILTER (kind = 'span') AS root_in,
    max(u_out) FILTER (kind = 'span') AS root_out,
    max(u_cost) FILTER (kind = 'span') AS root_cost,
    max(p) FILTER (kind = 'span') AS span_p,
    count(*) FILTER ({_OUTCOME}) AS outcome_events,
    arg_max(
        {{'status': o_status, 'in': u_in, 'out': u_out, 'cost': u_cost,
          'unpriced': u_unpriced, 'complete': u_complete, 'p': p,
          'duration_ms': o_duration_ms, 'workflow': workflow, 'event_id': event_id,
          'customer_id': customer_id, 'tenant_id': tenant_id,
          'parent_run_id': parent_run_id, 'root_run_id': root_run_id,
          'retry_of_run_id': retry_of_run_id, 'attempt': attempt}},
        (time_ns, u_in, o_status)
    ) FILTER ({_OUTCOME}) AS o,
    max(workflow) AS workflow,
    max(event_id) AS event_id,
    max(customer_id) AS customer_id,
    max(tenant_id) AS tenant_id,
    max(parent_run_id) AS parent_run_id,
    max(root_run_id) AS root_run_id,
    max(retry_of_run_id) AS retry_of_run_id,
    max(attempt) AS attempt,
    list(DISTINCT service ORDER BY service) FILTER (service IS NOT NULL) AS services
FROM (SELECT * FROM records WHERE kind IS DISTINCT FROM 'metric')
GROUP BY run_id;

CREATE OR REPLACE TEMP TABLE runs AS
SELECT
    run_id,
    coalesce(o.workflow, workflow, '?') AS workflow,
    coalesce(o.event_id, event_id, '?') AS event_id,
    coalesce(o.customer_id, customer_id, '?') AS customer_id,
    coalesce(o.tenant_id, tenant_id) AS tenant_id,
    coalesce(o.parent_run_id, parent_run_id) AS parent_run_id,
    coalesce(o.root_run_id, root_run_id) AS root_run_id,
    coalesce(o.retry_of_run_id, retry_of_run_id) AS retry_of_run_id,
    coalesce(o.attempt, attempt, 1) AS attempt,
    CASE WHEN o IS NOT NULL THEN o.status
         WHEN spans_seen > 0 THEN CASE WHEN root_error THEN 'error' ELSE 'ok' END
         ELSE 'unknown' END AS status,
    CASE WHEN o IS NOT NULL THEN 'outcome' WHEN spans_seen > 0 THEN 'span' ELSE 'none' END
        AS status_source,
    outcome_events,
    spans_seen,
    spans_own_weight + spans_unweighted / coalesce(nullif(o.p, 0), 1) AS spans,
    errors_own_weight + errors_unweighted / coalesce(nullif(o.p, 0), 1) AS errors,
    errors_seen,
    coalesce(o.p, span_p) AS sample_probability,
    coalesce(o.p < 1 OR span_p < 1, false) AS spans_estimated,
    coalesce(o.complete, (o.p IS NULL OR o.p >= 1) AND (span_p IS NULL OR span_p >= 1))
        AS usage_complete,
    CASE WHEN o."in" IS NOT NULL OR o."out" IS NOT NULL THEN 'outcome'
         WHEN root_in IS NOT NULL OR root_out IS NOT NULL THEN 'root_span'
         ELSE 'spans' END AS tokens_source,
    CASE WHEN o."in" IS NOT NULL OR o."out" IS NOT NULL THEN coalesce(o."in", 0)
         WHEN root_in IS NOT NULL OR root_out IS NOT NULL THEN coalesce(root_in, 0)
         ELSE coalesce(span_in, 0) END AS input_tokens,
    CASE WHEN o."in" IS NOT NULL OR o."out" IS NOT NULL THEN coalesce(o."out", 0)
         WHEN root_in IS NOT NULL OR root_out IS NOT NULL THEN coalesce(root_out, 0)
         ELSE coalesce(span_out, 0) END AS output_tokens,
    CASE WHEN o IS NOT NULL THEN o.cost ELSE root_cost END AS cost,
    coalesce(o.unpriced, []) AS unpriced_models,
    start_ns,
    end_ns,
    coalesce(o.duration_ms, (end_ns - start_ns) / 1e6) AS duration_ms,
    coalesce(services, []) AS services
FROM run_facts
WHERE run_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE inclusive AS
WITH RECURSIVE ancestry(run_id, ancestor) AS (
    SELECT run_id, run_id FROM runs
    UNION
    SELECT a.run_id, r.parent_run_id
    FROM ancestry a JOIN runs r ON r.run_id = a.ancestor
    WHERE r.parent_run_id IS NOT NULL
)
SELECT a.ancestor AS run_id,
       count(*) - 1 AS descendants,
       sum(coalesce(d.cost, 0)) AS inclusive_cost,
       sum(d.input_tokens) AS inclusive_input_tokens,
       sum(d.output_tokens) AS inclusive_output_tokens
FROM ancestry a JOIN runs d ON d.run_id = a.run_id
GROUP BY a.ancestor;
"""

TOTALS = """
SELECT (SELECT coalesce(sum(records), 0) FROM run_facts),
       (SELECT coalesce(sum(unparsable), 0) FROM run_facts),
       (SELECT coalesce(sum(spans_seen) FILTER (run_id IS NULL), 0) FROM run_facts),
       (SELECT count(*) FROM runs),
       (SELECT coalesce(bool_or(spans_estimated), false) FROM runs),
       (SELECT list_sort(list_distinct(flatten(list(unpriced_models)))) FROM runs)
"""

RUNS = """
SELECT r.*, i.descendants, i.inclusive_cost, i.inclusive_input_tokens, i.inclusive_output_tokens
FROM runs r JOIN inclusive i USING (run_id)
ORDER BY r.start_ns NULLS LAST, r.run_id
LIMIT $limit
"""

_SUMS = """
    sum(r.spans) AS spans,
    bool_or(r.spans_estimated) AS spans_estimated,
    sum(r.errors) AS errors,
    sum(r.input_tokens) AS input_tokens,
    sum(r.output_tokens) AS output_tokens,
    sum(coalesce(r.cost, 0)) AS cost,
    count(*) FILTER (len(r.unpriced_models) > 0) AS unpriced_runs,
    bool_and(r.usage_complete) AS usage_complete
"""


def _percentiles(durations: str) -> str:
    """Nearest-rank p50 and p95 of the durations the FILTER-ed list holds."""
    return ", ".join(
        f"list_sort(list(r.duration_ms) FILTER ({durations} AND r.duration_ms IS NOT NULL))"
        f"[greatest(1, ceil({q} * count(r.duration_ms) FILTER ({durations})))::BIGINT]"
        f" AS p{int(q * 100)}_ms"
        for q in (0.5, 0.95)
    )


# Per customer: runs are top-level runs, child runs are counted apart; totals include them.
CUSTOMERS = f"""
SELECT r.customer_id,
       count(*) FILTER (r.parent_run_id IS NULL) AS runs,
       count(*) FILTER (r.parent_run_id IS NOT NULL) AS child_runs,
       count(DISTINCT r.event_id) AS events,
       list(r.status) FILTER (r.parent_run_id IS NULL) AS top_statuses,
       {_SUMS},
       {_percentiles("r.parent_run_id IS NULL")}
FROM runs r
GROUP BY r.customer_id
ORDER BY r.customer_id
"""

WORKFLOWS = f"""
SELECT r.workflow,
       count(*) AS runs,
       list(r.status) AS top_statuses,
       {_SUMS},
       sum(i.inclusive_cost) AS inclusive_cost,
       {_percentiles("true")}
FROM runs r JOIN inclusive i USING (run_id)
GROUP BY r.workflow
ORDER BY r.workflow
"""

EVENTS = f"""
SELECT r.event_id,
       coalesce(arg_max(r.customer_id, (r.attempt, r.start_ns, r.run_id))
           FILTER (r.parent_run_id IS NULL), max(r.customer_id)) AS customer_id,
       coalesce(arg_max(r.workflow, (r.attempt, r.start_ns, r.run_id))
           FILTER (r.parent_run_id IS NULL), max(r.workflow)) AS workflow,
       count(*) AS runs,
       count(*) FILTER (r.parent_run_id IS NULL) AS attempts,
       coalesce(arg_max(r.status, (r.attempt, r.start_ns, r.run_id))
           FILTER (r.parent_run_id IS NULL), 'unknown') AS status,
       coalesce(arg_max(r.status_source, (r.attempt, r.start_ns, r.run_id))
           FILTER (r.parent_run_id IS NULL), 'none') AS status_source,
       {_SUMS},
       list_sort(list_distinct(flatten(list(r.services)))) AS services
FROM runs r
GROUP BY r.event_id
ORDER BY cost DESC, r.event_id
"""
