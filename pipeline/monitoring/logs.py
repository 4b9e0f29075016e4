"""Log lines of the pipeline's processes: plain text, or one JSON object per line.

JSON lines carry ``time``, ``level``, ``logger``, ``message`` and, when the code that logs knows
them, ``stage``, ``worker``, ``record_id``, ``reason`` (passed as ``extra={...}``), plus the
exception text. The default level (``warn``) stays quiet in normal running: a worker logs a
warning when it retries or when stage code fails on a record; dead letters and periodic stats
are ``info``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from pipeline.redaction import redact

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
#: Attributes a LogRecord has of its own; anything else came from ``extra`` and is context.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "context"}
CONTEXT_KEYS = ("stage", "worker", "record_id", "reason", "topic", "partition", "offset")


def level_number(level: str) -> int:
    return getattr(logging, {"warn": "WARNING"}.get(level.lower(), level.upper()), logging.WARNING)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _context(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(orjson.dumps(entry, default=str).decode())


class TextFormatter(logging.Formatter):
    """The usual text line, with the record's context (stage, record id, ...) appended."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        context = _context(record)
        record.context = (" [" + " ".join(f"{k}={context[k]}" for k in CONTEXT_KEYS if k in context) + "]"
                          if any(k in context for k in CONTEXT_KEYS) else "")
        return redact(super().format(record))


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return JsonLinesFormatter() if fmt == "json" else TextFormatter()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for stderr (Faust's worker takes it as ``logging_config``)."""
    factory = f"{__name__}.{'JsonLinesFormatter' if fmt == 'json' else 'TextFormatter'}"
    number = level_number(level)
    # kafka-python and aiokafka warn about every reconnect and every rebalance of a normal start-up:
    # at the default level only their errors are shown
    libraries = number if number < logging.WARNING else max(number, logging.ERROR)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"pipeline": {"()": factory}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "pipeline"}},
        "root": {"level": number, "handlers": ["stderr"]},
        "loggers": {"kafka": {"level": libraries}, "aiokafka": {"level": libraries}},
    }


def setup(level: str = "warn", fmt: str = "text") -> None:
    """Configure the root logger of a command that does not run Faust."""
    import logging.config

    formatter(fmt)  # validates
    logging.config.dictConfig(logging_config(level, fmt))
    logging.captureWarnings(True)
    sys.stderr.flush()
