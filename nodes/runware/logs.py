"""The pack's one logger: ``runware_ovi_sync`` (its children ``runware_ovi_sync.<part>``).

Every module logs through :func:`get_logger`; errors.py puts the key-scrubbing filter on
each of these loggers (a logger's filters do not see its children's records).
"""

from __future__ import annotations

import logging

LOGGER_NAME = "runware_ovi_sync"
# The child loggers the pack uses (the offline double's): each gets the filter too.
CHILD_LOGGERS = ("double", "double.media")


def get_logger(child: str | None = None) -> logging.Logger:
    """The pack's logger, or its child ``runware_ovi_sync.<child>``."""
    return logging.getLogger(f"{LOGGER_NAME}.{child}" if child else LOGGER_NAME)
