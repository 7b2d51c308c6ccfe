"""Routes of the Runware panel, under ``/runware_ovi_sync3/`` (ComfyUI mirrors them at /api).

- ``GET  /runware_ovi_sync3/jobs?limit=50&offset=0&endpoint=current|all``  the ledger,
  newest first, one page (limit at most 200), with result files (previews through
  ComfyUI's own ``/view`` route) and whether each job can be recovered
- ``GET  /runware_ovi_sync3/jobs.csv?endpoint=current|all``  the same as CSV
- ``GET  /runware_ovi_sync3/totals``  this session, today, last 30 days; cost per unit
  by model; the daily limit
- ``GET  /runware_ovi_sync3/live``  jobs running in this ComfyUI right now
- ``POST /runware_ovi_sync3/recover``  ``{"endpoint": ..., "task_uuid": ...}``: poll and
  download a paid job that was not collected (never a new submission)
- ``GET  /runware_ovi_sync3/limit``, ``POST`` ``{"limit_usd": 5}`` (0 or null = none)

The same guards as the key routes (``routes._guarded``): other origins and unknown host
names are refused, writes must be JSON. Nothing here reads or returns the API key.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from . import host, spend_panel
from .context import result_cache
from .routes import PREFIX, Handler, _guarded
from .runware.cache import ResultCache
from .runware.config import API_URL_ENV, DAILY_LIMIT_ENV, DEFAULT_API_URL, env_text, env_url
from .runware.errors import RunwareError, SettingError, scrub
from .runware.logs import get_logger
from .runware.spend import (
    LIMIT_FILE_WHERE,
    LIMIT_SETTING,
    MAX_LIMIT_USD,
    SESSION_START,
    LedgerJob,
    day_start,
    ledger_csv,
    ledger_page,
    ledger_since,
    rates,
    totals,
)
from .runware.store import api_endpoint, is_task_uuid

log = get_logger()

MAX_PAGE = 200
_ENDPOINT = re.compile(r"^https?://[^/\s?#]{1,250}:\d{1,5}$")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def current_endpoint() -> str:
    return api_endpoint(env_url(API_URL_ENV, DEFAULT_API_URL))


def _endpoint_param(request: web.Request) -> str | None:
    """``endpoint=all`` -> None (every endpoint); anything else: the configured one."""
    return None if request.query.get("endpoint") == "all" else current_endpoint()


def _previews(cache_root: Path) -> tuple[Path | None, str | None]:
    """ComfyUI's output folder if the cache is inside it (so /view can serve results)."""
    output = host.output_directory().resolve()
    try:
        cache_root.resolve().relative_to(output)
    except ValueError:
        return None, ("No previews: the result cache (RUNWARE_CACHE_DIR) is outside "
                      "ComfyUI's output folder, which is all ComfyUI's /view route serves. "
                      "The files are in the cache folder.")
    return output, None


def _job_dict(item: LedgerJob, output: Path | None, cache: ResultCache) -> dict[str, Any]:
    job = item.job
    files = []
    for record in item.results:
        path = cache.result_path(record)  # None for a record naming a foreign file
        exists = path is not None and path.is_file() and not path.is_symlink()
        preview = None
        if output is not None and path is not None and exists:
            relative = path.resolve().relative_to(output)
            preview = {"filename": relative.name, "subfolder": relative.parent.as_posix(),
                       "type": "output"}
        files.append({"file": record.file, "exists": exists, "preview": preview})
    error = scrub(job.error)[:2000] if job.error else None
    return {
        "endpoint": job.endpoint, "task_uuid": job.task_uuid, "fingerprint": job.fingerprint,
        "model": item.family, "model_id": job.model, "node_id": job.node_id,
        "prompt_id": job.prompt_id, "submitted": job.submitted, "finished": job.finished,
        "status": job.status, "cost": job.cost, "counted": round(item.counted, 6),
        "by_estimate": item.by_estimate, "estimate": item.estimate, "error": error,
        "journaled": item.journaled,
        "recoverable": item.recoverable and not spend_panel.LIVE.busy(job.task_uuid),
        "running_here": spend_panel.LIVE.busy(job.task_uuid),
        "results": job.number_results, "files": files,
    }


def limit_status(endpoint: str | None = None) -> dict[str, Any]:
    """The daily limit as the panel and the settings dialog show it."""
    out: dict[str, Any] = {"limit_usd": None, "source": None, "env_var": DAILY_LIMIT_ENV,
                           "env_set": env_text(DAILY_LIMIT_ENV) is not None,
                           "setting_usd": None, "file": LIMIT_FILE_WHERE,
                           "setting": LIMIT_SETTING, "error": None}
    try:
        out["setting_usd"] = spend_panel.limit_file().read()
    except SettingError as exc:
        out["error"] = str(exc)
    try:
        limit = spend_panel.current_limit()
        out["limit_usd"], out["source"] = limit.usd, limit.source
    except SettingError as exc:
        out["error"] = str(exc)
    if endpoint is not None:
        today = totals(result_cache().store, endpoint)["today"]
        out["today_usd"] = today.usd
        if out["limit_usd"] is not None:
            out["remaining_usd"] = round(max(0.0, out["limit_usd"] - today.usd), 6)
    return out


def make_handlers() -> list[tuple[str, str, Handler]]:
    async def jobs(request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "50"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return _error(400, "limit and offset must be whole numbers")
        if not (1 <= limit <= MAX_PAGE and 0 <= offset <= 10**9):
            return _error(400, f"limit must be 1-{MAX_PAGE} and offset >= 0")
        endpoint = _endpoint_param(request)
        cache = result_cache()
        page, total = ledger_page(cache.store, endpoint, limit=limit, offset=offset)
        output, note = _previews(cache.root)
        return web.json_response({
            "endpoint": endpoint or "all", "current_endpoint": current_endpoint(),
            "total": total, "limit": limit, "offset": offset, "preview_note": note,
            "jobs": [_job_dict(item, output, cache) for item in page],
        })

    async def jobs_csv(request: web.Request) -> web.Response:
        endpoint = _endpoint_param(request)
        items = ledger_since(result_cache().store, endpoint, 0.0, results=True)
        name = time.strftime("runware-jobs-%Y%m%d-%H%M%S.csv")
        return web.Response(
            body=("\ufeff" + ledger_csv(items)).encode("utf-8"),  # BOM: Excel reads UTF-8
            content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store"})

    async def totals_route(request: web.Request) -> web.Response:
        endpoint = current_endpoint()
        store = result_cache().store
        now = time.time()
        found = totals(store, endpoint, now=now)
        return web.json_response({
            "endpoint": endpoint, "now": now, "day_started": day_start(now),
            "session_started": SESSION_START,
            **{name: total.as_dict() for name, total in found.items()},
            "rates": rates(store, endpoint), "limit": limit_status(),
        })

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"jobs": spend_panel.LIVE.snapshot(), "now": time.time()})

    async def recover(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if body is None:
            return _error(400, 'send JSON like {"endpoint": "...", "task_uuid": "..."}')
        endpoint, task_uuid = body.get("endpoint"), body.get("task_uuid")
        if not (isinstance(endpoint, str) and _ENDPOINT.match(endpoint)
                and is_task_uuid(task_uuid)):
            return _error(400, "endpoint and task_uuid must be those of a job in the ledger")
        status, reply = spend_panel.start_recover(endpoint, str(task_uuid).lower())
        return web.json_response(reply, status=status)

    async def get_limit(request: web.Request) -> web.Response:
        return web.json_response(limit_status(current_endpoint()))

    async def set_limit(request: web.Request) -> web.Response:
        body = await _json_body(request)
        value = body.get("limit_usd", "missing") if body is not None else "missing"
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)
                                  or not 0 <= value <= MAX_LIMIT_USD):
            return _error(400, "limit_usd must be an amount of US dollars from 0 (no limit) "
                               f"to {MAX_LIMIT_USD:.0f}, or null")
        try:
            spend_panel.limit_file().save(float(value) if value else None)
        except OSError as exc:
            return _error(500, f"Could not save the limit ({exc.strerror or exc}); the limit "
                               "saved before, if any, is unchanged.")
        log.info("Runware daily spend limit set to %s in %s",
                 f"${value:g}" if value else "none", LIMIT_FILE_WHERE)
        return web.json_response(limit_status(current_endpoint()))

    def safe(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except RunwareError as exc:  # a bad setting, an unusable store: say which
                return _error(500, str(exc))

        return wrapped

    return [
        ("GET", f"{PREFIX}/jobs", _guarded(safe(jobs), write=False)),
        ("GET", f"{PREFIX}/jobs.csv", _guarded(safe(jobs_csv), write=False)),
        ("GET", f"{PREFIX}/totals", _guarded(safe(totals_route), write=False)),
        ("GET", f"{PREFIX}/live", _guarded(safe(live), write=False)),
        ("POST", f"{PREFIX}/recover", _guarded(safe(recover), write=True)),
        ("GET", f"{PREFIX}/limit", _guarded(safe(get_limit), write=False)),
        ("POST", f"{PREFIX}/limit", _guarded(safe(set_limit), write=True)),
    ]


async def _json_body(request: web.Request) -> dict | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def register() -> None:
    """Add the routes to ComfyUI's server, when there is one."""
    host.add_routes(make_handlers())
