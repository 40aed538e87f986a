"""Structured logs: one JSON object per line (python-json-logger) for every logger, Sanic's
included, so a log pipeline can index fields instead of parsing text."""

from __future__ import annotations

from typing import Any

SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets")


def logging_config(level: str, form: str) -> dict[str, Any]:
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        if form == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {name: {"level": level, "handlers": [], "propagate": True}
                    for name in SANIC_LOGGERS},
    }
