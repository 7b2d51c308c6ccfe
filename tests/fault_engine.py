"""Random fault schedules against the real job runner and two local doubles over HTTP.

Used by tests/test_fault_schedules.py (a bounded, derandomized number in CI) and by
bench/fault_schedules.py (>= 500 schedules, prints the counts).

A schedule is a list of actions: runs of a few requests at endpoint A or B (the two
doubles), with or without reuse, each under one injected fault (429/5xx, a lost submit
answer, unknown poll codes, non-JSON answers, a dropped or non-video download, a whole or
partial job failure), possibly cancelled in a phase or cut by a short time limit;
restarts (fresh objects over the same cache folder); damaged result files; a store file
overwritten with garbage; planted malformed records; Runware forgetting a task; an
endpoint that knows sync-3 under only one of its two model ids; Fetch
Result by taskUUID. Then every journal is settled and the invariants are checked:

1. at most one accepted submission per request and endpoint, unless a new take was asked
   for (reuse off) or an earlier job ended with positive evidence (failed / expired);
2. every accepted job's results are on disk and reachable from the store by taskUUID
   (after a destroyed store: still recoverable by taskUUID without paying);
3. no journal entry was dropped without positive evidence (checked after every action);
4. no file was served for an endpoint that did not produce it;
5. nothing crashed: every failure is one of the documented error types.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import TEST_KEY, ovi_request, pack_module, sync3_request
from hypothesis import strategies as st

jobs = pack_module("nodes.runware.jobs")
cache_mod = pack_module("nodes.runware.cache")
store_mod = pack_module("nodes.runware.store")
tasks_mod = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
config_mod = pack_module("nodes.runware.config")
Double = pack_module("nodes.runware.double").RunwareDouble

ENDPOINTS = ("A", "B")
SIZES = {"A": (64, 48), "B": (80, 48)}  # the doubles render different files
HTML = "<!DOCTYPE html><html><head><title>Proxy error</title></head><body>x</body></html>"
FAULTS = ("none", "429_submit", "5xx_poll", "5xx_submit_exhausted", "lost_submit",
          "unknown_poll", "html_poll", "html_submit_processed", "drop_download",
          "bad_download", "fail_job", "fail_job_data", "fail_partial")
EXPECTED = (errors.TaskFailedError, errors.JobTimeoutError, errors.CancelledError,
            errors.EndpointError, errors.DownloadError, errors.ServerError,
            errors.RateLimitError)


# -- requests ----------------------------------------------------------------------------------


SYNC3_IDS = {"spec": ("sync:lipsync@3",), "docs": ("sync:3@0",),
             "both": ("sync:lipsync@3", "sync:3@0")}


def _shared_media() -> tuple[Path, Path]:
    """The sync-3 request's files, written once per machine (first writer wins), so every
    process of a schedule hashes the same bytes."""
    from media_factory import write_mp4, write_wav

    folder = Path(tempfile.gettempdir()) / "runware-fault-media"
    folder.mkdir(exist_ok=True)
    out = []
    for name, write in (("v.mp4", lambda p: write_mp4(p, frames=24, fps=12)),
                        ("a.wav", lambda p: write_wav(p, seconds=1.0))):
        final = folder / name
        if not final.exists():
            tmp = folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex}{final.suffix}"
            write(tmp)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, final)
            tmp.unlink()
        out.append(final)
    return out[0], out[1]


def request(index: int) -> Any:
    """Four requests: one result, two results, one with an uploaded image (Ovi), and a
    sync-3 lip sync (sent under either of its model ids, see ModelIds)."""
    from media_factory import png_bytes

    if index == 3:
        video, audio = _shared_media()
        return tasks_mod.prepare_sync3(sync3_request(
            video_source=video, video_mime="video/mp4", audio_source=audio,
            audio_mime="audio/wav", video=tasks_mod.VideoFacts(96, 64, 12.0, 24, 2.0)))
    seed, count, image = [(101, 1, False), (202, 2, False), (303, 1, True)][index]
    return tasks_mod.prepare_ovi(ovi_request(
        prompt="A drummer says <S>one two<E>", seed=seed, steps=30, fps=8,
        video_cfg_scale=5.0, audio_cfg_scale=4.0, number_results=count,
        image_png=png_bytes() if image else None))


def request_of(task: dict) -> int:
    if task.get("model") in SYNC3_IDS["both"]:
        return 3
    return {101: 0, 202: 1, 303: 2}[int(task["seed"])]


# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    req: int
    ep: str
    reuse: bool = True
    fault: str = "none"
    cancel: str | None = None  # a phase: submitting / processing / downloading
    short: bool = False  # a time limit the job cannot meet


@dataclass(frozen=True)
class Restart:
    pass


@dataclass(frozen=True)
class CorruptResult:
    which: int


@dataclass(frozen=True)
class CorruptStore:
    how: str  # garbage | header


@dataclass(frozen=True)
class Plant:
    pass


@dataclass(frozen=True)
class Expire:
    ep: str
    which: int


@dataclass(frozen=True)
class ModelIds:
    """The endpoint starts (or stops) knowing sync-3 under one of its two ids."""

    ep: str
    known: str  # spec | docs | both


@dataclass(frozen=True)
class Fetch:
    ep: str
    which: int


runs = st.builds(Run, req=st.sampled_from([0, 0, 0, 1, 1, 2, 3, 3]),
                 ep=st.sampled_from(ENDPOINTS),
                 reuse=st.sampled_from([True, True, True, False]),
                 fault=st.sampled_from(("none",) * 5 + FAULTS),
                 cancel=st.sampled_from([None] * 5 + ["submitting", "processing",
                                                      "downloading"]),
                 short=st.sampled_from([False] * 5 + [True]))
OTHER_ACTIONS = {
    "restart": st.just(Restart()),
    "corrupt_result": st.builds(CorruptResult, st.integers(0, 20)),
    "corrupt_store": st.builds(CorruptStore, st.sampled_from(["garbage", "header"])),
    "plant": st.just(Plant()),
    "expire": st.builds(Expire, st.sampled_from(ENDPOINTS), st.integers(0, 20)),
    "fetch": st.builds(Fetch, st.sampled_from(ENDPOINTS), st.integers(0, 20)),
    "model_ids": st.builds(ModelIds, st.sampled_from(ENDPOINTS), st.sampled_from(
        sorted(SYNC3_IDS))),
}
# Runs are most of a schedule (several of the same request, at both endpoints).
action_kinds = st.sampled_from(["run"] * 12 + sorted(OTHER_ACTIONS))
actions = action_kinds.flatmap(lambda kind: runs if kind == "run" else OTHER_ACTIONS[kind])
schedules = st.lists(actions, min_size=3, max_size=9)
# Two processes share one store: only runs and restarts (their own objects).
process_actions = st.lists(
    st.sampled_from(["run"] * 5 + ["restart"]).flatmap(
        lambda kind: runs if kind == "run" else st.just(Restart())),
    min_size=2, max_size=5)


# -- the world --------------------------------------------------------------------------------


class Phase:
    """Cancel once the client reports a given phase."""

    def __init__(self, phase: str | None) -> None:
        self.phase, self.hit = phase, False

    def progress(self, p: Any) -> None:
        if self.phase is not None and p.phase == self.phase:
            self.hit = True

    def __call__(self) -> bool:
        return self.hit


def fast_config(url: str, **extra: Any) -> Any:
    values = dict(api_url=url, api_key=TEST_KEY, retry_base_delay=0.01, retry_max_delay=0.05,
                  retry_jitter=0.005, poll_initial=0.03, poll_max=0.1, job_timeout=20.0,
                  cancel_interval=0.03, max_retries=3)
    values.update(extra)
    return config_mod.ClientConfig(**values)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class World:
    root: Path
    doubles: dict[str, Any]
    cache: Any = None
    violations: list[str] = field(default_factory=list)
    collected: set[str] = field(default_factory=set)  # taskUUIDs a run or fetch returned
    lost_with_store: set[str] = field(default_factory=set)  # pending when the store died
    store_lost: set[str] = field(default_factory=set)  # their rows died with a store
    new_takes: dict[tuple[str, int], int] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    _shas: dict[str, dict[str, str]] = field(default_factory=dict)

    def endpoint(self, ep: str) -> str:
        return store_mod.api_endpoint(self.doubles[ep].base_url)

    def config(self, ep: str, **extra: Any) -> Any:
        return fast_config(self.doubles[ep].base_url, **extra)

    def restart(self) -> None:
        if self.cache is not None:
            self.cache.store.close()
        self.cache = cache_mod.ResultCache(self.root)

    def shas(self, ep: str) -> set[str]:
        known = self._shas.setdefault(ep, {})
        for info in self.doubles[ep].results.values():
            if info["path"] not in known and Path(info["path"]).exists():
                known[info["path"]] = sha(Path(info["path"]))
        return set(known.values())

    def accepted(self, ep: str) -> list[dict]:
        return self.doubles[ep].accepted_submissions()

    def fail(self, text: str) -> None:
        self.violations.append(f"{text} | schedule so far: {'; '.join(self.log)}")


def new_world(root: Path) -> World:
    doubles = {}
    for ep in ENDPOINTS:
        d = Double(api_key=TEST_KEY, job_seconds=0.12, storage_dir=root / f"double-{ep}",
                   video_size=SIZES[ep], ovi_duration=0.5)
        d.start()
        doubles[ep] = d
    world = World(root / "cache", doubles)
    world.restart()
    return world


def close_world(world: World) -> None:
    if world.cache is not None:
        world.cache.store.close()
    for d in world.doubles.values():
        d.stop()


# -- faults -------------------------------------------------------------------------------------


def inject(d: Any, fault: str) -> None:
    if fault == "429_submit":
        d.fail_next(429, count=2, task_type="videoInference")
    elif fault == "5xx_poll":
        d.fail_next(503, count=2, task_type="getResponse")
    elif fault == "5xx_submit_exhausted":
        d.fail_next(503, count=50, task_type="videoInference")
    elif fault == "lost_submit":
        d.lose_next_response("videoInference")
    elif fault == "unknown_poll":
        d.answer_next(400, lambda ts: {"errors": [{"code": "brandNewCode",
                                                   "taskUUID": ts[0].get("taskUUID")}]},
                      task_type="getResponse", count=2)
    elif fault == "html_poll":
        d.answer_next(200, HTML, task_type="getResponse", count=2)
    elif fault == "html_submit_processed":
        d.answer_next(200, HTML, task_type="videoInference", process=True)
    elif fault == "drop_download":
        d.drop_download_after(700)
    elif fault == "bad_download":
        d.serve_next_download(HTML.encode())
    elif fault == "fail_job":
        d.fail_next_job("errors", code="inferenceError", message="crashed")
    elif fault == "fail_job_data":
        d.fail_next_job("data", code="contentPolicyViolation", message="refused")
    elif fault == "fail_partial":
        d.fail_next_job_after(1, code="inferenceError", message="second crashed")


# -- running one action -------------------------------------------------------------------------


def check_served(world: World, ep: str, results: list, what: str) -> None:
    accepted = {t["taskUUID"] for t in world.accepted(ep)}
    produced = world.shas(ep)
    for r in results:
        world.collected.add(r.result.task_uuid)
        if r.result.task_uuid not in accepted:
            world.fail(f"{what}: served task {r.result.task_uuid} that endpoint {ep} never "
                       "accepted")
        if not r.path.is_file() or sha(r.path) not in produced:
            world.fail(f"{what}: served {r.path.name}, not a file endpoint {ep} produced")


def do_run(world: World, action: Run) -> None:
    d = world.doubles[action.ep]
    inject(d, action.fault)
    hook = Phase(action.cancel)
    config = world.config(action.ep, job_timeout=0.05 if action.short else 20.0)
    if not action.reuse:
        key = (action.ep, action.req)
        world.new_takes[key] = world.new_takes.get(key, 0) + 1
    try:
        results = asyncio.run(jobs.run_cached_job(
            request(action.req), config=config, cache=world.cache, reuse=action.reuse,
            should_cancel=hook, on_progress=hook.progress))
    except EXPECTED:
        pass
    except Exception as exc:  # noqa: BLE001 - anything else is a finding
        world.fail(f"{action}: crashed with {type(exc).__name__}: {exc}")
    else:
        check_served(world, action.ep, results, str(action))
    finally:
        for other in world.doubles.values():
            other.clear_faults()


def do_fetch(world: World, ep: str, task_uuid: str, what: str) -> list | None:
    try:
        results = asyncio.run(jobs.fetch_task(task_uuid, config=world.config(ep),
                                              cache=world.cache, model="runware:190@1"))
    except EXPECTED:
        return None
    except Exception as exc:  # noqa: BLE001
        world.fail(f"{what}: fetch crashed with {type(exc).__name__}: {exc}")
        return None
    check_served(world, ep, results, what)
    return results


def pending_task_uuids(world: World) -> set[str]:
    try:
        return {j.task_uuid for j in world.cache.store.pending()}
    except Exception:  # noqa: BLE001 - the store may already be damaged
        return set()


def do(world: World, action: Any) -> None:
    world.log.append(repr(action))
    if isinstance(action, Run):
        do_run(world, action)
    elif isinstance(action, Restart):
        world.restart()
    elif isinstance(action, CorruptResult):
        files = sorted(p for p in (world.root / "results").glob("*.*")
                       if p.is_file() and not p.name.endswith(".part"))
        if files:
            target = files[action.which % len(files)]
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 3] + b"\0" * 64)
    elif isinstance(action, CorruptStore):
        # What is journaled now and is not a first take dies with the store (the log
        # named its taskUUID; the invariants check it stays recoverable by taskUUID).
        for task_uuid in pending_task_uuids(world):
            world.lost_with_store.add(task_uuid)
        world.store_lost |= world.collected
        for ep in ENDPOINTS:  # also what no run returned: partial results of a failed job
            for task in world.accepted(ep):
                with contextlib.suppress(Exception):
                    if world.cache.store.results_of(world.endpoint(ep), task["taskUUID"]):
                        world.store_lost.add(task["taskUUID"])
        world.cache.store.close()
        path = world.cache.store.path
        if path.exists():
            if action.how == "garbage":
                path.write_bytes(b"<html>uploaded over the store</html>" * 64)
            else:
                with open(path, "r+b") as fh:
                    fh.write(b"\0" * 100)
        world.restart()
    elif isinstance(action, Plant):
        world.cache.store.ping()
        conn = sqlite3.connect(world.cache.store.path, timeout=10)
        now = time.time()
        try:
            conn.execute("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         ("../../../etc/passwd", world.endpoint("A"), str(uuid.uuid4()), 0,
                          "v", "u", None, None, None, 1, "", now, now))
            conn.execute("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (f"{uuid.uuid4()}-0.mp4", world.endpoint("B"), "nope", "x", 5, 6,
                          "seed", "cost", None, "size", 1, "a", "b"))
            conn.execute("INSERT INTO journal VALUES (?,?,?)",
                         (world.endpoint("A"), "f" * 64, "not-a-task"))
            conn.commit()
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    elif isinstance(action, Expire):
        accepted = world.accepted(action.ep)
        if accepted:
            task_uuid = accepted[action.which % len(accepted)]["taskUUID"]
            world.doubles[action.ep].expire_task(task_uuid)
            world.expired.add(task_uuid)
    elif isinstance(action, ModelIds):
        world.doubles[action.ep].sync3_model_ids = SYNC3_IDS[action.known]
    elif isinstance(action, Fetch):
        accepted = world.accepted(action.ep)
        if accepted:
            task_uuid = accepted[action.which % len(accepted)]["taskUUID"]
            do_fetch(world, action.ep, task_uuid, repr(action))
    check_journal(world)


# -- invariants --------------------------------------------------------------------------------


def evidence(world: World, ep: str, task_uuid: str) -> bool:
    """Runware ended the job: it failed, or it no longer knows it."""
    info = world.doubles[ep].job(task_uuid)
    return info is None or info["error"] is not None or info["expired"]


def check_journal(world: World) -> None:
    """Invariant 3: an accepted job not collected is still in the journal, unless the
    endpoint said it failed or does not know it."""
    try:
        store = cache_mod.ResultCache(world.root).store
        for ep in ENDPOINTS:
            endpoint = world.endpoint(ep)
            for task in world.accepted(ep):
                t = task["taskUUID"]
                if t in world.collected or t in world.lost_with_store or \
                        evidence(world, ep, t):
                    continue
                if store.journal_find_task(endpoint, t) is not None:
                    continue
                if store.results_of(endpoint, t):
                    world.collected.add(t)
                    continue
                world.fail(f"the journal entry of task {t} at {ep} was dropped without "
                           "positive evidence")
        store.close()
    except store_mod.StoreError as exc:
        world.fail(f"the store could not be read: {exc}")


def settle(world: World) -> None:
    """Collect whatever is still journaled: one fault-free run per request used."""
    world.restart()
    for ep in ENDPOINTS:
        used = {request_of(t) for t in world.accepted(ep)}
        for req in sorted(used):
            try:
                asyncio.run(jobs.run_cached_job(request(req), config=world.config(ep),
                                                cache=world.cache))
            except (errors.TaskFailedError, errors.DownloadError):
                pass  # a job that failed or was forgotten while nobody watched
            except Exception as exc:  # noqa: BLE001
                world.fail(f"settling request {req} at {ep}: {type(exc).__name__}: {exc}")


def kept(world: World, endpoint: str, task_uuid: str, count: int) -> bool:
    rows = world.cache.store.results_of(endpoint, task_uuid)
    return len(rows) >= count and all(world.cache.is_intact(r) for r in rows)


def check_invariants(world: World) -> None:
    before = {ep: len(world.accepted(ep)) for ep in ENDPOINTS}
    for ep in ENDPOINTS:  # invariant 1
        counts: dict[int, list[str]] = {}
        for task in world.accepted(ep):
            counts.setdefault(request_of(task), []).append(task["taskUUID"])
        for req, uuids in counts.items():
            ended = sum(1 for t in uuids if evidence(world, ep, t) or t in world.expired)
            allowed = 1 + world.new_takes.get((ep, req), 0) + ended
            if len(uuids) > allowed:
                world.fail(f"request {req} at {ep}: {len(uuids)} accepted submissions, at "
                           f"most {allowed} allowed")
    settle(world)
    check_journal(world)
    for ep in ENDPOINTS:  # invariant 2
        endpoint = world.endpoint(ep)
        for task in world.accepted(ep):
            t = task["taskUUID"]
            finished = [r for r in world.doubles[ep].job(t)["results"] if r["done"]]
            if not finished or (t in world.expired and t not in world.collected):
                continue  # nothing was produced, or Runware forgot it before we got it
            if kept(world, endpoint, t, len(finished)):
                continue
            if t in world.expired:
                continue  # a damaged copy of a task Runware no longer has
            if t in world.lost_with_store or t in world.store_lost or \
                    world.cache.store.results_of(endpoint, t):
                # Its records died with a store, or a file was damaged: it must still be
                # recoverable by its taskUUID, without paying.
                do_fetch(world, ep, t, f"recover {t}")
                if not kept(world, endpoint, t, len(finished)):
                    world.fail(f"task {t} at {ep}: cannot be recovered by taskUUID")
                continue
            world.fail(f"task {t} at {ep}: paid results are not on disk / not in the store")
    after = {ep: len(world.accepted(ep)) for ep in ENDPOINTS}
    for ep in ENDPOINTS:  # settling and recovery may resume, never pay for what they found
        fresh = after[ep] - before[ep]
        if fresh:
            news = world.accepted(ep)[before[ep]:]
            for task in news:
                req = request_of(task)
                old = [t["taskUUID"] for t in world.accepted(ep)[:before[ep]]
                       if request_of(t) == req]
                if old and not all(evidence(world, ep, t) or t in world.expired
                                   or t in world.lost_with_store for t in old) \
                        and world.new_takes.get((ep, req), 0) == 0:
                    world.fail(f"settling request {req} at {ep} paid again although its "
                               "job was known")


def run_schedule(actions: list, root: Path | None = None) -> list[str]:
    """Run one schedule in a fresh world; returns the violations (empty = all held)."""
    with tempfile.TemporaryDirectory(prefix="runware-faults-") as tmp:
        world = new_world(Path(root or tmp))
        try:
            for action in actions:
                do(world, action)
            check_invariants(world)
        finally:
            close_world(world)
        return world.violations


# -- two processes, one store ---------------------------------------------------------------------


def child_main(spec: str) -> None:
    """Entry point of one process: run the actions, print what it saw as JSON."""
    data = json.loads(spec)
    world = World(Path(data["root"]), {})
    urls = data["urls"]
    world.cache = cache_mod.ResultCache(world.root)
    out: dict[str, Any] = {"served": [], "crashes": [], "new_takes": []}
    for raw in data["actions"]:
        if raw["kind"] == "restart":
            world.cache.store.close()
            world.cache = cache_mod.ResultCache(world.root)
            continue
        action = Run(**raw["run"])
        hook = Phase(action.cancel)
        config = fast_config(urls[action.ep], job_timeout=0.05 if action.short else 20.0)
        if not action.reuse:
            out["new_takes"].append([action.ep, action.req])
        try:
            results = asyncio.run(jobs.run_cached_job(
                request(action.req), config=config, cache=world.cache, reuse=action.reuse,
                should_cancel=hook, on_progress=hook.progress))
        except EXPECTED:
            continue
        except Exception as exc:  # noqa: BLE001
            out["crashes"].append(f"{action}: {type(exc).__name__}: {exc}")
            continue
        out["served"] += [[action.ep, r.result.task_uuid, str(r.path), sha(r.path)]
                          for r in results]
    print("RESULT " + json.dumps(out), flush=True)


def run_two_processes(first: list, second: list, faults: list[tuple[str, str]],
                      root: Path | None = None) -> list[str]:
    """Two processes run their actions at once over one cache folder; faults are put on
    the shared doubles first (whichever process meets them)."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="runware-faults2-") as tmp:
        world = new_world(Path(root or tmp))
        try:
            for ep, fault in faults:
                inject(world.doubles[ep], fault)
            urls = {ep: d.base_url for ep, d in world.doubles.items()}
            procs = []
            for actions in (first, second):
                spec = {"root": str(world.root), "urls": urls, "actions": [
                    {"kind": "restart"} if isinstance(a, Restart) else
                    {"kind": "run", "run": dataclasses.asdict(a)} for a in actions]}
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", CHILD, json.dumps(spec)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for proc, actions in zip(procs, (first, second), strict=True):
                out, err = proc.communicate(timeout=300)
                world.log.append(f"process: {actions}")
                line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    world.fail(f"a process died: {err[-1500:]}")
                    continue
                seen = json.loads(line[len("RESULT "):])
                for crash in seen["crashes"]:
                    world.fail(f"crash in a process: {crash}")
                for ep, req in seen["new_takes"]:
                    world.new_takes[(ep, req)] = world.new_takes.get((ep, req), 0) + 1
                for ep, task_uuid, path, digest in seen["served"]:
                    world.collected.add(task_uuid)
                    if task_uuid not in {t["taskUUID"] for t in world.accepted(ep)} or \
                            digest not in world.shas(ep):
                        world.fail(f"a process was served {path} for {ep}, which that "
                                   "endpoint did not produce")
            for d in world.doubles.values():
                d.clear_faults()
            world.restart()
            check_journal(world)
            check_invariants(world)
        finally:
            close_world(world)
        return world.violations


CHILD = (
    "import sys; from pathlib import Path; "
    f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
    "import fault_engine; fault_engine.child_main(sys.argv[1])"
)
