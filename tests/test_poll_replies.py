"""One pure classifier for getResponse answers, on a table of real reply shapes.

Only positive evidence (an item with status "error", a nested error object for this
taskUUID, a job-failure code, a task-not-found code) may end a job. Everything it does
not understand keeps polling. Then the same rules over real HTTP against the double.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import uuid

import pytest
from conftest import TEST_KEY, pack_module, run_task

client_mod = pack_module("nodes.runware.client")
errors = pack_module("nodes.runware.errors")
classify = client_mod.classify_poll_reply

T = "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
OTHER = "0a0b0c0d-1111-4222-8333-444455556666"
URL = "https://vm.runware.ai/video/ws/5/vi/abc.mp4"


def ok(*items, **extra):
    return json.dumps({"data": list(items), **extra})


def errs(*items):
    return json.dumps({"errors": list(items)})


def item(status="processing", task=T, **fields):
    return {"taskType": "videoInference", "taskUUID": task, "status": status, **fields}


def success(task=T, **fields):
    return item("success", task, **{"videoUUID": "v-1", "videoURL": URL, "seed": 7,
                                    "cost": 0.25, **fields})


HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
FIREWALL = "<html><head><title>Access denied</title></head><body>Blocked by policy</body></html>"

# (name, HTTP status or None, body, expected kind)
TABLE = [
    ("processing with progress", 200, ok(item(progress=40)), "processing"),
    ("pending is processing", 200, ok(item("pending")), "processing"),
    ("queued is processing", 200, ok(item("queued")), "processing"),
    ("bare item without status", 200, ok({"taskType": "videoInference", "taskUUID": T}),
     "processing"),
    ("echoes getResponse as taskType", 200,
     ok({"taskType": "getResponse", "taskUUID": T, "status": "processing"}), "processing"),
    ("success with videoURL", 200, ok(success()), "success"),
    ("success with mediaURL", 200,
     ok(item("success", mediaUUID="m-1", mediaURL=URL, cost=0.1)), "success"),
    ("one done one running", 200, ok(success(), item(progress=10)), "processing"),
    ("bare list of items", 200, json.dumps([success()]), "success"),
    ("failed, errors shape (docs)", 400,
     errs({"code": "inferenceError", "message": "model crashed", "taskType": "videoInference",
           "taskUUID": T, "status": "error"}), "failed"),
    ("failed, data shape (newer SDKs)", 200,
     ok(item("error", error={"code": "inferenceError", "message": "x"})), "failed"),
    ("failed with a partial result", 200,
     ok(success(), item("error", error={"code": "inferenceError", "message": "x"})), "failed"),
    ("a job-failure code without status", 400,
     errs({"code": "contentPolicyViolation", "message": "nope", "taskUUID": T}), "failed"),
    ("status error with an unknown code", 400,
     errs({"code": "brandNewFailure", "message": "x", "taskUUID": T, "status": "error"}),
     "failed"),
    ("legacy singular error object", 400,
     json.dumps({"error": {"code": "inferenceError", "message": "x"}}), "failed"),
    ("taskNotFound", 404, errs({"code": "taskNotFound", "message": "no", "taskUUID": T}),
     "not_found"),
    ("taskExpired", 404, errs({"code": "taskExpired", "message": "old", "taskUUID": T}),
     "not_found"),
    ("taskFailedOrNotFound", 400, errs({"code": "taskFailedOrNotFound", "message": "?"}),
     "not_found"),
    ("another spelling: TASK_NOT_FOUND", 404, errs({"code": "TASK_NOT_FOUND"}), "not_found"),
    ("unknown code echoing our taskUUID is not proof", 400,
     errs({"code": "somethingNew", "message": "?", "taskUUID": T}), "unknown"),
    ("unknown code, no taskUUID", 200, errs({"code": "mysteryCode"}), "unknown"),
    ("200 whose JSON is a string", 200, json.dumps("ok"), "unknown"),
    ("200 whose JSON is a number", 200, "42", "unknown"),
    ("200 whose JSON is null", 200, "null", "unknown"),
    ("200 HTML page (captive portal)", 200, FIREWALL, "unknown"),
    ("200 empty body", 200, "", "unknown"),
    ("200 empty data", 200, ok(), "unknown"),
    ("only another task's items", 200, ok(success(task=OTHER)), "unknown"),
    ("another task's failure is not ours", 400,
     errs({"code": "inferenceError", "taskUUID": OTHER, "status": "error"}), "unknown"),
    ("success without a URL", 200, ok(item("success")), "unknown"),
    ("502 HTML from a proxy", 502, HTML, "transient"),
    ("503 JSON", 503, errs({"code": "serviceUnavailable", "message": "busy"}), "transient"),
    ("500 empty", 500, "", "transient"),
    ("429", 429, errs({"code": "rateLimitExceeded"}), "transient"),
    ("408", 408, "", "transient"),
    ("200 with a rate-limit error item", 200, errs({"code": "rateLimitExceeded"}), "transient"),
    ("no answer at all", None, None, "transient"),
    ("404 HTML: wrong URL path", 404, "<html><body>Not Found</body></html>", "refused"),
    ("413 HTML from a proxy", 413, "<html><head><title>413 Request Entity Too Large</title>"
     "</head></html>", "refused"),
    ("403 firewall page", 403, FIREWALL, "refused"),
    ("404 JSON from a wrong path", 404, errs({"code": "notFound", "message": "no endpoint"}),
     "refused"),
    ("401 refused key", 401, errs({"code": "invalidApiKey", "message": "bad", "taskUUID": T}),
     "refused"),
    ("402 credits", 402, errs({"code": "insufficientCredits", "message": "top up"}),
     "refused"),
]


@pytest.mark.parametrize(("name", "status", "body", "kind"), TABLE, ids=[t[0] for t in TABLE])
def test_reply_table(name, status, body, kind):
    reply = classify(status, body, T, secret=TEST_KEY, host="api.example:443")
    assert reply.kind == kind, (name, reply)
    if kind in ("failed", "not_found", "refused"):
        assert isinstance(reply.error, errors.RunwareError)
        assert reply.error.task_uuid == T or kind == "refused"
    if kind == "failed":
        assert type(reply.error) is errors.TaskFailedError
    if kind == "not_found":
        assert isinstance(reply.error, errors.TaskNotFoundError)
    if kind in ("unknown", "transient"):
        assert reply.error is None and reply.note


def test_failed_keeps_the_results_that_finished():
    reply = classify(200, ok(success(), item("error", error={"code": "inferenceError",
                                                             "message": "x"})), T)
    assert reply.kind == "failed" and [r.url for r in reply.results] == [URL]


def test_non_json_4xx_names_status_host_and_cause():
    reply = classify(413, "<html><head><title>413 Request Entity Too Large</title></head>"
                     "</html>", T, host="proxy.corp:443")
    text = str(reply.error)
    assert isinstance(reply.error, errors.EndpointError)
    assert "413" in text and "proxy.corp" in text and "HTML page" in text
    assert "body size" in text  # the likely cause
    wrong = classify(404, "<html>Not Found</html>", T, host="api.runware.ai")
    assert "RUNWARE_API_URL" in str(wrong.error) and "/v1" in str(wrong.error)


def test_insane_numbers_are_dropped_and_progress_is_clamped():
    bad = [
        '{"taskUUID": "T", "status": "success", "videoUUID": "a", "videoURL": "U", '
        '"cost": NaN, "seed": Infinity, "resultIndex": -1}',
        '{"taskUUID": "T", "status": "success", "videoUUID": "b", "videoURL": "U/2", '
        '"cost": -3, "seed": 1.5}',
        '{"taskUUID": "T", "status": "success", "videoUUID": "c", "videoURL": "U/3", '
        '"cost": 1e300, "seed": 99999999999999999999999, "resultIndex": true}',
        '{"taskUUID": "T", "status": "processing", "progress": 250}',
        '{"taskUUID": "T", "status": "processing", "progress": NaN}',
    ]
    body = ('{"data": [' + ", ".join(bad) + "]}").replace('"T"', f'"{T}"').replace(
        '"U', f'"{URL}')
    reply = classify(200, body, T)
    assert reply.kind == "processing" and len(reply.results) == 3
    for result in reply.results:
        assert result.cost is None and result.seed is None and result.index is None
    assert reply.percents == (100.0,)
    good = classify(200, ok(success(seed=2**40, cost=0.5, resultIndex=1)), T).results[0]
    assert (good.seed, good.cost, good.index) == (2**40, 0.5, 1)


def test_the_key_echoed_in_an_unknown_code_stays_out_of_the_note():
    reply = classify(400, errs({"code": f"bad-{TEST_KEY}", "taskUUID": T}), T, secret=TEST_KEY)
    assert reply.kind == "unknown" and TEST_KEY not in reply.note


def test_oversized_reply_is_unknown():
    assert classify(200, None, T, too_large=True).kind == "unknown"


# -- the same rules over real HTTP -------------------------------------------------------------


def ovi_task(**extra):
    return {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()),
            "model": "runware:190@1", "positivePrompt": "A cat says <S>hi<E>", "fps": 12,
            "seed": 7, "includeCost": True, "outputType": "URL", "outputFormat": "MP4", **extra}


@pytest.fixture
def run_job(tmp_path):
    """A raw task through the production path (jobs.run_cached_job); its VideoResults."""
    def go(config, task, **kwargs):
        return [done.result for done in run_task(config, task, tmp_path, **kwargs)]

    return go


@pytest.fixture
def real_file_url(double, fast_config):
    """The URL of a real video the double serves (for answers written by a test)."""
    from media_factory import write_mp4

    async def upload(tmp):
        async with client_mod.RunwareClient(fast_config) as client:
            return (await client.upload_media(write_mp4(tmp / "r.mp4"), "video/mp4")).url

    def make(tmp):
        return asyncio.run(upload(tmp))

    return make


def poll_answer(body_for):
    """An answer_next body: the double's reply replaced by one naming the polled task."""
    return lambda tasks: body_for(tasks[0]["taskUUID"])


@pytest.mark.parametrize("body", [
    "<html><body>gateway hiccup</body></html>",
    "null",
    '"ok"',
    '{"errors": [{"code": "brandNewCode", "message": "?"}]}',
])
def test_unclear_answers_keep_polling_until_the_job_is_done(double, fast_config, body,
                                                            run_job):
    double.answer_next(200, body, task_type="getResponse", count=3)
    notes = []
    results = run_job(fast_config, ovi_task(),
                        on_progress=lambda p: p.note and notes.append(p.note))
    assert len(results) == 1 and notes  # the status text said why it kept waiting


def test_unknown_code_echoing_the_task_keeps_polling(double, fast_config, run_job):
    double.answer_next(400, poll_answer(lambda t: {"errors": [{"code": "weird", "taskUUID": t}]}),
                       task_type="getResponse", count=2)
    assert len(run_job(fast_config, ovi_task())) == 1


def test_unclear_answers_until_the_limit_end_in_a_timeout_not_a_failure(double, fast_config,
                                                                         run_job):
    config = dataclasses.replace(fast_config, job_timeout=0.6)
    double.answer_next(200, "<html>portal</html>", task_type="getResponse", count=1000)
    with pytest.raises(errors.JobTimeoutError) as info:
        run_job(config, ovi_task())
    assert not isinstance(info.value, errors.TaskFailedError)
    assert "not Runware's JSON" in str(info.value)
    double.clear_faults()


@pytest.mark.parametrize(("status", "task_type", "cause"), [
    (413, "imageUpload", "body size"),
    (404, "videoInference", "RUNWARE_API_URL"),
    (403, "videoInference", "proxy"),
])
def test_non_json_4xx_is_not_retried(double, fast_config, status, task_type, cause):
    double.answer_next(status, f"<html><title>{status}</title></html>", task_type=task_type,
                       count=10)

    async def go():
        async with client_mod.RunwareClient(fast_config) as client:
            if task_type == "imageUpload":
                from media_factory import png_bytes

                return await client.upload_image(png_bytes())
            return await client.submit_video(ovi_task())

    with pytest.raises(errors.EndpointError) as info:
        asyncio.run(go())
    assert double.count(task_type) == 1  # no retry, no repeated upload
    text = str(info.value)
    assert str(status) in text and "127.0.0.1" in text and cause in text
    double.clear_faults()


def test_non_json_5xx_is_retried(double, fast_config, run_job):
    double.answer_next(502, HTML, task_type="videoInference", count=2)
    assert len(run_job(fast_config, ovi_task())) == 1
    assert double.count("videoInference") == 3


def test_more_results_than_asked_are_ignored(double, fast_config, run_job, real_file_url,
                                             tmp_path):
    url = real_file_url(tmp_path)

    def three(task_uuid):
        return {"data": [{"taskUUID": task_uuid, "status": "success", "videoUUID": f"v{i}",
                          "videoURL": url, "seed": i}
                         for i in range(3)]}

    double.answer_next(200, poll_answer(three), task_type="getResponse")
    results = run_job(fast_config, ovi_task(numberResults=1))
    assert len(results) == 1


def test_insane_cost_and_seed_after_payment_do_not_crash(double, fast_config, run_job,
                                                        real_file_url, tmp_path):
    body = ('{"data": [{"taskUUID": "%s", "status": "success", "videoUUID": "v", '
            '"videoURL": "%s", "cost": NaN, "seed": -5, "progress": 1e9}]}')
    url = real_file_url(tmp_path)
    double.answer_next(200, poll_answer(lambda t: body % (t, url)),
                       task_type="getResponse", content_type="application/json")
    results = run_job(fast_config, ovi_task())
    assert results[0].cost is None and results[0].seed is None
    assert not math.isnan(sum(r.cost or 0.0 for r in results))


def test_an_endless_poll_answer_is_not_read_whole(double, fast_config, run_job):
    huge = '{"data": [' + ", ".join(['{"taskUUID": "x", "status": "processing"}'] * 150_000) \
        + "]}"
    assert len(huge) > client_mod.MAX_REPLY_BYTES
    double.answer_next(200, huge, task_type="getResponse", content_type="application/json")
    notes = []
    results = run_job(fast_config, ovi_task(),
                        on_progress=lambda p: p.note and notes.append(p.note))
    assert len(results) == 1 and any("larger than" in n for n in notes)


def test_an_error_that_only_echoes_the_task_is_no_proof_it_exists(double, fast_config):
    task_uuid = str(uuid.uuid4())  # never submitted
    double.answer_next(400, {"errors": [{"code": "weird", "taskUUID": task_uuid}]},
                       task_type="getResponse", count=2)

    async def ask():
        async with client_mod.RunwareClient(fast_config) as client:
            return await client.task_exists(task_uuid)

    assert asyncio.run(ask()) is None
    assert asyncio.run(ask()) is None
    assert asyncio.run(ask()) is False  # the double's own answer: taskNotFound


def test_the_status_text_says_why_it_keeps_waiting():
    common = pack_module("nodes.run")
    status = common.StatusText(None, "Ovi")
    status(client_mod.Progress("processing", T, 40.0, note="Runware answered weird (HTTP 400)"))
    assert "weird" in status.line() and "still waiting" in status.line()
