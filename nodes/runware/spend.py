"""Spend over the ledger: what jobs cost, totals, a daily limit, estimates, CSV.

Everything here reads the store (``jobs``: the ledger; ``request_pricing``: what each
request is billed by); nothing talks to Runware. All amounts are US dollars, per API
endpoint (the offline double's jobs never count against Runware's).

**What a job counts.** Its recorded cost (Runware's ``cost`` of its results) when known.
Without one: a job still pending (submitting / running / unknown) or finished without a
reported cost counts with the estimate made when it was submitted (0 if there was none)
until its cost arrives; a job Runware refused or does not know counts 0, and so does a
failed job without results (Runware reported no cost for it). A job journaled by version
0.1 (which kept no endpoint) is imported at both the endpoint set then and the real API;
each copy counts only once its endpoint has answered with a result, so it counts once.

**Days.** "Today" starts at midnight, local time of the machine running ComfyUI; a job
belongs to the day it was submitted. "Last 30 days" is today and the 29 days before.
"This session" is the jobs this ComfyUI process submitted.

**Estimates.** The median cost per unit of the newest finished jobs (at most 20) of the
same model at the same endpoint, times this job's units. The unit is what the price
scales with: one result for Ovi, one second of input video (times the number of results)
for sync-3. "Similar" jobs also share the settings that may change a price (Ovi: steps,
fps, first frame or not, accelerator, safety; sync-3: voice source, sync mode, TTS
provider, safety); without any, jobs of the model with other settings are used, and the
basis says so. No such job: the estimate is unknown.

**The daily limit.** A job may start when today's spend plus its estimate stays within
the limit; a job whose estimate is unknown may start while today's spend is below it.
Cached results and resumed jobs are never checked (they cost nothing new).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DAILY_LIMIT_ENV, env_limit_usd, env_text
from .errors import RunwareError, SettingError
from .files import atomic_write
from .store import (
    LEGACY_COPY,
    NOT_FOUND,
    PENDING_STATUSES,
    RECOVERED,
    REFUSED,
    SUCCEEDED,
    JobRecord,
    LedgerRow,
    ResultRecord,
    Store,
    clean_cost,
    owner_id,
)

UNIT_RESULT = "result"
UNIT_SECOND = "second"
HISTORY = 20  # newest finished jobs an estimate is the median of
MAX_LIMIT_USD = 1e6
LIMIT_FILE_NAME = "runware_spend_limit.json"
LIMIT_FILE_WHERE = f"{LIMIT_FILE_NAME} in ComfyUI's user directory"
LIMIT_SETTING = "Settings -> Runware -> Daily spend limit"
SESSION_START = time.time()  # this ComfyUI process


class SpendLimitError(RunwareError):
    """Today's spend plus this job's estimate would pass the daily limit: nothing is
    uploaded or submitted."""


def usd(amount: float | None) -> str:
    """$0.05, $0.1234, $12.50: at least 2 decimals, at most 4, no float noise."""
    if amount is None:
        return "unknown"
    text = f"{amount:.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def model_family(model: str | None) -> str:
    """What a model id is shown and grouped as: "Ovi", "sync-3", else the id itself
    (sync-3 has had more than one id; its price does not depend on which)."""
    name = (model or "").lower()
    if name.startswith("runware:190@"):
        return "Ovi"
    if name.startswith("sync:"):
        return "sync-3"
    return model or "unknown"


# -- what a request is billed by -----------------------------------------------------------


@dataclass(frozen=True)
class Pricing:
    unit: str  # UNIT_RESULT | UNIT_SECOND
    units: float
    price_key: str  # sha256 of the settings that may change the price


def _price_settings(family: str, task: dict[str, Any]) -> dict[str, Any]:
    if family == "Ovi":
        return {"image": "inputs" in task, "steps": task.get("steps"), "fps": task.get("fps"),
                "accelerator": task.get("acceleratorOptions"), "safety": task.get("safety")}
    if family == "sync-3":
        settings: dict[str, Any] = task.get("settings") or {}
        inputs: dict[str, Any] = task.get("inputs") or {}
        if not isinstance(settings, dict) or not isinstance(inputs, dict):
            settings, inputs = {}, {}
        source = ("segments" if settings.get("segments") else "speech" if task.get("speech")
                  else "audio" if inputs.get("audio") else "none")
        tts = settings.get("tts")
        return {"source": source, "syncMode": settings.get("syncMode"),
                "tts": tts.get("provider") if isinstance(tts, dict) else None,
                "safety": task.get("safety")}
    return {"task": {k: v for k, v in task.items() if k not in ("taskUUID", "seed")}}


def pricing_of(model: str, task: dict[str, Any], video_seconds: float | None = None
               ) -> Pricing:
    """What this request is billed by, how much of it, and its price settings."""
    family = model_family(model)
    results = task.get("numberResults") or 1
    results = results if isinstance(results, int) and results > 0 else 1
    text = json.dumps({"model": family, **_price_settings(family, task)}, sort_keys=True,
                      default=str)
    key = hashlib.sha256(text.encode()).hexdigest()
    if family == "sync-3" and video_seconds is not None and math.isfinite(video_seconds) \
            and video_seconds > 0:
        return Pricing(UNIT_SECOND, round(float(video_seconds) * results, 3), key)
    return Pricing(UNIT_RESULT, float(results), key)


# -- the ledger, with pricing ---------------------------------------------------------------


@dataclass
class LedgerJob:
    """One ledger row with what the spend panel needs besides it."""

    job: JobRecord
    unit: str | None = None
    units: float | None = None
    price_key: str | None = None
    estimate: float | None = None  # made at its (last) submission
    journaled: bool = False
    results: list[ResultRecord] = field(default_factory=list)

    @property
    def family(self) -> str:
        return model_family(self.job.model)

    @property
    def counted(self) -> float:
        """What this job counts toward spend (module docstring)."""
        job = self.job
        if job.status in (REFUSED, NOT_FOUND):
            return 0.0
        if job.cost is not None:
            return job.cost
        if job.status in PENDING_STATUSES or job.status == SUCCEEDED:
            return self.estimate or 0.0
        return 0.0

    @property
    def in_totals(self) -> bool:
        """False for a copy of a 0.1 journal entry (imported at each endpoint it may have
        gone to) until this endpoint has answered with a result: one job, counted once."""
        return self.job.owner != LEGACY_COPY or self.job.status not in (
            *PENDING_STATUSES, NOT_FOUND, REFUSED)

    @property
    def by_estimate(self) -> bool:
        """Counted with its estimate (its cost is not known yet)."""
        return self.job.cost is None and bool(self.estimate) and self.job.status in (
            *PENDING_STATUSES, SUCCEEDED)

    @property
    def recoverable(self) -> bool:
        """Submitted (perhaps paid) and not collected: Recover may poll and download it."""
        return self.job.status in PENDING_STATUSES

    def per_unit(self) -> tuple[str, float] | None:
        """(unit, cost per unit) of a finished job with a known cost, for estimates."""
        job = self.job
        if job.cost is None or job.status not in (SUCCEEDED, RECOVERED):
            return None
        unit, units = self.unit, self.units
        if unit is None and self.family != "sync-3" and job.number_results > 0:
            unit, units = UNIT_RESULT, float(job.number_results)
        if unit is None or not units or units <= 0:
            return None
        return unit, job.cost / units


def _ledger_job(row: LedgerRow) -> LedgerJob:
    unit, units = row.unit, row.units
    if unit not in (UNIT_RESULT, UNIT_SECOND) or isinstance(units, bool) \
            or not isinstance(units, (int, float)) or not math.isfinite(units) or units <= 0:
        unit, units = None, None
    return LedgerJob(job=row.job, unit=unit, units=None if units is None else float(units),
                     price_key=row.price_key if isinstance(row.price_key, str) else None,
                     estimate=clean_cost(row.estimate), journaled=row.journaled,
                     results=row.results)


def ledger_page(store: Store, endpoint: str | None, *, limit: int = 50, offset: int = 0
                ) -> tuple[list[LedgerJob], int]:
    """One page of the ledger, newest first, with result files; and the number of jobs."""
    page = store.ledger(endpoint=endpoint, limit=limit, offset=offset, results=True)
    return [_ledger_job(r) for r in page], store.ledger_count(endpoint)


def ledger_since(store: Store, endpoint: str | None, since: float, *,
                 results: bool = False) -> list[LedgerJob]:
    """Every job submitted since ``since`` (newest first; with result files if asked)."""
    return [_ledger_job(r) for r in store.ledger(endpoint=endpoint, since=since,
                                                 results=results)]


def record_pricing(store: Store, endpoint: str, fingerprint: str, pricing: Pricing,
                   estimate_usd: float | None, when: float | None = None,
                   details: dict[str, Any] | None = None) -> None:
    """Remember what a request is billed by and its estimate (at its submission);
    ``details``: the estimate as ``Estimate.as_dict()`` (what ``info`` shows)."""
    store.put_pricing(endpoint, fingerprint, unit=pricing.unit, units=pricing.units,
                      price_key=pricing.price_key, estimate=estimate_usd,
                      details=None if details is None else json.dumps(details, sort_keys=True),
                      when=when or time.time())


def recorded_estimate(store: Store, endpoint: str, task_uuid: str) -> dict[str, Any] | None:
    """The estimate made when this job's request was last submitted (None if none was:
    e.g. a job recovered by its taskUUID)."""
    text = store.pricing_details(endpoint, task_uuid)
    try:
        details = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return details if isinstance(details, dict) else None


# -- days and totals ---------------------------------------------------------------------------


def day_start(now: float, days_back: int = 0) -> float:
    """Local midnight of the day ``now`` falls in, ``days_back`` days earlier (DST-safe)."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday - days_back, 0, 0, 0, 0, 0, -1))


@dataclass(frozen=True)
class Total:
    usd: float = 0.0
    jobs: int = 0
    by_estimate: int = 0  # jobs counted with their estimate (cost not known yet)

    def add(self, item: LedgerJob) -> Total:
        if not item.in_totals:
            return self
        return Total(round(self.usd + item.counted, 6), self.jobs + 1,
                     self.by_estimate + int(item.by_estimate))

    def as_dict(self) -> dict[str, Any]:
        return {"usd": round(self.usd, 6), "jobs": self.jobs, "by_estimate": self.by_estimate}


def totals(store: Store, endpoint: str, *, now: float | None = None,
           owner: str | None = None, session_start: float | None = None) -> dict[str, Total]:
    """This session, today and the last 30 days at ``endpoint`` (module docstring)."""
    now = time.time() if now is None else now
    owner = owner or owner_id()
    session_start = SESSION_START if session_start is None else session_start
    today, month = day_start(now), day_start(now, 29)
    out = {"session": Total(), "today": Total(), "last_30_days": Total()}
    for item in ledger_since(store, endpoint, min(month, session_start)):
        submitted = item.job.submitted
        if item.job.owner == owner and submitted >= session_start:
            out["session"] = out["session"].add(item)
        if submitted >= today:
            out["today"] = out["today"].add(item)
        if submitted >= month:
            out["last_30_days"] = out["last_30_days"].add(item)
    return out


# -- estimates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    usd: float | None
    per_unit: float | None
    unit: str
    units: float
    count: int  # jobs the median is taken over
    similar: bool  # those jobs share the price settings (else: the model, other settings)
    family: str

    @property
    def basis(self) -> str:
        if self.usd is None:
            return f"no earlier {self.family} job with a known cost at this endpoint"
        head = "from 1" if self.count == 1 else f"median of {self.count}"
        jobs = "job" if self.count == 1 else "jobs"
        if self.similar:
            return f"{head} similar {jobs}"
        return f"{head} {self.family} {jobs} with other settings"

    @property
    def text(self) -> str:
        """"~$0.42, median of 8 similar jobs" / "unknown (no earlier ...)"."""
        if self.usd is None:
            return f"unknown ({self.basis})"
        rate = ""
        if self.unit == UNIT_SECOND:
            rate = f" ({self.units:.1f} s at ~{usd(self.per_unit)}/s)"
        elif self.units != 1:
            rate = f" ({self.units:g} results at ~{usd(self.per_unit)} each)"
        return f"~{usd(self.usd)}{rate}, {self.basis}"

    def as_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "per_unit": self.per_unit, "unit": self.unit,
                "units": self.units, "count": self.count, "similar": self.similar,
                "basis": self.basis, "text": self.text}


def _history(store: Store, endpoint: str) -> list[LedgerJob]:
    return [_ledger_job(r) for r in store.ledger(endpoint=endpoint, costed=True, limit=2000)]


def estimate(store: Store, endpoint: str, model: str, pricing: Pricing,
             history: list[LedgerJob] | None = None) -> Estimate:
    """This request's estimate from the ledger (module docstring)."""
    family = model_family(model)
    history = _history(store, endpoint) if history is None else history
    same_model: list[float] = []
    similar: list[float] = []
    for item in history:
        rate = item.per_unit()
        if item.family != family or rate is None or rate[0] != pricing.unit:
            continue
        if len(same_model) < HISTORY:
            same_model.append(rate[1])
        if item.price_key == pricing.price_key and len(similar) < HISTORY:
            similar.append(rate[1])
    rates, is_similar = (similar, True) if similar else (same_model, False)
    if not rates:
        return Estimate(None, None, pricing.unit, pricing.units, 0, False, family)
    per_unit = float(statistics.median(rates))
    return Estimate(round(per_unit * pricing.units, 6), per_unit, pricing.unit,
                    pricing.units, len(rates), is_similar, family)


def rates(store: Store, endpoint: str) -> list[dict[str, Any]]:
    """Per model and unit: the median cost per unit of its newest finished jobs."""
    found: dict[tuple[str, str], list[float]] = {}
    for item in _history(store, endpoint):
        rate = item.per_unit()
        if rate is not None:
            bucket = found.setdefault((item.family, rate[0]), [])
            if len(bucket) < HISTORY:
                bucket.append(rate[1])
    return [{"model": family, "unit": unit, "per_unit": float(statistics.median(values)),
             "count": len(values)} for (family, unit), values in sorted(found.items())]


# -- the daily limit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyLimit:
    usd: float | None  # None = no limit
    source: str | None  # "environment" | "setting" | None

    def where(self) -> str:
        if self.source == "environment":
            return (f"the {DAILY_LIMIT_ENV} environment variable where ComfyUI starts (it "
                    f"overrides {LIMIT_SETTING})")
        return LIMIT_SETTING


class LimitFile:
    """The daily limit set in the settings dialog: a small JSON file in ComfyUI's user
    directory (``{"daily_limit_usd": 5.0}``; absent or 0 = no limit)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> float | None:
        """The stored limit, or None. A file that cannot be read is an error (a spend
        limit that silently vanished would let every job through)."""
        path = self.path
        if not os.path.lexists(path):
            return None
        problem = None
        try:
            if path.is_symlink() or not path.is_file():
                problem = "it is not a plain file"
            elif path.stat().st_size > 4096:
                problem = "it is too large"
            else:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
                value = data.get("daily_limit_usd") if isinstance(data, dict) else "?"
                if value is None:
                    return None
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not math.isfinite(value) or not 0 <= value <= MAX_LIMIT_USD:
                    problem = f"daily_limit_usd is {str(value)[:40]!r}, not an amount >= 0"
                else:
                    return float(value) or None
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:200]
        raise SettingError(
            f"The daily spend limit in {LIMIT_FILE_WHERE} could not be read ({problem})",
            hint=f"Set the limit again in {LIMIT_SETTING} (that rewrites the file), or "
            f"delete {LIMIT_FILE_NAME} for no limit.")

    def save(self, value: float | None) -> None:
        """Write the limit (None or 0 = no limit): a new file renamed into place, so a
        crash keeps the old one and a link planted at the name is replaced, not followed."""
        if value is not None and (isinstance(value, bool) or not math.isfinite(value)
                                  or not 0 <= value <= MAX_LIMIT_USD):
            raise ValueError("the limit must be an amount of US dollars >= 0")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"daily_limit_usd": float(value) if value else 0})
        atomic_write(self.path, data.encode("utf-8"), durable=True, private=True)


def daily_limit(limit_file: LimitFile | None) -> DailyLimit:
    """RUNWARE_DAILY_LIMIT_USD when set (validated; it wins), else the settings file."""
    from_env = env_limit_usd(DAILY_LIMIT_ENV, MAX_LIMIT_USD)
    if from_env is not None:
        return DailyLimit(from_env, "environment")
    if env_text(DAILY_LIMIT_ENV) is not None:  # set to 0: explicitly no limit
        return DailyLimit(None, "environment")
    stored = limit_file.read() if limit_file is not None else None
    return DailyLimit(stored, "setting" if stored is not None else None)


def check_daily_limit(limit: DailyLimit, today: Total, job: Estimate) -> None:
    """Raise SpendLimitError if this job would pass the limit (module docstring)."""
    if limit.usd is None:
        return
    pending = (f"; {today.by_estimate} of its jobs counted at their estimate"
               if today.by_estimate else "")
    spent = (f"Daily spend limit: today's Runware spend at this endpoint is "
             f"{usd(today.usd)} (since midnight on this machine{pending})")
    if job.usd is not None:
        if today.usd + job.usd <= limit.usd + 1e-9:
            return
        message = (f"{spent} and this job is estimated at {job.text}: together "
                   f"{usd(today.usd + job.usd)}, over the daily limit of {usd(limit.usd)}")
    else:
        if today.usd < limit.usd - 1e-9:
            return
        message = (f"{spent}, which has reached the daily limit of {usd(limit.usd)}, and "
                   f"this job's cost is unknown ({job.basis}); without an estimate a job "
                   "may start only while today's spend is below the limit")
    raise SpendLimitError(
        f"{message}. Nothing was uploaded or submitted",
        code="dailySpendLimit",
        hint=f"Raise or remove the limit in {limit.where()}, or wait until midnight. "
        "Cached results and jobs already paid for still run.",
    )


class Reservations:
    """Estimates of jobs this process let through the limit whose ledger row is not
    written yet (uploads come first): counted too, so two nodes running at once cannot
    both pass a limit that only one of them fits in."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._items: dict[int, tuple[str, str, float, float]] = {}
        self._next = 0

    def add(self, endpoint: str, fingerprint: str, amount: float) -> int:
        with self.lock:
            self._next += 1
            self._items[self._next] = (endpoint, fingerprint, amount, time.time())
            return self._next

    def release(self, token: int | None) -> None:
        with self.lock:
            self._items.pop(token or 0, None)

    def unrecorded(self, endpoint: str, ledger: list[LedgerJob]) -> float:
        """What the reservations at ``endpoint`` add to ``ledger`` (those whose job is in
        it already count there)."""
        with self.lock:
            items = list(self._items.values())
        total = 0.0
        for where, fingerprint, amount, since in items:
            if where != endpoint:
                continue
            if not any(j.job.fingerprint == fingerprint and j.job.submitted >= since - 1
                       for j in ledger):
                total += amount
        return total


RESERVATIONS = Reservations()


class SpendGuard:
    """One run's estimate and limit check. ``before_submit`` is ``run_cached_job``'s hook:
    it runs only when a new paid job is about to start (never for a cached result or a
    resumed job), before any upload."""

    def __init__(self, store: Store, endpoint: str, model: str, pricing: Pricing,
                 limit: Callable[[], DailyLimit], *,
                 on_estimate: Callable[[Estimate], None] | None = None,
                 reservations: Reservations = RESERVATIONS) -> None:
        self.store = store
        self.endpoint = endpoint
        self.pricing = pricing
        self.limit = limit
        self.on_estimate = on_estimate
        self.reservations = reservations
        self._token: int | None = None
        try:
            self.estimate = estimate(store, endpoint, model, pricing)
        except RunwareError:  # the store is unusable: the run itself will say so
            self.estimate = Estimate(None, None, pricing.unit, pricing.units, 0, False,
                                     model_family(model))

    def before_submit(self, fingerprint: str) -> None:
        limit = self.limit()  # a bad setting is an error here, before anything is sent
        with self.reservations.lock:
            if limit.usd is not None:
                today = day_start(time.time())
                ledger = ledger_since(self.store, self.endpoint, today)
                spent = Total()
                for item in ledger:
                    spent = spent.add(item)
                extra = self.reservations.unrecorded(self.endpoint, ledger)
                spent = Total(round(spent.usd + extra, 6), spent.jobs, spent.by_estimate)
                check_daily_limit(limit, spent, self.estimate)
            self.release()
            self._token = self.reservations.add(self.endpoint, fingerprint,
                                                self.estimate.usd or 0.0)
        record_pricing(self.store, self.endpoint, fingerprint, self.pricing,
                       self.estimate.usd, details=self.estimate.as_dict())
        if self.on_estimate is not None:
            self.on_estimate(self.estimate)

    def release(self) -> None:
        self.reservations.release(self._token)
        self._token = None


# -- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = ("submitted", "finished", "model", "status", "cost_usd", "counted_usd",
               "estimate_usd", "task_uuid", "node_id", "prompt_id", "files", "error",
               "endpoint", "fingerprint")


def _local_time(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text.replace("\x00", "")


def ledger_csv(items: list[LedgerJob]) -> str:
    """The ledger as CSV (local times), one row per job."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        job = item.job
        writer.writerow([_cell(v) for v in (
            _local_time(job.submitted), _local_time(job.finished), model_family(job.model),
            job.status, "" if job.cost is None else f"{job.cost:.6f}",
            f"{item.counted:.6f}", "" if item.estimate is None else f"{item.estimate:.6f}",
            job.task_uuid, job.node_id, job.prompt_id, " ".join(r.file for r in item.results),
            job.error, job.endpoint, job.fingerprint)])
    return out.getvalue()


__all__ = ["DailyLimit", "Estimate", "LedgerJob", "LimitFile", "Pricing", "SpendGuard",
           "SpendLimitError", "Total", "check_daily_limit", "daily_limit", "day_start",
           "estimate", "ledger_csv", "ledger_page", "ledger_since", "model_family",
           "pricing_of", "rates", "record_pricing", "recorded_estimate", "totals", "usd"]
