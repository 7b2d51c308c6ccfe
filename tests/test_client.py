"""The Runware client against the local double, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid

import pytest
from conftest import TEST_KEY, pack_module, run_task
from media_factory import png_bytes, probe, write_mp4, write_wav

client_mod = pack_module("nodes.runware.client")
errors = pack_module("nodes.runware.errors")
config_mod = pack_module("nodes.runware.config")
tasks_mod = pack_module("nodes.runware.tasks")
RunwareClient = client_mod.RunwareClient

OVI = "runware:190@1"
SYNC3 = "sync:lipsync@3"


def run(coro):
    return asyncio.run(coro)


def ovi_task(**extra):
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": OVI,
        "positivePrompt": "A cat says <S>hello<E>",
        "fps": 12,
        "seed": 7,
        "includeCost": True,
        "outputType": "URL",
        "outputFormat": "MP4",
    }
    task.update(extra)
    return task


async def with_client(config, fn, **kwargs):
    async with RunwareClient(config, **kwargs) as client:
        return await fn(client)


# -- key ------------------------------------------------------------------------------


def test_missing_key_is_a_clear_error_before_any_request(double, monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    monkeypatch.setenv("RUNWARE_API_URL", double.base_url)
    config = config_mod.ClientConfig.from_env()
    with pytest.raises(errors.MissingApiKeyError) as info:
        RunwareClient(config)
    assert "RUNWARE_API_KEY" in str(info.value)
    assert double.log == []


def test_key_from_environment_and_never_in_repr(double, monkeypatch):
    monkeypatch.setenv("RUNWARE_API_KEY", TEST_KEY)
    monkeypatch.setenv("RUNWARE_API_URL", double.base_url)
    config = config_mod.ClientConfig.from_env()
    assert config.api_url == double.base_url
    assert TEST_KEY not in repr(config)


def test_wrong_key_raises_auth_error_without_the_key(fast_config):
    config = dataclasses.replace(fast_config, api_key="wrong-key-abcdef")
    with pytest.raises(errors.AuthError) as info:
        run(with_client(config, lambda c: c.upload_image(png_bytes())))
    assert info.value.code == "invalidApiKey"
    assert info.value.http_status == 401
    assert "wrong-key-abcdef" not in str(info.value)


# -- uploads --------------------------------------------------------------------------


def test_image_upload_returns_uuid_known_to_the_server(double, fast_config):
    result = run(with_client(fast_config, lambda c: c.upload_image(png_bytes())))
    uuid.UUID(result.uuid)
    assert result.uuid in double.uploads
    assert double.count("imageUpload") == 1


def test_media_upload_streams_a_video_file(double, fast_config, tmp_path):
    path = write_mp4(tmp_path / "in.mp4")
    result = run(with_client(fast_config, lambda c: c.upload_media(path, "video/mp4")))
    assert result.uuid in double.uploads
    entry = [e for e in double.log if "mediaStorage" in e["task_types"]][-1]
    assert entry["status"] == 200


def test_media_upload_of_audio_bytes(double, fast_config, tmp_path):
    data = write_wav(tmp_path / "a.wav").read_bytes()
    result = run(with_client(fast_config, lambda c: c.upload_media(data, "audio/wav")))
    assert result.uuid in double.uploads


def test_garbage_upload_is_a_validation_error(fast_config):
    with pytest.raises(errors.ValidationError):
        run(with_client(fast_config, lambda c: c.upload_media(b"not a video", "video/mp4")))


def test_upload_retries_after_lost_answer_without_conflict(double, fast_config):
    double.lose_next_response("imageUpload")
    result = run(with_client(fast_config, lambda c: c.upload_image(png_bytes())))
    assert result.uuid in double.uploads


# -- full jobs ------------------------------------------------------------------------


def test_ovi_submit_poll_download(double, fast_config, tmp_path):
    progress = []
    [done] = run_task(fast_config, ovi_task(), tmp_path, on_progress=progress.append)
    assert done.result.seed == 7
    assert done.result.cost is not None and done.result.cost > 0
    info = probe(done.path)
    assert abs(info["frames"] - 5 * 12) <= 1
    assert info["channels"] == 2
    phases = {p.phase for p in progress}
    assert {"submitting", "processing", "downloading"} <= phases
    assert len(double.accepted_submissions()) == 1


def test_sync3_with_uploaded_video_and_audio(double, fast_config, tmp_path):
    video = write_mp4(tmp_path / "face.mp4", frames=24, fps=12)
    audio = write_wav(tmp_path / "voice.wav", seconds=1.5)

    v, a = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": SYNC3,
        "inputs": {"video": v, "audio": a},
        "settings": {"syncMode": "cut_off"},
        "includeCost": True,
    }
    uploads = [tasks_mod.Upload("video", v, video, "video/mp4", "mediaStorage"),
               tasks_mod.Upload("audio", a, audio, "audio/wav", "mediaStorage")]
    [done] = run_task(fast_config, task, tmp_path, uploads=uploads)
    assert double.count("mediaStorage") == 2
    src, out = probe(video), probe(done.path)
    assert (out["width"], out["height"], out["frames"]) == (src["width"], src["height"], 24)
    assert out.get("sample_rate")


def test_multi_result_job_is_deduplicated_and_ordered(double, fast_config, tmp_path):
    reports = []
    results = [d.result for d in run_task(fast_config, ovi_task(numberResults=3), tmp_path,
                                          on_progress=reports.append)]
    assert len(results) == 3
    assert len({r.video_uuid for r in results}) == 3
    assert len({r.seed for r in results}) == 3
    done_counts = {p.done for p in reports if p.phase == "processing"}
    assert done_counts & {1, 2}, "cumulative partial listings were seen while polling"


def test_media_uuid_and_url_keys_are_accepted(double, fast_config, tmp_path):
    double.result_keys = "media"
    [done] = run_task(fast_config, ovi_task(), tmp_path)
    assert done.result.url.startswith(double.base_url.rsplit("/v1", 1)[0])


# -- error classes ----------------------------------------------------------------------


def test_validation_error_names_the_parameter_and_nothing_is_accepted(double, fast_config,
                                                                     tmp_path):
    with pytest.raises(errors.ValidationError) as info:
        run_task(fast_config, ovi_task(steps=500), tmp_path)
    assert info.value.parameter == "steps"
    assert info.value.http_status == 400
    assert double.accepted_submissions() == []


def test_insufficient_credits(double, fast_config, tmp_path):
    double.fail_next(402, code="insufficientCredits", task_type="videoInference")
    with pytest.raises(errors.InsufficientCreditsError) as info:
        run_task(fast_config, ovi_task(), tmp_path)
    assert info.value.code == "insufficientCredits"
    assert "wallet" in str(info.value)


def test_rate_limit_exhausts_retries(double, fast_config, tmp_path):
    config = dataclasses.replace(fast_config, max_retries=2)
    double.fail_next(429, count=10, task_type="videoInference")
    with pytest.raises(errors.RateLimitError) as info:
        run_task(config, ovi_task(), tmp_path)
    assert info.value.http_status == 429
    assert double.count("videoInference") == 3
    assert double.accepted_submissions() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_exhaust_retries(double, fast_config, status):
    config = dataclasses.replace(fast_config, max_retries=1)
    double.fail_next(status, count=10, task_type="imageUpload")
    with pytest.raises(errors.ServerError) as info:
        run(with_client(config, lambda c: c.upload_image(png_bytes())))
    assert info.value.http_status == status


@pytest.mark.parametrize("shape", ["errors", "data"])
def test_failed_job_in_both_error_shapes(double, fast_config, shape, tmp_path):
    double.fail_next_job(shape=shape, code="inferenceError", message="the GPU caught fire")
    with pytest.raises(errors.TaskFailedError) as info:
        run_task(fast_config, ovi_task(), tmp_path)
    assert info.value.code == "inferenceError"
    assert info.value.task_uuid == double.accepted_submissions()[0]["taskUUID"]
    assert "GPU caught fire" in str(info.value)


def test_expired_task_is_task_not_found(double, fast_config):
    double.job_seconds = 30

    async def job(client):
        task_uuid = await client.submit_video(ovi_task())
        double.expire_task(task_uuid)
        return await client.poll_video(task_uuid)

    with pytest.raises(errors.TaskNotFoundError) as info:
        run(with_client(fast_config, job))
    assert info.value.code == "taskExpired"


def test_overall_timeout_names_the_task(double, fast_config, tmp_path):
    double.job_seconds = 1000
    config = dataclasses.replace(fast_config, job_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(errors.JobTimeoutError) as info:
        run_task(config, ovi_task(), tmp_path)
    assert time.monotonic() - started < 3
    assert info.value.task_uuid == double.accepted_submissions()[0]["taskUUID"]


# -- retries never double-bill ---------------------------------------------------------


def test_429_three_times_then_success_submits_once(double, fast_config, tmp_path):
    double.fail_next(429, count=3, task_type="videoInference")
    assert len(run_task(fast_config, ovi_task(), tmp_path)) == 1
    assert double.count("videoInference") == 4
    assert len(double.accepted_submissions()) == 1


def test_lost_submit_answer_is_retried_with_same_uuid_and_polled(double, fast_config,
                                                                 tmp_path):
    double.lose_next_response("videoInference")
    [done] = run_task(fast_config, ovi_task(), tmp_path)
    sent = [t for e in double.log for t in e["tasks"] if t.get("taskType") == "videoInference"]
    assert len(sent) == 2 and {t["taskUUID"] for t in sent} == {done.result.task_uuid}
    assert len(double.accepted_submissions()) == 1


def test_poll_survives_transient_errors(double, fast_config, tmp_path):
    double.fail_next(503, count=2, task_type="getResponse")
    assert len(run_task(fast_config, ovi_task(), tmp_path)) == 1
    assert len(double.accepted_submissions()) == 1


# -- downloads --------------------------------------------------------------------------


def test_dropped_download_resumes_with_range(double, fast_config, tmp_path):
    [done] = run_task(fast_config, ovi_task(), tmp_path / "job")

    async def job(client):
        full = await client.download(done.result.url, tmp_path / "full.mp4")
        double.drop_download_after(2000)
        resumed = await client.download(done.result.url, tmp_path / "resumed.mp4")
        return full, resumed

    full, resumed = run(with_client(fast_config, job))
    assert full.read_bytes() == done.path.read_bytes()
    assert resumed.read_bytes() == full.read_bytes()
    assert any(e.get("range") == "bytes=2000-" for e in double.log)
    assert not list(tmp_path.glob("*.part"))


def test_download_refuses_plain_http_to_other_hosts(double, fast_config, tmp_path):
    before = len(double.log)
    with pytest.raises(errors.ValidationError):
        run(with_client(fast_config, lambda c: c.download("http://example.com/x.mp4",
                                                           tmp_path / "x.mp4")))
    assert len(double.log) == before


def test_download_error_status_is_reported(double, fast_config, tmp_path):
    [done] = run_task(fast_config, ovi_task(), tmp_path / "job")
    double.fail_downloads(404)
    with pytest.raises(errors.DownloadError) as info:
        run(with_client(fast_config, lambda c: c.download(done.result.url, tmp_path / "x.mp4")))
    assert info.value.http_status == 404


# -- cancel in every wait ---------------------------------------------------------------


class CancelAfter:
    """A cancel hook that starts answering True some time after it is armed."""

    def __init__(self, seconds: float | None = None):
        self.at = None if seconds is None else time.monotonic() + seconds
        self.fired_at: float | None = None

    def arm(self, seconds: float = 0.0) -> None:
        self.at = time.monotonic() + seconds

    def __call__(self) -> bool:
        if self.at is not None and time.monotonic() >= self.at:
            self.fired_at = self.fired_at or time.monotonic()
            return True
        return False


def assert_cancelled_quickly(config, fn, hook, **kwargs):
    with pytest.raises(errors.CancelledError):
        run(with_client(config, fn, should_cancel=hook, **kwargs))
    assert hook.fired_at is not None
    assert time.monotonic() - hook.fired_at < 1.0


def test_cancel_while_a_request_is_in_flight(double, fast_config):
    double.latency = 5
    assert_cancelled_quickly(fast_config, lambda c: c.upload_image(png_bytes()),
                             CancelAfter(0.3))


def test_cancel_during_retry_sleep(double, fast_config):
    config = dataclasses.replace(fast_config, retry_base_delay=10, retry_max_delay=10)
    double.fail_next(503, count=5)
    assert_cancelled_quickly(config, lambda c: c.upload_image(png_bytes()), CancelAfter(0.3))


def test_cancel_while_polling(double, fast_config, tmp_path):
    double.job_seconds = 1000
    config = dataclasses.replace(fast_config, poll_initial=5, poll_max=5)
    hook = CancelAfter(0.5)
    with pytest.raises(errors.CancelledError):
        run_task(config, ovi_task(), tmp_path, should_cancel=hook)
    assert hook.fired_at is not None and time.monotonic() - hook.fired_at < 1.0
    assert len(double.accepted_submissions()) == 1


def test_cancel_during_upload_stream(fast_config, tmp_path):
    path = write_mp4(tmp_path / "in.mp4")
    hook = CancelAfter()
    assert_cancelled_quickly(
        fast_config, lambda c: c.upload_media(path, "video/mp4"), hook,
        on_progress=lambda p: hook.arm() if p.phase == "uploading" else None,
    )


def test_cancel_during_download(double, fast_config, tmp_path):
    config = dataclasses.replace(fast_config, download_chunk=256)
    hook = CancelAfter()
    [done] = run_task(fast_config, ovi_task(), tmp_path / "job")

    async def job(client):
        hook.arm()
        return await client.download(done.result.url, tmp_path / "x.mp4")

    assert_cancelled_quickly(config, job, hook)
    assert not (tmp_path / "x.mp4").exists()
    assert not list(tmp_path.glob("*.part"))  # no junk left behind


# -- the key never leaks ----------------------------------------------------------------


def test_key_absent_from_errors_logs_and_double_log(double, fast_config, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    double.fail_next(429, count=2)
    run_task(fast_config, ovi_task(), tmp_path)
    with pytest.raises(errors.RunwareError) as info:
        run_task(fast_config, ovi_task(steps=0), tmp_path)
    assert TEST_KEY not in str(info.value)
    assert TEST_KEY not in caplog.text
    assert TEST_KEY not in repr(double.log)


def test_server_echoing_the_key_is_scrubbed():
    err = errors.error_from_item(
        {"code": "invalidApiKey", "message": f"key {TEST_KEY} is invalid"}, 401, secret=TEST_KEY
    )
    assert TEST_KEY not in str(err)
    assert isinstance(err, errors.AuthError)


# -- reply parsing (the shapes Runware is known to send) --------------------------------


def test_reply_shapes():
    parse = client_mod._parse_reply
    legacy = parse(400, {"error": {"code": "unknownParameter", "message": "x"}})
    assert legacy.errors[0]["code"] == "unknownParameter"
    legacy_list = parse(400, {"error": [{"code": "a", "message": "x"}]})
    assert legacy_list.errors[0]["code"] == "a"
    mixed = parse(200, {"data": [{"taskUUID": "1", "imageUUID": "u"},
                                 {"taskUUID": "2", "status": "error",
                                  "error": {"code": "inferenceError", "message": "m"}}],
                        "errors": [{"code": "c", "message": "m", "taskUUID": "3"}]})
    assert [d["taskUUID"] for d in mixed.data] == ["1"]
    assert {e["taskUUID"] for e in mixed.errors} == {"2", "3"}
    err = errors.error_from_item(mixed.errors[0], None)
    assert err.code == "c" and err.task_uuid == "3"
    nested = errors.error_from_item(mixed.errors[1], None)
    assert nested.code == "inferenceError" and nested.task_uuid == "2"


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("invalidApiKey", 401, "AuthError"),
        (None, 403, "AuthError"),
        ("insufficientCredits", 402, "InsufficientCreditsError"),
        ("rateLimitExceeded", 429, "RateLimitError"),
        ("providerRateLimitExceeded", 200, "RateLimitError"),
        ("unknownParameter", 400, "ValidationError"),
        ("internalServerError", 500, "ServerError"),
        ("taskNotFound", 404, "TaskNotFoundError"),
        ("somethingNew", None, "TaskFailedError"),
    ],
)
def test_error_classes(code, status, cls):
    assert errors.error_class_for(code, status).__name__ == cls


def test_cancel_hook_runs_on_other_threads_too(double, fast_config, tmp_path):
    """The hook is a plain callable: a flag set from another thread stops the wait."""
    flag = threading.Event()
    double.job_seconds = 1000
    threading.Timer(0.3, flag.set).start()
    started = time.monotonic()
    with pytest.raises(errors.CancelledError) as info:
        run_task(fast_config, ovi_task(), tmp_path, should_cancel=flag.is_set)
    assert time.monotonic() - started < 1.5
    assert info.value.task_uuid


def test_results_come_in_a_stable_order_whatever_order_they_finish():
    make = client_mod.VideoResult
    shuffled = [make("t", "c", "u3", seed=12), make("t", "a", "u1", seed=10),
                make("t", "b", "u2", seed=11)]
    assert [r.seed for r in sorted(shuffled, key=client_mod.result_order)] == [10, 11, 12]
    indexed = [make("t", "x", "u", seed=5, index=1), make("t", "y", "v", seed=9, index=0)]
    assert [r.index for r in sorted(indexed, key=client_mod.result_order)] == [0, 1]
