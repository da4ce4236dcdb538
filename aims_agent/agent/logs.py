"""The agent's logs: readable text by default, JSON lines with `--log-format json`.

Every line people act on carries its facts as fields (`event`, `model`, `check`, `record_id`,
`nc_id`, `verdict`): a verdict change, a breach, a nonconformity event, a recovery, a storage
problem. Text lines show them as `key=value` after the message; JSON lines as keys.
APScheduler's per-run lines ("Running job", "executed successfully") are DEBUG only; its
warnings (a run skipped or missed) stay.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

# attributes every LogRecord has; anything else on a record came as `extra=`
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
FIELDS_ORDER = ("event", "model", "check", "record_id", "nc_id", "verdict")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, the usual ones first."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    ordered = {k: extra.pop(k) for k in FIELDS_ORDER if k in extra}
    return {**ordered, **extra}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in fields(record).items() if v is not None)
        if not extra:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        return f"{head} {extra}{sep}{tail}"


def _json() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601 in UTC
    )


FORMATS: dict[str, Callable[[], logging.Formatter]] = {"text": TextFormatter, "json": _json}
LEVELS = ("debug", "info", "warning", "error")


def setup(level: str = "info", fmt: str = "text") -> None:
    """Log to stderr at `level` in format `fmt` (one of FORMATS)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATS[fmt]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # a line per proxied request would cost the tap time and could carry URLs into logs
    quiet = max(logging.WARNING, root.level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(quiet)
    # the migration runner says which plugins it set up, at every start
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "debug" else quiet)
    # the scheduler says "Running job ..." and "... executed successfully" at INFO every run
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if level == "debug" else quiet)
