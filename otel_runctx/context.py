"""The run: an immutable RunContext, and where the active one lives.

The active run is stored in the OpenTelemetry Context under one key. The OTel Context is itself
ContextVar-backed, so every tool that already carries OTel context across threads, tasks and
services carries the run too, and there is no second copy that could drift.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from otel_runctx import keys
from otel_runctx.ids import generate_run_id
from otel_runctx.run_state.budget import Budget, RunBudget
from otel_runctx.settings import get_settings
from otel_runctx.validation import (
    are_texts,
    check_attempt,
    check_deadline,
    check_run_id,
    check_text,
    lenient_text,
    parse_attempt,
    parse_deadline,
)

__all__ = [
    "NoRunContextError",
    "RunContext",
    "RunStatus",
    "get_run_context",
    "require_run_context",
    "reset_run_context",
    "run_from_checked_baggage",
    "set_run_context",
]

_RUN_CONTEXT_KEY = otel_context.create_key("runctx.run_context")

#: A lower-case canonical UUID: what ``generate_run_id`` makes and ``check_run_id`` accepts. One
#: C-level match instead of parsing the id into a ``uuid.UUID`` and back.
_is_canonical_uuid = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch


def _is_minted_id(value: object) -> bool:
    """True for an id in the form ``generate_run_id`` makes (then :func:`check_run_id` would
    accept it); anything else, a non-string too, is left to ``check_run_id``."""
    return isinstance(value, str) and _is_canonical_uuid(value) is not None


def _data_field(name: str, value: object) -> str:
    return lenient_text(name, value, strict=get_settings().strict)


class RunStatus(str, enum.Enum):
    """How a run ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


class NoRunContextError(RuntimeError):
    """Raised by :func:`require_run_context` when no run is active."""


class _Cancellation:
    """Cancellation state shared by every copy of one run; a child also sees its parent's.

    Being the one object every copy of a run shares (and a child's points to its parent's), it
    also holds the run's other live state: its budget (``otel_runctx.run_state.budget``) and its
    ``RunLocal`` values (``otel_runctx.run_state.local``). Both are None unless used.
    """

    __slots__ = ("_lock", "_parent", "_reason", "budget", "run_locals")

    def __init__(self, parent: _Cancellation | None = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        self._reason: str | None = None
        self.budget: RunBudget | None = None
        #: RunLocal -> value (a dict) while the run lives; an empty read-only mapping once its
        #: scope closed; None while no RunLocal was set in it.
        self.run_locals: Mapping[object, object] | None = None

    def request(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason

    @property
    def reason(self) -> str | None:
        holder: _Cancellation | None = self
        while holder is not None:
            if holder._reason is not None:
                return holder._reason
            holder = holder._parent
        return None


@dataclass(frozen=True, slots=True)
class RunContext:
    """One run of a workflow for an event and a customer. Immutable; safe to share.

    Build one with :meth:`create` (or let :func:`otel_runctx.run` do it). Copies made with
    :func:`dataclasses.replace` share the cancellation state of the run they came from.
    """

    run_id: str
    workflow: str
    event_id: str
    customer_id: str
    environment: str
    tenant_id: str | None = None
    parent_run_id: str | None = None
    root_run_id: str = ""
    attempt: int = 1
    retry_of_run_id: str | None = None
    deadline: float | None = None
    _cancellation: _Cancellation = field(default_factory=_Cancellation, repr=False, compare=False)
    _attributes: Mapping[str, AttributeValue] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # (the settings' key tuple it was built for, the mapping): see to_stamp_attributes.
    _stamp: tuple[tuple[str, ...], Mapping[str, AttributeValue]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not _is_canonical_uuid(self.run_id):  # ids minted here are; skip parsing them again
            check_run_id("run_id", self.run_id)
        texts = [self.workflow, self.event_id, self.customer_id, self.environment]
        if self.tenant_id is not None:
            texts.append(self.tenant_id)
        if not are_texts(texts):  # one scan for all; the per-field checks say which failed
            check_text("workflow", self.workflow)
            check_text("event_id", self.event_id)
            check_text("customer_id", self.customer_id)
            check_text("environment", self.environment)
            if self.tenant_id is not None:
                check_text("tenant_id", self.tenant_id)
        if self.parent_run_id is not None and not _is_minted_id(self.parent_run_id):
            check_run_id("parent_run_id", self.parent_run_id)
        if not self.root_run_id:
            object.__setattr__(self, "root_run_id", self.run_id)
        if not _is_canonical_uuid(self.root_run_id):
            check_run_id("root_run_id", self.root_run_id)
        check_attempt(self.attempt)
        if self.retry_of_run_id is not None and not _is_minted_id(self.retry_of_run_id):
            check_run_id("retry_of_run_id", self.retry_of_run_id)
        if self.deadline is not None:
            object.__setattr__(self, "deadline", check_deadline(self.deadline))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        workflow: str,
        *,
        event_id: str,
        customer_id: str,
        tenant_id: str | None = None,
        environment: str | None = None,
        deadline_seconds: float | None = None,
    ) -> RunContext:
        """Start a new top-level run.

        An invalid ``event_id``/``customer_id``/``tenant_id`` is made safe (see
        :func:`otel_runctx.validation.lenient_text`) unless ``OTEL_RUNCTX_STRICT=true``; an
        invalid ``workflow`` (code, not data) always raises ValueError.
        """
        workflow = _checked_workflow(
            workflow
        )  # first: a bad one raises before any data is looked at
        texts = (event_id, customer_id) if tenant_id is None else (event_id, customer_id, tenant_id)
        if not are_texts(texts):  # one scan for all; else each is checked (and made safe)
            event_id = _data_field("event_id", event_id)
            customer_id = _data_field("customer_id", customer_id)
            tenant_id = None if tenant_id is None else _data_field("tenant_id", tenant_id)
        return _assemble(
            run_id=generate_run_id(),
            workflow=workflow,
            event_id=event_id,
            customer_id=customer_id,
            environment=(
                check_text("environment", environment)
                if environment
                else get_settings().environment
            ),
            tenant_id=tenant_id,
            parent_run_id=None,
            root_run_id=None,
            deadline=_deadline_from_now(deadline_seconds),
            cancellation=_Cancellation(),
        )

    def create_child(
        self,
        workflow: str,
        *,
        event_id: str | None = None,
        customer_id: str | None = None,
        tenant_id: str | None = None,
        deadline_seconds: float | None = None,
    ) -> RunContext:
        """Start a run nested in this one: same root, inherited ids unless given.

        The child keeps this run's deadline unless it asks for an earlier one, and a
        cancellation of this run cancels the child too.
        """
        deadline = _deadline_from_now(deadline_seconds)
        if self.deadline is not None and (deadline is None or deadline > self.deadline):
            deadline = self.deadline
        return _assemble(
            run_id=generate_run_id(),
            workflow=_checked_workflow(workflow),
            event_id=self.event_id if event_id is None else _data_field("event_id", event_id),
            customer_id=(
                self.customer_id if customer_id is None else _data_field("customer_id", customer_id)
            ),
            # This process's environment, not an inbound run's: a run created here runs here,
            # and an inbound value must not mint a new metric series per request.
            environment=get_settings().environment,
            tenant_id=self.tenant_id if tenant_id is None else _data_field("tenant_id", tenant_id),
            parent_run_id=self.run_id,
            root_run_id=self.root_run_id,
            deadline=deadline,
            cancellation=_Cancellation(parent=self._cancellation),
        )

    @classmethod
    def create_retry(cls, previous: RunContext) -> RunContext:
        """Start the next attempt of ``previous``: a new run id, same event, customer and root."""
        return replace(
            previous,
            run_id=generate_run_id(),
            attempt=previous.attempt + 1,
            retry_of_run_id=previous.run_id,
            _cancellation=_Cancellation(),
        )

    @classmethod
    def from_baggage(cls, mapping: Mapping[str, str]) -> RunContext | None:
        """Rebuild a run from ``runctx.*`` baggage entries; None if anything is missing or invalid.

        Never raises: inbound values are untrusted, and a half-valid run is worse than none.
        """
        try:
            get = mapping.get
            fields: dict[str, Any] = {
                "run_id": get(keys.RUN_ID),
                "workflow": get(keys.WORKFLOW),
                "event_id": get(keys.EVENT_ID),
                "customer_id": get(keys.CUSTOMER_ID),
                "environment": get(keys.ENVIRONMENT) or get_settings().environment,
                "tenant_id": get(keys.TENANT_ID),
                "parent_run_id": get(keys.PARENT_RUN_ID),
                "root_run_id": get(keys.ROOT_RUN_ID) or "",
                "retry_of_run_id": get(keys.RETRY_OF_RUN_ID),
            }
            attempt = get(keys.ATTEMPT)
            if attempt is not None:
                fields["attempt"] = parse_attempt(attempt)
            deadline = get(keys.DEADLINE)
            if deadline is not None:
                fields["deadline"] = parse_deadline(deadline)
            return cls(**fields)
        except Exception:
            return None

    # -- views --------------------------------------------------------------------------------

    def to_span_attributes(self) -> Mapping[str, AttributeValue]:
        """The run's span/log attributes: built once per instance, then shared (read-only)."""
        attributes = self._attributes
        if attributes is None:
            attributes = MappingProxyType(self._build_attributes())
            object.__setattr__(self, "_attributes", attributes)
        return attributes

    def to_stamp_attributes(self) -> Mapping[str, AttributeValue]:
        """What every span and log record of the run carries (``OTEL_RUNCTX_SPAN_ATTRIBUTES``).

        By default the lean set (run, event, customer, tenant, workflow): what per-span queries
        need. The full set (:meth:`to_span_attributes`) goes on the run's root span and outcome
        event, so nothing is lost, and each span costs less to encode and ship. Built once per
        instance and per setting, then shared (read-only).
        """
        wanted = get_settings().span_attribute_keys
        stamp = self._stamp
        if stamp is not None and stamp[0] is wanted:
            return stamp[1]
        full = self.to_span_attributes()
        subset = {key: full[key] for key in wanted if key in full}
        mapping = full if len(subset) == len(full) else MappingProxyType(subset)
        object.__setattr__(self, "_stamp", (wanted, mapping))
        return mapping

    def _build_attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            keys.RUN_ID: self.run_id,
            keys.ROOT_RUN_ID: self.root_run_id,
            keys.WORKFLOW: self.workflow,
            keys.EVENT_ID: self.event_id,
            keys.CUSTOMER_ID: self.customer_id,
            keys.ENVIRONMENT: self.environment,
            keys.ATTEMPT: self.attempt,
        }
        optional: dict[str, AttributeValue | None] = {
            keys.TENANT_ID: self.tenant_id,
            keys.PARENT_RUN_ID: self.parent_run_id,
            keys.RETRY_OF_RUN_ID: self.retry_of_run_id,
            keys.DEADLINE: self.deadline,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        return attributes

    def to_baggage_dict(self, lean_mode: bool | None = None) -> dict[str, str]:
        """The run as baggage entries (strings). Lean mode sends only what a callee needs.

        Lean: run id, workflow, event, customer, tenant (when set), plus the root and parent run
        ids when this run is nested or a retry, so the callee rolls up under the same root.
        ``lean_mode=None`` follows ``OTEL_RUNCTX_PROPAGATION_MODE``.
        """
        if lean_mode is None:
            lean_mode = get_settings().propagation_mode == "lean"
        attributes = self.to_span_attributes()
        if not lean_mode:
            return {key: str(value) for key, value in attributes.items()}
        entries = {key: str(attributes[key]) for key in keys.LEAN_KEYS if key in attributes}
        if self.root_run_id != self.run_id:
            entries[keys.ROOT_RUN_ID] = self.root_run_id
        if self.parent_run_id is not None:
            entries[keys.PARENT_RUN_ID] = self.parent_run_id
        return entries

    # -- deadline and cancellation ------------------------------------------------------------

    def is_past_deadline(self) -> bool:
        """True once the run's deadline (if any) has passed."""
        return self.deadline is not None and time.time() >= self.deadline

    def remaining_time_seconds(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.time())

    def request_cancellation(self, reason: str = "user") -> None:
        """Ask the run (every copy of it, and its child runs) to stop; the first reason sticks."""
        self._cancellation.request(reason)

    def is_cancelled(self) -> bool:
        """True once cancellation was requested for this run or one of its parents."""
        return self._cancellation.reason is not None

    @property
    def cancellation_reason(self) -> str | None:
        """Why the run was cancelled, or None."""
        return self._cancellation.reason

    def remaining_budget(self) -> Budget | None:
        """What the run may still spend (the smallest of its own and its ancestors' budgets),
        or None if it has no budget. See ``run(..., budget=...)``."""
        budget = self._cancellation.budget
        return budget.remaining() if budget is not None else None


#: Workflow names already checked: they are code, so a process uses few of them (bounded).
_checked_workflows: set[str] = set()
_MAX_CHECKED_WORKFLOWS = 4096


def _checked_workflow(workflow: str) -> str:
    """``workflow`` if :func:`check_text` accepts it (ValueError if not), remembered."""
    if type(workflow) is str and workflow in _checked_workflows:
        return workflow
    check_text("workflow", workflow)
    if len(_checked_workflows) < _MAX_CHECKED_WORKFLOWS:
        _checked_workflows.add(workflow)
    return workflow


def _assemble(
    *,
    run_id: str,
    workflow: str,
    event_id: str,
    customer_id: str,
    environment: str,
    tenant_id: str | None,
    parent_run_id: str | None,
    root_run_id: str | None,
    deadline: float | None,
    cancellation: _Cancellation,
    attempt: int = 1,
    retry_of_run_id: str | None = None,
) -> RunContext:
    """A RunContext from fields already checked (a minted id, checked or safe text, the
    deadline from :func:`_deadline_from_now`), without ``__post_init__`` checking them again:
    a new run on the hot path of ``run()`` (RunContext.__init__ plus its checks cost more than
    the rest of creating it)."""
    run = object.__new__(RunContext)
    put = object.__setattr__
    put(run, "run_id", run_id)
    put(run, "workflow", workflow)
    put(run, "event_id", event_id)
    put(run, "customer_id", customer_id)
    put(run, "environment", environment)
    put(run, "tenant_id", tenant_id)
    put(run, "parent_run_id", parent_run_id)
    put(run, "root_run_id", root_run_id or run_id)
    put(run, "attempt", attempt)
    put(run, "retry_of_run_id", retry_of_run_id)
    put(run, "deadline", None if deadline is None else check_deadline(deadline))
    put(run, "_cancellation", cancellation)
    put(run, "_attributes", None)
    put(run, "_stamp", None)
    return run


def run_from_checked_baggage(mapping: Mapping[str, str]) -> RunContext | None:
    """:meth:`RunContext.from_baggage` for entries whose every value already passed
    :func:`otel_runctx.validation.are_texts` (the inbound policy checks all ``runctx.*``
    entries so before it builds the run): the same run, or None, without applying the text
    rules a second time or going through ``RunContext.__init__`` (a frozen dataclass's
    ``__init__`` plus ``__post_init__`` cost more than the rest of an inbound hop's checks).
    The id, attempt and deadline rules are applied as ``__post_init__`` applies them;
    ``tests/test_propagation_fast_paths.py`` compares the two on generated entries.
    """
    try:
        get = mapping.get
        run_id = get(keys.RUN_ID)
        workflow = get(keys.WORKFLOW)
        event_id = get(keys.EVENT_ID)
        customer_id = get(keys.CUSTOMER_ID)
        if run_id is None or workflow is None or event_id is None or customer_id is None:
            return None
        parent_run_id = get(keys.PARENT_RUN_ID)
        root_run_id = get(keys.ROOT_RUN_ID) or run_id
        retry_of_run_id = get(keys.RETRY_OF_RUN_ID)
        for name, value in (
            ("run_id", run_id),
            ("parent_run_id", parent_run_id),
            ("root_run_id", root_run_id),
            ("retry_of_run_id", retry_of_run_id),
        ):
            if value is not None and not _is_minted_id(value):
                check_run_id(name, value)
        attempt = get(keys.ATTEMPT)
        deadline = get(keys.DEADLINE)
        return _assemble(
            run_id=run_id,
            workflow=workflow,
            event_id=event_id,
            customer_id=customer_id,
            environment=get(keys.ENVIRONMENT) or get_settings().environment,
            tenant_id=get(keys.TENANT_ID),
            parent_run_id=parent_run_id,
            root_run_id=root_run_id,
            deadline=None if deadline is None else parse_deadline(deadline),
            cancellation=_Cancellation(),
            attempt=1 if attempt is None else parse_attempt(attempt),
            retry_of_run_id=retry_of_run_id,
        )
    except Exception:
        return None


def _deadline_from_now(deadline_seconds: float | None) -> float | None:
    if deadline_seconds is None:
        return None
    if isinstance(deadline_seconds, bool) or not isinstance(deadline_seconds, (int, float)):
        raise ValueError("deadline_seconds must be a number of seconds")
    if not deadline_seconds > 0:
        raise ValueError(f"deadline_seconds must be positive, got {deadline_seconds!r}")
    return time.time() + deadline_seconds


# -- the active run ---------------------------------------------------------------------------


def get_run_context(context: otel_context.Context | None = None) -> RunContext | None:
    """The active run in ``context`` (default: the current context), or None."""
    value = otel_context.get_value(_RUN_CONTEXT_KEY, context)
    return value if isinstance(value, RunContext) else None


def with_run_context(
    run: RunContext, context: otel_context.Context | None = None
) -> otel_context.Context:
    """A copy of ``context`` (default: current) in which ``run`` is the active run."""
    return otel_context.set_value(_RUN_CONTEXT_KEY, run, context)


def set_run_context(run: RunContext) -> object:
    """Make ``run`` the active run; return a token for :func:`reset_run_context`."""
    if not isinstance(run, RunContext):
        raise TypeError(f"set_run_context expects a RunContext, got {type(run).__name__}")
    return otel_context.attach(with_run_context(run))


def reset_run_context(token: object) -> None:
    """Restore the run that was active before the matching :func:`set_run_context`."""
    otel_context.detach(token)  # type: ignore[arg-type]


def require_run_context() -> RunContext:
    """The active run; raises NoRunContextError if there is none."""
    run = get_run_context()
    if run is None:
        raise NoRunContextError(
            "no run is active here. Start one with "
            "`with otel_runctx.run('workflow', event_id=..., customer_id=...):` or decorate the "
            "entry function with `@otel_runctx.workflow(...)`. Work handed to a thread pool or a "
            "bare thread does not inherit the run unless the context is copied "
            "(see otel_runctx.instrumentation)."
        )
    return run
