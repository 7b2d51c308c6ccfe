"""The store under attack and accident: files on disk are data, never instructions.

Planted, damaged, newer and old-layout files; symlinks; permissions; concurrent writers;
kill -9 in the middle of a write; a full disk. Real files, real SQLite, real subprocesses,
the double over HTTP where a job runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO_ROOT, ovi_request, pack_module
from media_factory import png_bytes

jobs = pack_module("nodes.runware.jobs")
cache_mod = pack_module("nodes.runware.cache")
store_mod = pack_module("nodes.runware.store")
tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
client_mod = pack_module("nodes.runware.client")

TESTS = Path(__file__).resolve().parent
EP = "http://127.0.0.1:1"


def ovi_job(seed=5, image=False, **extra):
    return tasks.prepare_ovi(ovi_request(
        prompt="A drummer says <S>one two<E>", seed=seed, steps=30, fps=12,
        video_cfg_scale=5.0, audio_cfg_scale=4.0,
        image_png=png_bytes() if image else None, **extra,
    ))


def run(job, config, cache, **kwargs):
    return asyncio.run(jobs.run_cached_job(job, config=config, cache=cache, **kwargs))


def endpoint(config):
    return store_mod.api_endpoint(config.api_url)


def record(task_uuid=None, fingerprint="a" * 64, status=None, endpoint=EP, **extra):
    values = dict(endpoint=endpoint, task_uuid=task_uuid or str(uuid.uuid4()),
                  fingerprint=fingerprint, model="runware:190@1", task={"x": 1},
                  extension="mp4", number_results=1, submitted=time.time(),
                  status=status or store_mod.SUBMITTING)
    values.update(extra)
    return store_mod.JobRecord(**values)


@pytest.fixture
def cache(tmp_path):
    return cache_mod.ResultCache(tmp_path / "cache")


def fresh(cache):
    return cache_mod.ResultCache(cache.root, max_bytes=cache.max_bytes, max_age=cache.max_age,
                                 recent=cache.recent)


def accepted(double):
    return len(double.accepted_submissions())


def test_api_endpoint_is_scheme_host_port():
    assert store_mod.api_endpoint("https://api.runware.ai/v1") == "https://api.runware.ai:443"
    assert store_mod.api_endpoint("HTTP://LocalHost:8765/v1/") == "http://localhost:8765"
    assert store_mod.api_endpoint("http://[::1]/v1") == "http://[::1]:80"


def test_store_file_is_private_and_in_wal_mode(cache):
    cache.store.ping()
    mode = stat.S_IMODE(cache.store.path.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)
    conn = sqlite3.connect(cache.store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_claim_is_one_per_request_and_endpoint(cache):
    store = cache.store
    first = record()
    assert store.claim(first) is first
    second = store.claim(record())  # same request: the pending job is handed back
    assert second.task_uuid == first.task_uuid
    other = record(endpoint="https://api.runware.ai:443")
    assert store.claim(other) is other  # another endpoint is another request
    store.set_status(EP, first.task_uuid, store_mod.FAILED, error="x", drop_journal=True)
    third = record()
    assert store.claim(third).task_uuid == third.task_uuid
    assert {j.status for j in store.jobs()} == {"failed", "submitting"}
    assert len(store.jobs()) == 3  # the ledger keeps every job


# -- the old JSON cache ------------------------------------------------------------------------


def _old_layout(root: Path, double, fast_config, tmp_path) -> dict:
    """A 0.1 cache: one finished entry, one journaled job still running, one upload."""
    entry_job, journal_job, image_job = ovi_job(seed=1), ovi_job(seed=2), ovi_job(seed=3,
                                                                                 image=True)

    async def make():
        async with client_mod.RunwareClient(fast_config) as client:
            done_task = dict(entry_job.task)
            results = await client.poll_video(await client.submit_video(done_task))
            path = await client.download(results[0].url,
                                         root / "results" / f"{done_task['taskUUID']}-0.mp4")
            running = dict(journal_job.task)
            await client.submit_video(running)
            upload = await client.upload_image(png_bytes())
            return done_task, results[0], path, running, upload

    double.job_seconds = 0.1
    done_task, result, path, running, upload = asyncio.run(make())
    double.job_seconds = 1.0  # the journaled job is still running when we upgrade
    old_fp = cache_mod.content_fingerprint
    (root / "entries").mkdir(parents=True)
    (root / "journal").mkdir()
    (root / "entries" / f"{old_fp(entry_job.model, entry_job.task, {})}.json").write_text(
        json.dumps({"fingerprint": old_fp(entry_job.model, entry_job.task, {}),
                    "model": entry_job.model, "task_uuid": done_task["taskUUID"],
                    "results": [{"file": path.name, "url": result.url,
                                 "video_uuid": result.video_uuid,
                                 "task_uuid": done_task["taskUUID"], "seed": result.seed,
                                 "cost": result.cost, "index": None,
                                 "size": path.stat().st_size,
                                 "sha256": cache_mod.file_sha256(path)}],
                    "created": time.time(), "last_used": time.time()}))
    (root / "journal" / f"{old_fp(journal_job.model, journal_job.task, {})}.json").write_text(
        json.dumps({"fingerprint": old_fp(journal_job.model, journal_job.task, {}),
                    "model": journal_job.model, "task_uuid": running["taskUUID"],
                    "task": running, "extension": "mp4", "submitted": time.time()}))
    digest = pack_module("nodes.runware.uploads").content_hash(png_bytes())
    (root / "uploads.json").write_text(json.dumps({
        f"{fast_config.api_url}|imageUpload:{digest}": {"uuid": upload.uuid,
                                                        "at": time.time()}}))
    (root / "entries" / "garbage.json").write_text("{not json")
    (root / "journal" / "planted.json").write_text(json.dumps(
        {"fingerprint": "b" * 64, "task_uuid": "../../etc", "task": {}, "model": "x"}))
    return {"entry": entry_job, "journal": journal_job, "image": image_job,
            "done": done_task["taskUUID"], "running": running["taskUUID"], "path": path}


def test_an_old_json_cache_is_imported_and_nothing_paid_is_lost(double, fast_config, tmp_path,
                                                                 caplog):
    root = tmp_path / "old"
    old = _old_layout(root, double, fast_config, tmp_path)
    double.reset_log()
    cache = cache_mod.ResultCache(root, legacy_endpoint=endpoint(fast_config))
    with caplog.at_level(logging.WARNING, "runware_ovi_sync"):
        served = run(old["entry"], fast_config, cache)
    assert double.log == []  # the paid result is served from disk, no request at all
    assert served[0].cached and served[0].path == old["path"]
    assert "malformed" in caplog.text  # planted / broken old files skipped with a warning
    resumed = run(old["journal"], fast_config, cache)  # the journaled job: polled, not paid
    assert resumed[0].result.task_uuid == old["running"]
    assert accepted(double) == 0 and double.count("videoInference") == 0
    run(old["image"], fast_config, cache)
    assert double.count("imageUpload") == 0  # the remembered upload is reused
    # Imported once: a restart does not import (or duplicate) again.
    assert cache.store.jobs(endpoint=endpoint(fast_config))
    restarted = cache_mod.ResultCache(root, legacy_endpoint=endpoint(fast_config))
    assert len(restarted.store.jobs()) == len(cache.store.jobs())


def test_old_double_results_are_not_served_for_the_real_api(double, fast_config, tmp_path):
    """0.1 kept no endpoint: a result downloaded from the local double stays the double's."""
    root = tmp_path / "old"
    old = _old_layout(root, double, fast_config, tmp_path)
    cache = cache_mod.ResultCache(root, legacy_endpoint="https://api.runware.ai:443")
    real = store_mod.api_endpoint("https://api.runware.ai/v1")
    fingerprint = jobs.job_fingerprint(old["entry"], real)[0]
    assert cache.lookup(real, fingerprint) is None
    local = jobs.job_fingerprint(old["entry"], endpoint(fast_config))[0]
    assert cache.lookup(endpoint(fast_config), local) is not None


def test_an_old_journal_entry_is_kept_for_the_real_api_when_imported_at_the_double(
        double, fast_config, tmp_path):
    """0.1 journaled jobs without their endpoint. First start pointed at the local double:
    a real job still running from 0.1 must not be dropped because the double does not
    know it. Each endpoint's copy ends only on that endpoint's answer, and counts once."""
    spend = pack_module("nodes.runware.spend")
    root = tmp_path / "old"
    job = ovi_job(seed=7)
    old_fp = cache_mod.content_fingerprint(job.model, job.task, {})
    real_task = dict(job.task, taskUUID=str(uuid.uuid4()))  # sent to the real API by 0.1
    (root / "journal").mkdir(parents=True)
    (root / "journal" / f"{old_fp}.json").write_text(json.dumps(
        {"fingerprint": old_fp, "model": job.model, "task_uuid": real_task["taskUUID"],
         "task": real_task, "extension": "mp4", "submitted": time.time() - 60}))
    here, real = endpoint(fast_config), store_mod.DEFAULT_ENDPOINT
    assert here != real
    cache = cache_mod.ResultCache(root, legacy_endpoint=here)
    store = cache.store
    real_fp = store_mod.legacy_fingerprint_to(real, old_fp)

    result = run(job, fast_config, cache)[0]  # the double: taskNotFound ends its own copy
    assert double.count("getResponse") >= 1 and result.path.is_file()
    assert store.job(here, real_task["taskUUID"]).status == store_mod.NOT_FOUND
    kept = store.journal_get(real, real_fp)
    assert kept is not None and kept.task_uuid == real_task["taskUUID"]  # still collectable
    assert kept.task == real_task
    assert real_task["taskUUID"] in {j.task_uuid for j in store.pending()}

    def counted(where):
        return spend.totals(store, where)["last_30_days"]

    double_jobs = counted(here)
    assert counted(real).jobs == 0 and counted(real).usd == 0  # nothing known there yet
    # The real API answers for its copy (as a run at the real endpoint would record it).
    paid = store_mod.ResultRecord(
        file=f"{real_task['taskUUID']}-0.mp4", endpoint=real, task_uuid=real_task["taskUUID"],
        position=0, video_uuid="v", url="https://example.com/v.mp4", cost=0.25,
        created=time.time(), last_used=time.time())
    store.record_results(kept, [paid], status=store_mod.SUCCEEDED, entry_fingerprint=real_fp)
    assert counted(real).jobs == 1 and counted(real).usd == pytest.approx(0.25)
    after = counted(here)
    assert (after.jobs, after.usd) == (double_jobs.jobs, double_jobs.usd)
    ledger = spend.ledger_since(store, None, 0.0)
    copies = [i for i in ledger if i.job.task_uuid == real_task["taskUUID"]]
    assert len(copies) == 2  # one job, one row per endpoint; counted once across both
    assert sum(i.counted for i in copies if i.in_totals) == pytest.approx(0.25)
    assert [i.job.endpoint for i in copies if i.in_totals] == [real]


# -- damaged, planted and newer store files ----------------------------------------------------


def test_a_garbage_store_is_set_aside_and_the_paid_result_is_found_by_task_uuid(
        double, fast_config, cache, caplog):
    first = run(ovi_job(), fast_config, cache)
    cache.store.close()
    cache.store.path.write_bytes(b"<html>uploaded over the store</html>" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{cache.store.path}{suffix}").unlink(missing_ok=True)
    double.reset_log()
    with caplog.at_level(logging.WARNING, "runware_ovi_sync"):
        again = run(ovi_job(), fast_config, fresh(cache))
    assert "set aside" in caplog.text
    assert list(cache.root.glob("store.sqlite.set-aside-*"))
    assert again[0].path == first[0].path and double.log == []  # found on disk, no request


def test_a_store_overwritten_in_place_while_open_is_noticed(double, fast_config, cache):
    run(ovi_job(seed=1), fast_config, cache)
    with open(cache.store.path, "r+b") as fh:  # what ComfyUI's upload route does
        fh.write(b"\0" * 4096)
    run(ovi_job(seed=2), fast_config, cache)  # same object, no crash
    assert run(ovi_job(seed=1), fast_config, cache)[0].cached
    assert accepted(double) == 2


def test_a_lost_store_with_a_running_job_does_not_pay_twice(double, fast_config, cache):
    double.job_seconds = 1000
    import dataclasses

    with pytest.raises(errors.JobTimeoutError):
        run(ovi_job(), dataclasses.replace(fast_config, job_timeout=0.3), cache)
    cache.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cache.store.path}{suffix}").unlink(missing_ok=True)
    double.job_seconds = 0.1
    results = run(ovi_job(), fast_config, fresh(cache))  # conflictTaskUUID -> poll
    assert accepted(double) == 1
    assert results[0].result.task_uuid == double.accepted_submissions()[0]["taskUUID"]


def test_a_newer_schema_is_set_aside_and_its_records_copied(double, fast_config, cache, caplog):
    first = run(ovi_job(), fast_config, cache)
    cache.store.close()
    conn = sqlite3.connect(cache.store.path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.execute("ALTER TABLE jobs ADD COLUMN future TEXT")  # a newer version's extra field
    conn.commit()
    conn.close()
    double.reset_log()
    with caplog.at_level(logging.WARNING, "runware_ovi_sync"):
        again = run(ovi_job(), fast_config, fresh(cache))
    assert "newer version" in caplog.text
    assert again[0].cached and again[0].path == first[0].path and double.log == []


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\0" + b"\xff" * 200])
def test_truncated_or_torn_store_files_never_crash(cache, content):
    cache.store.ping()
    cache.store.close()
    cache.store.path.write_bytes(content)
    other = fresh(cache)
    other.store.claim(record())
    assert other.store.journal_get(EP, "a" * 64) is not None


def test_a_foreign_database_is_set_aside(cache):
    cache.root.mkdir(parents=True)
    conn = sqlite3.connect(cache.root / "store.sqlite")
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    cache.store.claim(record())
    assert list(cache.root.glob("store.sqlite.set-aside-*"))


def _plant(cache, sql, *params):
    cache.store.ping()
    conn = sqlite3.connect(cache.store.path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_planted_records_cannot_reach_outside_the_cache(double, fast_config, cache, tmp_path,
                                                       caplog):
    victim = tmp_path / "victim.mp4"
    victim.write_bytes(b"precious")
    first = run(ovi_job(), fast_config, cache)
    ep = endpoint(fast_config)
    now = time.time() - 10 * 86400 * 365  # very old: first in line for eviction
    bad_names = [str(victim), "../../victim.mp4", "..", "", "x" * 300,
                 f"{first[0].result.task_uuid}-0.mp4/../../../victim.mp4"]
    for i, name in enumerate(bad_names):
        _plant(cache, "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", name, ep,
               first[0].result.task_uuid, i + 1, "v", "u", None, None, None, 8, "", now, now)
    # Wrong types in an otherwise well-named row, and a journal row pointing nowhere.
    _plant(cache, "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
           f"{uuid.uuid4()}-0.mp4", ep, "not-a-uuid", "zero", None, None, "seed", "x", None,
           "big", 42, "then", "now")
    _plant(cache, "INSERT INTO journal VALUES (?,?,?)", ep, "c" * 64, "../../etc/passwd")
    # A symlink planted as a result file.
    link = cache.results_dir / f"{uuid.uuid4()}-0.mp4"
    link.symlink_to(victim)
    _plant(cache, "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", link.name, ep,
           str(uuid.uuid4()), 0, "v", "u", None, None, None, 8, "", now, now)
    small = cache_mod.ResultCache(cache.root, max_bytes=1, recent=0)
    with caplog.at_level(logging.WARNING, "runware_ovi_sync"):
        small.evict(keep=first[0].result.task_uuid)
        assert small.find_task(ep, first[0].result.task_uuid) is not None
        again = run(ovi_job(), fast_config, small)  # lookups and jobs keep working
    assert again[0].cached
    assert victim.read_bytes() == b"precious"
    assert "malformed" in caplog.text or "outside" in caplog.text


def test_a_malformed_job_record_never_fails_a_job(double, fast_config, cache):
    fingerprint = jobs.job_fingerprint(ovi_job(), endpoint(fast_config))[0]
    task_uuid = str(uuid.uuid4())
    _plant(cache, "INSERT INTO jobs (endpoint, task_uuid, fingerprint, model, task, extension,"
           " number_results, submitted, status) VALUES (?,?,?,?,?,?,?,?,?)",
           endpoint(fast_config), task_uuid, fingerprint, 7, "{not json", "exe", "many",
           "yesterday", "running")
    _plant(cache, "INSERT INTO journal VALUES (?,?,?)", endpoint(fast_config), fingerprint,
           task_uuid)
    assert run(ovi_job(), fast_config, cache)[0].path.is_file()
    assert accepted(double) == 1


# -- symlinks, permissions, locks, leftovers -----------------------------------------------------


def test_a_store_symlink_is_set_aside_and_its_target_untouched(cache, tmp_path):
    target = tmp_path / "elsewhere.db"
    target.write_bytes(b"")  # an empty file would otherwise become a database
    cache.root.mkdir(parents=True)
    (cache.root / "store.sqlite").symlink_to(target)
    cache.store.claim(record())
    assert target.read_bytes() == b""
    assert not (cache.root / "store.sqlite").is_symlink()


def test_a_results_symlink_is_moved_aside(double, fast_config, cache, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    cache.root.mkdir(parents=True)
    (cache.root / "results").symlink_to(outside, target_is_directory=True)
    result = run(ovi_job(), fast_config, cache)[0]
    assert not any(outside.iterdir())
    assert result.path.parent == cache.root / "results" and not result.path.parent.is_symlink()


def test_a_planted_folder_at_the_result_name_does_not_block_the_download(double, fast_config,
                                                                        cache):
    fingerprint = jobs.job_fingerprint(ovi_job(), endpoint(fast_config))[0]
    planted = cache.root / "results" / f"{cache.first_take_uuid(fingerprint)}-0.mp4"
    planted.mkdir(parents=True)
    result = run(ovi_job(), fast_config, cache)[0]
    assert result.path.is_file() and result.path != planted and planted.is_dir()
    assert run(ovi_job(), fast_config, fresh(cache))[0].cached


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root ignores file permissions")
def test_an_unwritable_cache_folder_is_a_clear_error_before_any_request(double, fast_config,
                                                                       cache):
    cache.root.mkdir(parents=True)
    cache.root.chmod(0o500)
    try:
        with pytest.raises(store_mod.StoreError) as info:
            run(ovi_job(), fast_config, cache)
    finally:
        cache.root.chmod(0o700)
    assert str(cache.root) in str(info.value)
    assert double.count("videoInference") == 0


def test_a_read_only_store_file_is_a_clear_error_before_any_submission(double, fast_config,
                                                                      cache):
    cache.store.ping()
    cache.store.close()
    conn_mode = f"file:{cache.store.path}?mode=ro"
    ro = store_mod.Store(cache.store.path)
    ro._db._open = lambda: sqlite3.connect(conn_mode, uri=True, isolation_level=None,  # noqa: E731
                                       check_same_thread=False)
    cache.store = ro
    cache.uploads.store = ro
    with pytest.raises(store_mod.StoreError) as info:
        run(ovi_job(), fast_config, cache)
    assert "Nothing was submitted" in str(info.value)
    assert double.count("videoInference") == 0


def test_a_lock_that_cannot_be_made_releases_everything(double, fast_config, cache):
    cache.root.mkdir(parents=True)
    (cache.root / "locks").write_text("a file where the lock folder should be")
    with pytest.raises((store_mod.StoreError, OSError)):
        run(ovi_job(), fast_config, cache)
    (cache.root / "locks").unlink()
    assert run(ovi_job(), fast_config, cache)[0].path.is_file()  # no hang


def test_a_planted_lock_folder_is_stepped_over(double, fast_config, cache):
    fingerprint = jobs.job_fingerprint(ovi_job(), endpoint(fast_config))[0]
    (cache.root / "locks" / f"{fingerprint}.lock").mkdir(parents=True)
    assert run(ovi_job(), fast_config, cache)[0].path.is_file()


def test_leftover_part_files_are_swept_after_a_day(cache):
    folder = cache.results_folder()
    old, new = folder / ".a.mp4.1.abc.part", folder / ".b.mp4.1.def.part"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    cache.evict()
    assert not old.exists() and new.exists()


def test_unknown_files_in_results_are_never_deleted(cache):
    stranger = cache.results_folder() / "mine.mp4"
    stranger.write_bytes(b"z")
    os.utime(stranger, (time.time() - 400 * 86400,) * 2)
    cache.evict()
    assert stranger.exists()


# -- several processes, kill -9, a full disk --------------------------------------------------


PRELUDE = textwrap.dedent(f"""
    import sys, time, uuid, os
    sys.path.insert(0, {str(TESTS)!r})
    from conftest import pack_module
    store_mod = pack_module("nodes.runware.store")
    def record(fp, status="submitting"):
        return store_mod.JobRecord(endpoint="http://127.0.0.1:1", task_uuid=str(uuid.uuid4()),
            fingerprint=fp, model="m", task={{"k": "v" * 100}}, extension="mp4",
            number_results=1, submitted=time.time(), status=status)
""")


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_processes_racing_for_one_request_claim_it_once(tmp_path):
    path = tmp_path / "store.sqlite"
    code = """
        store = store_mod.Store(__import__("pathlib").Path(sys.argv[1]))
        while time.time() < float(sys.argv[2]):
            pass
        print(store.claim(record("d" * 64)).task_uuid)
    """
    start = str(time.time() + 1.5)
    procs = [_python(code, str(path), start) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    assert len({o[0].strip() for o in outs}) == 1  # everyone follows the one claim


def test_kill_9_in_the_middle_of_writes_loses_no_committed_record(tmp_path):
    path = tmp_path / "store.sqlite"
    code = """
        store = store_mod.Store(__import__("pathlib").Path(sys.argv[1]))
        i = 0
        while True:
            job = record(f"{i:064x}")
            store.claim(job)
            print(job.task_uuid, flush=True)
            i += 1
    """
    proc = _python(code, str(path))
    seen = []
    deadline = time.time() + 30
    while len(seen) < 40 and time.time() < deadline:
        seen.append(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    store = store_mod.Store(path)
    claimed = {j.task_uuid for j in store.pending()}
    assert len(seen) >= 40 and set(seen) <= claimed  # every acknowledged claim survived
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_full_disk_is_a_clear_error_and_leaves_a_usable_store(tmp_path):
    path = tmp_path / "store.sqlite"
    store_mod.Store(path).claim(record_for_disk := record(fingerprint="e" * 64))  # noqa: F841
    code = """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = os.path.getsize(sys.argv[1]) + os.path.getsize(sys.argv[1] + "-wal") \\
            if os.path.exists(sys.argv[1] + "-wal") else os.path.getsize(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 8192, size + 8192))
        store = store_mod.Store(__import__("pathlib").Path(sys.argv[1]))
        try:
            for i in range(2000):
                store.claim(record(f"{i:064x}"))
        except store_mod.StoreError as exc:
            print("STORE-ERROR", exc)
        else:
            print("NO ERROR")
    """
    proc = _python(code, str(path))
    out, err = proc.communicate(timeout=120)
    assert "STORE-ERROR" in out, (out, err[-2000:])
    assert "disk" in out.lower() or "full" in out.lower() or "i/o" in out.lower()
    store = store_mod.Store(path)
    assert store.journal_get(EP, "e" * 64) is not None  # what was there before survives
    store.claim(record(fingerprint="f" * 64))  # and the store is usable again
