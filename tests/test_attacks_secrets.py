"""The API key never leaves in an error, a status text or a log line, whatever a server
echoes back: whole, in part, in another letter case, in any field of an error object."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import threading
import uuid
from pathlib import Path

import pytest
from conftest import pack_module

client_mod = pack_module("nodes.runware.client")
errors = pack_module("nodes.runware.errors")
config_mod = pack_module("nodes.runware.config")
common = pack_module("nodes.run")
host = pack_module("nodes.host")

KEY = "rwk-EchoCanary-5f2a9c7e1b3d8f60a4c2"


def leaks(text: str, key: str = KEY) -> str | None:
    """The first run of 8 characters of ``key`` found in ``text`` (any case), if any."""
    low, k = str(text).lower(), key.lower()
    for i in range(len(k) - errors.FRAGMENT + 1):
        if k[i:i + errors.FRAGMENT] in low:
            return k[i:i + errors.FRAGMENT]
    return None


def test_leaks_helper_finds_what_it_must():
    assert leaks(f"x {KEY.upper()[5:14]} y") and not leaks("nothing here")


ECHOES = {
    "whole in message": {"code": "invalidApiKey", "message": f"key {KEY} is invalid"},
    "upper case": {"code": "invalidApiKey", "message": f"key {KEY.upper()} is invalid"},
    "lower case": {"code": "invalidApiKey", "message": f"key {KEY.lower()} is invalid"},
    "swapped case": {"code": "invalidApiKey", "message": KEY.swapcase()},
    "middle fragment": {"code": "invalidApiKey", "message": f"got ...{KEY[6:18]}..."},
    "tail fragment": {"code": "invalidApiKey", "message": f"key ending {KEY[-9:]}"},
    "head fragment": {"code": "invalidApiKey", "message": f"key {KEY[:9]}..."},
    "bearer header": {"code": "unauthorized", "message": f"Authorization: Bearer {KEY}"},
    "in code": {"code": KEY, "message": "bad"},
    "in code, cased": {"code": KEY.upper(), "message": "bad"},
    "in parameter": {"code": "invalidParameter", "parameter": KEY, "message": "bad"},
    "in parameter list": {"code": "invalidParameter", "parameter": ["a", KEY[3:]],
                          "message": "bad"},
    "in allowedValues": {"code": "invalidParameter", "parameter": "x", "message": "bad",
                         "allowedValues": [KEY]},
    "in responseContent": {"code": "providerError", "message": "bad",
                           "responseContent": f'{{"echo": "{KEY}"}}'},
    "in taskUUID": {"code": "invalidParameter", "message": "bad", "taskUUID": KEY},
    "in taskType": {"code": "invalidParameter", "message": "bad", "taskType": KEY},
    "nested error": {"taskUUID": "t", "status": "error",
                     "error": {"code": KEY, "message": KEY, "parameter": KEY}},
    "url encoded-ish": {"code": "x", "message": f"apiKey={KEY.replace('-', '%2D')}"},
    "json escaped": {"code": "x", "message": json.dumps({"apiKey": KEY})},
    "twice, split by text": {"code": "x", "message": f"{KEY[:12]} and {KEY[12:]}"},
}


def renderings(err) -> list[str]:
    return [str(err), repr(err), json.dumps(err.as_dict()), err.message, err.code or "",
            err.parameter or "", err.task_uuid or "", err.task_type or "", err.hint or ""]


@pytest.mark.parametrize("shape", list(ECHOES))
def test_every_echo_shape_is_scrubbed_from_errors(shape):
    item = ECHOES[shape]
    if shape == "url encoded-ish":  # %2D is not the key's text: what matters is 8 in a row
        item = {**item, "message": f"apiKey={KEY}"}
    for status in (400, 401, 500, None):
        err = errors.error_from_item(item, status, secret=KEY)
        for text in renderings(err):
            assert leaks(text) is None, (shape, status, text)


@pytest.mark.parametrize("shape", list(ECHOES))
def test_a_held_key_is_scrubbed_from_any_error_built_anywhere(shape):
    errors.hold_secret(KEY)
    try:
        text = json.dumps(ECHOES[shape])
        for cls in (errors.RunwareError, errors.DownloadError, errors.SettingError,
                    errors.KeyFileError, errors.TaskFailedError):
            err = cls(text, code=text, parameter=text, task_uuid=text, hint=text)
            for rendered in renderings(err):
                assert leaks(rendered) is None, (cls, rendered)
    finally:
        errors.release_secret(KEY)


def test_a_released_key_is_no_longer_scrubbed():
    fresh = f"Fresh-{uuid.uuid4().hex}"
    errors.hold_secret(fresh)
    errors.hold_secret(fresh)  # two holders (two open clients)
    errors.release_secret(fresh)
    assert errors.scrub(f"x {fresh}") == "x ***"
    errors.release_secret(fresh)
    # Released (and never configured): no longer scrubbed, so ordinary text is untouched.
    assert errors.scrub(f"x {fresh}") == f"x {fresh}"


def test_scrub_keeps_ordinary_text_and_the_last_four():
    errors.hold_secret(KEY)
    try:
        assert errors.scrub(f"saved (ends in {KEY[-4:]})") == f"saved (ends in {KEY[-4:]})"
        assert errors.scrub("Task 1234 failed: inferenceError") == \
            "Task 1234 failed: inferenceError"
        assert errors.scrub(f"a{KEY}b") == "a***b"
        # Non-ASCII text around it keeps its characters (lower-casing never shifts them).
        assert errors.scrub(f"\u0130stanbul {KEY.upper()} \u00df") == "\u0130stanbul *** \u00df"
    finally:
        errors.release_secret(KEY)


# -- a real client against a server that echoes the key everywhere -------------------------


class EchoApi:
    """POSTs answer the queued (status, body) replies in order; the last one repeats."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, object]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = outer.replies.pop(0) if len(outer.replies) > 1 \
                    else outer.replies[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def echo_api():
    api = EchoApi()
    yield api
    api.server.shutdown()
    api.server.server_close()


def echo_config(api: EchoApi):
    return config_mod.ClientConfig(api_url=api.url, api_key=KEY, retry_base_delay=0.01,
                                   retry_max_delay=0.02, retry_jitter=0.0, max_retries=2,
                                   poll_initial=0.01, poll_max=0.02, job_timeout=5.0,
                                   cancel_interval=0.05)


def everything(err, caplog) -> list[str]:
    return renderings(err) + [caplog.text] + [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("shape", list(ECHOES))
@pytest.mark.parametrize("status", [400, 401, 500])
def test_client_errors_and_logs_never_carry_an_echoed_key(echo_api, caplog, shape, status):
    caplog.set_level(logging.DEBUG, logger="runware_ovi_sync")
    item = dict(ECHOES[shape])
    item.setdefault("taskType", "videoInference")
    # Several errors at once: the client joins them into one message.
    echo_api.replies = [(status, {"errors": [item, item]})]
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()),
            "model": "runware:190@1", "positivePrompt": "x"}

    async def go():
        async with client_mod.RunwareClient(echo_config(echo_api)) as client:
            await client.submit_video(task)

    with pytest.raises(errors.RunwareError) as info:
        asyncio.run(go())
    for text in everything(info.value, caplog):
        assert leaks(text) is None, text


@pytest.mark.parametrize("shape", list(ECHOES))
def test_poll_replies_echoing_the_key_are_scrubbed(echo_api, caplog, shape):
    caplog.set_level(logging.DEBUG, logger="runware_ovi_sync")
    task_uuid = str(uuid.uuid4())
    item = {**ECHOES[shape], "taskUUID": task_uuid}
    # A passing problem first (logged and polled through), then the job's failure.
    echo_api.replies = [
        (200, {"errors": [{**item, "code": "rateLimitExceeded"}]}),
        (200, {"errors": [{**item, "status": "error"}]}),
    ]

    async def go():
        async with client_mod.RunwareClient(echo_config(echo_api)) as client:
            await client.poll_video(task_uuid)

    with pytest.raises(errors.RunwareError) as info:
        asyncio.run(go())
    for text in everything(info.value, caplog):
        assert leaks(text) is None, text


# -- log lines and status text -----------------------------------------------------------------


def configured_key() -> str:
    """A fresh key, remembered for the process as a configured key is (a fresh one, so
    the tests above that release KEY stay independent of the order tests run in)."""
    key = f"rwk-Configured-{uuid.uuid4().hex}"
    errors.remember_secret(key)
    return key


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks(caplog):
    caplog.set_level(logging.DEBUG, logger="runware_ovi_sync")
    log = logging.getLogger("runware_ovi_sync")
    key = configured_key()
    log.info("key is %s", key.upper())
    log.info(f"key is {key[2:14]}")
    log.info("mapping %(k)s", {"k": key})
    log.warning("broken format %d", key)  # a format error must not print the key either
    try:
        raise ValueError(f"boom {key}")
    except ValueError:
        log.exception("failed")
    log.info("stack", stack_info=True, extra={"unused": key})
    assert len(caplog.records) == 6
    for record in caplog.records:
        assert leaks(record.getMessage(), key) is None
    assert leaks(caplog.text, key) is None
    assert "boom ***" in caplog.text


def test_every_logger_of_the_pack_has_the_filter():
    """Every logger a module of the pack holds (imported, not grepped) is filtered."""
    root = Path(__file__).resolve().parent.parent
    loggers = {}
    for path in sorted((root / "nodes").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if dotted.endswith("__main__"):
            continue
        for value in vars(pack_module(dotted)).values():
            if isinstance(value, logging.Logger):
                loggers[value.name] = value
    assert "runware_ovi_sync" in loggers and "runware_ovi_sync.double" in loggers
    for name, logger in loggers.items():
        assert name.split(".")[0] == "runware_ovi_sync", name
        assert any(isinstance(f, errors.SecretFilter) for f in logger.filters), name


def test_status_text_on_the_node_is_scrubbed(monkeypatch):
    shown = []
    monkeypatch.setattr(host, "send_progress_text", lambda text, node: shown.append(text))
    key = configured_key()
    common.StatusText("7", "Ovi").show(f"failed - {key.lower()}")
    assert shown and leaks(shown[-1], key) is None


def test_a_key_tried_in_the_settings_dialog_is_scrubbed_while_it_is_checked(echo_api):
    other = "rwk-TriedOnce-77aa88bb99cc00dd11ee"
    echo_api.replies = [(401, {"errors": [{"code": "invalidApiKey", "message": other}]})]
    config = config_mod.ClientConfig(api_url=echo_api.url, api_key=other)

    async def go():
        async with client_mod.RunwareClient(config) as client:
            client.raise_errors(await client.post([{"taskType": "ping"}]))

    with pytest.raises(errors.AuthError) as info:
        asyncio.run(go())
    assert leaks(str(info.value), other) is None
    # After the check, the refused key is forgotten (an attacker posting keys cannot grow
    # the process's memory).
    assert other not in errors._grams
