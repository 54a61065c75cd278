"""Attribute and baggage key names: a public contract shared by spans, logs and baggage."""

from __future__ import annotations

PREFIX = "runctx."

RUN_ID = "runctx.run_id"
ROOT_RUN_ID = "runctx.root_run_id"
PARENT_RUN_ID = "runctx.parent_run_id"
EVENT_ID = "runctx.event_id"
CUSTOMER_ID = "runctx.customer_id"
TENANT_ID = "runctx.tenant_id"
WORKFLOW = "runctx.workflow"
ENVIRONMENT = "runctx.environment"
ATTEMPT = "runctx.attempt"
RETRY_OF_RUN_ID = "runctx.retry_of_run_id"
DEADLINE = "runctx.deadline"

#: Keys always sent in lean propagation mode (tenant only when set); nested runs and retries
#: add ROOT_RUN_ID and PARENT_RUN_ID (see RunContext.to_baggage_dict).
LEAN_KEYS = (RUN_ID, WORKFLOW, EVENT_ID, CUSTOMER_ID, TENANT_ID)
