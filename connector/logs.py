"""Structured logs: one JSON object per line, with the request id of the request being served."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines; extra fields given with `extra=` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one JSON line."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
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


def configure(level: str, fmt: str) -> None:
    """Send the node's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MalformedRequestFilter())
    root = logging.getLogger()
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
