"""The Runware panel's routes on a real aiohttp server (127.0.0.1), over a real store, with
jobs run against the double: the ledger pages, totals, CSV, the limit setting, live jobs,
and Recover end to end (a job interrupted after its submission is collected by the route
with no second submission)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time

import pytest
import requests
from aiohttp import web
from conftest import PACK, TEST_KEY, ovi_request, pack_module

ledger_routes = pack_module("nodes.ledger_routes")
spend_panel = pack_module("nodes.spend_panel")
common = pack_module("nodes.run")
jobs = pack_module("nodes.runware.jobs")
tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
store_mod = pack_module("nodes.runware.store")
context = pack_module("nodes.context")
cache_mod = pack_module("nodes.runware.cache")

PREFIX = "/runware_ovi_sync3"


@pytest.fixture
def panel(env, monkeypatch):
    """The panel's routes served on 127.0.0.1; yields the base URL."""
    monkeypatch.delenv("RUNWARE_DAILY_LIMIT_USD", raising=False)
    app = web.Application()
    for method, path, handler in ledger_routes.make_handlers():
        app.router.add_route(method, path, handler)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}{PREFIX}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def ovi_job(seed=1):
    return tasks.prepare_ovi(ovi_request(
        prompt="A host says <S>welcome<E>", seed=seed, steps=30, fps=12,
                             video_cfg_scale=5.0, audio_cfg_scale=4.0))


def ovi_node(seed=1, unique_id="7"):
    return asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(
        prompt="A host says <S>welcome<E>", seed=seed, steps=30, fps=12,
        video_cfg_scale=5.0, audio_cfg_scale=4.0, unique_id=unique_id))


def get(url, **params):
    reply = requests.get(url, params=params, timeout=30)
    assert reply.status_code == 200, reply.text
    assert TEST_KEY not in reply.text
    return reply.json()


def interrupted_after_submission(double, seed=5):
    """A paid job whose node went away mid-poll (ComfyUI stopped): journaled, unknown."""
    before = len(double.accepted_submissions())
    double.job_seconds = 1.5
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(errors.CancelledError):
        asyncio.run(jobs.run_cached_job(ovi_job(seed), config=common.client_config(),
                                        cache=common.result_cache(),
                                        should_cancel=stop.is_set))
    assert len(double.accepted_submissions()) == before + 1
    double.job_seconds = 0.3


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


# -- the ledger ------------------------------------------------------------------------------


def test_jobs_are_listed_newest_first_in_pages_with_playable_previews(panel, env):
    for seed in (1, 2, 3):
        ovi_node(seed)
    page = get(f"{panel}/jobs", limit=2)
    assert page["total"] == 3 and len(page["jobs"]) == 2 and page["preview_note"] is None
    assert page["endpoint"] == store_mod.api_endpoint(env.base_url)
    rest = get(f"{panel}/jobs", limit=2, offset=2)["jobs"]
    listed = page["jobs"] + rest
    assert [j["submitted"] for j in listed] == sorted((j["submitted"] for j in listed),
                                                      reverse=True)
    first = listed[0]
    assert first["model"] == "Ovi" and first["status"] == "succeeded"
    assert first["cost"] == pytest.approx(0.05) and first["node_id"] == "7"
    assert first["recoverable"] is False and len(first["fingerprint"]) == 64
    (file,) = first["files"]
    assert file["exists"] and file["preview"] == {
        "filename": file["file"], "subfolder": "runware/results", "type": "output"}
    output = common.host.output_directory()
    assert (output / "runware" / "results" / file["file"]).is_file()


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 201}, {"limit": "x"},
                                   {"offset": -1}])
def test_bad_page_parameters_are_refused(panel, query):
    reply = requests.get(f"{panel}/jobs", params=query, timeout=10)
    assert reply.status_code == 400 and "limit" in reply.json()["error"]


def test_other_endpoints_are_listed_only_when_asked(panel, env):
    ovi_node(1)
    store = common.result_cache().store
    (job,) = store.jobs()
    job.endpoint, job.task_uuid = "https://api.runware.ai:443", "0" * 8 + job.task_uuid[8:]
    store.transaction(lambda c: store._put_job(c, job), write=True)
    assert get(f"{panel}/jobs")["total"] == 1
    everything = get(f"{panel}/jobs", endpoint="all")
    assert everything["total"] == 2 and everything["endpoint"] == "all"


def test_a_failed_job_shows_its_error_scrubbed_and_capped(panel, env):
    # Runware's message echoes the key (a proxy or a bug might) and is very long.
    message = ("the model failed for key " + TEST_KEY + " at step 12; ") * 120
    env.fail_next_job(shape="errors", code="inferenceError", message=message)
    with pytest.raises(errors.TaskFailedError):
        ovi_node(1)
    (row,) = get(f"{panel}/jobs")["jobs"]
    assert row["status"] == "failed" and not row["recoverable"] and row["files"] == []
    assert row["error"] and "the model failed for key" in row["error"]
    assert TEST_KEY not in row["error"] and TEST_KEY[:12] not in row["error"]
    assert len(row["error"]) == 2000  # capped: the stored text is longer
    # A row whose stored error still holds the key (written before scrubbing, or by a
    # path that did not scrub): the route itself scrubs what it serves.
    store = common.result_cache().store
    (job,) = store.jobs()
    assert len(job.error) > 2000
    store.set_status(job.endpoint, job.task_uuid, "failed",
                     error=f"inferenceError: bad key {TEST_KEY};" +
                     "".join(f" frame {i} ok;" for i in range(400)))
    (row,) = get(f"{panel}/jobs")["jobs"]
    assert row["error"].startswith("inferenceError: bad key ")
    assert TEST_KEY not in row["error"] and TEST_KEY[:12] not in row["error"]
    assert len(row["error"]) == 2000


def test_previews_need_the_cache_inside_the_output_folder(panel, env, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNWARE_CACHE_DIR", str(tmp_path / "elsewhere"))
    ovi_node(1)
    page = get(f"{panel}/jobs")
    assert "RUNWARE_CACHE_DIR" in page["preview_note"]
    (file,) = page["jobs"][0]["files"]
    assert file["exists"] and file["preview"] is None


def test_totals_rates_and_csv(panel, env):
    ovi_node(1)
    ovi_node(2)
    totals = get(f"{panel}/totals")
    for name in ("session", "today", "last_30_days"):
        assert totals[name]["usd"] == pytest.approx(0.10) and totals[name]["jobs"] == 2
    assert totals["rates"] == [{"model": "Ovi", "unit": "result", "per_unit": 0.05,
                                "count": 2}]
    assert totals["limit"]["limit_usd"] is None and totals["day_started"] <= time.time()
    reply = requests.get(f"{panel}/jobs.csv", timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in reply.headers["Content-Disposition"]
    text = reply.content.decode("utf-8")
    assert text.startswith("\ufeffsubmitted,finished,model,status,cost_usd")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    listed = get(f"{panel}/jobs")["jobs"]
    assert [r["task_uuid"] for r in rows] == [j["task_uuid"] for j in listed]
    assert all(r["endpoint"] and r["fingerprint"] and r["files"] for r in rows)


# -- the limit setting --------------------------------------------------------------------------


def test_the_limit_setting_is_stored_server_side_and_the_environment_wins(panel, env,
                                                                          monkeypatch):
    assert get(f"{panel}/limit")["limit_usd"] is None
    reply = requests.post(f"{panel}/limit", json={"limit_usd": 5}, timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["limit_usd"] == 5.0 and body["source"] == "setting"
    assert body["today_usd"] == 0 and body["remaining_usd"] == 5.0
    stored = common.host.user_directory() / "runware_spend_limit.json"
    assert json.loads(stored.read_text()) == {"daily_limit_usd": 5.0}
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", "2.5")
    body = get(f"{panel}/limit")
    assert body["limit_usd"] == 2.5 and body["source"] == "environment"
    assert body["setting_usd"] == 5.0 and body["env_set"]
    monkeypatch.delenv("RUNWARE_DAILY_LIMIT_USD")
    for bad in ("5", -1, True, 1e7, None if False else "x"):
        reply = requests.post(f"{panel}/limit", json={"limit_usd": bad}, timeout=10)
        assert reply.status_code == 400, bad
    assert requests.post(f"{panel}/limit", json={}, timeout=10).status_code == 400
    cleared = requests.post(f"{panel}/limit", json={"limit_usd": 0}, timeout=10).json()
    assert cleared["limit_usd"] is None and cleared["setting_usd"] is None


def test_a_damaged_limit_file_is_reported_and_saving_repairs_it(panel, env):
    path = common.host.user_directory() / "runware_spend_limit.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{oops")
    body = get(f"{panel}/limit")
    assert "could not be read" in body["error"] and "runware_spend_limit.json" in body["error"]
    assert str(path) not in body["error"]  # the file's name, never its absolute path
    assert requests.post(f"{panel}/limit", json={"limit_usd": 1}, timeout=10).json()[
        "error"] is None


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"},
                                     {"Host": "evil.example"}])
def test_other_sites_and_rebound_names_are_refused(panel, env, headers):
    for path in ("/jobs", "/jobs.csv", "/totals", "/live", "/limit"):
        assert requests.get(panel + path, headers=headers, timeout=10).status_code == 403
    for path, body in (("/limit", {"limit_usd": 0}),
                       ("/recover", {"endpoint": "http://x:1", "task_uuid": "y"})):
        reply = requests.post(panel + path, json=body, headers=headers, timeout=10)
        assert reply.status_code == 403
    assert not (common.host.user_directory() / "runware_spend_limit.json").exists()


def test_writes_must_be_json(panel, env):
    origin = panel.split(PREFIX)[0]
    form = requests.post(f"{panel}/limit", data={"limit_usd": "0"},
                         headers={"Origin": origin}, timeout=10)
    assert form.status_code == 415
    form = requests.post(f"{panel}/recover", data={"task_uuid": "x"},
                         headers={"Origin": origin}, timeout=10)
    assert form.status_code == 415


# -- live jobs ---------------------------------------------------------------------------------


def test_running_jobs_are_readable_from_a_fresh_page(panel, env):
    ovi_node(1)  # history: the next job has an estimate
    env.job_seconds = 2.0
    worker = threading.Thread(target=ovi_node, args=(2, "12"))
    worker.start()
    live = wait_for(lambda: [j for j in get(f"{panel}/live")["jobs"]
                             if j["phase"] == "processing"])
    worker.join(30)
    (job,) = live
    assert job["model"] == "Ovi" and job["node_id"] == "12" and job["kind"] == "node"
    assert job["elapsed"] >= 0 and job["task_uuid"]
    assert job["estimate"]["text"] == "~$0.05, from 1 similar job"
    assert get(f"{panel}/live")["jobs"] == []


# -- Recover -----------------------------------------------------------------------------------


def test_recover_collects_an_interrupted_job_without_a_second_submission(panel, env):
    interrupted_after_submission(env)
    (listed,) = get(f"{panel}/jobs")["jobs"]
    assert listed["status"] == "unknown" and listed["recoverable"] and listed["journaled"]
    assert listed["files"] == []
    body = {"endpoint": listed["endpoint"], "task_uuid": listed["task_uuid"]}
    first = requests.post(f"{panel}/recover", json=body, timeout=10)
    again = requests.post(f"{panel}/recover", json=body, timeout=10)  # a double click
    assert first.status_code == 202, first.text
    assert again.status_code == 409 and "already" in again.json()["error"]
    assert wait_for(lambda: [j for j in get(f"{panel}/live")["jobs"]
                             if j["kind"] == "recover"] or
                    get(f"{panel}/jobs")["jobs"][0]["status"] == "succeeded")
    done = wait_for(lambda: (lambda j: j if j["status"] == "succeeded" else None)(
        get(f"{panel}/jobs")["jobs"][0]))
    assert done["journaled"] is False and not done["recoverable"]
    assert done["cost"] == pytest.approx(0.05) and done["files"][0]["preview"]
    assert len(env.accepted_submissions()) == 1  # collected, never submitted again
    assert wait_for(lambda: get(f"{panel}/live")["jobs"] == [])
    late = requests.post(f"{panel}/recover", json=body, timeout=10)
    assert late.status_code == 409 and "succeeded" in late.json()["error"]
    # The graph queued again takes the recovered result: no request at all.
    env.reset_log()
    results = asyncio.run(jobs.run_cached_job(ovi_job(5), config=common.client_config(),
                                              cache=common.result_cache()))
    assert results[0].cached and env.log == []


def recover_and_wait(panel, listed):
    """POST Recover for a listed job; the job's row once the recovery has ended."""
    reply = requests.post(f"{panel}/recover", json={"endpoint": listed["endpoint"],
                                                    "task_uuid": listed["task_uuid"]},
                          timeout=10)
    assert reply.status_code == 202, reply.text
    wait_for(lambda: get(f"{panel}/live")["jobs"] == [])
    return next(j for j in get(f"{panel}/jobs")["jobs"]
                if j["task_uuid"] == listed["task_uuid"])


def test_recover_collects_a_job_that_timed_out_without_a_second_submission(
        panel, env, monkeypatch):
    env.job_seconds = 2.0
    monkeypatch.setenv("RUNWARE_JOB_TIMEOUT", "0.5")  # the node gives up before the job ends
    with pytest.raises(errors.JobTimeoutError):
        ovi_node(1)
    assert len(env.accepted_submissions()) == 1
    (listed,) = get(f"{panel}/jobs")["jobs"]
    assert listed["status"] == "unknown" and listed["recoverable"] and listed["journaled"]
    assert listed["files"] == []
    time.sleep(2.0)  # later, the job has finished on Runware (still the short time-out)
    done = recover_and_wait(panel, listed)
    assert done["status"] == "succeeded", done
    assert done["journaled"] is False and not done["recoverable"]
    assert done["cost"] == pytest.approx(0.05) and done["files"][0]["exists"]
    assert len(env.accepted_submissions()) == 1  # collected, never submitted again


def test_recover_collects_a_job_after_a_restart_without_a_second_submission(
        panel, env, monkeypatch):
    interrupted_after_submission(env)
    # ComfyUI restarts: no live jobs, no recoveries under way, a new store connection
    # (only the files on disk survive).
    for cache in context._CACHES.values():
        cache.store.close()
    monkeypatch.setattr(context, "_CACHES", {})
    monkeypatch.setattr(spend_panel, "LIVE", spend_panel.LiveJobs())
    monkeypatch.setattr(spend_panel, "_RECOVERING", set())
    (listed,) = get(f"{panel}/jobs")["jobs"]
    assert listed["status"] == "unknown" and listed["recoverable"] and listed["journaled"]
    done = recover_and_wait(panel, listed)
    assert done["status"] == "succeeded", done
    assert done["journaled"] is False and done["files"][0]["exists"]
    assert len(env.accepted_submissions()) == 1
    # A fresh store object on the same folder sees the collected job.
    fresh = cache_mod.ResultCache(common.host.output_directory() / "runware")
    (job,) = fresh.store.jobs()
    assert job.status == "succeeded" and job.task_uuid == listed["task_uuid"]
    fresh.store.close()


def test_recover_and_the_node_resuming_the_same_job_at_once(panel, env):
    interrupted_after_submission(env)
    env.job_seconds = 1.0
    (listed,) = get(f"{panel}/jobs")["jobs"]
    reply = requests.post(f"{panel}/recover", json={"endpoint": listed["endpoint"],
                                                    "task_uuid": listed["task_uuid"]},
                          timeout=10)
    assert reply.status_code == 202
    results = asyncio.run(jobs.run_cached_job(ovi_job(5), config=common.client_config(),
                                              cache=common.result_cache()))
    assert results[0].path.is_file() and results[0].result.task_uuid == listed["task_uuid"]
    wait_for(lambda: get(f"{panel}/live")["jobs"] == [])
    (after,) = get(f"{panel}/jobs")["jobs"]
    assert after["status"] == "succeeded" and len(after["files"]) == 1
    assert len(env.accepted_submissions()) == 1
    files = list((common.host.output_directory() / "runware" / "results").iterdir())
    assert [f.name for f in files] == [after["files"][0]["file"]]


def test_recover_refuses_what_it_cannot_do(panel, env, monkeypatch):
    ovi_node(1)
    (done,) = get(f"{panel}/jobs")["jobs"]
    cases = [
        ({"endpoint": done["endpoint"], "task_uuid": done["task_uuid"]}, 409, "succeeded"),
        ({"endpoint": done["endpoint"], "task_uuid": "9" * 8 + done["task_uuid"][8:]}, 404,
         "No such job"),
        ({"endpoint": "javascript:alert(1)", "task_uuid": done["task_uuid"]}, 400, "ledger"),
        ({"endpoint": done["endpoint"], "task_uuid": "../../etc"}, 400, "ledger"),
        ([1, 2], 400, "JSON"),
    ]
    for body, status, text in cases:
        reply = requests.post(f"{panel}/recover", json=body, timeout=10)
        assert reply.status_code == status and text in reply.json()["error"], (body, reply.text)
    # A pending job at another endpoint: say how to reach it.
    interrupted_after_submission(env, seed=9)
    store = common.result_cache().store
    pending = next(j for j in store.jobs() if j.status == "unknown")
    pending.endpoint = "https://api.runware.ai:443"
    store.transaction(lambda c: store._put_job(c, pending), write=True)
    reply = requests.post(f"{panel}/recover", json={"endpoint": pending.endpoint,
                                                    "task_uuid": pending.task_uuid},
                          timeout=10)
    assert reply.status_code == 409 and "RUNWARE_API_URL" in reply.json()["error"]
    # No key: a clear error, and nothing started.
    monkeypatch.delenv("RUNWARE_API_KEY")
    local = next(j for j in get(f"{panel}/jobs")["jobs"] if j["recoverable"])
    reply = requests.post(f"{panel}/recover", json={"endpoint": local["endpoint"],
                                                    "task_uuid": local["task_uuid"]},
                          timeout=10)
    assert reply.status_code == 400 and "RUNWARE_API_KEY" in reply.json()["error"]
    assert get(f"{panel}/live")["jobs"] == []


def test_no_route_ever_returns_the_key(panel, env):
    interrupted_after_submission(env)
    ovi_node(1)
    for path in ("/jobs", "/jobs.csv", "/totals", "/live", "/limit"):
        reply = requests.get(panel + path, timeout=10)
        assert reply.status_code == 200 and TEST_KEY not in reply.text
        assert TEST_KEY[:12] not in reply.text
