"""JSON logs through structlog, for our loggers and for uvicorn's alike."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import structlog

ACCESS_LOGGER = "dealbase.access"
ACCESS_FIELDS = ("method", "path", "operation", "status", "duration_ms")


def _drop_color_message(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    event.pop("color_message", None)  # uvicorn's ANSI copy of the message
    return event


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    # Nothing we render needs the caller's frame, thread or process, which every record
    # would otherwise look up (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our access log below carries the request id; uvicorn's would duplicate it. Left with
    # no handler to reach, uvicorn does not even build its line (it checks hasHandlers()).
    logging.getLogger("uvicorn.access").propagate = False
    access = logging.getLogger(ACCESS_LOGGER)
    access.handlers[:] = []
    access.propagate = not json_logs
    if json_logs:
        access_handler = logging.StreamHandler(sys.stderr)
        access_handler.setFormatter(AccessJSONFormatter())
        access.addHandler(access_handler)


class AccessJSONFormatter(logging.Formatter):
    """The access log's line, one per request: the JSON the structlog chain renders for it
    (same keys, same order), written directly. The chain took ~55 µs a line, ~5 % of a GET."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"event": record.getMessage()}
        line.update(structlog.contextvars.get_contextvars())
        line["level"] = record.levelname.lower()
        line["logger"] = record.name
        for field in ACCESS_FIELDS:
            if field in record.__dict__:
                line[field] = record.__dict__[field]
        created = datetime.fromtimestamp(record.created, UTC).replace(tzinfo=None)
        line["timestamp"] = created.isoformat() + "Z"
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)
