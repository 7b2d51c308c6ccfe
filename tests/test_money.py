"""Never pay twice, never lose a paid result: faults over real HTTP against the double.

Every scenario ends with the right result or a clear error naming the taskUUID, and the
double's log shows exactly one accepted videoInference submission per paid job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
import uuid
from pathlib import Path

import conftest
import pytest
import torch
from conftest import PACK, ovi_request, pack_module, sync3_request
from media_factory import png_bytes, write_mp4, write_wav

jobs = pack_module("nodes.runware.jobs")
cache_mod = pack_module("nodes.runware.cache")
tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
client_mod = pack_module("nodes.runware.client")
store_mod = pack_module("nodes.runware.store")


def ovi_job(seed=5, image=False, **extra):
    return tasks.prepare_ovi(ovi_request(
        prompt="A drummer says <S>one two<E>", seed=seed, steps=30, fps=12,
        video_cfg_scale=5.0, audio_cfg_scale=4.0,
        image_png=png_bytes() if image else None, **extra,
    ))


def sync3_job(tmp_path):
    video = write_mp4(tmp_path / "v.mp4", frames=24, fps=12)
    audio = write_wav(tmp_path / "a.wav", seconds=1.0)
    facts = tasks.VideoFacts(96, 64, 12.0, 24, 2.0)
    return tasks.prepare_sync3(sync3_request(video_source=video, video_mime="video/mp4",
                                             video=facts, audio_source=audio,
                                             audio_mime="audio/wav"))


@pytest.fixture
def store(tmp_path):
    return cache_mod.ResultCache(tmp_path / "cache")


def fresh_store(store):
    """A "restarted" ComfyUI: new objects over the same directories."""
    return cache_mod.ResultCache(store.root)


def endpoint(config):
    return store_mod.api_endpoint(config.api_url)


def fp(job, config):
    """The request's fingerprint at the config's endpoint."""
    return jobs.job_fingerprint(job, endpoint(config))[0]


def journaled(store, job, config):
    return store.store.journal_get(endpoint(config), fp(job, config))


def run(job, config, store, **kwargs):
    return asyncio.run(jobs.run_cached_job(job, config=config, cache=store, **kwargs))


def accepted(double):
    return len(double.accepted_submissions())


def made_hours_ago(store, where, task_uuid, hours=3.0):
    """A task's job, result records and files as if made ``hours`` ago (under max_age,
    past the "recently used" guard): an age-based sweep of paid files would take them."""
    when = time.time() - hours * 3600
    results = store.store.results_of(where, task_uuid)
    assert results
    for r in results:
        r.created = r.last_used = when
        os.utime(store.results_dir / r.file, (when, when))
    store.store.put_results(results)
    job = store.store.job(where, task_uuid)
    job.submitted, job.finished = when, when + 60
    store.store.put_job(job)
    return [store.results_dir / r.file for r in results]


# -- the basics -----------------------------------------------------------------------------


def test_paid_result_is_on_disk_and_reused_without_any_request(double, fast_config, store):
    first = run(ovi_job(), fast_config, store)
    assert first[0].path.is_file() and first[0].path.is_relative_to(store.root)
    double.reset_log()
    again = run(ovi_job(), fast_config, store)
    assert double.log == []  # zero requests of any kind
    assert again[0].path == first[0].path and again[0].cached
    double.reset_log()
    after_restart = run(ovi_job(), fast_config, fresh_store(store))
    assert double.log == [] and after_restart[0].path == first[0].path


def test_cache_hit_needs_no_api_key(double, fast_config, store):
    run(ovi_job(), fast_config, store)
    double.reset_log()
    keyless = dataclasses.replace(fast_config, api_key=None)
    assert run(ovi_job(), keyless, store)[0].cached


def test_different_request_or_input_content_is_a_new_job(double, fast_config, store):
    run(ovi_job(seed=1), fast_config, store)
    run(ovi_job(seed=2), fast_config, store)
    run(ovi_job(seed=2, image=True), fast_config, store)
    assert accepted(double) == 3


def test_reuse_off_pays_for_a_new_take(double, fast_config, store):
    run(ovi_job(), fast_config, store)
    run(ovi_job(), fast_config, store, reuse=False)
    assert accepted(double) == 2


def test_concurrent_identical_runs_submit_once(double, fast_config, store):
    double.job_seconds = 0.5

    async def both():
        return await asyncio.gather(*(jobs.run_cached_job(ovi_job(), config=fast_config,
                                                          cache=store) for _ in range(3)))

    results = asyncio.run(both())
    assert accepted(double) == 1
    assert len({r[0].path for r in results}) == 1


def test_concurrent_identical_runs_in_threads_submit_once(double, fast_config, store):
    double.job_seconds = 0.5
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(run(ovi_job(), fast_config,
                                                              fresh_store(store))))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 2 and accepted(double) == 1


# -- faults ---------------------------------------------------------------------------------


def test_429_three_times_then_ok(double, fast_config, store):
    double.fail_next(429, count=3, task_type="videoInference")
    assert run(ovi_job(), fast_config, store)
    assert accepted(double) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("phase", ["videoInference", "getResponse", "imageUpload"])
def test_server_errors_in_each_phase(double, fast_config, store, status, phase):
    double.fail_next(status, count=2, task_type=phase)
    results = run(ovi_job(image=True), fast_config, store)
    assert results[0].path.is_file()
    assert accepted(double) == 1


def test_server_errors_on_media_upload(double, fast_config, store, tmp_path):
    double.fail_next(503, count=2, task_type="mediaStorage")
    assert run(sync3_job(tmp_path), fast_config, store)
    assert accepted(double) == 1


def test_lost_submit_response(double, fast_config, store):
    double.lose_next_response("videoInference")
    assert run(ovi_job(), fast_config, store)
    assert accepted(double) == 1


def test_connection_dropped_mid_download(double, fast_config, store):
    double.drop_download_after(1500)
    results = run(ovi_job(), fast_config, store)
    assert any(e.get("range") for e in double.log)
    assert store.is_intact(store.lookup(endpoint(fast_config),
                                        fp(ovi_job(), fast_config)).results[0])
    assert results[0].path.stat().st_size > 1500


@pytest.mark.parametrize("shape", ["errors", "data"])
def test_failed_job_names_the_task_and_a_rerun_submits_anew(double, fast_config, store,
                                                            shape):
    double.fail_next_job(shape=shape, code="inferenceError", message="model crashed")
    with pytest.raises(errors.TaskFailedError) as info:
        run(ovi_job(), fast_config, store)
    assert info.value.task_uuid == double.accepted_submissions()[0]["taskUUID"]
    assert info.value.task_uuid in str(info.value)
    run(ovi_job(), fast_config, store)
    assert accepted(double) == 2  # the failed job, then one new paid job


def test_time_limit_then_resume_without_paying_again(double, fast_config, store):
    double.job_seconds = 1000
    short = dataclasses.replace(fast_config, job_timeout=0.5)
    with pytest.raises(errors.JobTimeoutError) as info:
        run(ovi_job(), short, store)
    task_uuid = double.accepted_submissions()[0]["taskUUID"]
    assert info.value.task_uuid == task_uuid and task_uuid in str(info.value)
    double.job_seconds = 0.1
    results = run(ovi_job(), fast_config, fresh_store(store))
    assert results[0].result.task_uuid == task_uuid
    assert accepted(double) == 1


def test_restart_while_the_job_runs_resumes_it(double, fast_config, store):
    double.job_seconds = 1.5
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()  # "ComfyUI goes down" mid-poll
    with pytest.raises(errors.CancelledError):
        run(ovi_job(), fast_config, store, should_cancel=stop.is_set)
    assert journaled(store, ovi_job(), fast_config) is not None
    results = run(ovi_job(), fast_config, fresh_store(store))
    assert accepted(double) == 1
    assert results[0].path.is_file()
    assert journaled(store, ovi_job(), fast_config) is None


def test_resume_of_a_task_runware_forgot_submits_anew(double, fast_config, store):
    double.job_seconds = 1000
    with pytest.raises(errors.JobTimeoutError):
        run(ovi_job(), dataclasses.replace(fast_config, job_timeout=0.3), store)
    double.expire_task(double.accepted_submissions()[0]["taskUUID"])
    double.job_seconds = 0.1
    assert run(ovi_job(), fast_config, store)
    assert accepted(double) == 2


class Phase:
    """Cancel as soon as the client reports a given phase."""

    def __init__(self, phase):
        self.phase, self.at = phase, None

    def progress(self, p):
        if p.phase == self.phase and self.at is None:
            self.at = time.monotonic()

    def __call__(self):
        return self.at is not None


@pytest.mark.parametrize("phase", ["uploading", "submitting", "processing", "downloading"])
def test_interrupt_in_each_phase_is_quick_and_never_pays_twice(double, fast_config, store,
                                                                phase):
    double.job_seconds = 0.6
    config = dataclasses.replace(fast_config, download_chunk=512)
    hook = Phase(phase)
    with pytest.raises(errors.CancelledError):
        run(ovi_job(image=True), config, store, should_cancel=hook, on_progress=hook.progress)
    assert time.monotonic() - hook.at < 1.0
    before = accepted(double)
    assert before <= 1
    results = run(ovi_job(image=True), fast_config, fresh_store(store))
    assert results[0].path.is_file()
    assert accepted(double) == 1


def test_interrupt_during_retry_sleep(double, fast_config, store):
    config = dataclasses.replace(fast_config, retry_base_delay=20, retry_max_delay=20)
    double.fail_next(503, count=3, task_type="videoInference")
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    started = time.monotonic()
    with pytest.raises(errors.CancelledError):
        run(ovi_job(), config, store, should_cancel=flag.is_set)
    assert time.monotonic() - started < 1.5
    assert accepted(double) == 0


def test_corrupt_cached_file_is_refetched_not_repaid(double, fast_config, store):
    first = run(ovi_job(), fast_config, store)[0].path
    good = first.read_bytes()
    first.write_bytes(b"\0" * 100)
    double.reset_log()
    again = run(ovi_job(), fast_config, store)[0].path
    assert again.read_bytes() == good
    assert double.count("videoInference") == 0
    assert any(e["method"] == "GET" for e in double.log)


def test_corrupt_cached_file_with_expired_url_uses_getresponse(double, fast_config, store):
    first = run(ovi_job(), fast_config, store)[0].path
    good = first.read_bytes()
    first.unlink()
    double.fail_downloads(404)
    again = run(ovi_job(), fast_config, store)[0].path
    assert again.read_bytes() == good
    assert accepted(double) == 1 and double.count("getResponse") >= 2


def test_decode_failure_keeps_the_paid_file_and_says_where(double, fast_config, store,
                                                          monkeypatch, tmp_path):
    common = pack_module("nodes.run")
    results = run(ovi_job(), fast_config, store)
    results[0].path.write_bytes(b"not a video at all")
    with pytest.raises(pack_module("nodes.runware.media").ResultDecodeError) as info:
        common.model_outputs(results, "runware:190@1", None, None)
    # A paid result that does not decode is no parameter to fix: it says where the file is.
    assert not isinstance(info.value, errors.ValidationError)
    assert "Fix the parameter" not in str(info.value)
    assert str(results[0].path) in str(info.value)
    assert results[0].result.task_uuid in str(info.value)
    assert results[0].path.exists()


# -- uploads --------------------------------------------------------------------------------


def test_uploads_are_remembered_across_restarts(double, fast_config, store, tmp_path):
    run(sync3_job(tmp_path), fast_config, store)
    run(sync3_job(tmp_path), fast_config, fresh_store(store), reuse=False)
    assert double.count("mediaStorage") == 2  # video + audio, once each
    assert accepted(double) == 2


def test_upload_runware_forgot_is_uploaded_again_once(double, fast_config, store, tmp_path):
    run(sync3_job(tmp_path), fast_config, store)
    video_uuid = double.accepted_submissions()[0]["inputs"]["video"]

    async def delete():
        async with client_mod.RunwareClient(fast_config) as client:
            reply = await client.post([{"taskType": "mediaStorage", "taskUUID": str(uuid.uuid4()),
                                        "operation": "delete", "media": video_uuid}])
            assert reply.status == 200

    asyncio.run(delete())
    run(sync3_job(tmp_path), fast_config, store, reuse=False)
    assert accepted(double) == 2
    assert double.count("mediaStorage") == 2 + 1 + 2  # first uploads, delete, re-uploads


def test_upload_memory_expires_before_runware_deletes(tmp_path):
    uploads = pack_module("nodes.runware.uploads")
    memory = uploads.UploadCache(store_mod.Store(tmp_path / "s.sqlite"), max_age=0.05)
    memory.put("http://a:1", "k", "u1")
    assert memory.get("http://a:1", "k") == "u1"
    time.sleep(0.1)
    assert memory.get("http://a:1", "k") is None
    assert uploads.DEFAULT_MAX_AGE < 30 * 86400


# -- eviction and recovery ------------------------------------------------------------------


def test_size_cap_evicts_least_recently_used(double, fast_config, tmp_path):
    store = cache_mod.ResultCache(tmp_path / "c", max_bytes=1, recent=0)
    a = run(ovi_job(seed=1), fast_config, store)[0].path
    b = run(ovi_job(seed=2), fast_config, store)[0].path
    assert b.exists() and not a.exists()
    # By default a result used in the last minutes is never evicted (Save Video may be
    # about to read it).
    guarded = cache_mod.ResultCache(tmp_path / "g", max_bytes=1)
    c = run(ovi_job(seed=3), fast_config, guarded)[0].path
    run(ovi_job(seed=4), fast_config, guarded)
    assert c.exists()
    assert store.lookup(endpoint(fast_config), fp(ovi_job(seed=1), fast_config)) is None


def test_age_limit_evicts(double, fast_config, tmp_path):
    store = cache_mod.ResultCache(tmp_path / "c", max_age=0.2)
    run(ovi_job(), fast_config, store)
    time.sleep(0.3)
    run(ovi_job(), fast_config, store)
    assert accepted(double) == 2


def test_fetch_task_recovers_a_job_without_paying(double, fast_config, store):
    double.job_seconds = 1000
    with pytest.raises(errors.JobTimeoutError) as info:
        run(ovi_job(number_results=2), dataclasses.replace(fast_config, job_timeout=0.3),
            store)
    double.job_seconds = 0.1
    recovered = asyncio.run(jobs.fetch_task(info.value.task_uuid, config=fast_config,
                                            cache=fresh_store(store), model="runware:190@1"))
    assert len(recovered) == 2 and all(r.path.is_file() for r in recovered)
    assert accepted(double) == 1
    double.reset_log()
    # The journal's job is now cached: the same request costs nothing.
    assert run(ovi_job(number_results=2), fast_config, store)[0].cached
    assert double.log == []


def test_fetch_task_of_an_unknown_uuid_is_a_clear_error(double, fast_config, store):
    missing = str(uuid.uuid4())
    with pytest.raises(errors.TaskNotFoundError) as info:
        asyncio.run(jobs.fetch_task(missing, config=fast_config, cache=store,
                                    model="runware:190@1"))
    assert missing in str(info.value)


# -- through the nodes --------------------------------------------------------------------




def test_same_graph_queued_twice_and_after_restart_makes_no_submission(env, tmp_path):
    ovi = PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]
    args = dict(prompt="A bell <AUDCAP>ding<ENDAUDCAP>", seed=11, steps=30, fps=12,
                video_cfg_scale=5.0, audio_cfg_scale=4.0, image=torch.rand(1, 32, 32, 3))
    asyncio.run(ovi().generate(**args))
    env.reset_log()
    asyncio.run(ovi().generate(**args))  # ComfyUI's own cache aside, the disk cache holds
    asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(**args))
    assert env.log == []


@pytest.mark.parametrize("node_id", ["RunwareOvi", "RunwareSync3", "RunwareFetchResult"])
def test_is_changed_follows_the_linked_outputs_of_the_running_prompt(node_id, monkeypatch):
    """IS_CHANGED (ComfyUI calls it with an empty PROMPT) reads the running prompt from
    the queue: the same links give the same value (an unchanged re-queue is not run, not
    paid), a newly linked IMAGE or AUDIO output gives another (the node runs again and
    decodes it from the cached file)."""
    import sys
    import types

    prompt = {"3": {"class_type": node_id, "inputs": {"seed": 1}},
              "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0]}}}
    queue = types.SimpleNamespace(currently_running={7: (0, "prompt-id", prompt, {}, [])})
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(
        instance=types.SimpleNamespace(prompt_queue=queue))
    monkeypatch.setitem(sys.modules, "server", server)
    is_changed = PACK.NODE_CLASS_MAPPINGS[node_id].IS_CHANGED
    only_video = is_changed(unique_id="3", seed=1)
    assert isinstance(only_video, str) and only_video == is_changed(unique_id="3", seed=1)
    prompt["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}}
    with_images = is_changed(unique_id="3", seed=1)
    assert with_images != only_video
    prompt["6"] = {"class_type": "SaveAudio", "inputs": {"audio": ["3", 2]}}
    assert is_changed(unique_id="3", seed=1) not in (only_video, with_images)
    del prompt["5"], prompt["6"]
    assert is_changed(unique_id="3", seed=1) == only_video
    queue.currently_running = {}  # nothing running: cannot tell, decode everything
    assert is_changed(unique_id="3", seed=1) == is_changed(unique_id="3", seed=1) != only_video


def test_interrupt_becomes_comfyuis_own_interrupted_state(env, monkeypatch):
    import sys
    import types

    class InterruptProcessingException(BaseException):  # as in ComfyUI since 2026
        pass

    flag = threading.Event()
    mm = types.ModuleType("comfy.model_management")
    mm.InterruptProcessingException = InterruptProcessingException
    mm.processing_interrupted = flag.is_set
    comfy = types.ModuleType("comfy")
    comfy.model_management = mm
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    env.job_seconds = 1000
    threading.Timer(0.5, flag.set).start()
    started = time.monotonic()
    with pytest.raises(InterruptProcessingException):
        asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(
            prompt="x <S>y<E>", seed=1, steps=30, fps=12, video_cfg_scale=5.0,
            audio_cfg_scale=4.0))
    assert time.monotonic() - started < 2.5


def test_fetch_result_node(env, tmp_path):
    ovi = PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]
    fetch = PACK.NODE_CLASS_MAPPINGS["RunwareFetchResult"]
    video, images, audio, fps, info = asyncio.run(ovi().generate(
        prompt="x <S>y<E>", seed=4, steps=30, fps=12, video_cfg_scale=5.0,
        audio_cfg_scale=4.0))["result"]
    import json

    task_uuid = json.loads(info[0])["taskUUID"]
    os.environ["RUNWARE_CACHE_DIR"] = str(tmp_path / "elsewhere")  # not in this cache
    try:
        out = asyncio.run(fetch().fetch(task_uuid=task_uuid, model="Ovi"))["result"]
    finally:
        del os.environ["RUNWARE_CACHE_DIR"]
    assert out[1][0].shape == images[0].shape
    assert json.loads(out[4][0])["taskUUID"] == task_uuid
    assert accepted(env) == 1
    assert Path(json.loads(out[4][0])["file"]).is_file()


def test_journal_entry_whose_submission_never_arrived_submits_once(double, fast_config,
                                                                   store):
    job = ovi_job()
    fingerprint = fp(job, fast_config)
    # ComfyUI died between writing the journal and sending the submission.
    store.store.claim(store_mod.JobRecord(
        endpoint=endpoint(fast_config), task_uuid=job.task["taskUUID"], fingerprint=fingerprint,
        model=job.model, task=job.task, extension=job.extension, number_results=1,
        submitted=time.time(), status=store_mod.SUBMITTING))
    results = run(job, fast_config, store)
    assert results[0].path.is_file()
    assert accepted(double) == 1
    assert store.store.journal_get(endpoint(fast_config), fingerprint) is None
    assert store.store.job(endpoint(fast_config), job.task["taskUUID"]).status == "not_found"


def test_a_job_that_failed_while_nobody_watched_is_reported_then_forgotten(
        double, fast_config, store):
    double.job_seconds = 1000
    with pytest.raises(errors.JobTimeoutError):
        run(ovi_job(), dataclasses.replace(fast_config, job_timeout=0.3), store)
    double.fail_next_job(shape="errors", code="inferenceError", message="late crash")
    double.job_seconds = 0.1
    # The pending job above already exists; fail_next_job affects the next accepted one,
    # so make the pending one fail by expiring it instead, and check a failure flows.
    double.expire_task(double.accepted_submissions()[0]["taskUUID"])
    with pytest.raises(errors.TaskFailedError) as info:
        run(ovi_job(), fast_config, store)  # resubmits anew; that one fails
    assert info.value.code == "inferenceError"
    assert journaled(store, ovi_job(), fast_config) is None
    assert run(ovi_job(), fast_config, store)[0].path.is_file()
    assert accepted(double) == 3


# -- regressions from the money-safety review ------------------------------------------------


def test_wrong_key_while_resuming_keeps_the_journal(double, fast_config, store):
    double.job_seconds = 1.5
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    with pytest.raises(errors.CancelledError):
        run(ovi_job(), fast_config, store, should_cancel=stop.is_set)
    with pytest.raises(errors.AuthError) as info:  # a rotated key: not "the job failed"
        run(ovi_job(), dataclasses.replace(fast_config, api_key="rotated-key-xyz"), store)
    assert not isinstance(info.value, errors.TaskFailedError)
    assert journaled(store, ovi_job(), fast_config) is not None
    assert run(ovi_job(), fast_config, store)[0].path.is_file()
    assert accepted(double) == 1


def test_lost_answer_then_refused_retry_still_pays_once(double, fast_config, store):
    # Attempt 1 is accepted but its answer lost; the same-UUID retry is refused (402).
    double.lose_next_response("videoInference")
    double.fail_next(402, code="insufficientCredits", task_type="videoInference", skip=1)
    results = run(ovi_job(), fast_config, store)
    assert results[0].path.is_file()
    assert accepted(double) == 1


def test_fetch_result_while_the_node_resumes_the_same_job(double, fast_config, store):
    double.job_seconds = 1000
    with pytest.raises(errors.JobTimeoutError) as info:
        run(ovi_job(), dataclasses.replace(fast_config, job_timeout=0.3), store)
    double.job_seconds = 0.1

    async def both():
        return await asyncio.gather(
            jobs.run_cached_job(ovi_job(), config=fast_config, cache=store),
            jobs.fetch_task(info.value.task_uuid, config=fast_config,
                            cache=fresh_store(store), model="runware:190@1"),
        )

    node, fetched = asyncio.run(both())
    assert node[0].path == fetched[0].path and node[0].path.is_file()
    assert accepted(double) == 1


def test_a_poll_that_hangs_is_bounded_by_the_time_limit(double, fast_config, store):
    double.job_seconds = 1000
    config = dataclasses.replace(fast_config, job_timeout=0.5, poll_grace=0.5,
                                 read_timeout=30)
    task_uuid = None

    async def job():
        nonlocal task_uuid
        async with client_mod.RunwareClient(config) as client:
            task_uuid = await client.submit_video(ovi_job().task)
            double.latency = 20  # every answer from now on hangs
            return await client.poll_video(task_uuid)

    started = time.monotonic()
    with pytest.raises(errors.JobTimeoutError) as info:
        asyncio.run(job())
    assert time.monotonic() - started < 3
    assert info.value.task_uuid == task_uuid
    double.latency = 0


def test_damaged_cache_of_an_expired_task_says_so_then_recovers(double, fast_config, store):
    first = run(ovi_job(), fast_config, store)[0]
    first.path.unlink()
    double.expire_task(first.result.task_uuid)
    double.fail_downloads(404)
    with pytest.raises(errors.TaskNotFoundError) as info:
        run(ovi_job(), fast_config, store)
    assert first.result.task_uuid in str(info.value) and "pay for a new job" in str(info.value)
    assert run(ovi_job(), fast_config, store)[0].path.is_file()  # not stuck
    assert accepted(double) == 2


def test_upload_memory_is_shared_by_concurrent_writers_and_kept_per_endpoint(tmp_path):
    uploads = pack_module("nodes.runware.uploads")
    a = uploads.UploadCache(store_mod.Store(tmp_path / "s.sqlite"))
    b = uploads.UploadCache(store_mod.Store(tmp_path / "s.sqlite"))
    a.put("https://api.runware.ai:443", "ka", "ua")
    b.put("https://api.runware.ai:443", "kb", "ub")
    fresh = uploads.UploadCache(store_mod.Store(tmp_path / "s.sqlite"))
    assert fresh.get("https://api.runware.ai:443", "ka") == "ua"
    assert fresh.get("https://api.runware.ai:443", "kb") == "ub"
    assert fresh.get("http://127.0.0.1:8765", "ka") is None  # another endpoint
    a.forget_uuid("https://api.runware.ai:443", "ua")
    assert uploads.UploadCache(store_mod.Store(tmp_path / "s.sqlite")).get(
        "https://api.runware.ai:443", "ka") is None


def test_older_takes_stay_cache_entries(double, fast_config, store):
    first = run(ovi_job(), fast_config, store)[0]
    second = run(ovi_job(), fast_config, store, reuse=False)[0]
    assert first.path != second.path and first.path.exists()
    made_hours_ago(store, endpoint(fast_config), first.result.task_uuid)
    made_hours_ago(store, endpoint(fast_config), second.result.task_uuid, hours=2)
    assert fresh_store(store).evict() == 0  # no sweep of paid files: the older take stays
    assert first.path.exists() and second.path.exists()
    older = store.find_task(endpoint(fast_config), first.result.task_uuid)
    assert older is not None and store.is_intact(older.results[0])
    assert run(ovi_job(), fast_config, store)[0].path == second.path  # the newest take


def test_hashing_a_big_input_can_be_cancelled(tmp_path):
    uploads = pack_module("nodes.runware.uploads")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (3 << 20))
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 1:
            raise errors.CancelledError("Cancelled by the user")

    with pytest.raises(errors.CancelledError):
        uploads.content_hash(big, check)


# -- issue 10: endpoints, evidence, retention --------------------------------------------------


@pytest.fixture
def second(tmp_path):
    """Another endpoint: a second double on its own port."""
    server = pack_module("nodes.runware.double").RunwareDouble(
        api_key=conftest.TEST_KEY, job_seconds=0.1, storage_dir=tmp_path / "double2")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def at(config, server):
    return dataclasses.replace(config, api_url=server.base_url)


def test_a_result_from_one_endpoint_is_never_served_for_another(double, second, fast_config,
                                                                store):
    offline = run(ovi_job(), fast_config, store)[0]
    real = run(ovi_job(), at(fast_config, second), store)[0]
    assert len(second.accepted_submissions()) == 1  # paid where it was asked, not "cached"
    assert real.path != offline.path and not real.cached
    assert real.result.video_uuid in second.results
    double.reset_log()
    second.reset_log()
    back = run(ovi_job(), fast_config, store)[0]  # and back: each keeps its own result
    assert back.cached and back.path == offline.path and double.log == []
    assert run(ovi_job(), at(fast_config, second), store)[0].path == real.path


def test_a_journaled_job_survives_runs_at_another_endpoint(double, second, fast_config, store):
    double.job_seconds = 1000
    with pytest.raises(errors.JobTimeoutError) as info:
        run(ovi_job(), dataclasses.replace(fast_config, job_timeout=0.3), store)
    paid = info.value.task_uuid
    # The same graph offline: the other endpoint does not know the task. Nothing of the
    # first endpoint's job may be dropped because of that.
    run(ovi_job(), at(fast_config, second), store)
    assert store.store.journal_find_task(endpoint(fast_config), paid) is not None
    double.job_seconds = 0.1
    back = run(ovi_job(), fast_config, fresh_store(store))
    assert back[0].result.task_uuid == paid and accepted(double) == 1


def test_upload_memory_is_per_endpoint(double, second, fast_config, store):
    run(ovi_job(image=True), fast_config, store)
    run(ovi_job(image=True), at(fast_config, second), store)
    assert second.count("imageUpload") == 1  # uploaded there, not a foreign UUID
    assert len(second.accepted_submissions()) == 1
    assert all(e["status"] == 200 for e in second.log if e["method"] == "POST")


def test_a_resumed_job_past_its_limit_is_polled_once(double, fast_config, store):
    double.job_seconds = 0.5
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(errors.CancelledError):
        run(ovi_job(), fast_config, store, should_cancel=stop.is_set)
    time.sleep(0.6)  # done on Runware meanwhile
    store.store.close()
    conn = __import__("sqlite3").connect(store.store.path)  # ... and submitted an hour ago
    conn.execute("UPDATE jobs SET submitted = submitted - 3600")
    conn.commit()
    conn.close()
    double.reset_log()
    results = run(ovi_job(), dataclasses.replace(fast_config, job_timeout=5),
                  fresh_store(store))
    assert results[0].path.is_file() and double.count("getResponse") == 1
    assert accepted(double) == 0  # (the log was reset: the one job of the first run)


def test_the_time_limit_counts_from_submission(double, fast_config, store):
    double.job_seconds = 1000
    short = dataclasses.replace(fast_config, job_timeout=0.8)
    with pytest.raises(errors.JobTimeoutError):
        run(ovi_job(), short, store)
    time.sleep(0.5)
    double.reset_log()
    started = time.monotonic()
    with pytest.raises(errors.JobTimeoutError) as info:
        run(ovi_job(), short, fresh_store(store))  # resumed: one poll, then the limit
    assert time.monotonic() - started < 0.6 and double.count("getResponse") == 1
    assert "queue the same graph again" in str(info.value)
    assert journaled(store, ovi_job(), fast_config) is not None


def test_a_mangled_submit_answer_keeps_the_journal(double, fast_config, store):
    # Accepted by Runware, but a proxy replaced the answer with an HTML page.
    double.answer_next(200, "<html><body>Welcome to the hotel wifi</body></html>",
                       task_type="videoInference", process=True)
    with pytest.raises(errors.EndpointError) as info:
        run(ovi_job(), fast_config, store)
    assert info.value.task_uuid and "queue again" in str(info.value)
    assert journaled(store, ovi_job(), fast_config) is not None
    results = run(ovi_job(), fast_config, store)  # resumed by polling, not paid again
    assert results[0].path.is_file() and accepted(double) == 1


def test_a_proxy_413_on_upload_is_not_retried_and_nothing_is_paid(double, fast_config, store):
    double.answer_next(413, "<html><title>413 Request Entity Too Large</title></html>",
                       task_type="imageUpload", count=5)
    with pytest.raises(errors.EndpointError) as info:
        run(ovi_job(image=True), fast_config, store)
    assert double.count("imageUpload") == 1 and double.count("videoInference") == 0
    assert "413" in str(info.value) and "body size" in str(info.value)
    double.clear_faults()


def test_partial_results_of_a_failed_job_are_kept_and_findable(double, fast_config, store):
    double.fail_next_job_after(1, code="inferenceError", message="second one crashed")
    with pytest.raises(errors.TaskFailedError) as info:
        run(ovi_job(number_results=2), fast_config, store)
    task_uuid = info.value.task_uuid
    assert "saved to" in str(info.value)
    kept = store.find_task(endpoint(fast_config), task_uuid)
    assert kept is not None and len(kept.results) == 1 and store.is_intact(kept.results[0])
    job = store.store.job(endpoint(fast_config), task_uuid)
    assert job.status == "failed" and job.cost == pytest.approx(0.05)
    assert journaled(store, ovi_job(number_results=2), fast_config) is None
    files = made_hours_ago(store, endpoint(fast_config), task_uuid)
    restarted = fresh_store(store)
    assert restarted.evict() == 0  # kept like any result (no sweep of "unreferenced" files)
    assert all(f.exists() for f in files)
    assert restarted.find_task(endpoint(fast_config), task_uuid) is not None
    # The recovery of the failed job serves the kept file, no request.
    double.reset_log()
    fetched = asyncio.run(jobs.fetch_task(task_uuid, config=fast_config, cache=store,
                                          model="runware:190@1"))
    assert fetched[0].cached and fetched[0].path.name == kept.results[0].file
    assert double.log == []


def test_a_recovered_job_without_journal_is_a_cache_entry(double, fast_config, store):
    async def submit():
        async with client_mod.RunwareClient(fast_config) as client:
            return await client.submit_video(dict(ovi_job(seed=77).task))

    task_uuid = asyncio.run(submit())  # paid elsewhere, e.g. by another tool
    got = asyncio.run(jobs.fetch_task(task_uuid, config=fast_config, cache=store,
                                      model="runware:190@1"))
    job = store.store.job(endpoint(fast_config), task_uuid)
    assert job.status == "recovered" and job.fingerprint is None and job.cost == 0.05
    found = store.find_task(endpoint(fast_config), task_uuid)
    assert found.results[0].file == got[0].path.name
    made_hours_ago(store, endpoint(fast_config), task_uuid)
    assert fresh_store(store).evict() == 0
    assert got[0].path.exists()  # no hour-old orphan sweep
    # The other endpoint never gets it by taskUUID.
    assert store.find_task("https://api.runware.ai:443", task_uuid) is None


@pytest.mark.parametrize("what", ["html", "truncated"])
def test_a_bad_download_is_not_cached_and_a_requeue_downloads_again(double, fast_config,
                                                                    store, what, tmp_path):
    sample = run(ovi_job(seed=99), fast_config, store)[0].path.read_bytes()
    body = (b"<!DOCTYPE html><html><title>Blocked</title></html>" if what == "html"
            else sample[: len(sample) // 2])
    double.serve_next_download(body, "text/html" if what == "html" else "video/mp4")
    with pytest.raises(errors.DownloadError) as info:
        run(ovi_job(), fast_config, store)
    text = str(info.value)
    assert ("HTML page" in text) if what == "html" else ("truncated" in text or
                                                       "damaged" in text)
    assert info.value.task_uuid in text
    assert store.lookup(endpoint(fast_config), fp(ovi_job(), fast_config)) is None
    assert journaled(store, ovi_job(), fast_config) is not None
    results = run(ovi_job(), fast_config, store)
    assert results[0].path.is_file() and accepted(double) == 2  # seed 99 + this one


def test_eviction_never_deletes_a_file_a_video_points_at(double, fast_config, tmp_path):
    import gc

    store = cache_mod.ResultCache(tmp_path / "c", max_bytes=1, recent=0)
    first = run(ovi_job(seed=1), fast_config, store)[0]

    class Video:  # stands for ComfyUI's VideoFromFile
        pass

    held = Video()
    cache_mod.pin_file(first.path, held)
    run(ovi_job(seed=2), fast_config, store)
    assert first.path.exists()  # pinned: over the cap but still in use
    del held
    gc.collect()
    store.evict()
    assert not first.path.exists()


def test_the_node_pins_its_video_outputs(env, tmp_path):
    import gc

    common = pack_module("nodes.run")
    results = asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(
        prompt="x <S>y<E>", seed=3, steps=30, fps=12, video_cfg_scale=5.0,
        audio_cfg_scale=4.0))["result"]
    path = Path(__import__("json").loads(results[4][0])["file"])
    assert cache_mod.is_pinned(path)
    del results
    gc.collect()
    assert not cache_mod.is_pinned(path)
    assert common.result_cache().root == tmp_path / "output" / "runware"


def test_the_ledger_has_what_a_spend_panel_needs(env, tmp_path):
    import json as json_mod

    out = asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(
        prompt="x <S>y<E>", seed=8, steps=30, fps=12, video_cfg_scale=5.0,
        audio_cfg_scale=4.0, unique_id="17"))["result"]
    info = json_mod.loads(out[4][0])
    cache = pack_module("nodes.run").result_cache()
    (job,) = cache.store.jobs()
    assert job.task_uuid == info["taskUUID"] and job.model == "runware:190@1"
    assert job.endpoint == store_mod.api_endpoint(env.base_url) and job.node_id == "17"
    assert job.status == "succeeded" and job.cost == pytest.approx(0.05)
    assert job.submitted <= job.finished and len(job.fingerprint) == 64
    assert [r.file for r in cache.store.results_of(job.endpoint, job.task_uuid)] == [
        Path(info["file"]).name]


def test_fetch_result_accepts_other_uuid_spellings(env, tmp_path):
    import json as json_mod

    out = asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(
        prompt="x <S>y<E>", seed=9, steps=30, fps=12, video_cfg_scale=5.0,
        audio_cfg_scale=4.0))["result"]
    task_uuid = json_mod.loads(out[4][0])["taskUUID"]
    fetch = PACK.NODE_CLASS_MAPPINGS["RunwareFetchResult"]()
    for spelling in (f"urn:uuid:{task_uuid.upper()}", "{" + task_uuid + "}",
                     task_uuid.replace("-", ""), f' "{task_uuid}" '):
        got = asyncio.run(fetch.fetch(task_uuid=spelling, model="Ovi"))["result"]
        assert json_mod.loads(got[4][0])["taskUUID"] == task_uuid
    env.reset_log()
    with pytest.raises(errors.ValidationError) as info:
        asyncio.run(fetch.fetch(task_uuid=task_uuid[:-1] + "\ud800", model="Ovi"))
    assert "task_uuid" in str(info.value) and env.log == []


def test_session_total_ignores_a_nan_cost():
    total = jobs.SessionCost()
    total.add(0.5)
    total.add(float("nan"))
    total.add(float("inf"))
    assert total.add(-1.0) == 0.5 and total.jobs == 4


def test_a_result_in_another_video_container_is_kept_under_its_real_name(double, fast_config,
                                                                         store):
    webm = run(ovi_job(seed=31, output_format="WEBM"), fast_config, store)[0].path
    assert webm.suffix == ".webm"
    double.serve_next_download(webm.read_bytes(), "video/webm")
    got = run(ovi_job(seed=32), fast_config, store)[0]  # MP4 asked, WEBM arrived
    assert got.path.suffix == ".webm" and got.path.read_bytes() == webm.read_bytes()
    assert run(ovi_job(seed=32), fast_config, fresh_store(store))[0].cached


def test_a_cancel_while_saving_partial_results_keeps_the_job(double, fast_config, store):
    double.fail_next_job_after(1)
    hook = Phase("downloading")
    with pytest.raises(errors.CancelledError):
        run(ovi_job(number_results=2), fast_config, store, should_cancel=hook,
            on_progress=hook.progress)
    assert journaled(store, ovi_job(number_results=2), fast_config) is not None
    with pytest.raises(errors.TaskFailedError) as info:  # resumed: saved, then reported
        run(ovi_job(number_results=2), fast_config, store)
    kept = store.find_task(endpoint(fast_config), info.value.task_uuid)
    assert kept is not None and len(kept.results) == 1 and "saved to" in str(info.value)
    assert journaled(store, ovi_job(number_results=2), fast_config) is None
    assert accepted(double) == 1


def test_an_unrepairable_result_set_keeps_its_intact_files(double, fast_config, store):
    first, second = run(ovi_job(number_results=2), fast_config, store)
    first.path.unlink()
    double.expire_task(first.result.task_uuid)
    double.fail_downloads(404)
    with pytest.raises(errors.TaskNotFoundError):
        run(ovi_job(number_results=2), fast_config, store)
    assert second.path.is_file()  # the intact paid file stays, findable by taskUUID
    kept = store.find_task(endpoint(fast_config), second.result.task_uuid)
    assert [r.file for r in kept.results] == [second.path.name]


def test_a_damaged_partial_result_whose_url_is_gone_is_fetched_from_the_failure_reply(
        double, fast_config, store):
    """A multi-result job failed after one result (paid, kept). Its file is damaged later
    and the kept URL no longer answers: Fetch Result asks getResponse again, whose failure
    reply still lists the finished result, and downloads it; nothing is submitted."""
    double.fail_next_job_after(1, code="inferenceError", message="second one crashed")
    with pytest.raises(errors.TaskFailedError) as info:
        run(ovi_job(number_results=2), fast_config, store)
    task_uuid = info.value.task_uuid
    saved = store.store.results_of(endpoint(fast_config), task_uuid)
    assert len(saved) == 1
    path = store.result_path(saved[0])
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    double.fail_downloads(404, count=1)  # the kept URL has expired
    double.reset_log()
    recovered = asyncio.run(jobs.fetch_task(task_uuid, config=fast_config,
                                            cache=fresh_store(store), model="runware:190@1"))
    assert len(recovered) == 1 and recovered[0].path.read_bytes() == good
    kinds = [t for e in double.log for t in (e.get("task_types") or [])]
    assert "getResponse" in kinds and "videoInference" not in kinds
