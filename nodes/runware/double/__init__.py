"""A strict local Runware test double (HTTP server on 127.0.0.1) for tests and demos.

    from .double import RunwareDouble
    with RunwareDouble(api_key="test-key", job_seconds=0.3) as d:
        ...  # POST tasks to d.base_url

Standalone: ``python -m nodes.runware.double --port 8765 --key KEY`` from the repo root.
"""

from __future__ import annotations

from .server import RunwareDouble, StoredMedia, TaskError, sanitize

__all__ = ["RunwareDouble", "StoredMedia", "TaskError", "sanitize"]
