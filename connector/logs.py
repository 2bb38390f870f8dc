"""Structured logs: one JSON object per line, with the request id of the request being served.

No log call can raise because of its `extra`: the node's loggers are `ContextLogger`s, which move a key that
would overwrite a LogRecord attribute (`message`, `created`, `args`, ...) or a field of the JSON line (`ts`,
`level`, ...) to `ctx_<key>`. The class is installed when the `connector` package is imported (so every
`connector.*` logger made by the node's modules has it), and loggers made earlier are converted then and
again by `configure`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Fields every JSON line has; a caller's key of the same name must not replace them.
_LINE_FIELDS = frozenset({"ts", "level", "logger", "msg", "request_id", "exc"})
CONTEXT_PREFIX = "ctx_"
NODE_LOGGERS = "connector"


def _free_name(key: object, taken: Any) -> str:
    name = str(key)
    while name in taken or name in _STANDARD or name in _LINE_FIELDS:
        name = CONTEXT_PREFIX + name
    return name


class ContextLogger(logging.Logger):
    """A logger whose `extra` keys never collide with the record's own attributes (they get `ctx_`)."""

    def makeRecord(
        self,
        name: str,
        level: int,
        fn: str,
        lno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        extra: Mapping[str, object] | None = None,
        sinfo: str | None = None,
    ) -> logging.LogRecord:
        """Make the record as the standard library does, then add `extra` under names that are free."""
        record = super().makeRecord(name, level, fn, lno, msg, args, exc_info, func, None, sinfo)
        if extra:
            fields = record.__dict__
            for key, value in extra.items():
                fields[_free_name(key, fields)] = value
        return record


def install() -> None:
    """Make every `connector.*` logger a ContextLogger, those that exist already and those made later."""
    if logging.getLoggerClass() is logging.Logger:
        logging.setLoggerClass(ContextLogger)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        # A plain Logger converts in place: it keeps its handlers, level and every reference to it.
        if (name == NODE_LOGGERS or name.startswith(NODE_LOGGERS + ".")) and type(logger) is logging.Logger:
            logger.__class__ = ContextLogger


class AccessRecord(logging.LogRecord):
    """The record of one request's access line: made by `AccessLine` from a template, formatted from a template.

    It has every attribute a LogRecord has (a handler or formatter of the operator's reads it as any other), and
    `status` and `duration_ms` as extra fields, as `log.info(..., extra={...})` would give it.
    """

    status: int
    duration_ms: float


class AccessLine:
    """Logs one line per request (`GET /path 200`, with status and duration) at the cost of the write alone.

    `Logger.info` looks up its caller in the stack, builds a LogRecord attribute by attribute, and the JSON
    formatter walks every attribute to find the extra fields and formats the time; per request, that was as much
    as the data plane's own checks. Here the record is a copy of a template made once (the caller's file, line and
    function, this process and thread: every access line is logged from the same place on the event loop's
    thread), and JsonFormatter writes it from a fixed template, with the same fields in the same order as the
    general path. It still goes through the logger's level, filters and handlers.
    """

    def __init__(self, logger: logging.Logger, func: str) -> None:
        caller = sys._getframe(1)
        self._logger = logger
        self._func = func
        self._file = caller.f_code.co_filename
        self._line = caller.f_lineno
        self._template: dict[str, Any] | None = None
        self._made_in: tuple[int, int] | None = None

    def _make_template(self) -> dict[str, Any]:
        record = logging.LogRecord(
            self._logger.name, logging.INFO, self._file, self._line, "%s %s %s", (), None, self._func
        )
        self._made_in = (os.getpid(), threading.get_ident())
        self._template = dict(record.__dict__)
        return self._template

    def log(self, method: str, path: str, status: int, duration_ms: float) -> None:
        """Log the access line of a request (when the logger is enabled for INFO)."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        template = self._template
        if template is None or self._made_in != (os.getpid(), threading.get_ident()):
            template = self._make_template()
        record = AccessRecord.__new__(AccessRecord)
        fields = record.__dict__
        fields.update(template)
        created = time.time()
        fields["created"] = created
        fields["msecs"] = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        fields["args"] = (method, path, status)
        fields["status"] = status
        fields["duration_ms"] = duration_ms
        logger.handle(record)


class _Second:
    """The whole second last formatted and its text: one strftime a second, not one a line."""

    last: tuple[int, str] = (-1, "")


def _timestamp(created: float, msecs: float) -> str:
    whole = int(created)
    last = _Second.last  # read once: another thread may replace it meanwhile
    if last[0] != whole:
        last = _Second.last = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)))
    return f"{last[1]}.{int(msecs):03d}Z"


def _access_json(record: AccessRecord) -> str | None:
    """Return an untouched access record's JSON line as the general path writes it; None when it was changed."""
    fields = record.__dict__
    if len(fields) != _ACCESS_FIELDS or record.exc_info or record.levelno != logging.INFO:
        return None  # a filter added or changed something: let the general path write what it holds
    method, path, status = record.args  # type: ignore[misc]
    rid = request_id.get()
    head = (
        f'{{"ts":"{_timestamp(record.created, record.msecs)}","level":"INFO","logger":{_name_json(record.name)},'
        f'"msg":{orjson.dumps(f"{method} {path} {status}").decode()}'
    )
    tail = (
        f',"status":{orjson.dumps(record.status).decode()},"duration_ms":{orjson.dumps(record.duration_ms).decode()}}}'
    )
    if rid is None:
        return head + tail
    return f'{head},"request_id":{orjson.dumps(rid).decode()}{tail}'


_names: dict[str, str] = {}


def _name_json(name: str) -> str:
    found = _names.get(name)
    if found is None:
        found = _names[name] = orjson.dumps(name).decode()
    return found


# The attributes of an access record as AccessLine makes it: a LogRecord's and the two extra fields.
_ACCESS_FIELDS = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) + 2


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines; extra fields given with `extra=` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one JSON line."""
        if type(record) is AccessRecord:
            line = _access_json(record)
            if line is not None:
                return line
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                # Records of other libraries' loggers may still carry a key the line uses itself.
                entry[key if key not in entry else _free_name(key, entry)] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Format records for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one readable line."""
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        )
        rid = request_id.get()
        prefix = f"[{rid}] " if rid else ""
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {prefix}{record.getMessage()}"
        return f"{line} {extras}" if extras else line


class MalformedRequestFilter(logging.Filter):
    """Log aiohttp's malformed-HTTP reports as one INFO line: a peer must not be able to flood ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Downgrade records about requests aiohttp could not parse (it already answered 400)."""
        if record.exc_info and type(record.exc_info[1]).__name__ in ("BadHttpMessage", "BadStatusLine", "LineTooLong"):
            record.msg = f"malformed HTTP request refused: {str(record.exc_info[1]).splitlines()[0]}"
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches instead of making a write (a system call) per line.

    A formatted line is kept in memory, and the kept lines are written in order, in one write and a flush:
    - at once, with a line of level WARNING or above (a warning or an error is never kept waiting);
    - when more than `max_bytes` are kept;
    - at most `flush_seconds` after they were kept (a daemon thread writes them every `flush_seconds`);
    - when the handler is flushed or closed, which `logging.shutdown` does at the interpreter's exit (a node
      stopped by SIGTERM or SIGINT, or ending with an error, writes every line).
    A process killed outright (SIGKILL, the kernel's OOM killer, a crash of the interpreter) loses the INFO and
    DEBUG lines of its last `flush_seconds` at most. Formatting, filters and levels are as with StreamHandler.
    """

    def __init__(self, stream: Any, flush_seconds: float = 0.1, max_bytes: int = 65_536) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self._max_bytes = max_bytes
        self._kept: list[str] = []
        self._kept_chars = 0
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_every, name="log-flush", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's line; write what is kept when the line is a warning or worse, or too much is kept."""
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        # Handler.handle holds the handler's lock around emit: the timer's writes take it too.
        self._kept.append(line)
        self._kept_chars += len(line)
        if record.levelno >= logging.WARNING or self._kept_chars >= self._max_bytes:
            self._write_kept()

    def _write_kept(self) -> None:
        """Write the kept lines and flush the stream (the caller holds the lock)."""
        if self._kept:
            text = "".join(self._kept)
            self._kept.clear()
            self._kept_chars = 0
            with contextlib.suppress(Exception):  # stderr itself failed: there is nowhere better to say so
                self.stream.write(text)
        with contextlib.suppress(Exception):
            self.stream.flush()

    def flush(self) -> None:
        """Write every kept line now."""
        with self.lock:  # type: ignore[union-attr]
            self._write_kept()

    def close(self) -> None:
        """Write what is kept and stop the timer."""
        self._stopped.set()
        self.flush()
        super().close()

    def _write_every(self) -> None:
        while not self._stopped.wait(self.flush_seconds):
            if self._kept:
                self.flush()


def flush() -> None:
    """Write the log lines the root logger's handlers keep (before writing to stderr directly)."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()


def configure(level: str, fmt: str, flush_seconds: float = 0.0) -> None:
    """Send the node's logs to stderr in the chosen format.

    With `flush_seconds` above 0, lines below WARNING are written in batches at most that many seconds apart
    (`BufferedStreamHandler`; `connector serve` uses CONNECTOR_LOG_FLUSH_SECONDS), else each line at once.
    """
    handler: logging.StreamHandler = (  # type: ignore[type-arg]
        BufferedStreamHandler(sys.stderr, flush_seconds) if flush_seconds > 0 else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MalformedRequestFilter())
    install()
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, BufferedStreamHandler):
            replaced.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()


# Database drivers log SQL parameters at DEBUG, and parameters can be secrets (data-address auth codes).
# aiohttp's access log is replaced by ours (structured, with the request id).
_QUIET = ("aiosqlite", "asyncpg", "sqlalchemy", "alembic", "aiohttp.access")


def quiet_libraries() -> None:
    """Keep libraries that may log secrets or noise at WARNING, whatever the node's level."""
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
