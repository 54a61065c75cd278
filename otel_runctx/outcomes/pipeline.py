"""Whether the SDK log pipeline has any use for an outcome the delivery already sent.

With the spool on, an outcome goes out through the delivery and is then also emitted through the
global LoggerProvider, so a console, file or any other log exporter still sees it. In the default
wiring (see ``distro/outcome_wiring.py``) that second emit reaches nothing: the pipeline holds our
own processors and batch or simple processors whose exporter is ``SkipDeliveredOutcomes``, which
drops every delivered record. Emitting there anyway cost a helper thread about as much Python work
per run as one bare LogRecord, competing with the app for the GIL.

A processor or exporter class that ignores delivered outcomes says so with a true class attribute
``ignores_delivered_outcomes``. The exporters sit inside the SDK's processors under private
attributes (``_batch_processor._exporter``, ``_exporter``); only the SDK's own two exporting
processors are looked into, since a subclass may do more in ``on_emit``. Whenever anything is not
where it is expected (another SDK version, a proxy logger, a processor we do not know), the answer
is "it has a use", and the record is emitted as before.
"""

from __future__ import annotations

from opentelemetry._logs import Logger
from opentelemetry.sdk._logs import Logger as SdkLogger
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor

__all__ = ["IGNORES_DELIVERED", "pipeline_ignores_delivered"]

#: The class attribute that marks a processor or exporter as ignoring delivered outcomes.
IGNORES_DELIVERED = "ignores_delivered_outcomes"

_Slot = tuple[object, str, object]  # (holder, attribute, the exporter found there)

#: The processors tuple last examined, the exporter slots it was judged by, and the answer.
_last: tuple[object, tuple[_Slot, ...], bool] | None = None


def pipeline_ignores_delivered(logger: Logger) -> bool:
    """True when emitting a delivered outcome through ``logger`` would reach no exporter."""
    global _last
    if not isinstance(logger, SdkLogger):
        real = getattr(logger, "_real_logger", None)  # a ProxyLogger that found its SDK logger
        if not isinstance(real, SdkLogger):
            return False
        logger = real
    multi = getattr(logger, "_multi_log_record_processor", None)
    processors = getattr(multi, "_log_record_processors", None)
    if not isinstance(processors, tuple):
        return False
    last = _last
    # The SDK replaces the tuple when a processor is added; an exporter swapped inside a
    # processor (the wiring wraps them) shows in the slots.
    if last is not None and last[0] is processors and _slots_unchanged(last[1]):
        return last[2]
    slots: list[_Slot] = []
    answer = all(_ignores(processor, slots) for processor in processors)
    _last = (processors, tuple(slots), answer)
    return answer


def _slots_unchanged(slots: tuple[_Slot, ...]) -> bool:
    # A loop, not all() over a generator: no generator to set up on every run.
    for holder, name, exporter in slots:  # noqa: SIM110
        if getattr(holder, name, None) is not exporter:
            return False
    return True


def _ignores(processor: object, slots: list[_Slot]) -> bool:
    if getattr(type(processor), IGNORES_DELIVERED, False) is True:
        return True
    if type(processor) is BatchLogRecordProcessor:
        holder: object = getattr(processor, "_batch_processor", None)
    elif type(processor) is SimpleLogRecordProcessor:
        holder = processor
    else:
        return False
    exporter = getattr(holder, "_exporter", None)
    if exporter is None or getattr(type(exporter), IGNORES_DELIVERED, False) is not True:
        return False
    slots.append((holder, "_exporter", exporter))
    return True
