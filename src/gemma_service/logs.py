"""Logging set-up: readable lines on a terminal, one JSON object per line otherwise."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

# The id of the HTTP request being served; every log line written while serving it carries it.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# Fields the layers serving a request add to its log lines (the model that answered it). The
# access log sets a fresh dict per request; layers write into it with ``note_request_field``.
request_fields_var: ContextVar[dict[str, object] | None] = ContextVar(
    "request_fields", default=None
)


def note_request_field(name: str, value: object) -> None:
    """Put ``name`` on the current request's log lines (no-op outside a request)."""
    fields = request_fields_var.get()
    if fields is not None:
        fields[name] = value


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra fields passed with ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            body["request_id"] = request_id
        body.update(request_fields_var.get() or {})
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            body.update(fields)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=True, default=str)


def configure_logging(level: str = "info", *, json_lines: bool | None = None) -> None:
    """Root logging for the process; JSON unless stderr is a terminal."""
    use_json = (not sys.stderr.isatty()) if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
