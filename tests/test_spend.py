"""Spend over the ledger: what each job counts, totals by day, estimates, the daily limit.

Ledger rows are written into a real store; the node-level tests run the real nodes against
the double and check its request log.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import sqlite3
import threading
import time
import types
import uuid

import pytest
from conftest import PACK, ovi_request, pack_module, sync3_request
from media_factory import write_mp4

spend = pack_module("nodes.runware.spend")
store_mod = pack_module("nodes.runware.store")
cache_mod = pack_module("nodes.runware.cache")
tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
jobs = pack_module("nodes.runware.jobs")
common = pack_module("nodes.run")
spend_panel = pack_module("nodes.spend_panel")

EP = "https://api.runware.ai:443"
OVI = "runware:190@1"
SYNC3 = "sync:lipsync@3"


@pytest.fixture
def store(tmp_path):
    return store_mod.Store(tmp_path / "store.sqlite")


def put_job(store, *, submitted, status="succeeded", cost=0.05, model=OVI, endpoint=EP,
            owner=None, number_results=1, fingerprint=None, pricing=None, estimate=None,
            error=None, task_uuid=None):
    """One ledger row (and its request's pricing row when ``pricing`` is given)."""
    task_uuid = task_uuid or str(uuid.uuid4())
    fingerprint = fingerprint or hashlib.sha256(task_uuid.encode()).hexdigest()
    job = store_mod.JobRecord(
        endpoint=endpoint, task_uuid=task_uuid, fingerprint=fingerprint, model=model,
        task={"taskType": "videoInference"}, extension="mp4", number_results=number_results,
        submitted=submitted, status=status, owner=owner, cost=cost, error=error,
        finished=None if status in store_mod.PENDING_STATUSES else submitted + 30)
    store.transaction(lambda c: store._put_job(c, job), write=True)
    if pricing is not None:
        spend.record_pricing(store, endpoint, fingerprint, pricing, estimate, when=submitted)
    return job


def ovi_pricing(steps=30, results=1):
    return spend.pricing_of(OVI, {"steps": steps, "fps": 24, "numberResults": results})


# -- the store's pricing table ---------------------------------------------------------------


def test_a_store_from_before_the_pricing_table_gets_it_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "store.sqlite"
    old = store_mod.Store(path)
    job = put_job(old, submitted=time.time())
    old.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE request_pricing")
    reopened = store_mod.Store(path)
    assert [j.task_uuid for j in reopened.jobs()] == [job.task_uuid]
    spend.record_pricing(reopened, EP, job.fingerprint, ovi_pricing(), 0.05)
    (row,) = spend.ledger_since(reopened, EP, 0)
    assert (row.unit, row.units, row.estimate) == ("result", 1.0, 0.05)
    assert not list(tmp_path.glob("*.set-aside-*"))  # not taken for a foreign file


# -- what counts ---------------------------------------------------------------------------------


def test_each_status_counts_its_cost_or_estimate(store):
    now = time.time()
    pricing = ovi_pricing()
    cases = {
        "succeeded": (0.05, 0.05), "recovered": (0.07, 0.07), "failed": (None, 0.0),
        "refused": (None, 0.0), "not_found": (None, 0.0), "running": (None, 0.04),
        "unknown": (None, 0.04), "submitting": (None, 0.04),
    }
    for status, (cost, _) in cases.items():
        put_job(store, submitted=now, status=status, cost=cost, pricing=pricing,
                estimate=0.04, error=status)
    counted = {j.job.status: j.counted for j in spend.ledger_since(store, EP, 0)}
    assert counted == {status: want for status, (_, want) in cases.items()}
    # A finished job without a reported cost keeps counting its estimate; a failed one
    # with partial results counts what Runware reported for them.
    put_job(store, submitted=now, status="succeeded", cost=None, pricing=pricing,
            estimate=0.03, error="no-cost")
    put_job(store, submitted=now, status="failed", cost=0.02, error="partial")
    by_error = {j.job.error: j for j in spend.ledger_since(store, EP, 0)}
    assert by_error["no-cost"].counted == 0.03 and by_error["no-cost"].by_estimate
    assert by_error["partial"].counted == 0.02 and not by_error["partial"].by_estimate
    assert by_error["running"].recoverable and not by_error["succeeded"].recoverable


@pytest.fixture
def new_york(monkeypatch):
    """Local time in New York (a DST zone), restored afterwards."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available on this platform")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(*fields):
    return time.mktime((*fields, 0, 0, -1))


def test_today_starts_at_local_midnight_also_across_dst(new_york):
    assert spend.day_start(local(2026, 3, 9, 0, 30, 0)) == local(2026, 3, 9, 0, 0, 0)
    assert spend.day_start(local(2026, 3, 8, 23, 59, 59)) == local(2026, 3, 8, 0, 0, 0)
    # 8 March 2026 has 23 hours in New York: a day back is still local midnight.
    assert spend.day_start(local(2026, 3, 9, 12, 0, 0), 1) == local(2026, 3, 8, 0, 0, 0)
    assert spend.day_start(local(2026, 3, 9, 12, 0, 0), 1) == \
        local(2026, 3, 9, 0, 0, 0) - 23 * 3600
    assert spend.day_start(local(2026, 3, 1, 8, 0, 0), 29) == local(2026, 1, 31, 0, 0, 0)


def test_totals_for_the_session_today_and_the_last_30_days(store, new_york):
    now = local(2026, 3, 20, 15, 0, 0)
    me, other = "box:1", "box:2"
    session_start = local(2026, 3, 20, 9, 0, 0)
    put_job(store, submitted=local(2026, 3, 20, 10, 0, 0), cost=0.5, owner=me)
    put_job(store, submitted=local(2026, 3, 20, 11, 0, 0), cost=0.25, owner=other)
    put_job(store, submitted=local(2026, 3, 20, 0, 0, 1), cost=0.125, owner=me)  # before session
    put_job(store, submitted=local(2026, 3, 19, 23, 59, 59), cost=1.0)  # yesterday
    put_job(store, submitted=local(2026, 2, 19, 0, 0, 1), cost=2.0)  # 29 days back
    put_job(store, submitted=local(2026, 2, 18, 23, 59, 0), cost=4.0)  # 30 days back: out
    put_job(store, submitted=local(2026, 3, 20, 12, 0, 0), cost=8.0,
            endpoint="http://127.0.0.1:8765")  # another endpoint never counts
    put_job(store, submitted=local(2026, 3, 20, 13, 0, 0), status="running", cost=None,
            owner=me, pricing=ovi_pricing(), estimate=0.0625)
    found = spend.totals(store, EP, now=now, owner=me, session_start=session_start)
    assert found["session"] == spend.Total(0.5625, 2, 1)
    assert found["today"] == spend.Total(0.9375, 4, 1)
    assert found["last_30_days"] == spend.Total(3.9375, 6, 1)


# -- estimates ------------------------------------------------------------------------------------


def test_estimate_is_the_median_of_similar_jobs_and_says_so(store):
    now = time.time()
    for i, cost in enumerate((0.40, 0.42, 0.44, 0.41, 0.43, 0.45, 0.39, 0.46)):
        put_job(store, submitted=now - 100 + i, cost=cost, pricing=ovi_pricing(steps=30))
    put_job(store, submitted=now, cost=9.0, pricing=ovi_pricing(steps=50))  # other settings
    put_job(store, submitted=now, cost=None, status="running", pricing=ovi_pricing())
    put_job(store, submitted=now, cost=5.0, status="failed", pricing=ovi_pricing())
    est = spend.estimate(store, EP, OVI, ovi_pricing(steps=30))
    assert est.usd == pytest.approx(0.425) and est.count == 8 and est.similar
    assert est.text == "~$0.425, median of 8 similar jobs"
    two = spend.estimate(store, EP, OVI, ovi_pricing(steps=30, results=2))
    assert two.usd == pytest.approx(0.85)
    assert two.text == "~$0.85 (2 results at ~$0.425 each), median of 8 similar jobs"
    # No similar job: the model's jobs with other settings, and the basis says so.
    other = spend.estimate(store, EP, OVI, ovi_pricing(steps=10))
    assert other.count == 9 and not other.similar and other.usd == pytest.approx(0.43)
    assert other.basis == "median of 9 Ovi jobs with other settings"
    one = spend.estimate(store, EP, OVI, ovi_pricing(steps=50))
    assert one.text == "~$9.00, from 1 similar job"


def test_no_history_is_unknown_and_other_endpoints_never_count(store):
    put_job(store, submitted=time.time(), cost=0.05, endpoint="http://127.0.0.1:8765",
            pricing=ovi_pricing())
    est = spend.estimate(store, EP, OVI, ovi_pricing())
    assert est.usd is None
    assert est.text == "unknown (no earlier Ovi job with a known cost at this endpoint)"


def test_estimate_uses_the_newest_twenty_jobs(store):
    now = time.time()
    for i in range(30):  # older jobs were cheaper
        put_job(store, submitted=now - 1000 + i, cost=0.10 if i < 10 else 0.30,
                pricing=ovi_pricing())
    est = spend.estimate(store, EP, OVI, ovi_pricing())
    assert est.count == 20 and est.usd == pytest.approx(0.30)


def test_sync3_is_estimated_per_second_of_input_video(store, tmp_path):
    video = write_mp4(tmp_path / "v.mp4", frames=24, fps=12)

    def sync3_job(seconds, results=1, **extra):
        facts = tasks.VideoFacts(96, 64, 12.0, int(seconds * 12), seconds)
        return tasks.prepare_sync3(sync3_request(
            video_source=video, video_mime="video/mp4", video=facts,
            speech_text="Hello there", number_results=results, **extra))

    ten = sync3_job(10.0)
    pricing = spend.pricing_of(ten.model, ten.task, ten.video_seconds)
    assert (pricing.unit, pricing.units) == ("second", 10.0)
    now = time.time()
    put_job(store, submitted=now - 2, model=SYNC3, cost=1.0, pricing=pricing)  # $0.10/s
    put_job(store, submitted=now - 1, model="sync:3@0", cost=1.2, pricing=pricing)  # old id
    put_job(store, submitted=now, model=SYNC3, cost=0.55,
            pricing=spend.pricing_of(SYNC3, sync3_job(5.0).task, 5.0))  # $0.11/s
    thirty = sync3_job(30.0, results=2)
    est = spend.estimate(store, EP, thirty.model,
                         spend.pricing_of(thirty.model, thirty.task, thirty.video_seconds))
    assert est.units == 60.0 and est.per_unit == pytest.approx(0.11)
    assert est.usd == pytest.approx(6.6) and est.count == 3
    assert est.text == "~$6.60 (60.0 s at ~$0.11/s), median of 3 similar jobs"
    # Another voice source is another price setting: the same model, other settings.
    segs = sync3_job(4.0, sync_mode="bounce")
    other = spend.estimate(store, EP, SYNC3, spend.pricing_of(SYNC3, segs.task, 4.0))
    assert not other.similar and other.usd == pytest.approx(0.44)
    # A sync-3 job without its seconds (recovered by taskUUID) gives no per-second rate.
    put_job(store, submitted=now + 1, model=SYNC3, cost=50.0, status="recovered")
    assert spend.estimate(store, EP, SYNC3, pricing).per_unit == pytest.approx(0.11)


def test_ovi_price_settings_and_what_is_left_out():
    base = tasks.prepare_ovi(ovi_request(prompt="a <S>b<E>", seed=1, steps=30, fps=24,
                             video_cfg_scale=5.0, audio_cfg_scale=4.0))
    same = tasks.prepare_ovi(ovi_request(prompt="other words", seed=99, steps=30, fps=24,
                             video_cfg_scale=3.0, audio_cfg_scale=2.0, number_results=3,
                             video_negative_prompt="blur"))
    more_steps = tasks.prepare_ovi(ovi_request(prompt="a <S>b<E>", seed=1, steps=50, fps=24,
                                   video_cfg_scale=5.0, audio_cfg_scale=4.0))
    key = spend.pricing_of(base.model, base.task).price_key
    assert spend.pricing_of(same.model, same.task).price_key == key
    assert spend.pricing_of(same.model, same.task).units == 3
    assert spend.pricing_of(more_steps.model, more_steps.task).price_key != key


# -- the daily limit -----------------------------------------------------------------------------


def est(value, count=8):
    return spend.Estimate(value, value, "result", 1.0, count if value else 0, True, "Ovi")


@pytest.mark.parametrize(("spent", "estimate", "allowed"), [
    (4.00, 0.50, True), (4.50, 0.50, True), (4.60, 0.50, False), (0.0, 6.0, False),
    (4.99, None, True), (5.00, None, False), (7.0, None, False), (0.0, 0.0, True),
])
def test_the_limit_rule(spent, estimate, allowed):
    limit = spend.DailyLimit(5.0, "setting")
    today = spend.Total(spent, 3, 0)
    if allowed:
        spend.check_daily_limit(limit, today, est(estimate))
    else:
        with pytest.raises(spend.SpendLimitError):
            spend.check_daily_limit(limit, today, est(estimate))
    spend.check_daily_limit(spend.DailyLimit(None, None), today, est(estimate))


def test_the_limit_error_names_limit_spend_estimate_and_where_to_change_it():
    with pytest.raises(spend.SpendLimitError) as info:
        spend.check_daily_limit(spend.DailyLimit(5.0, "setting"), spend.Total(4.8, 9, 2),
                                est(0.42))
    text = str(info.value)
    for part in ("$5.00", "$4.80", "~$0.42, median of 8 similar jobs", "since midnight",
                 "2 of its jobs counted at their estimate", "Nothing was uploaded",
                 "Settings -> Runware -> Daily spend limit", "dailySpendLimit"):
        assert part in text, part
    with pytest.raises(spend.SpendLimitError) as info:
        spend.check_daily_limit(spend.DailyLimit(5.0, "environment"), spend.Total(5.0, 9),
                                est(None))
    text = str(info.value)
    assert "RUNWARE_DAILY_LIMIT_USD" in text and "cost is unknown" in text
    assert "below the limit" in text


def test_limit_from_the_environment_wins_and_is_validated(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWARE_DAILY_LIMIT_USD", raising=False)
    file = spend.LimitFile(tmp_path / "user" / "runware_spend_limit.json")
    assert spend.daily_limit(file) == spend.DailyLimit(None, None)
    file.save(12.5)
    assert spend.daily_limit(file) == spend.DailyLimit(12.5, "setting")
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", "3")
    assert spend.daily_limit(file) == spend.DailyLimit(3.0, "environment")
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", " 0 ")  # the server says: no limit
    assert spend.daily_limit(file) == spend.DailyLimit(None, "environment")
    for bad in ("$5", "5 USD", "-1", "nan", "inf", "1e9"):
        monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", bad)
        with pytest.raises(errors.SettingError) as info:
            spend.daily_limit(file)
        assert "RUNWARE_DAILY_LIMIT_USD" in str(info.value) and "0 for no limit" in str(
            info.value)
    file.save(None)
    monkeypatch.delenv("RUNWARE_DAILY_LIMIT_USD")
    assert spend.daily_limit(file) == spend.DailyLimit(None, None)


@pytest.mark.parametrize("content", ['{"daily_limit_usd": "5"}', "not json",
                                     '{"daily_limit_usd": -2}', "[1]", "\x00\xff"])
def test_a_limit_file_that_cannot_be_read_stops_paid_jobs_with_a_clear_error(tmp_path,
                                                                            content):
    path = tmp_path / "runware_spend_limit.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(errors.SettingError) as info:
        spend.LimitFile(path).read()
    assert "runware_spend_limit.json" in str(info.value) and "Settings -> Runware" in str(
        info.value)
    spend.LimitFile(path).save(2.0)  # saving again repairs it
    assert spend.LimitFile(path).read() == 2.0


def test_saving_the_limit_replaces_a_planted_link_without_following_it(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    path = tmp_path / "runware_spend_limit.json"
    path.symlink_to(target)
    with pytest.raises(errors.SettingError):
        spend.LimitFile(path).read()
    spend.LimitFile(path).save(1.5)
    assert not path.is_symlink() and target.read_text() == "keep me"
    assert spend.LimitFile(path).read() == 1.5


def test_two_runs_at_once_cannot_both_pass_a_limit_only_one_fits_in(store):
    put_job(store, submitted=time.time(), cost=0.5, pricing=ovi_pricing())
    limit = lambda: spend.DailyLimit(1.2, "setting")  # noqa: E731
    reservations = spend.Reservations()
    first = spend.SpendGuard(store, EP, OVI, ovi_pricing(steps=31), limit,
                             reservations=reservations)
    second = spend.SpendGuard(store, EP, OVI, ovi_pricing(steps=32), limit,
                              reservations=reservations)
    assert first.estimate.usd == pytest.approx(0.5)
    first.before_submit("a" * 64)  # 0.5 spent + 0.5 reserved
    with pytest.raises(spend.SpendLimitError):
        second.before_submit("b" * 64)
    first.release()  # its run ended without a ledger row (e.g. an upload failed)
    second.before_submit("b" * 64)
    second.release()


# -- CSV ------------------------------------------------------------------------------------------


def test_csv_has_every_column_and_never_a_formula(store):
    put_job(store, submitted=time.time(), status="failed", cost=None,
            error="=HYPERLINK(\"http://evil\") @SUM(1)")
    put_job(store, submitted=time.time() - 5, cost=0.05, pricing=ovi_pricing(),
            estimate=0.04)
    text = spend.ledger_csv(spend.ledger_since(store, None, 0, results=True))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == spend.CSV_COLUMNS
    assert rows[0]["error"].startswith("'=") and rows[0]["status"] == "failed"
    assert rows[1]["cost_usd"] == "0.050000" and rows[1]["estimate_usd"] == "0.040000"
    assert rows[1]["endpoint"] == EP and len(rows[1]["fingerprint"]) == 64
    assert rows[1]["model"] == "Ovi" and rows[1]["submitted"][:2] == "20"


# -- the nodes ------------------------------------------------------------------------------------


@pytest.fixture
def comfy_server(monkeypatch):
    """A stand-in PromptServer: its running queue item and the events sent to pages."""
    events: list[tuple[str, dict]] = []
    texts: list[tuple[str, str]] = []

    class Queue:
        currently_running = {0: (1, "prompt-1234", {}, {}, [])}

    class Instance:
        routes = None
        prompt_queue = Queue()

        def send_sync(self, event, data, sid=None):
            events.append((event, json.loads(json.dumps(data))))

        def send_progress_text(self, text, node_id):
            texts.append((node_id, text))

    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=Instance())
    monkeypatch.setitem(__import__("sys").modules, "server", server)
    return events, texts


def ovi(seed=1, **kwargs):
    args = dict(prompt="A host says <S>welcome<E>", seed=seed, steps=30, fps=12,
                video_cfg_scale=5.0, audio_cfg_scale=4.0, unique_id="7")
    args.update(kwargs)
    return asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(**args))


def ledger(env):
    return common.result_cache().store.jobs(endpoint=store_mod.api_endpoint(env.base_url))


def test_the_limit_refuses_a_paid_job_before_any_request(env, monkeypatch):
    ovi(seed=1)  # $0.05 today
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", "0.08")
    env.reset_log()
    with pytest.raises(spend.SpendLimitError) as info:
        ovi(seed=2)
    assert env.log == []  # zero requests: no upload, no submission, not even a poll
    text = str(info.value)
    for part in ("$0.08", "$0.05", "~$0.05, from 1 similar job", "RUNWARE_DAILY_LIMIT_USD"):
        assert part in text, part
    assert len(ledger(env)) == 1
    # The same from the settings dialog's file, with an image to upload: still nothing sent.
    monkeypatch.delenv("RUNWARE_DAILY_LIMIT_USD")
    spend_panel.limit_file().save(0.09)
    import torch
    with pytest.raises(spend.SpendLimitError) as info:
        ovi(seed=3, image=torch.rand(1, 64, 64, 3))
    assert env.log == [] and "Settings -> Runware -> Daily spend limit" in str(info.value)
    spend_panel.limit_file().save(0.10)  # 0.05 + 0.05 fits exactly
    ovi(seed=3)
    assert len(env.accepted_submissions()) == 1 and len(ledger(env)) == 2


def test_cached_results_and_resumed_jobs_never_count_against_the_limit(env, monkeypatch):
    ovi(seed=1)
    env.job_seconds = 1.5
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(errors.CancelledError):  # ComfyUI goes down after the submission
        asyncio.run(jobs.run_cached_job(
            tasks.prepare_ovi(ovi_request(
                prompt="A host says <S>welcome<E>", seed=2, steps=30, fps=12,
                              video_cfg_scale=5.0, audio_cfg_scale=4.0)),
            config=common.client_config(), cache=common.result_cache(),
            should_cancel=stop.is_set))
    env.job_seconds = 0.1
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", "0.01")  # already passed today
    assert json.loads(ovi(seed=1)["result"][4][0])["cached"] is True
    resumed = json.loads(ovi(seed=2)["result"][4][0])
    assert resumed["cached"] is False and len(env.accepted_submissions()) == 2
    with pytest.raises(spend.SpendLimitError):
        ovi(seed=3)


def test_without_history_a_job_may_start_while_today_is_below_the_limit(env, monkeypatch):
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", "0.04")
    out = json.loads(ovi(seed=1)["result"][4][0])  # no estimate, nothing spent: allowed
    assert out["estimate"]["usd"] is None and out["cost"] == pytest.approx(0.05)
    env.reset_log()
    with pytest.raises(spend.SpendLimitError):
        ovi(seed=2)  # estimated now: 0.05 + 0.05 > 0.04
    assert env.log == []
    # A cached result's info keeps the estimate made before it was paid.
    again = json.loads(ovi(seed=1)["result"][4][0])
    assert again["cached"] and again["estimate"] == out["estimate"]


def test_status_text_info_prompt_id_and_live_events_carry_the_estimate(env, comfy_server):
    events, texts = comfy_server
    ovi(seed=1)
    events.clear()
    texts.clear()
    env.job_seconds = 1.2
    info = json.loads(ovi(seed=2)["result"][4][0])
    assert info["estimate"]["usd"] == pytest.approx(0.05)
    assert info["estimate"]["text"] == "~$0.05, from 1 similar job"
    lines = [t for node, t in texts if node == "7"]
    assert any("processing" in t and "est. ~$0.05, from 1 similar job" in t for t in lines)
    assert "est." not in lines[-1] and "$0.0500" in lines[-1]
    (job, _) = ledger(env)
    assert job.prompt_id == "prompt-1234" and job.node_id == "7"
    ours = [d for e, d in events if e == "runware_ovi_sync3.job"]
    assert [d["op"] for d in ours][-1] == "end" and ours[-1]["job"]["outcome"] == "done"
    phases = {d["job"]["phase"] for d in ours}
    assert {"starting", "submitting", "processing", "downloading"} <= phases
    running = [d["job"] for d in ours if d["job"]["phase"] == "processing"][-1]
    assert running["model"] == "Ovi" and running["node_id"] == "7"
    assert running["prompt_id"] == "prompt-1234" and running["task_uuid"] == job.task_uuid
    assert running["estimate"]["usd"] == pytest.approx(0.05)
    assert spend_panel.LIVE.snapshot() == []
    # A cached run shows no estimate in its status text.
    texts.clear()
    ovi(seed=2)
    assert not any("est." in t for _, t in texts)


def test_a_bad_limit_setting_stops_paid_jobs_but_not_cached_ones(env, monkeypatch):
    ovi(seed=1)
    monkeypatch.setenv("RUNWARE_DAILY_LIMIT_USD", "five")
    assert json.loads(ovi(seed=1)["result"][4][0])["cached"] is True
    env.reset_log()
    with pytest.raises(errors.SettingError) as info:
        ovi(seed=2)
    assert "RUNWARE_DAILY_LIMIT_USD" in str(info.value) and env.log == []


def test_prompt_id_comes_from_the_running_queue_item(comfy_server, monkeypatch):
    host = pack_module("nodes.host")
    assert host.running_prompt_id() == "prompt-1234"
    server = __import__("sys").modules["server"].PromptServer.instance
    monkeypatch.setattr(server.prompt_queue, "currently_running", {})
    assert host.running_prompt_id() is None
    monkeypatch.setattr(server.prompt_queue, "currently_running",
                        {0: (1, "a", {}, {}, []), 1: (2, "b", {}, {}, [])})
    assert host.running_prompt_id() is None  # cannot tell which

